// Small I/O helpers of the lab: running commands, checking prerequisites,
// and telling whether a pid is still the process we started.
import { execFile } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion (no shell). Throws on a non-zero exit unless allowFail. */
export function run(argv: readonly string[], opts: { input?: string; allowFail?: boolean } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0]!, argv.slice(1), { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      if (code !== 0 && !opts.allowFail) {
        reject(new Error(`${argv.join(' ')} failed (exit ${code}): ${String(stderr).trim() || String(stdout).trim()}`));
        return;
      }
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin?.end();
  });
}

/** Command -> the Debian package that provides it. */
export const REQUIRED_COMMANDS: ReadonlyArray<readonly [string, string]> = [
  ['ip', 'iproute2'],
  ['nft', 'nftables'],
  ['nsenter', 'util-linux'],
  ['unshare', 'util-linux'],
  ['hostname', 'hostname'],
];

// sudo and cron often drop the sbin directories from PATH; ip and nft live there.
const EXTRA_PATH = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export function findCommand(cmd: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...EXTRA_PATH];
  for (const d of dirs) {
    const p = path.join(d, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface Prerequisites {
  ok: boolean;
  isRoot: boolean;
  missingCommands: string[];
  missingPackages: string[];
  /** One human sentence per problem, each saying how to fix it. */
  problems: string[];
}

export function checkPrerequisites(): Prerequisites {
  return describePrerequisites(
    process.getuid?.() === 0,
    REQUIRED_COMMANDS.filter(([c]) => !findCommand(c)).map(([c]) => c),
  );
}

/** The verdict and its fix-it messages for a machine with these facts. */
export function describePrerequisites(isRoot: boolean, missingCommands: string[]): Prerequisites {
  const missingPackages = [...new Set(REQUIRED_COMMANDS.filter(([c]) => missingCommands.includes(c)).map(([, p]) => p))];
  const problems: string[] = [];
  if (!isRoot) problems.push('the lab needs root (network namespaces, veth links, nftables): run it as root, or with sudo');
  if (missingPackages.length > 0) {
    problems.push(
      `missing ${missingCommands.join(', ')} (Debian package${missingPackages.length > 1 ? 's' : ''} ${missingPackages.join(' ')}): ` +
        `apt-get install -y ${missingPackages.join(' ')}`,
    );
  }
  return { ok: problems.length === 0, isRoot, missingCommands, missingPackages, problems };
}

/** The machine's signal numbers, for 128+n exit codes. */
export function signalNumbers(): Record<string, number> {
  return { ...os.constants.signals };
}

export interface ProcInfo {
  /** argv as the kernel reports it now. */
  cmdline: string[];
  /** Start time in clock ticks since boot: with the pid it names one process for good. */
  startTime: string;
  zombie: boolean;
}

/** What /proc says about pid, or undefined if there is no such process. */
export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may itself contain ')' or spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0]!;
    const startTime = rest[19]!; // field 22 of stat; 'rest' starts at field 3
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const cmdline = raw.length === 0 ? [] : raw.replace(/\0$/, '').split('\0');
    return { cmdline, startTime, zombie: state === 'Z' || state === 'X' };
  } catch {
    return undefined;
  }
}

export function sameArgv(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The process runs the tail of the command it was started with: a wrapper at its
 * head (`nice -n 5`, `env`) exec'd the rest. Its pid then never shows the command.
 */
export function execedInto(cmdline: readonly string[], argv: readonly string[]): boolean {
  return cmdline.length > 0 && cmdline.length < argv.length && sameArgv(cmdline, argv.slice(argv.length - cmdline.length));
}

/** Pids of processes whose network namespace is the one mounted at nsPath. */
export function pidsInNetns(nsPath: string): number[] {
  let target: string;
  try {
    target = `net:[${statIno(nsPath)}]`;
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const ent of readdirSafe('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      if (readlinkSync(`/proc/${ent}/ns/net`) === target) out.push(Number(ent));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function statIno(p: string): number {
  return statSync(p).ino;
}

function readdirSafe(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls fn until it returns true or the deadline passes. */
export async function waitUntil(what: string, fn: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}
