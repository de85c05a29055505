// A containerd per lab host, as a lab sidecar. Each host's containerd keeps
// everything under <hostDir>/containerd/ (config, root, state, sockets), runs
// in the host's network namespace but in the machine's mount namespace (the
// lab enters only the netns, so the cgroup v1 hierarchies stay visible and
// clients in the root namespace see the same rootfs mounts), and serves its
// own containerd namespace, `<lab>-<host>` (the host's netns name): runc keeps
// its state under /run/containerd/runc/<namespace> for the whole machine, so
// two hosts (or two labs) must never share one.
//
// Also the teardown `down` runs for such hosts once the processes are dead:
// the containers (runc delete --force, whatever containerd's state), the shims
// (which outlive a killed containerd), the rootfs mounts under the host's dir
// and the parent cgroups runc leaves empty. Node built-ins only.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import type { Lab } from './lab.js';
import { DEFAULT_DAEMON_CMD, DEFAULT_SUBNET, hostAddress, type ProcSpec } from './plan.js';
import { AUTH_REGISTRY_PORT, REGISTRY_PORT, authRegistrySidecar, registrySidecar } from './registry.js';
import { procInfo, run, waitUntil } from './sys.js';

export const CONTAINERD_PROC = 'containerd';
/** Where runc keeps container state (<root>/<namespace>/<id>) for the io.containerd.runc.v2 shim. */
export const RUNC_ROOT = '/run/containerd/runc';

// Plugins shoal does not use: no CRI (kubelet's API), no snapshotters but overlayfs (and native).
const DISABLED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper',
];

export interface ContainerdPaths {
  dir: string;
  config: string;
  root: string;
  state: string;
  socket: string;
  ttrpcSocket: string;
  /** The task bundles: <state>/io.containerd.runtime.v2.task/<namespace>/<id>/. */
  tasks: string;
}

export function containerdPaths(hostDir: string): ContainerdPaths {
  const dir = path.join(hostDir, 'containerd');
  const state = path.join(dir, 'state');
  const socket = path.join(dir, 'containerd.sock');
  return {
    dir,
    config: path.join(dir, 'config.toml'),
    root: path.join(dir, 'root'),
    state,
    socket,
    ttrpcSocket: `${socket}.ttrpc`,
    tasks: path.join(state, 'io.containerd.runtime.v2.task'),
  };
}

/** The containerd namespace of a lab host: its netns name, `<lab>-<host>` (unique on the machine). */
export function containerdNamespace(netns: string): string {
  return netns;
}

/**
 * containerd's config.toml for a host whose dir is `hostDir` (a path, or the
 * `{hostDir}` placeholder when it is a sidecar's file template). Paths must
 * not contain `"` or `\`: they go into TOML strings as they are.
 */
export function containerdConfig(hostDir: string): string {
  const p = containerdPaths(hostDir);
  return [
    '# Written by shoal-lab (deploy/lab/containerd.ts) before each start of this containerd.',
    'version = 2',
    `root = "${p.root}"`,
    `state = "${p.state}"`,
    `disabled_plugins = [${DISABLED_PLUGINS.map((x) => `"${x}"`).join(', ')}]`,
    '',
    '[grpc]',
    `  address = "${p.socket}"`,
    '',
    '[ttrpc]',
    `  address = "${p.ttrpcSocket}"`,
    '',
    '[metrics]',
    '  address = ""',
    '',
    '[plugins]',
    // Would be /opt/containerd for every host otherwise.
    '  [plugins."io.containerd.internal.v1.opt"]',
    `    path = "${path.join(p.dir, 'opt')}"`,
    // Clients pick the snapshotter (shoal: overlayfs); its data lives under root.
    '',
  ].join('\n');
}

/** The sidecar that runs a host's containerd (config written before each start). */
export function containerdSidecar(): ProcSpec {
  const p = containerdPaths('{hostDir}');
  return {
    name: CONTAINERD_PROC,
    cmd: `containerd --config ${p.config}`,
    files: { [p.config]: containerdConfig('{hostDir}') },
    readySocket: p.socket,
  };
}

