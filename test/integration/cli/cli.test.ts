// The built `shoal` CLI as a user runs it, without a daemon: version, help,
// and a clear error when shoald cannot be reached. Needs a build (dist/);
// skipped without one, except under CI=true.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SHOAL_VERSION } from '../../../proto/client.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SHOAL = path.join(repo, 'dist/cli/shoal/main.js');
const built = existsSync(SHOAL);
if (!built && process.env.CI !== 'true') console.log('skipping CLI tests: run `npm run build` first');

function shoal(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SHOAL, ...args], { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(!built && process.env.CI !== 'true')('the shoal CLI without a daemon', () => {
  it.each([['--version'], ['-v']])('%s prints the version and exits 0', async (flag) => {
    const r = await shoal(flag);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`shoal version ${SHOAL_VERSION}`);
  });

  it('--help lists the command groups', async () => {
    const r = await shoal('--help');
    expect(r.code).toBe(0);
    for (const c of ['swarm', 'node', 'service', 'image', 'info']) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
  });

  it('says where it looked when shoald is not there, and exits non-zero', async () => {
    const sock = path.join(repo, '.tmp', `no-shoald-${process.pid}.sock`);
    const r = await shoal('--socket', sock, 'node', 'ls');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot reach shoald at ${sock}`);
    expect(r.stderr).toMatch(/is the daemon running/);
  });
});
