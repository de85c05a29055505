// ContainerSpec -> the Docker Engine's container create body (POST
// /containers/create), pure: no engine, no file system. Everything the engine
// cannot do the way the containerd adapter does is refused here with a message
// that says what to change, so create() fails before the engine is asked.
import { constants } from 'node:os';
import { isAbsolute } from 'node:path';
import { capabilities, signalNumber } from '../spec.js';
import { CONTAINER_ID_RE, DEFAULT_STOP_GRACE_MS, type ContainerSpec, type Mount } from '../runtime.js';

/** Labels the adapter keeps on each container for itself (stripped from ContainerInfo.labels). */
export const LABEL_PREFIX = 'shoal.runtime.';
/** Which adapter namespace the container belongs to; list() filters on it. */
export const L_NS = `${LABEL_PREFIX}ns`;
export const L_LOG = `${LABEL_PREFIX}log-path`;
export const L_SIGNAL = `${LABEL_PREFIX}stop-signal`;
export const L_GRACE = `${LABEL_PREFIX}stop-grace-ms`;

/**
 * The engine's own json-file log is only the buffer the adapter copies from
 * (see logs.ts); bounded so that it cannot fill the disk while shoald is down.
 */
export const ENGINE_LOG = { Type: 'json-file', Config: { 'max-size': '20m', 'max-file': '3' } } as const;

/** Docker's container names: at least two characters (one more rule than CONTAINER_ID_RE). */
const DOCKER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]+$/;

export interface EngineMount {
  Type: 'bind' | 'tmpfs';
  Target: string;
  Source?: string;
  ReadOnly?: boolean;
  BindOptions?: { Propagation: 'rprivate' };
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
}

export interface EngineHostConfig {
  NetworkMode: string;
  Mounts: EngineMount[];
  ReadonlyRootfs: boolean;
  Init: boolean;
  CapAdd: string[];
  CapDrop: string[];
  NanoCpus?: number;
  Memory?: number;
  PidsLimit?: number;
  RestartPolicy: { Name: 'no' };
  AutoRemove: false;
  LogConfig: { Type: string; Config: Record<string, string> };
}

/** The body of POST /containers/create (API 1.41), only the fields the adapter sets. */
export interface EngineCreateBody {
  Image: string;
  Entrypoint?: string[];
  Cmd?: string[];
  Env: string[];
  WorkingDir?: string;
  User?: string;
  Hostname?: string;
  Labels: Record<string, string>;
  StopSignal: string;
  /** Seconds; only for `docker stop` by hand and engine shutdown: stop() keeps its own grace in ms. */
  StopTimeout: number;
  AttachStdin: false;
  AttachStdout: false;
  AttachStderr: false;
  OpenStdin: false;
  Tty: false;
  HostConfig: EngineHostConfig;
}

export interface DockerSpecOptions {
  /** The adapter's label namespace (value of shoal.runtime.ns). */
  namespace: string;
  /** The normalized image name the container is created from. */
  image: string;
  /** The image config's StopSignal, the default when the spec names none. */
  imageStopSignal?: string;
}

/** `term`, `SIGTERM`, `15` -> `SIGTERM` (throws on unknown signals). */
export function canonicalSignal(sig: string): string {
  const n = signalNumber(sig);
  const name = Object.entries(constants.signals).find(([, v]) => v === n)?.[0];
  // Real-time signals have no name of their own in Node; the engine takes numbers too.
  return name ?? String(n);
}

/** Docker spells capabilities CAP_X (it accepts X too); ALL stays ALL. Validated against the known set. */
export function engineCaps(caps: string[] | undefined): string[] {
  return (caps ?? []).map((c) => {
    const up = c.trim().toUpperCase();
    return up === 'ALL' || up.startsWith('CAP_') ? up : `CAP_${up}`;
  });
}

function engineMount(id: string, m: Mount): EngineMount {
  if (!isAbsolute(m.target)) throw new Error(`container ${id}: mount target "${m.target}" must be an absolute path`);
  if (m.type === 'bind') {
    if (!isAbsolute(m.source)) throw new Error(`container ${id}: bind mount source "${m.source}" must be an absolute host path`);
    return { Type: 'bind', Source: m.source, Target: m.target, ReadOnly: !!m.readOnly, BindOptions: { Propagation: 'rprivate' } };
  }
  if (m.type === 'tmpfs') {
    const opts: { SizeBytes?: number; Mode?: number } = {};
    if (m.sizeBytes !== undefined) {
      if (!Number.isInteger(m.sizeBytes) || m.sizeBytes <= 0) throw new Error(`container ${id}: tmpfs ${m.target}: size must be a positive number of bytes`);
      opts.SizeBytes = m.sizeBytes;
    }
    if (m.mode !== undefined) {
      if (!Number.isInteger(m.mode) || m.mode < 0 || m.mode > 0o7777) throw new Error(`container ${id}: tmpfs ${m.target}: mode must be permission bits (0 to 0o7777)`);
      opts.Mode = m.mode;
    }
    return { Type: 'tmpfs', Target: m.target, ...(Object.keys(opts).length ? { TmpfsOptions: opts } : {}) };
  }
  throw new Error(`container ${id}: unknown mount type "${(m as { type: string }).type}"`);
}

