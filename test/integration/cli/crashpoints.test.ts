// shoald's start with SHOAL_CRASH_AT set: a name that is no crash point stops it
// before it touches anything. Needs a build (dist/).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SHOALD = path.join(repo, 'dist/cli/shoald/main.js');

describe.skipIf(!existsSync(SHOALD) && process.env.CI !== 'true')('shoald with SHOAL_CRASH_AT', () => {
  it('refuses a SHOAL_CRASH_AT that names no crash point, before anything starts', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [SHOALD, '--state-dir', '/nonexistent/never-created'], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, SHOAL_CRASH_AT: 'join:after-raft' } }, (err, _out, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr });
      });
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('SHOAL_CRASH_AT: no crash point named "join:after-raft"; the points are: join:after-raft-add');
    expect(existsSync('/nonexistent/never-created')).toBe(false);
  });
});
