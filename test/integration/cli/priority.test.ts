// shoald's CPU priority on real processes: every thread's nice value, and the
// session's autogroup when the process leads its session (as the lab and a
// service manager start shoald). Raising priority needs root; lowering it does
// not, so the unprivileged cases use a positive value. Needs a build (dist/).
import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { autogroupNice, threadNices } from '../../support/sched.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const PRIORITY = path.join(repo, 'dist/cli/shoald/priority.js');
const SHOALD = path.join(repo, 'dist/cli/shoald/main.js');
const built = existsSync(PRIORITY);
const root = process.getuid?.() === 0;
const hasAutogroup = existsSync('/proc/self/autogroup');

const children: number[] = [];
afterEach(() => {
  for (const pid of children.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** A node process that applies the nice value, prints the result, and stays up to be looked at. */
async function applied(nice: number, ownSession: boolean): Promise<{ pid: number; result: { threads: number; autogroup: boolean; error?: string } }> {
  const script = `import(${JSON.stringify(PRIORITY)}).then((m) => { console.log(JSON.stringify(m.applyNice(${nice}))); setInterval(() => {}, 1000); })`;
  const child = spawn(process.execPath, ['-e', script], { detached: ownSession, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child.pid!);
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.on('exit', (code) => reject(new Error(`child exited (${code}) before answering`)));
  });
  return { pid: child.pid!, result: JSON.parse(line) };
}

describe.skipIf(!built && process.env.CI !== 'true')('shoald --nice on a real process', () => {
  it('sets every thread, and the autogroup of the session it leads', async () => {
    const { pid, result } = await applied(5, true);
    expect(result.error).toBeUndefined();
    expect(result.threads).toBeGreaterThan(1); // V8's and libuv's helpers too, not only the event loop
    expect(new Set(threadNices(pid))).toEqual(new Set([5]));
    if (hasAutogroup) {
      expect(result.autogroup).toBe(true);
      expect(autogroupNice(pid)).toBe(5);
    }
  });

  it('leaves the autogroup of a session it does not lead alone (it would rank the whole session)', async () => {
    const { pid, result } = await applied(5, false);
    expect(result.autogroup).toBe(false);
    expect(new Set(threadNices(pid))).toEqual(new Set([5]));
    if (hasAutogroup) expect(autogroupNice(pid)).toBe(autogroupNice(process.pid));
  });

  it.skipIf(!root && process.env.CI !== 'true')('raises the priority as root (shoald\'s default is -10)', async () => {
    const { pid, result } = await applied(-10, true);
    expect(result.error).toBeUndefined();
    expect(new Set(threadNices(pid))).toEqual(new Set([-10]));
    if (hasAutogroup) expect(autogroupNice(pid)).toBe(-10);
  });

  it.each([['30'], ['-21'], ['fast'], ['1.5'], ['']])('shoald --nice %j is refused with the range, before anything starts', async (v) => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [SHOALD, '--nice', v, '--state-dir', '/nonexistent/never-created'], { encoding: 'utf8', timeout: 20_000 }, (err, _out, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr });
      });
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`--nice ${v}: expected an integer from -20 (highest priority) to 19 (lowest)`);
    expect(existsSync('/nonexistent/never-created')).toBe(false);
  });
});
