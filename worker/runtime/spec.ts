// Building the OCI runtime spec (config.json) of a container: a pure function
// of the task's ContainerSpec, the image's config and the resolved user, with
// the defaults Docker gives a container (mounts, capabilities, masked paths,
// device rules, namespaces). Unit-tested table by table; no I/O here.
import { constants } from 'node:os';
import { CAPABILITIES } from '../../proto/capabilities.js';
import type { ContainerSpec, Mount } from './runtime.js';
import type { ImageConfig } from './oci.js';

// --- the subset of the OCI runtime spec shoal writes ---------------------------------------

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[] };
    noNewPrivileges: boolean;
    oomScoreAdj?: number;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    cgroupsPath: string;
    namespaces: { type: string; path?: string }[];
    resources: {
      devices: { allow: boolean; type?: string; major?: number; minor?: number; access: string }[];
      memory?: { limit: number };
      cpu?: { quota: number; period: number };
      pids?: { limit: number };
    };
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

// --- capabilities ---------------------------------------------------------------------------

/** Every capability up to CAP_CHECKPOINT_RESTORE (40), in kernel order. */
export const ALL_CAPS = CAPABILITIES.map((c) => `CAP_${c}`);

/** Docker's default set. */
export const DEFAULT_CAPS = [
  'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP',
  'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE',
].map((c) => `CAP_${c}`);

function capName(c: string): string {
  const up = c.trim().toUpperCase();
  if (up === 'ALL') return up;
  const name = up.startsWith('CAP_') ? up : `CAP_${up}`;
  if (!ALL_CAPS.includes(name)) throw new Error(`unknown capability "${c}"`);
  return name;
}

/** Docker's rules: ALL in capAdd starts from every capability, ALL in capDrop from none; then drop, then add. */
export function capabilities(capAdd: string[] = [], capDrop: string[] = []): string[] {
  const add = capAdd.map(capName);
  const drop = capDrop.map(capName);
  let caps = add.includes('ALL') ? [...ALL_CAPS] : drop.includes('ALL') ? [] : [...DEFAULT_CAPS];
  caps = caps.filter((c) => !drop.includes(c));
  for (const c of add) if (c !== 'ALL' && !caps.includes(c)) caps.push(c);
  return ALL_CAPS.filter((c) => caps.includes(c));
}

// --- signals --------------------------------------------------------------------------------

/** `SIGTERM`, `TERM`, `term` or `15` -> 15. */
export function signalNumber(sig: string | number): number {
  if (typeof sig === 'number') return sig;
  const s = sig.trim();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n < 1 || n > 64) throw new Error(`invalid signal "${sig}"`);
    return n;
  }
  const up = s.toUpperCase();
  const name = (up.startsWith('SIG') ? up : `SIG${up}`) as keyof typeof constants.signals;
  const n = constants.signals[name];
  if (n === undefined) throw new Error(`unknown signal "${sig}"`);
  return n;
}

// --- users ----------------------------------------------------------------------------------

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! });
  }
  return out;
}

function parseGroup(text: string): { name: string; gid: number; members: string[] }[] {
  const out: { name: string; gid: number; members: string[] }[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#')) continue;
    out.push({ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(',').filter(Boolean) });
  }
  return out;
}

const NUMERIC = /^\d+$/;

/** Does resolving `user` need the image's /etc/passwd or /etc/group? */
export function userNeedsLookup(user: string | undefined): boolean {
  if (!user) return false;
  const [u, g] = user.split(':');
  return !NUMERIC.test(u!) || (g !== undefined && !NUMERIC.test(g));
}

/**
 * `uid`, `uid:gid`, `name`, `name:group` (Docker's --user) against the image's
 * /etc/passwd and /etc/group (empty strings when the image has none). A
 * numeric uid without a passwd entry gets gid 0, like Docker.
 */
export function resolveUser(user: string | undefined, passwd = '', group = ''): ResolvedUser {
  const spec = user && user.trim() ? user.trim() : '0';
  const [u, g] = spec.split(':') as [string, string | undefined];
  const users = parsePasswd(passwd);
  const groups = parseGroup(group);
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (NUMERIC.test(u)) {
    uid = Number(u);
    entry = users.find((e) => e.uid === uid);
  } else {
    entry = users.find((e) => e.name === u);
    if (!entry) throw new Error(`user "${u}" not found in the image's /etc/passwd`);
    uid = entry.uid;
  }
  let gid: number;
  if (g === undefined || g === '') gid = entry?.gid ?? 0;
  else if (NUMERIC.test(g)) gid = Number(g);
  else {
    const ge = groups.find((x) => x.name === g);
    if (!ge) throw new Error(`group "${g}" not found in the image's /etc/group`);
    gid = ge.gid;
  }
  const additionalGids: number[] = [];
  if (entry && (g === undefined || g === '')) {
    for (const x of groups) if (x.members.includes(entry.name) && x.gid !== gid && !additionalGids.includes(x.gid)) additionalGids.push(x.gid);
  }
  return { uid, gid, additionalGids, home: entry?.home || (uid === 0 ? '/root' : '/') };
}

// --- the spec -------------------------------------------------------------------------------

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Where the init binary appears inside a container started with init: true. */
export const INIT_TARGET = '/sbin/shoal-init';

export interface SpecOptions {
  /** cgroup parent of every container: the cgroup is <parent>/<id> (default /shoal). */
  cgroupParent?: string;
  /** Host path of a static init binary (tini-static); required when spec.init is set. */
  initPath?: string;
}

const MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

function defaultMounts(): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
  ];
}

function userMount(m: Mount): OciMount {
  if (!m.target.startsWith('/')) throw new Error(`mount target "${m.target}" is not absolute`);
  if (m.type === 'bind') {
    if (!m.source.startsWith('/')) throw new Error(`bind mount source "${m.source}" is not absolute`);
    return { destination: m.target, type: 'bind', source: m.source, options: ['rbind', 'rprivate', m.readOnly ? 'ro' : 'rw'] };
  }
  const options = ['nosuid', 'nodev', 'noexec'];
  if (m.sizeBytes !== undefined) options.push(`size=${m.sizeBytes}`);
  if (m.mode !== undefined) options.push(`mode=${m.mode.toString(8)}`);
  return { destination: m.target, type: 'tmpfs', source: 'tmpfs', options };
}

function mergeEnv(...lists: (string[] | undefined)[]): string[] {
  const byKey = new Map<string, string>();
  for (const list of lists) {
    for (const e of list ?? []) {
      const eq = e.indexOf('=');
      byKey.set(eq < 0 ? e : e.slice(0, eq), e);
    }
  }
  return [...byKey.values()];
}

/** The container's argv: task command or image ENTRYPOINT, then task args or image CMD (Docker's rules). */
export function processArgs(spec: Pick<ContainerSpec, 'command' | 'args'>, image?: ImageConfig): string[] {
  const cfg = image?.config;
  const entrypoint = spec.command ?? cfg?.Entrypoint ?? [];
  // A task command replaces the entrypoint and drops the image's CMD with it.
  const cmd = spec.args ?? (spec.command ? [] : (cfg?.Cmd ?? []));
  return [...entrypoint, ...cmd];
}

export function buildOciSpec(spec: ContainerSpec, image: ImageConfig | undefined, user: ResolvedUser, opts: SpecOptions = {}): OciSpec {
  const argv = processArgs(spec, image);
  if (argv.length === 0) throw new Error(`container ${spec.id}: no command (the image ${spec.image} has no ENTRYPOINT or CMD and the task gives none)`);
  const mounts = [...defaultMounts()];
  const extra: OciMount[] = [];
  if (spec.init) {
    if (!opts.initPath) throw new Error(`container ${spec.id}: init requested but no init binary is configured`);
    extra.push({ destination: INIT_TARGET, type: 'bind', source: opts.initPath, options: ['rbind', 'rprivate', 'ro'] });
  }
  for (const m of spec.mounts ?? []) extra.push(userMount(m));
  // A task mount over a default one (say its own /dev/shm) replaces it.
  const overridden = new Set(extra.map((m) => m.destination));
  const allMounts = [...mounts.filter((m) => !overridden.has(m.destination)), ...extra];

  const env = mergeEnv([DEFAULT_PATH], image?.config?.Env, [`HOSTNAME=${spec.hostname ?? spec.id.slice(0, 12)}`], spec.env);
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);

  const caps = capabilities(spec.capAdd, spec.capDrop);
  const namespaces: { type: string; path?: string }[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (spec.netnsPath) namespaces.push({ type: 'network', path: spec.netnsPath });
  else if (!spec.hostNetwork) namespaces.push({ type: 'network' });

  const resources: OciSpec['linux']['resources'] = {
    devices: [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
      { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
      { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
      { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
      { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
      { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
      { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
      { allow: true, type: 'c', major: 136, access: 'rwm' }, // pts
    ],
  };
  const r = spec.resources ?? {};
  if (r.memoryLimitBytes !== undefined) {
    if (!(r.memoryLimitBytes >= 4 * 1024 * 1024)) throw new Error(`container ${spec.id}: memory limit ${r.memoryLimitBytes} is below 4 MiB`);
    resources.memory = { limit: Math.floor(r.memoryLimitBytes) };
  }
  if (r.cpuLimitNano !== undefined) {
    const period = 100_000;
    const quota = Math.round((r.cpuLimitNano * period) / 1e9);
    if (!(quota >= 1000)) throw new Error(`container ${spec.id}: CPU limit ${r.cpuLimitNano / 1e9} is below 0.01 CPUs`);
    resources.cpu = { quota, period };
  }
  if (r.pidsLimit !== undefined) resources.pids = { limit: r.pidsLimit };

  const parent = (opts.cgroupParent ?? '/shoal').replace(/\/+$/, '');
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length ? { additionalGids: user.additionalGids } : {}) },
      args: spec.init ? [INIT_TARGET, '--', ...argv] : argv,
      env,
      cwd: spec.workdir || image?.config?.WorkingDir || '/',
      // A non-root user keeps the bounding set but starts without effective capabilities.
      capabilities: { bounding: caps, effective: user.uid === 0 ? caps : [], permitted: user.uid === 0 ? caps : [] },
      // No rlimits: the process inherits containerd's (as Docker's containers inherit dockerd's).
      noNewPrivileges: false,
      oomScoreAdj: 0,
    },
    root: { path: 'rootfs', readonly: !!spec.readOnlyRootfs },
    hostname: spec.hostname ?? spec.id.slice(0, 12),
    mounts: allMounts,
    linux: {
      cgroupsPath: `${parent.startsWith('/') ? '' : '/'}${parent}/${spec.id}`,
      namespaces,
      resources,
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}