function networkMode(spec: ContainerSpec): string {
  if (spec.netnsPath) {
    // The engine joins only the network of another container, never a namespace file.
    if (/^container:[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(spec.netnsPath)) return spec.netnsPath;
    throw new Error(
      `container ${spec.id}: the Docker Engine cannot join the network namespace ${spec.netnsPath} ` +
        `(it only joins another container's, netnsPath "container:<name>"); use the containerd runtime for tasks on shoal networks`,
    );
  }
  return spec.hostNetwork ? 'host' : 'none';
}

/** The container name and create body for a spec; throws on what the engine cannot do. */
export function createBody(spec: ContainerSpec, opts: DockerSpecOptions): { name: string; body: EngineCreateBody } {
  const id = spec.id;
  if (!CONTAINER_ID_RE.test(id)) throw new Error(`invalid container id "${id}": use [A-Za-z0-9][A-Za-z0-9_.-]{0,75}`);
  if (!DOCKER_NAME_RE.test(id)) throw new Error(`invalid container id "${id}": the Docker Engine needs names of at least two characters`);
  if (!spec.logPath || !isAbsolute(spec.logPath)) throw new Error(`container ${id}: logPath must be an absolute path`);
  for (const k of Object.keys(spec.labels ?? {})) if (k.startsWith(LABEL_PREFIX)) throw new Error(`container ${id}: label ${k}: the ${LABEL_PREFIX} prefix is reserved`);
  if (!opts.namespace) throw new Error('the label namespace must not be empty');

  // A task command replaces the image's ENTRYPOINT and CMD both (processArgs' rule): an empty one leaves nothing to run.
  if (spec.command && spec.command.length === 0 && !spec.args?.length) throw new Error(`container ${id}: no command (an empty command with no args)`);

  const stopSignal = canonicalSignal(spec.stopSignal ?? opts.imageStopSignal ?? 'SIGTERM');
  const grace = spec.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
  if (!Number.isFinite(grace) || grace < 0) throw new Error(`container ${id}: stopGraceMs must be a number of milliseconds >= 0`);

  // capabilities() knows Docker's rules and every name: use it to reject typos now.
  capabilities(spec.capAdd, spec.capDrop);

  const host: EngineHostConfig = {
    NetworkMode: networkMode(spec),
    Mounts: (spec.mounts ?? []).map((m) => engineMount(id, m)),
    ReadonlyRootfs: !!spec.readOnlyRootfs,
    Init: !!spec.init,
    CapAdd: engineCaps(spec.capAdd),
    CapDrop: engineCaps(spec.capDrop),
    RestartPolicy: { Name: 'no' },
    AutoRemove: false,
    LogConfig: { Type: ENGINE_LOG.Type, Config: { ...ENGINE_LOG.Config } },
  };
  const r = spec.resources ?? {};
  if (r.memoryLimitBytes !== undefined) {
    if (!(r.memoryLimitBytes >= 4 * 1024 * 1024)) throw new Error(`container ${id}: memory limit ${r.memoryLimitBytes} is below 4 MiB`);
    host.Memory = Math.floor(r.memoryLimitBytes);
  }
  if (r.cpuLimitNano !== undefined) {
    if (!(r.cpuLimitNano >= 10_000_000)) throw new Error(`container ${id}: CPU limit ${r.cpuLimitNano / 1e9} is below 0.01 CPUs`);
    host.NanoCpus = Math.round(r.cpuLimitNano);
  }
  if (r.pidsLimit !== undefined) {
    if (!Number.isInteger(r.pidsLimit) || r.pidsLimit <= 0) throw new Error(`container ${id}: pidsLimit must be a positive integer`);
    host.PidsLimit = r.pidsLimit;
  }

  const body: EngineCreateBody = {
    Image: opts.image,
    ...(spec.command ? { Entrypoint: [...spec.command] } : {}),
    ...(spec.args ? { Cmd: [...spec.args] } : {}),
    Env: [...(spec.env ?? [])],
    ...(spec.workdir ? { WorkingDir: spec.workdir } : {}),
    ...(spec.user ? { User: spec.user } : {}),
    // Sharing another container's network means sharing its name too: the engine refuses a hostname then.
    ...(host.NetworkMode.startsWith('container:') ? {} : { Hostname: spec.hostname ?? id.slice(0, 12) }),
    Labels: {
      ...(spec.labels ?? {}),
      [L_NS]: opts.namespace,
      [L_LOG]: spec.logPath,
      [L_SIGNAL]: stopSignal,
      [L_GRACE]: String(grace),
    },
    StopSignal: stopSignal,
    StopTimeout: Math.ceil(grace / 1000),
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    OpenStdin: false,
    Tty: false,
    HostConfig: host,
  };
  return { name: id, body };
}
