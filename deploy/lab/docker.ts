// A Docker Engine per lab host, as a lab sidecar: the docker.ts counterpart of
// containerd.ts. Each host's dockerd keeps everything under <hostDir>/docker/
// (config, data root, exec root, pidfile, API socket) and starts its own
// managed containerd, whose config, state, sockets and runc state all land
// under the exec root (<exec>/containerd/, <exec>/runtime-runc/<namespace>/),
// so hosts never share a containerd, a runc root or a container name with each
// other or with the machine's own engine. No bridge, no iptables, no IP
// forwarding: shoal's Docker runtime runs tasks with network none (or host).
// Like containerd, dockerd runs in the host's network namespace and the
// machine's mount namespace. Containers go into the cgroup parent
// /shoal-docker-<lab>-<host>, and with --live-restore they outlive a killed
// dockerd the way they outlive a killed containerd (the shims keep them).
//
// Also what `down` runs for such hosts once the processes are dead: the
// managed containerd if it still runs, the containers (runc delete --force in
// the engine's runc root), the shims, the mounts under <hostDir>/docker (the
// data root, overlay rootfs, network namespace files) and the cgroups.
import { existsSync, readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import type { ImageInfo } from '../../worker/runtime/runtime.js';
import type { DockerRuntime } from '../../worker/runtime/docker/runtime.js';
import { shimPids, shimSocket, unmountUnder } from './containerd.js';

export { shimSocket };
import type { Lab } from './lab.js';
import { DEFAULT_DAEMON_CMD, DEFAULT_SUBNET, hostAddress, type ProcSpec } from './plan.js';
import { REGISTRY_PORT, registrySidecar } from './registry.js';
import { procInfo, run, waitUntil } from './sys.js';

export const DOCKERD_PROC = 'dockerd';
/** Where containerd-shim-runc-v2 puts its sockets (/run/containerd/s/<sha256 of containerd's address, namespace, id>), for every containerd. */

export interface DockerPaths {
  dir: string;
  /** Our own (empty) daemon.json: /etc/docker/daemon.json is the machine engine's. */
  config: string;
  dataRoot: string;
  execRoot: string;
  pidFile: string;
  socket: string;
  /** The managed containerd: <exec>/containerd/ (containerd.toml, containerd.sock, containerd.pid, daemon/ = its state). */
  containerdDir: string;
  containerdConfig: string;
  containerdSocket: string;
  containerdPidFile: string;
  /** The task bundles: <containerd state>/io.containerd.runtime.v2.task/<namespace>/<id>/. */
  tasks: string;
  /** runc's state: <runcRoot>/<namespace>/<id> (dockerd gives the shim <exec>/runtime-runc as runc's root). */
  runcRoot: string;
}

export function dockerPaths(hostDir: string): DockerPaths {
  const dir = path.join(hostDir, 'docker');
  const execRoot = path.join(dir, 'exec');
  const containerdDir = path.join(execRoot, 'containerd');
  return {
    dir,
    config: path.join(dir, 'daemon.json'),
    dataRoot: path.join(dir, 'data'),
    execRoot,
    pidFile: path.join(dir, 'docker.pid'),
    socket: path.join(dir, 'docker.sock'),
    containerdDir,
    containerdConfig: path.join(containerdDir, 'containerd.toml'),
    containerdSocket: path.join(containerdDir, 'containerd.sock'),
    containerdPidFile: path.join(containerdDir, 'containerd.pid'),
    tasks: path.join(containerdDir, 'daemon', 'io.containerd.runtime.v2.task'),
    runcRoot: path.join(execRoot, 'runtime-runc'),
  };
}

/** The cgroup parent of a lab host's containers: /shoal-docker-<lab>-<host> (its netns name, unique on the machine). */
export function dockerCgroupParent(netns: string): string {
  return `/shoal-docker-${netns}`;
}

export interface DockerSidecarOptions {
  /** Registries dockerd reaches over plain HTTP (host:port); 127.0.0.0/8 always is. */
  insecureRegistries?: string[];
}

/**
 * The sidecar that runs a host's dockerd. Before each start the lab writes
 * its daemon.json ({}) and empties two pidfiles: dockerd's own (dockerd
 * refuses to start while the pid in it exists, and after a SIGKILL that pid
 * may belong to anything by now) and its managed containerd's (that containerd
 * dies with dockerd, Pdeathsig, but dockerd started again at once finds its pid
 * still there, a zombie until reaped or a reused pid, takes it for a running
 * containerd and gives up waiting for its socket; an empty file makes it start
 * a new one, which takes over the running shims).
 */
export function dockerSidecar(opts: DockerSidecarOptions = {}): ProcSpec {
  const p = dockerPaths('{hostDir}');
  const cmd = [
    'dockerd',
    `--config-file ${p.config}`,
    `--data-root ${p.dataRoot}`,
    `--exec-root ${p.execRoot}`,
    `--pidfile ${p.pidFile}`,
    `-H unix://${p.socket}`,
    '--bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --userland-proxy=false',
    `--cgroup-parent ${dockerCgroupParent('{netns}')}`,
    // The managed containerd's namespace (and so the shims' and runc's state dirs): the host's, for clarity in ps.
    '--containerd-namespace {netns} --containerd-plugins-namespace {netns}-plugins',
    // Containers outlive a killed dockerd, as they outlive a killed containerd on containerd hosts.
    '--live-restore',
    ...(opts.insecureRegistries ?? []).map((r) => `--insecure-registry ${r}`),
  ].join(' ');
  return {
    name: DOCKERD_PROC,
    cmd,
    files: { [p.config]: '{}\n', [p.pidFile]: '', [p.containerdPidFile]: '' },
    // dockerd asks its managed containerd for a stack dump (SIGUSR1) before it kills it, and
    // containerd writes that to $TMPDIR: keep it in the host's dir, not the machine's /tmp.
    env: { TMPDIR: p.dir },
    readySocket: p.socket,
  };
}

/** The flags that point shoald at its host's dockerd. */
export const DOCKER_DAEMON_FLAGS = `--runtime docker --docker-socket ${dockerPaths('{hostDir}').socket}`;

export interface DockerLabOptions {
  /** The shoald template to extend (default: the lab's default shoald command). */
  daemonCmd?: string;
  /** Registries pulled from over plain HTTP (host:port): dockerd's --insecure-registry and shoald's. */
  insecureRegistries?: string[];
  /** Also run the lab registry (registry.ts) on this host, and let dockerd pull from it. */
  registryHost?: string;
  /** The lab's subnet (for the registry host's address); default the lab's default. */
  subnet?: string;
  /** The registry host's index in the lab (its address is .10+index); default N of a host named hostN, else 1. */
  registryHostIndex?: number;
}

/**
 * Lab options for hosts with their own Docker Engine: the dockerd sidecar
 * (and with registryHost the registry sidecar on that host), and the shoald
 * template with the Docker runtime flags. Spread into
 * `new Lab({ name, hosts, ...dockerLabOptions() })`.
 */
export function dockerLabOptions(opts: DockerLabOptions = {}): { daemonCmd: string; sidecars: ProcSpec[] } {
  const insecure = [...(opts.insecureRegistries ?? [])];
  const extra: ProcSpec[] = [];
  if (opts.registryHost !== undefined) {
    extra.push(registrySidecar(opts.registryHost));
    const index = opts.registryHostIndex ?? Number(/^host(\d+)$/.exec(opts.registryHost)?.[1] ?? 1);
    insecure.push(`${hostAddress(opts.subnet ?? DEFAULT_SUBNET, index)}:${REGISTRY_PORT}`);
  }
  const daemonCmd = [opts.daemonCmd ?? DEFAULT_DAEMON_CMD, DOCKER_DAEMON_FLAGS, ...insecure.map((r) => `--insecure-registry ${r}`)].join(' ');
  return { daemonCmd, sidecars: [dockerSidecar({ insecureRegistries: insecure }), ...extra] };
}

// ---- a lab host's dockerd, from the library --------------------------------------

export interface HostDocker {
  host: string;
  socket: string;
  paths: DockerPaths;
  cgroupParent: string;
  /** dockerd's pid while it runs (verified), else null. */
  pid: number | null;
}

export function hostDocker(lab: Lab, host: string): HostDocker {
  const paths = dockerPaths(lab.hostState(host).hostDir);
  return { host, socket: paths.socket, paths, cgroupParent: dockerCgroupParent(lab.hostNetns(host)), pid: lab.procPid(host, DOCKERD_PROC) };
}

/**
 * A DockerRuntime on the host's dockerd. With `observe`, one that never
 * copies container output (it is closed from the start: list() and inspect()
 * still answer): the host's shoald copies each container's output into its
 * task log, and a second copier would write every line twice.
 */
export async function hostDockerRuntime(lab: Lab, host: string, opts: { observe?: boolean; stateDir?: string } = {}): Promise<DockerRuntime> {
  const { DockerRuntime } = await import('../../worker/runtime/docker/runtime.js');
  const rt = new DockerRuntime({ socket: hostDocker(lab, host).socket, stateDir: opts.stateDir ?? path.join(lab.hostState(host).hostDir, 'lab-runtime') });
  if (opts.observe) rt.close();
  return rt;
}

/** Waits until the host's dockerd answers its API (up to timeoutMs); returns the engine's version. */
export async function waitDocker(lab: Lab, host: string, timeoutMs = 30_000): Promise<string> {
  const d = hostDocker(lab, host);
  const rt = await hostDockerRuntime(lab, host, { observe: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      // The socket accepts before the API serves: a request then waits, so give each try its own deadline.
      return await Promise.race([
        rt.ping(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5_000).unref()),
      ]);
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`dockerd of ${host} (${d.socket}) does not answer after ${timeoutMs} ms: ${(e as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Loads an OCI layout tarball into a lab host's dockerd (DockerRuntime.loadImage
 * over its socket). The manifest digests of what it loaded are recorded where
 * the host's shoald keeps its Docker runtime's state ({stateDir}/runtime), so
 * shoald reports the same image digests as after a load of its own.
 */
export async function preloadDockerImage(lab: Lab, host: string, tarPath: string): Promise<ImageInfo[]> {
  const tar = path.resolve(tarPath);
  if (!existsSync(tar)) throw new Error(`${tar}: no such file`);
  await waitDocker(lab, host);
  const rt = await hostDockerRuntime(lab, host, { observe: true, stateDir: path.join(lab.hostState(host).stateDir, 'runtime') });
  return rt.loadImage(tar);
}

/** preloadDockerImage on several hosts (default: all), concurrently. */
export async function preloadDockerImageAll(lab: Lab, tarPath: string, opts: { hosts?: string[] } = {}): Promise<Record<string, ImageInfo[]>> {
  const hosts = opts.hosts ?? lab.hosts();
  const loaded = await Promise.all(hosts.map((h) => preloadDockerImage(lab, h, tarPath)));
  return Object.fromEntries(hosts.map((h, i) => [h, loaded[i]!]));
}

// ---- teardown ----------------------------------------------------------------------

function readdirSafe(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

/** Pids of the containerd that dockerd started with this config (its argv names it). */
export function managedContainerdPids(containerdConfig: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSafe('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    const info = procInfo(Number(ent));
    if (!info || info.zombie || path.basename(info.cmdline[0] ?? '') !== 'containerd') continue;
    const i = info.cmdline.indexOf('--config');
    if (i >= 0 && info.cmdline[i + 1] === containerdConfig) out.push(Number(ent));
  }
  return out;
}


/** SIGKILLs processes (identified by pid and start time) and waits until they are gone. */
async function killAll(pids: number[], what: string): Promise<void> {
  const procs = pids.map((pid) => ({ pid, start: procInfo(pid)?.startTime }));
  const gone = (x: { pid: number; start?: string }): boolean => {
    const now = procInfo(x.pid);
    return !now || now.zombie || now.startTime !== x.start;
  };
  for (const x of procs) {
    if (gone(x)) continue;
    try {
      process.kill(x.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  await waitUntil(`${what} to die`, () => procs.every(gone), 15_000);
}

interface RuncContainer {
  id: string;
  bundle: string;
}

export interface CleanupDockerOptions {
  /** The cgroup parent of the host's containers (dockerCgroupParent(netns)); removed once empty. */
  cgroupParent?: string;
  log?: (line: string) => void;
}

/**
 * Ends everything a dead (or killed) host dockerd leaves: its managed
 * containerd if it still runs, every runc container in its runc root whose
 * bundle is its containerd's, the shims (and their sockets), the mounts under
 * <hostDir>/docker and the cgroups (the containers' and the parent). Safe to
 * call when nothing is left or dockerd never ran there. Call it after dockerd
 * is dead, or it may start new containers meanwhile.
 */
export async function cleanupDocker(hostDir: string, opts: CleanupDockerOptions = {}): Promise<void> {
  const log = opts.log ?? (() => {});
  const p = dockerPaths(hostDir);
  if (!existsSync(p.dir)) return;
  // Its containerd first, so that nothing restarts or reaps what follows.
  const ctd = managedContainerdPids(p.containerdConfig);
  if (ctd.length > 0) {
    log(`killing dockerd's containerd ${ctd.join(' ')}`);
    await killAll(ctd, `the containerd of ${p.dir}`);
  }
  const cgroups = new Set<string>();
  for (const ns of readdirSafe(p.runcRoot)) {
    const root = path.join(p.runcRoot, ns);
    const listed = await run(['runc', '--root', root, 'list', '--format', 'json'], { allowFail: true });
    let containers: RuncContainer[] = [];
    if (listed.code === 0) {
      try {
        containers = (JSON.parse(listed.stdout) as RuncContainer[] | null) ?? [];
      } catch {
        containers = [];
      }
    }
    for (const c of containers.filter((x) => x.bundle.startsWith(`${p.tasks}/`))) {
      try {
        const spec = JSON.parse(readFileSync(path.join(c.bundle, 'config.json'), 'utf8')) as { linux?: { cgroupsPath?: string } };
        const cg = spec.linux?.cgroupsPath;
        if (cg?.startsWith('/')) cgroups.add(cg);
      } catch {
        // no spec: no cgroup to tidy
      }
      log(`removing container ${c.id} (dockerd's containerd namespace ${ns})`);
      const r = await run(['runc', '--root', root, 'delete', '--force', c.id], { allowFail: true });
      if (r.code !== 0) log(`warning: runc delete --force ${c.id}: ${r.stderr.trim()}`);
    }
  }
  const shims = shimPids(p.containerdSocket);
  if (shims.length > 0) {
    log(`killing dockerd's containerd shims ${shims.join(' ')}`);
    await killAll(shims, `the shims of ${p.containerdSocket}`);
  }
  // A killed shim leaves its socket behind, outside the host dir.
  for (const ns of readdirSafe(p.tasks)) {
    for (const id of readdirSafe(path.join(p.tasks, ns))) rmSync(shimSocket(p.containerdSocket, ns, id), { force: true });
  }
  await unmountUnder(p.dir, log);
  const parents = new Set<string>(opts.cgroupParent ? [opts.cgroupParent] : []);
  for (const cg of cgroups) if (path.dirname(cg) !== '/') parents.add(path.dirname(cg));
  for (const h of readdirSafe('/sys/fs/cgroup')) {
    for (const cg of [...cgroups, ...parents]) {
      try {
        rmdirSync(path.join('/sys/fs/cgroup', h, cg));
      } catch {
        // not in this hierarchy, or still in use
      }
    }
  }
  // dockerd makes /run/docker/plugins whatever its exec root: remove it when no engine is left to use it.
  const engines = readdirSafe('/proc').filter((e) => /^\d+$/.test(e) && path.basename(procInfo(Number(e))?.cmdline[0] ?? '') === 'dockerd');
  if (engines.length === 0) {
    for (const d of ['/run/docker/plugins', '/run/docker']) {
      try {
        rmdirSync(d);
      } catch {
        // not empty, or not there
      }
    }
  }
}
