// The container logger script, run the way containerd's shim runs it: stdout
// on fd 3, stderr on fd 4, readiness on fd 5.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { installLogger, loggerUri } from '../../../worker/runtime/containerd/logger.js';

const tmp = mkdtempSync(join(tmpdir(), 'shoal-logger-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('container logger', () => {
  it('URI: one query key, the path encoded', () => {
    expect(loggerUri('/var/lib/shoal/runtime/shoal-logger', '/var/log/shoal/t 1.log')).toBe('binary:///var/lib/shoal/runtime/shoal-logger?file=%2Fvar%2Flog%2Fshoal%2Ft%201.log');
  });

  const logger = join(tmp, 'bin', 'shoal-logger');

  /** Run the logger as the shim does (no PATH), write to both streams, close them; its exit code and what it said. */
  async function runLogger(file: string, cwd = tmp): Promise<{ code: number | null; said: string }> {
    const p = spawn(logger, ['file', file], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe', 'pipe'], env: {}, cwd });
    let said = '';
    p.stderr!.on('data', (b: Buffer) => (said += b.toString()));
    const fds = p.stdio as unknown as (Readable & Writable)[];
    const [out, err, ready] = [fds[3] as Writable, fds[4] as Writable, fds[5] as Readable];
    const exited = new Promise<number | null>((r) => p.once('close', (c: number | null) => r(c))); // after its stderr is read
    await Promise.race([
      new Promise<void>((r) => {
        ready.resume();
        ready.once('end', () => r());
      }),
      exited,
    ]);
    out.on('error', () => undefined);
    err.on('error', () => undefined);
    out.write('line 1\n');
    await new Promise<void>((r) => err.write('oops\n', () => r()));
    out.end('line 2\n');
    err.end();
    const code = await exited;
    return { code, said };
  }

  it('installs once, mode 0755', () => {
    installLogger(logger);
    installLogger(logger); // unchanged: no rewrite needed
    expect(statSync(logger).mode & 0o777).toBe(0o755);
  });

  it.each([
    { case: 'a directory still missing is made', file: () => join(tmp, 'logs', 'a', 'task.log'), at: () => join(tmp, 'logs', 'a', 'task.log') },
    { case: 'an existing directory is used as is', file: () => (mkdirSync(join(tmp, 'made'), { recursive: true }), join(tmp, 'made', 'task.log')), at: () => join(tmp, 'made', 'task.log') },
    { case: 'a bare file name is in the working directory', file: () => 'bare.log', at: () => join(tmp, 'bare.log') },
  ])('$case: signals ready, appends both streams as stamped lines, exits at EOF', async ({ file, at }) => {
    installLogger(logger);
    expect(await runLogger(file())).toEqual({ code: 0, said: '' });
    // One line per output line: <UTC time, seconds> <stream> <text>.
    const lines = readFileSync(at(), 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    for (const l of lines) expect(Math.abs(Date.parse(l.slice(0, 20)) - Date.now())).toBeLessThan(60_000);
    expect(lines.map((l) => l.slice(0, 20))).toEqual(lines.map(() => expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)));
    expect(lines.map((l) => l.slice(21)).sort()).toEqual(['stderr oops', 'stdout line 1', 'stdout line 2']);
  });

  it('a file it cannot open: exits 1 before signalling ready (the shim then fails the task)', async () => {
    installLogger(logger);
    writeFileSync(join(tmp, 'notadir'), '');
    const { code, said } = await runLogger(join(tmp, 'notadir', 'task.log'));
    expect(code).toBe(1);
    expect(said).toContain(join(tmp, 'notadir'));
  });
});
