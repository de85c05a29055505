// Process and environment helpers shared by the benches: finding the repo
// root, picking free ports, starting servers with their output in log files,
// stopping them by pid, and cleaning up on Ctrl-C or errors.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory holding the repo's package.json, found by walking up from this file. */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/** n distinct free TCP ports on 127.0.0.1 (all held open until all are chosen). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve());
      });
      ports.push((srv.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- child processes -------------------------------------------------------

/** Children started through spawnServer and not yet seen to exit. */
const live = new Map<number, ChildProcess>();

export interface Server {
  name: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  /** Resolves with the exit code (or signal name) when the process exits. */
  exited: Promise<number | string>;
}

/** Start a long-running process with stdout and stderr appended to logFile. */
export function spawnServer(
  name: string,
  cmd: string,
  args: string[],
  logFile: string,
  opts: SpawnOptions = {},
): Server {
  const fd = fs.openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { ...opts, stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
  if (child.pid === undefined) {
    throw new Error(`${name}: could not start ${cmd}`);
  }
  const pid = child.pid;
  live.set(pid, child);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(pid);
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', () => {
      live.delete(pid);
      resolve('spawn error');
    });
  });
  return { name, child, pid, logFile, exited };
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
export async function stopServer(s: Server, graceMs = 5000): Promise<void> {
  if (!live.has(s.pid)) return;
  try {
    process.kill(s.pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
  if ((await Promise.race([s.exited, timer])) === 'timeout') {
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      /* exited meanwhile */
    }
    await s.exited;
  }
}

/** The last `lines` lines of a log file, for error messages. */
export function tailFile(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---- cleanup ---------------------------------------------------------------

type CleanupFn = () => Promise<void> | void;
const cleanups: CleanupFn[] = [];
const tempDirs = new Set<string>();
let cleaning: Promise<void> | undefined;
let installed = false;

/** Register an async cleanup step; steps run newest first. */
export function onCleanup(fn: CleanupFn): void {
  installHandlers();
  cleanups.push(fn);
}

/** A temp dir under base that is removed on cleanup (and, as a last resort, at exit). */
export function makeTempDir(base: string, prefix: string): string {
  installHandlers();
  const dir = fs.mkdtempSync(path.join(base, prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Run every registered cleanup step once (idempotent). */
export function runCleanup(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const fn = cleanups.pop()!;
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`cleanup: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
    for (const dir of [...tempDirs]) removeTempDir(dir);
  })();
  return cleaning;
}

function installHandlers(): void {
  if (installed) return;
  installed = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: stopping servers and removing data dirs...\n`);
      void runCleanup().finally(() => process.exit(130));
    });
  }
  // A reader that went away (`bench ... | head`) must not kill us before the
  // async cleanup ran: what we started would be left running.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      void runCleanup().finally(() => process.exit(141));
    });
  }
  // Last resort when the process exits without having cleaned up (uncaught
  // error, process.exit): kill what we started, by pid, and remove dirs.
  process.on('exit', () => {
    for (const pid of live.keys()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  });
}
