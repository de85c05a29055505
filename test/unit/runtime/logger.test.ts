// The container logger script, run the way containerd's shim runs it: stdout
// on fd 3, stderr on fd 4, readiness on fd 5.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
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

  it('signals ready, appends both streams as stamped lines, exits at EOF', async () => {
    const logger = join(tmp, 'bin', 'shoal-logger');
    installLogger(logger);
    installLogger(logger); // unchanged: no rewrite needed
    expect(statSync(logger).mode & 0o777).toBe(0o755);
    const log = join(tmp, 'logs', 'a', 'task.log');
    // No PATH, like the shim gives it.
    const p = spawn(logger, ['file', log], { stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'pipe', 'pipe'], env: {} });
    const fds = p.stdio as unknown as (Readable & Writable)[];
    const [out, err, ready] = [fds[3] as Writable, fds[4] as Writable, fds[5] as Readable];
    await new Promise<void>((r) => {
      ready.resume();
      ready.once('end', () => r());
    });
    out.write('line 1\n');
    await new Promise<void>((r) => err.write('oops\n', () => r()));
    out.end('line 2\n');
    err.end();
    const code = await new Promise<number | null>((r) => p.once('exit', r));
    expect(code).toBe(0);
    // One line per output line: <UTC time, seconds> <stream> <text>.
    const lines = readFileSync(log, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    for (const l of lines) expect(Math.abs(Date.parse(l.slice(0, 20)) - Date.now())).toBeLessThan(60_000);
    expect(lines.map((l) => l.slice(0, 20))).toEqual(lines.map(() => expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)));
    expect(lines.map((l) => l.slice(21)).sort()).toEqual(['stderr oops', 'stdout line 1', 'stdout line 2']);
  });
});
