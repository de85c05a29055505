// A private containerd for tests: its own root, state, sockets and config
// under a temp dir, so it never meets a system containerd (or another test's).
// Started and stopped by PID; the shims it leaves are found by the temp dir in
// their command line and ended by PID too.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerdClient, M } from '../../../worker/runtime/containerd/client.js';


/** Debian packages the runtime tests need. */
export const RUNTIME_PACKAGES = ['containerd', 'runc', 'busybox-static', 'tini', 'docker-registry', 'apache2-utils'];

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function missingPackages(): string[] {
  const missing: string[] = [];
  if (!which('containerd') || !which('containerd-shim-runc-v2')) missing.push('containerd');
  if (!which('runc')) missing.push('runc');
  if (spawnSync('dpkg', ['-s', 'busybox-static'], { stdio: 'ignore' }).status !== 0) missing.push('busybox-static');
  if (!existsSync('/usr/bin/tini-static')) missing.push('tini');
  if (!which('docker-registry')) missing.push('docker-registry');
  if (!which('htpasswd')) missing.push('apache2-utils'); // a registry that wants a password
  return missing;
}

/** Check (and as root, install) what the runtime tests need; returns the problems left. */
export function prepareRuntimePrerequisites(): string[] {
  if (process.platform !== 'linux') return ['not Linux'];
  if (process.getuid?.() !== 0) return ['not root'];
  if (!existsSync('/sys/fs/cgroup/memory') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) return ['no cgroup hierarchy mounted'];
  let missing: string[];
  try {
    missing = missingPackages();
  } catch {
    missing = RUNTIME_PACKAGES;
  }
  if (missing.length === 0) return [];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-qq', ...missing], { env, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { env, timeout: 300_000 });
    r = spawnSync('apt-get', ['install', '-y', '-qq', ...missing], { env, encoding: 'utf8', timeout: 300_000 });
  }
  if (r.status !== 0) return [`apt-get install ${missing.join(' ')} failed: ${(r.stderr || '').trim().split('\n').pop()}`];
  const still = missingPackages();
  return still.length ? [`still missing after apt-get: ${still.join(' ')}`] : [];
}

import { waitFor } from '../../support/wait.js';

export { waitFor };

/** Send a signal; a process already gone is not an error. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

const alive = (pid: number): boolean => {
  try {
    // State Z (zombie) counts as gone.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

export class PrivateContainerd {
  readonly socket: string;
  readonly logFile: string;
  private proc?: ChildProcess;

  constructor(readonly dir: string) {
    this.socket = join(dir, 'containerd.sock');
    this.logFile = join(dir, 'containerd.log');
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(timeoutMs = 30_000): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const config = join(this.dir, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = "${join(this.dir, 'root')}"`,
        `state = "${join(this.dir, 'state')}"`,
        // Only what shoal uses: no CRI, no snapshotters but overlayfs (and native).
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
        '[grpc]',
        `  address = "${this.socket}"`,
        '[ttrpc]',
        `  address = "${this.socket}.ttrpc"`,
        '[metrics]',
        '  address = ""',
        '',
      ].join('\n'),
    );
    const log = openSync(this.logFile, 'a');
    this.proc = spawn('containerd', ['--config', config], { stdio: ['ignore', log, log] });
    const exited = new Promise<never>((_, reject) => this.proc!.once('exit', (code) => reject(new Error(`containerd exited (${code}); see ${this.logFile}`))));
    exited.catch(() => undefined);
    const client = new ContainerdClient(this.socket, 'shoal', 2_000);
    try {
      await Promise.race([waitFor('containerd to answer', () => (existsSync(this.socket) ? client.call(M.version, {}) : undefined), timeoutMs, 100), exited]);
    } catch (e) {
      throw new Error(`${(e as Error).message}\ncontainerd's log ends:\n${this.logTail()}`);
    } finally {
      client.close();
    }
  }

  /** PIDs of shims this containerd started (their command line names our socket). */
  shimPids(): number[] {
    const out: number[] = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        if (cmd.includes('containerd-shim') && cmd.includes(this.socket)) out.push(Number(p));
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  /** Stop containerd; its shims (and so the containers) go on unless killShims. */
  async stop(killShims = true): Promise<void> {
    const pid = this.proc?.pid;
    if (pid && alive(pid)) {
      signal(pid, 'SIGTERM');
      const gone = (): true | undefined => (alive(pid) ? undefined : true);
      await waitFor('containerd to exit', gone, 10_000).catch(async () => {
        signal(pid, 'SIGKILL');
        await waitFor('containerd to exit after SIGKILL', gone, 10_000);
      });
    }
    if (!killShims) return;
    for (const shim of this.shimPids()) signal(shim, 'SIGKILL');
  }

  /** Whether its containerd process is up (started and not exited). */
  get running(): boolean {
    const pid = this.proc?.pid;
    return pid !== undefined && this.proc?.exitCode === null && this.proc.signalCode === null && alive(pid);
  }

  /** The last lines of its log (for a failure's message). */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /**
   * Run fn with containerd stopped (shims kept), and start it again after,
   * whatever fn does: a failure in fn must not leave the daemon down for the
   * tests after it.
   */
  async whileStopped<T>(fn: () => Promise<T> | T): Promise<T> {
    await this.stop(false);
    let result: { value: T } | { error: unknown };
    try {
      result = { value: await fn() };
    } catch (error) {
      result = { error };
    }
    try {
      await this.start();
    } catch (e) {
      // Both failures matter: the first says what went wrong, the second why the next tests fail too.
      if ('error' in result) throw new Error(`${String(result.error)}; and containerd did not start again: ${(e as Error).message}`);
      throw e;
    }
    if ('error' in result) throw result.error;
    return result.value;
  }

  /** Stop, unmount whatever is left under the dir, delete it. */
  async destroy(): Promise<void> {
    await this.stop();
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(this.dir))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
