// A private Docker Engine for tests, never the system one: dockerd with its
// own data root, exec root, pidfile and API socket under a temp dir, no bridge
// and no iptables rules, on top of a private containerd (PrivateContainerd)
// so it never meets a system containerd at /run/containerd either. Started and
// stopped by PID; what it leaves behind (mounts, cgroups, runc state of its
// namespace, /run/docker if it made that) is cleaned up by name.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { PrivateContainerd, prepareRuntimePrerequisites, waitFor } from './containerd-harness.js';

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** What the Docker adapter's tests need on top of the containerd ones: dockerd (Debian's docker.io) and docker-init. */
function dockerMissing(): boolean {
  return !which('dockerd') || !existsSync('/usr/bin/docker-init');
}

/** Check (and as root, install) what the Docker runtime tests need; returns the problems left. */
export function prepareDockerPrerequisites(): string[] {
  const base = prepareRuntimePrerequisites();
  if (base.length) return base;
  if (!dockerMissing()) return [];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-qq', 'docker.io'], { env, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { env, timeout: 300_000 });
    r = spawnSync('apt-get', ['install', '-y', '-qq', 'docker.io'], { env, encoding: 'utf8', timeout: 300_000 });
  }
  if (r.status !== 0) return [`apt-get install docker.io failed: ${(r.stderr || '').trim().split('\n').pop()}`];
  return dockerMissing() ? ['still missing after apt-get: dockerd or /usr/bin/docker-init (docker.io, tini)'] : [];
}

/** GET a path of the engine's API over its unix socket: status and body. */
export function engineGet(socket: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

export interface PrivateDockerdOptions {
  /** Passed as --insecure-registry (the engine adds 127.0.0.0/8 by itself). */
  insecureRegistries?: string[];
  /** Unique per test run: the containerd namespace of dockerd's containers (and so runc's state dir). */
  namespace: string;
  /** cgroup parent of every container (cgroupfs), e.g. /shoal-docker-test-123. */
  cgroupParent: string;
}

export class PrivateDockerd {
  readonly socket: string;
  readonly logFile: string;
  readonly containerd: PrivateContainerd;
  private proc?: ChildProcess;
  private madeRunDocker = false;

  constructor(
    readonly dir: string,
    readonly opts: PrivateDockerdOptions,
  ) {
    this.socket = join(dir, 'docker.sock');
    this.logFile = join(dir, 'dockerd.log');
    this.containerd = new PrivateContainerd(join(dir, 'containerd'));
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(timeoutMs = 30_000): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    // dockerd makes /run/docker/plugins whatever its exec root: remove it afterwards if it was not there.
    this.madeRunDocker = !existsSync('/run/docker');
    await this.containerd.start();
    const config = join(this.dir, 'daemon.json');
    // An empty config file of our own: /etc/docker/daemon.json is the system engine's.
    writeFileSync(config, '{}\n');
    const args = [
      '--config-file', config,
      '--data-root', join(this.dir, 'data'),
      '--exec-root', join(this.dir, 'exec'),
      '--pidfile', join(this.dir, 'docker.pid'),
      '-H', `unix://${this.socket}`,
      '--containerd', this.containerd.socket,
      '--containerd-namespace', this.opts.namespace,
      '--containerd-plugins-namespace', `${this.opts.namespace}-plugins`,
      '--cgroup-parent', this.opts.cgroupParent,
      '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-forward=false', '--ip-masq=false', '--userland-proxy=false',
      '--log-level', 'warn',
      ...(this.opts.insecureRegistries ?? []).flatMap((r) => ['--insecure-registry', r]),
    ];
    const log = openSync(this.logFile, 'a');
    this.proc = spawn('dockerd', args, { stdio: ['ignore', log, log] });
    const exited = new Promise<never>((_, reject) => this.proc!.once('exit', (code) => reject(new Error(`dockerd exited (${code}); see ${this.logFile}`))));
    exited.catch(() => undefined);
    await Promise.race([
      waitFor('dockerd to answer', async () => (existsSync(this.socket) && (await engineGet(this.socket, '/_ping')).body === 'OK' ? true : undefined), timeoutMs, 100),
      exited,
    ]);
  }

  /** Stop dockerd (it stops its containers first), then containerd; clean up what they leave. */
  async destroy(): Promise<void> {
    const pid = this.proc?.pid;
    if (pid && alive(pid)) {
      process.kill(pid, 'SIGTERM');
      await waitFor('dockerd to exit', () => (alive(pid) ? undefined : true), 20_000).catch(() => process.kill(pid, 'SIGKILL'));
    }
    await this.containerd.destroy();
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(this.dir))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    rmSync(this.dir, { recursive: true, force: true });
    for (const h of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
      try {
        rmdirSync(`/sys/fs/cgroup/${h}${this.opts.cgroupParent}`);
      } catch {
        // not there, or not a hierarchy
      }
    }
    for (const d of [`/run/containerd/runc/${this.opts.namespace}`, `/run/containerd/runc/${this.opts.namespace}-plugins`]) {
      try {
        rmdirSync(d);
      } catch {
        // never made
      }
    }
    if (this.madeRunDocker) {
      for (const d of ['/run/docker/plugins', '/run/docker']) {
        try {
          rmdirSync(d);
        } catch {
          // not empty (someone else's) or gone
        }
      }
    }
  }
}