/** The flags that point shoald at its host's containerd ({containerdSocket} {containerdNamespace} are lab placeholders). */
export const CONTAINERD_DAEMON_FLAGS = '--runtime containerd --containerd-socket {containerdSocket} --containerd-namespace {containerdNamespace}';

export interface ContainerdLabOptions {
  /** The shoald template to extend (default: the lab's default shoald command). */
  daemonCmd?: string;
  /** Registries shoald pulls from over plain HTTP (host:port). */
  insecureRegistries?: string[];
  /** Also run the lab registry (registry.ts) on this host, and let shoald pull from it. */
  registryHost?: string;
  /** The lab's subnet (for the registry host's address); default the lab's default. */
  subnet?: string;
  /** The registry host's index in the lab (its address is .10+index); default N of a host named hostN, else 1. */
  registryHostIndex?: number;
  /** With registryHost: also serve its storage behind the lab's login, on port 5001 (registry.ts). */
  authRegistry?: boolean;
}

/**
 * Lab options for hosts with their own containerd: the containerd sidecar
 * (and with registryHost the registry sidecar on that host), and the shoald
 * template with the containerd flags (and --insecure-registry for the lab
 * registry). Spread into `new Lab({ name, hosts, ...containerdLabOptions() })`.
 */
export function containerdLabOptions(opts: ContainerdLabOptions = {}): { daemonCmd: string; sidecars: ProcSpec[] } {
  const insecure = [...(opts.insecureRegistries ?? [])];
  const sidecars = [containerdSidecar()];
  if (opts.registryHost !== undefined) {
    sidecars.push(registrySidecar(opts.registryHost));
    const index = opts.registryHostIndex ?? Number(/^host(\d+)$/.exec(opts.registryHost)?.[1] ?? 1);
    insecure.push(`${hostAddress(opts.subnet ?? DEFAULT_SUBNET, index)}:${REGISTRY_PORT}`);
    if (opts.authRegistry) {
      sidecars.push(authRegistrySidecar(opts.registryHost));
      insecure.push(`${hostAddress(opts.subnet ?? DEFAULT_SUBNET, index)}:${AUTH_REGISTRY_PORT}`);
    }
  }
  const daemonCmd = [opts.daemonCmd ?? DEFAULT_DAEMON_CMD, CONTAINERD_DAEMON_FLAGS, ...insecure.map((r) => `--insecure-registry ${r}`)].join(' ');
  return { daemonCmd, sidecars };
}

// ---- a lab host's containerd, from the library --------------------------------

export interface HostContainerd {
  host: string;
  socket: string;
  namespace: string;
  paths: ContainerdPaths;
  /** containerd's pid while it runs (verified), else null. */
  pid: number | null;
}

export function hostContainerd(lab: Lab, host: string): HostContainerd {
  const paths = containerdPaths(lab.hostState(host).hostDir);
  return { host, socket: paths.socket, namespace: containerdNamespace(lab.hostNetns(host)), paths, pid: lab.procPid(host, CONTAINERD_PROC) };
}

// ---- teardown ------------------------------------------------------------------

