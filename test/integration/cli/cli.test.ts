// The built `shoal` CLI as a user runs it, without a daemon: version, help,
// and a clear error when shoald cannot be reached. Needs a build (dist/);
// skipped without one, except under CI=true.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SHOAL_VERSION } from '../../../proto/client.js';
import { tempDir } from '../../support/tempdir.js';

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

  it('refuses `service update --rollback` with other changes before calling shoald', async () => {
    const sock = path.join(repo, '.tmp', `no-shoald-${process.pid}.sock`);
    const r = await shoal('--socket', sock, 'service', 'update', '--rollback', '--image', 'busybox:2', 'web');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--rollback takes no other change: roll back first, then update');
    expect(r.stderr).not.toContain('cannot reach shoald');
  });

  it('says where it looked when shoald is not there, and exits non-zero', async () => {
    const sock = path.join(repo, '.tmp', `no-shoald-${process.pid}.sock`);
    const r = await shoal('--socket', sock, 'node', 'ls');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot reach shoald at ${sock}`);
    expect(r.stderr).toMatch(/is the daemon running/);
  });
});

describe.skipIf(!built && process.env.CI !== 'true')('service create --env-file', () => {
  // Node 20 takes a --env-file anywhere on its command line as its own (and exits 9 when the file is
  // missing); after `--` it leaves it to the program, which is how this reaches shoal's own check.
  const run = (...args: string[]) => new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--', SHOAL, ...args], { encoding: 'utf8', timeout: 20_000 }, (err, _out, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr });
    });
  });
  const sock = path.join(repo, '.tmp', `no-shoald-${process.pid}.sock`);

  it.each([
    { why: 'a file that is not there', file: () => '/nonexistent/app.env', error: 'cannot read --env-file /nonexistent/app.env: no such file' },
    { why: 'a line without a variable name', file: () => envFile('A=1\n=2\n'), error: 'line 2: the variable name is empty; use KEY=VALUE' },
  ])('refuses $why before calling shoald', async ({ file, error }) => {
    const r = await run('--socket', sock, 'service', 'create', '--env-file', file(), 'busybox');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(error);
    expect(r.stderr).not.toContain('cannot reach shoald');
  });
});

function envFile(text: string): string {
  const f = path.join(tempDir('shoal-env-'), 'app.env');
  writeFileSync(f, text);
  return f;
}

describe.skipIf(!built && process.env.CI !== 'true')('the shoal CLI\'s start: its bundle through a V8 code cache', () => {
  // A copy of the entry point and the bundle, so the real dist/ is left alone.
  const dist = path.join(repo, 'dist/cli/shoal');
  const run = (dir: string, ...args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [path.join(dir, 'main.js'), ...args], { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: unknown }).code) || 1 : 0, stdout, stderr }));
  });
  const cacheOf = (dir: string) => `shoal.cjs.${createHash('sha1').update(readFileSync(path.join(dir, 'shoal.cjs'))).digest('hex').slice(0, 16)}.cache`;
  const caches = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.cache')).sort();

  it('writes a cache named by the bundle\'s hash, survives a bad one, replaces it when the bundle changes, and prefers a newer program.js', async () => {
    const dir = tempDir('shoal-cli-');
    try {
      for (const f of ['program.js', 'main.js', 'shoal.cjs']) copyFileSync(path.join(dist, f), path.join(dir, f));
      utimesSync(path.join(dir, 'program.js'), new Date(0), new Date(0));
      expect((await run(dir, '--version')).stdout.trim()).toBe(`shoal version ${SHOAL_VERSION}`);
      const first = cacheOf(dir);
      expect(caches(dir)).toEqual([first]);

      // A cache V8 rejects (garbage of the right name) is only a slower start, and is written anew.
      writeFileSync(path.join(dir, first), 'not a code cache');
      expect((await run(dir, '--version')).code).toBe(0);
      expect(readFileSync(path.join(dir, first), 'utf8')).not.toBe('not a code cache');

      // A changed bundle gets its own cache; the old one goes.
      appendFileSync(path.join(dir, 'shoal.cjs'), '\n// changed\n');
      expect((await run(dir, '--version')).code).toBe(0);
      expect(caches(dir)).toEqual([cacheOf(dir)]);
      expect(cacheOf(dir)).not.toBe(first);

      // program.js newer than the bundle (tsc ran since the bundle was made): it runs instead, and
      // here, without the packages and modules it imports beside it, fails to load them.
      utimesSync(path.join(dir, 'program.js'), new Date(), new Date(Date.now() + 60_000));
      const r = await run(dir, '--version');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/Cannot find (module|package) .* imported from .*program\.js/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