function readdirSafe(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

/** Mount points at or under dir, deepest first (from our mount namespace: the lab's hosts share it). */
export function mountsUnder(dir: string): string[] {
  const root = path.resolve(dir);
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === root || m.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts everything at or under dir (lazily if a plain umount fails). */
export async function unmountUnder(dir: string, log: (l: string) => void = () => {}): Promise<void> {
  for (const m of mountsUnder(dir)) {
    log(`unmounting ${m}`);
    if ((await run(['umount', m], { allowFail: true })).code !== 0) await run(['umount', '-l', m], { allowFail: true });
  }
}

/** Pids of shims started by the containerd serving `socket` (their argv names its address). */
export function shimPids(socket: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSafe('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    const argv = procInfo(Number(ent))?.cmdline ?? [];
    if (!argv[0]?.includes('containerd-shim')) continue;
    const i = argv.indexOf('-address');
    if (i >= 0 && argv[i + 1] === socket) out.push(Number(ent));
  }
  return out;
}

/** All descendants of the given pids (children first found by /proc/<pid>/stat's ppid). */
function descendants(roots: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const ent of readdirSafe('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = readFileSync(`/proc/${ent}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(ent)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const todo = [...roots];
  while (todo.length > 0) {
    for (const c of children.get(todo.pop()!) ?? []) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}

interface RuncContainer {
  id: string;
  bundle: string;
}

export const SHIM_SOCKET_DIR = '/run/containerd/s';

/** The socket containerd-shim-runc-v2 serves for a container (containerd 1.6: sha256 of <address>/<namespace>/<id>). */
export function shimSocket(containerdSocket: string, namespace: string, id: string): string {
  return path.join(SHIM_SOCKET_DIR, createHash('sha256').update(path.join(containerdSocket, namespace, id)).digest('hex'));
}

/**
 * Ends everything a dead (or killed) host containerd leaves running: every
 * runc container whose bundle is in its state dir, in every containerd
 * namespace it served; then its shims; then the rootfs mounts under its dir;
 * then the parent cgroups that runc leaves behind once empty. Safe to call
 * when nothing is left (or containerd never ran). Call it after containerd
 * is dead, or it may start new tasks meanwhile.
 */
export async function cleanupContainerd(hostDir: string, log: (l: string) => void = () => {}): Promise<void> {
  const p = containerdPaths(hostDir);
  const cgroupParents = new Set<string>();
  for (const ns of readdirSafe(p.tasks)) {
    const runcRoot = path.join(RUNC_ROOT, ns);
    const listed = await run(['runc', '--root', runcRoot, 'list', '--format', 'json'], { allowFail: true });
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
        if (cg?.startsWith('/') && path.dirname(cg) !== '/') cgroupParents.add(path.dirname(cg));
      } catch {
        // no spec: no cgroup to tidy
      }
      log(`removing container ${c.id} (containerd namespace ${ns})`);
      const r = await run(['runc', '--root', runcRoot, 'delete', '--force', c.id], { allowFail: true });
      if (r.code !== 0) log(`warning: runc delete --force ${c.id}: ${r.stderr.trim()}`);
    }
    try {
      rmdirSync(runcRoot); // only when no container of any other containerd uses this namespace
    } catch {
      // not empty or not there
    }
  }
  // The shims, and what they started (the log processes of binary:// URIs), which end once their pipes close.
  const shims = shimPids(p.socket);
  const procs = [...shims, ...descendants(shims)].map((pid) => ({ pid, start: procInfo(pid)?.startTime }));
  if (procs.length > 0) {
    log(`killing containerd shims ${shims.join(' ')}`);
    const gone = (x: { pid: number; start?: string }): boolean => {
      const now = procInfo(x.pid);
      return !now || now.zombie || now.startTime !== x.start;
    };
    const kill = (x: { pid: number; start?: string }): void => {
      if (!gone(x)) process.kill(x.pid, 'SIGKILL');
    };
    procs.slice(0, shims.length).forEach(kill);
    try {
      await waitUntil('the processes of the containerd shims to end', () => procs.every(gone), 5_000);
    } catch {
      procs.forEach(kill);
      await waitUntil('the processes of the containerd shims to die', () => procs.every(gone), 15_000);
    }
  }
  // Killed shims leave their sockets behind in the machine-wide directory.
  for (const ns of readdirSafe(p.tasks)) for (const id of readdirSafe(path.join(p.tasks, ns))) rmSync(shimSocket(p.socket, ns, id), { force: true });
  await unmountUnder(p.dir, log);
  // shoald puts a namespace's containers under /shoal/<namespace> (cli/shoald/daemon.ts): that
  // parent stays behind even when every container was removed before this cleanup ran.
  for (const ns of readdirSafe(p.tasks)) if (ns !== 'shoal') cgroupParents.add(`/shoal/${ns}`);
  for (const parent of cgroupParents) {
    for (const h of readdirSafe('/sys/fs/cgroup')) await removeCgroup(path.join('/sys/fs/cgroup', h, parent));
  }
}

/** rmdir an empty cgroup; a process that is still exiting keeps it busy for a moment. */
async function removeCgroup(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      // ENOENT: not in this hierarchy; ENOTEMPTY: child cgroups (not ours to remove).
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || i >= 20) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
