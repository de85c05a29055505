// Validation of service specs at the API edge. validateServiceSpec() either returns the spec
// normalized (every default filled in, names in their canonical form, a fresh plain object the
// store can keep as is) or throws a SpecError naming the field (a dotted path in the proto's own
// snake_case, e.g. `task_template.resources.limits.memory_bytes`) and the rule it breaks.
// Nothing is written before a spec has passed through here.
import type { shoal } from '../../proto/gen/api.js';
import { api } from '../../proto/services.js';
import { decodeRegistryAuth } from '../../proto/registryauth.js';
import { ConstraintError, PreferenceError, parseConstraint, parsePreference } from '../scheduler/index.js';
import { CAPABILITIES } from '../../proto/capabilities.js';
import { SIGNALS, checkImageReference } from './servicespec_rules.js';

export class SpecError extends Error {
  override name = 'SpecError';
  constructor(
    /** Dotted path of the offending field, e.g. `task_template.container.mounts[0].target`. */
    readonly field: string,
    /** The rule the field breaks, in words. */
    readonly rule: string,
  ) {
    super(`invalid service spec: ${field}: ${rule}`);
  }
}

export type Input = shoal.api.IServiceSpec;

export interface ResourcesSpec {
  nanoCpus: number;
  memoryBytes: number;
}

export interface MountSpec {
  type: shoal.api.MountType;
  source: string;
  target: string;
  readOnly: boolean;
  tmpfsOptions?: { sizeBytes: number; mode: number };
  volumeOptions?: { noCopy: boolean; labels: Record<string, string> };
}

export interface ContainerSpec {
  image: string;
  command: string[];
  args: string[];
  env: string[];
  dir: string;
  user: string;
  hostname: string;
  mounts: MountSpec[];
  labels: Record<string, string>;
  /** Canonical form: `SIGTERM`-style name or a decimal number; empty: the image's. */
  stopSignal: string;
  stopGracePeriodMs: number;
  readOnly: boolean;
  init: boolean;
  /** Canonical form: `CAP_XXX` or `ALL`, without duplicates. */
  capAdd: string[];
  capDrop: string[];
  /** Credentials for the image's registry (encoded as Docker's X-Registry-Auth); never answered with. */
  pullOptions?: { registryAuth: string };
}

export interface TaskSpec {
  container: ContainerSpec;
  resources: { limits: ResourcesSpec; reservations: ResourcesSpec };
  restartPolicy: { condition: shoal.api.RestartCondition; delayMs: number; maxAttempts: number; windowMs: number };
  placement: {
    constraints: string[];
    preferences: { spread: string }[];
    maxReplicas: number;
    platforms: { os: string; architecture: string }[];
  };
  networks: string[];
  forceUpdate: number;
}

export interface UpdateConfigSpec {
  parallelism: number;
  delayMs: number;
  failureAction: shoal.api.UpdateFailureAction;
  monitorMs: number;
  maxFailureRatio: number;
  order: shoal.api.UpdateOrder;
}

export interface PortSpec {
  protocol: shoal.api.PortProtocol;
  targetPort: number;
  publishedPort: number;
  publishMode: shoal.api.PublishMode;
}

/** A validated, complete spec: exactly one of the four mode fields is present. */
export interface ServiceSpec {
  name: string;
  labels: Record<string, string>;
  replicated?: { replicas: number };
  global?: Record<string, never>;
  replicatedJob?: { maxConcurrent: number; totalCompletions: number };
  globalJob?: Record<string, never>;
  taskTemplate: TaskSpec;
  updateConfig: UpdateConfigSpec;
  rollbackConfig: UpdateConfigSpec;
  networks: string[];
  endpointSpec: { ports: PortSpec[] };
}

export type ServiceMode = 'replicated' | 'global' | 'replicated-job' | 'global-job';

export function serviceMode(spec: ServiceSpec): ServiceMode {
  if (spec.global) return 'global';
  if (spec.replicatedJob) return 'replicated-job';
  if (spec.globalJob) return 'global-job';
  return 'replicated';
}

export const DEFAULTS = {
  replicas: 1,
  maxConcurrent: 1,
  stopGracePeriodMs: 10_000,
  restartDelayMs: 5_000,
  parallelism: 1,
  monitorMs: 5_000,
} as const;

// Docker's rule for service names (and a DNS label's length, since names become DNS names).
const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,252})?$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/;
const HOSTNAME_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const PLATFORM_WORD = /^[A-Za-z0-9_.-]+$/;
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const MIN_MEMORY_LIMIT = 6 * 1024 * 1024;

type Fail = (field: string, rule: string) => never;
const fail: Fail = (field, rule) => {
  throw new SpecError(field, rule);
};

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function isSet<T>(v: T | null | undefined): v is T {
  return v !== null && v !== undefined;
}

/** A whole number in [min, max]; `def` when unset. */
function int(field: string, v: unknown, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!isSet(v)) return def;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(field, `must be a whole number, got ${show(v)}`);
  if (v < min) fail(field, min === 0 ? `must not be negative, got ${v}` : `must be at least ${min}, got ${v}`);
  if (v > max) fail(field, `must be at most ${max}, got ${v}`);
  return v;
}

function str(field: string, v: unknown): string {
  if (!isSet(v)) return '';
  if (typeof v !== 'string') fail(field, `must be a string, got ${show(v)}`);
  return v;
}

function bool(field: string, v: unknown): boolean {
  if (!isSet(v)) return false;
  if (typeof v !== 'boolean') fail(field, `must be true or false, got ${show(v)}`);
  return v;
}

function strings(field: string, v: unknown): string[] {
  if (!isSet(v)) return [];
  if (!Array.isArray(v)) fail(field, 'must be a list of strings');
  return v.map((s, i) => {
    if (typeof s !== 'string') fail(`${field}[${i}]`, `must be a string, got ${show(s)}`);
    return s;
  });
}

function list<T>(field: string, v: T[] | null | undefined): T[] {
  if (!isSet(v)) return [];
  if (!Array.isArray(v)) fail(field, 'must be a list');
  return v;
}

/** One of an enum's values; `unset` (the zero value) maps to `def`. */
function enumValue<E extends number>(field: string, v: unknown, names: Record<string, E>, def: E, unset?: number): E {
  if (!isSet(v) || (unset !== undefined && v === unset)) return def;
  const allowed = Object.entries(names).filter(([, n]) => n !== unset);
  const hit = allowed.find(([, n]) => n === v);
  if (!hit) fail(field, `must be one of ${allowed.map(([name]) => name).join(', ')}, got ${show(v)}`);
  return v as E;
}

function labels(field: string, v: unknown, reservedPrefix?: string): Record<string, string> {
  if (!isSet(v)) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(field, 'must be a map of strings to strings');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (!LABEL_KEY.test(k)) {
      fail(field, `label key ${show(k)} is not valid: use letters, digits, '.', '_', '-', '/' (at most 253 characters, starting with a letter or digit)`);
    }
    if (reservedPrefix && k.startsWith(reservedPrefix)) fail(field, `label key ${show(k)} is reserved: keys starting with "${reservedPrefix}" belong to shoal`);
    if (typeof val !== 'string') fail(field, `label ${show(k)} must have a string value, got ${show(val)}`);
    out[k] = val;
  }
  return out;
}

function absolutePath(field: string, p: string, what: string): void {
  if (!p.startsWith('/')) fail(field, `${what} must be an absolute path (starting with /), got ${show(p)}`);
  if (p.includes('\0')) fail(field, `${what} must not contain a NUL character`);
}

/** `/a//b/` -> `/a/b`, for comparing mount targets. */
function cleanPath(p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  return '/' + parts.join('/');
}

export function validateServiceSpec(spec: Input | null | undefined): ServiceSpec {
  if (!isSet(spec) || typeof spec !== 'object') fail('spec', 'a service spec is required');

  const name = str('name', spec.name);
  if (name === '') fail('name', 'a service name is required');
  if (name.length > 63) fail('name', `must be at most 63 characters, got ${name.length}`);
  if (!SERVICE_NAME.test(name)) {
    fail('name', `${show(name)} is not valid: use letters, digits, '_', '.' and '-', starting with a letter or digit ([a-zA-Z0-9][a-zA-Z0-9_.-]*)`);
  }

  const out: ServiceSpec = {
    name,
    labels: labels('labels', spec.labels),
    ...mode(spec),
    taskTemplate: taskSpec('task_template', spec.taskTemplate),
    updateConfig: updateConfig('update_config', spec.updateConfig, false),
    rollbackConfig: updateConfig('rollback_config', spec.rollbackConfig, true),
    networks: networks('networks', spec.networks),
    endpointSpec: { ports: ports('endpoint_spec.ports', spec.endpointSpec?.ports) },
  };
  return out;
}

function mode(spec: Input): Pick<ServiceSpec, 'replicated' | 'global' | 'replicatedJob' | 'globalJob'> {
  const set = (
    [
      ['replicated', spec.replicated],
      ['global', spec.global],
      ['replicated_job', spec.replicatedJob],
      ['global_job', spec.globalJob],
    ] as const
  ).filter(([, v]) => isSet(v));
  if (set.length > 1) {
    fail('mode', `only one of replicated, global, replicated_job, global_job may be set, got ${set.map(([k]) => k).join(' and ')}`);
  }
  const which = set[0]?.[0] ?? 'replicated';
  const onlyFor = (field: string, v: unknown, modeName: string): void => {
    if (isSet(v)) fail(field, `is only for ${modeName} mode, and the service's mode is ${which}`);
  };
  // A JS caller may put a mode's parameters on another mode's object: refuse them, by name.
  for (const [k, v] of set) {
    const o = v as Record<string, unknown>;
    if (k !== 'replicated') onlyFor(`${k}.replicas`, o.replicas, 'replicated');
    if (k !== 'replicated_job') {
      onlyFor(`${k}.max_concurrent`, o.maxConcurrent, 'replicated_job');
      onlyFor(`${k}.total_completions`, o.totalCompletions, 'replicated_job');
    }
  }
  switch (which) {
    case 'global':
      return { global: {} };
    case 'global_job':
      return { globalJob: {} };
    case 'replicated_job': {
      const j = spec.replicatedJob!;
      const maxConcurrent = int('replicated_job.max_concurrent', j.maxConcurrent, DEFAULTS.maxConcurrent, 1);
      const totalCompletions = int('replicated_job.total_completions', j.totalCompletions, maxConcurrent, 1);
      return { replicatedJob: { maxConcurrent, totalCompletions } };
    }
    default:
      return { replicated: { replicas: int('replicated.replicas', spec.replicated?.replicas, DEFAULTS.replicas) } };
  }
}

function taskSpec(field: string, t: shoal.api.ITaskSpec | null | undefined): TaskSpec {
  if (!isSet(t)) fail(field, 'a task template is required (it holds the container spec and its image)');
  return {
    container: container(`${field}.container`, t.container),
    resources: resources(`${field}.resources`, t.resources),
    restartPolicy: restartPolicy(`${field}.restart_policy`, t.restartPolicy),
    placement: placement(`${field}.placement`, t.placement),
    networks: networks(`${field}.networks`, t.networks),
    forceUpdate: int(`${field}.force_update`, t.forceUpdate, 0),
  };
}

function container(field: string, c: shoal.api.IContainerSpec | null | undefined): ContainerSpec {
  if (!isSet(c)) fail(field, 'a container spec is required');
  const image = str(`${field}.image`, c.image);
  if (image === '') fail(`${field}.image`, 'an image is required');
  const bad = checkImageReference(image);
  if (bad) fail(`${field}.image`, `${show(image)} is not a valid image reference: ${bad}`);

  const command = strings(`${field}.command`, c.command);
  if (command.length > 0 && command[0] === '') fail(`${field}.command[0]`, 'the program to run must not be empty');
  const args = strings(`${field}.args`, c.args);

  const env = strings(`${field}.env`, c.env);
  env.forEach((e, i) => {
    const eq = e.indexOf('=');
    if (eq < 0) fail(`${field}.env[${i}]`, `${show(e)} must be KEY=VALUE`);
    const key = e.slice(0, eq);
    if (!ENV_KEY.test(key)) {
      fail(`${field}.env[${i}]`, `${show(key)} is not a valid variable name: use letters, digits, '_', '.' and '-', not starting with a digit`);
    }
  });

  const dir = str(`${field}.dir`, c.dir);
  if (dir !== '') absolutePath(`${field}.dir`, dir, 'the working directory');
  const user = str(`${field}.user`, c.user);
  if (user !== '' && !USER.test(user)) fail(`${field}.user`, `${show(user)} is not valid: use uid, uid:gid, name or name:group`);
  const hostname = str(`${field}.hostname`, c.hostname);
  if (hostname !== '') {
    if (hostname.length > 253 || !hostname.split('.').every((l) => HOSTNAME_LABEL.test(l))) {
      fail(`${field}.hostname`, `${show(hostname)} is not a valid host name: dot-separated labels of letters, digits and '-' (1 to 63 characters, not starting or ending with '-'), at most 253 characters`);
    }
  }

  const stopSignal = signal(`${field}.stop_signal`, str(`${field}.stop_signal`, c.stopSignal));
  const capAdd = caps(`${field}.cap_add`, c.capAdd);
  const capDrop = caps(`${field}.cap_drop`, c.capDrop);
  const both = capAdd.find((cap) => capDrop.includes(cap));
  if (both) fail(`${field}.cap_drop`, `${both} is both in cap_add and cap_drop: keep it in one of them`);
  const registryAuth = isSet(c.pullOptions) ? str(`${field}.pull_options.registry_auth`, c.pullOptions.registryAuth) : '';
  if (registryAuth !== '') {
    try {
      decodeRegistryAuth(registryAuth);
    } catch (e) {
      fail(`${field}.pull_options.registry_auth`, `${(e as Error).message}`);
    }
  }

  return {
    image,
    command,
    args,
    env,
    dir,
    user,
    hostname,
    mounts: mounts(`${field}.mounts`, c.mounts),
    // The runtime reserves its own label prefix on containers.
    labels: labels(`${field}.labels`, c.labels, 'shoal.runtime.'),
    stopSignal,
    stopGracePeriodMs: int(`${field}.stop_grace_period_ms`, c.stopGracePeriodMs, DEFAULTS.stopGracePeriodMs),
    readOnly: bool(`${field}.read_only`, c.readOnly),
    init: bool(`${field}.init`, c.init),
    capAdd,
    capDrop,
    ...(registryAuth ? { pullOptions: { registryAuth } } : {}),
  };
}

function signal(field: string, s: string): string {
  if (s === '') return '';
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    if (n < 1 || n > 64) fail(field, `signal number ${s} is out of range: use 1 to 64`);
    return String(n);
  }
  const upper = s.toUpperCase();
  const bare = upper.startsWith('SIG') ? upper.slice(3) : upper;
  if (SIGNALS.includes(bare)) return `SIG${bare}`;
  return fail(field, `${show(s)} is not a known signal: use a name such as SIGTERM, TERM or SIGINT, or a number from 1 to 64`);
}

function caps(field: string, v: string[] | null | undefined): string[] {
  const out: string[] = [];
  strings(field, v).forEach((raw, i) => {
    const upper = raw.trim().toUpperCase();
    let canon: string;
    if (upper === 'ALL') canon = 'ALL';
    else {
      const bare = upper.startsWith('CAP_') ? upper.slice(4) : upper;
      if (!CAPABILITIES.includes(bare)) {
        fail(`${field}[${i}]`, `${show(raw)} is not a known Linux capability: use a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL`);
      }
      canon = `CAP_${bare}`;
    }
    if (!out.includes(canon)) out.push(canon);
  });
  return out;
}

const MOUNT_TYPES = { volume: api.MountType.MOUNT_TYPE_VOLUME, bind: api.MountType.MOUNT_TYPE_BIND, tmpfs: api.MountType.MOUNT_TYPE_TMPFS };

function mounts(field: string, v: shoal.api.IMount[] | null | undefined): MountSpec[] {
  const targets = new Map<string, number>();
  return list(field, v).map((m, i) => {
    const f = `${field}[${i}]`;
    if (!isSet(m) || typeof m !== 'object') fail(f, 'must be a mount');
    const type = enumValue(`${f}.type`, m.type, MOUNT_TYPES, api.MountType.MOUNT_TYPE_VOLUME);
    const source = str(`${f}.source`, m.source);
    const target = str(`${f}.target`, m.target);
    if (target === '') fail(`${f}.target`, 'a mount target is required');
    absolutePath(`${f}.target`, target, 'a mount target');
    const clean = cleanPath(target);
    if (clean === '/') fail(`${f}.target`, 'a mount target must not be / (the root filesystem)');
    const prev = targets.get(clean);
    if (prev !== undefined) fail(`${f}.target`, `${show(target)} is already the target of ${field}[${prev}]: mount targets must be unique`);
    targets.set(clean, i);

    const out: MountSpec = { type, source, target: clean, readOnly: bool(`${f}.read_only`, m.readOnly) };
    if (type === api.MountType.MOUNT_TYPE_BIND) {
      if (source === '') fail(`${f}.source`, 'a bind mount needs a source: an absolute host path');
      absolutePath(`${f}.source`, source, 'a bind mount source');
    } else if (type === api.MountType.MOUNT_TYPE_VOLUME) {
      if (source !== '' && !VOLUME_NAME.test(source)) {
        fail(`${f}.source`, `${show(source)} is not a valid volume name: at least 2 characters of letters, digits, '_', '.' and '-', starting with a letter or digit`);
      }
    } else if (source !== '') {
      fail(`${f}.source`, 'a tmpfs mount takes no source');
    }
    if (isSet(m.tmpfsOptions)) {
      if (type !== api.MountType.MOUNT_TYPE_TMPFS) fail(`${f}.tmpfs_options`, 'tmpfs options are only for mounts of type tmpfs');
      out.tmpfsOptions = {
        sizeBytes: int(`${f}.tmpfs_options.size_bytes`, m.tmpfsOptions.sizeBytes, 0),
        mode: int(`${f}.tmpfs_options.mode`, m.tmpfsOptions.mode, 0, 0, 0o7777),
      };
    }
    if (isSet(m.volumeOptions)) {
      if (type !== api.MountType.MOUNT_TYPE_VOLUME) fail(`${f}.volume_options`, 'volume options are only for mounts of type volume');
      out.volumeOptions = {
        noCopy: bool(`${f}.volume_options.no_copy`, m.volumeOptions.noCopy),
        labels: labels(`${f}.volume_options.labels`, m.volumeOptions.labels),
      };
    }
    return out;
  });
}

function res(field: string, r: shoal.api.IResources | null | undefined): ResourcesSpec {
  return {
    nanoCpus: int(`${field}.nano_cpus`, r?.nanoCpus, 0),
    memoryBytes: int(`${field}.memory_bytes`, r?.memoryBytes, 0),
  };
}

function resources(field: string, r: shoal.api.IResourceRequirements | null | undefined): TaskSpec['resources'] {
  const limits = res(`${field}.limits`, r?.limits);
  const reservations = res(`${field}.reservations`, r?.reservations);
  if (limits.memoryBytes > 0 && limits.memoryBytes < MIN_MEMORY_LIMIT) {
    fail(`${field}.limits.memory_bytes`, `must be at least 6 MiB (${MIN_MEMORY_LIMIT} bytes) when set, got ${limits.memoryBytes}`);
  }
  if (limits.nanoCpus > 0 && reservations.nanoCpus > limits.nanoCpus) {
    fail(`${field}.reservations.nano_cpus`, `the reservation (${reservations.nanoCpus}) must not exceed the limit (${limits.nanoCpus})`);
  }
  if (limits.memoryBytes > 0 && reservations.memoryBytes > limits.memoryBytes) {
    fail(`${field}.reservations.memory_bytes`, `the reservation (${reservations.memoryBytes}) must not exceed the limit (${limits.memoryBytes})`);
  }
  return { limits, reservations };
}

const RESTART = {
  none: api.RestartCondition.RESTART_NONE,
  'on-failure': api.RestartCondition.RESTART_ON_FAILURE,
  any: api.RestartCondition.RESTART_ANY,
};

function restartPolicy(field: string, r: shoal.api.IRestartPolicy | null | undefined): TaskSpec['restartPolicy'] {
  return {
    condition: enumValue(`${field}.condition`, r?.condition, RESTART, api.RestartCondition.RESTART_ANY, api.RestartCondition.RESTART_UNSPECIFIED),
    delayMs: int(`${field}.delay_ms`, r?.delayMs, DEFAULTS.restartDelayMs),
    maxAttempts: int(`${field}.max_attempts`, r?.maxAttempts, 0),
    windowMs: int(`${field}.window_ms`, r?.windowMs, 0),
  };
}

function placement(field: string, p: shoal.api.IPlacement | null | undefined): TaskSpec['placement'] {
  const constraints = strings(`${field}.constraints`, p?.constraints).map((c, i) => {
    try {
      return parseConstraint(c).text;
    } catch (e) {
      if (e instanceof ConstraintError) fail(`${field}.constraints[${i}]`, e.message);
      throw e;
    }
  });
  const preferences = list(`${field}.preferences`, p?.preferences).map((pref, i) => {
    const spread = str(`${field}.preferences[${i}].spread`, pref?.spread);
    try {
      parsePreference({ spread });
    } catch (e) {
      if (e instanceof PreferenceError) fail(`${field}.preferences[${i}].spread`, e.message);
      throw e;
    }
    return { spread: spread.trim() };
  });
  const platforms = list(`${field}.platforms`, p?.platforms).map((pl, i) => {
    const f = `${field}.platforms[${i}]`;
    const os = str(`${f}.os`, pl?.os).trim().toLowerCase();
    const architecture = str(`${f}.architecture`, pl?.architecture).trim().toLowerCase();
    if (os === '' && architecture === '') fail(f, 'a platform needs an os, an architecture or both (e.g. linux/amd64)');
    if (os !== '' && !PLATFORM_WORD.test(os)) fail(`${f}.os`, `${show(os)} is not valid: use letters, digits, '_', '.' and '-'`);
    if (architecture !== '' && !PLATFORM_WORD.test(architecture)) {
      fail(`${f}.architecture`, `${show(architecture)} is not valid: use letters, digits, '_', '.' and '-'`);
    }
    return { os, architecture };
  });
  return { constraints, preferences, maxReplicas: int(`${field}.max_replicas`, p?.maxReplicas, 0), platforms };
}

function networks(field: string, v: string[] | null | undefined): string[] {
  const out = strings(field, v);
  out.forEach((n, i) => {
    if (!NETWORK_NAME.test(n)) fail(`${field}[${i}]`, `${show(n)} is not a valid network name or ID: use letters, digits, '_', '.' and '-', starting with a letter or digit`);
    if (out.indexOf(n) !== i) fail(`${field}[${i}]`, `network ${show(n)} is listed twice`);
  });
  return out;
}

const FAILURE_ACTIONS = {
  pause: api.UpdateFailureAction.FAILURE_ACTION_PAUSE,
  continue: api.UpdateFailureAction.FAILURE_ACTION_CONTINUE,
  rollback: api.UpdateFailureAction.FAILURE_ACTION_ROLLBACK,
};
const ORDERS = { 'stop-first': api.UpdateOrder.UPDATE_ORDER_STOP_FIRST, 'start-first': api.UpdateOrder.UPDATE_ORDER_START_FIRST };

function updateConfig(field: string, u: shoal.api.IUpdateConfig | null | undefined, rollback: boolean): UpdateConfigSpec {
  const failureAction = enumValue(
    `${field}.failure_action`,
    u?.failureAction,
    FAILURE_ACTIONS,
    api.UpdateFailureAction.FAILURE_ACTION_PAUSE,
    api.UpdateFailureAction.FAILURE_ACTION_UNSPECIFIED,
  );
  if (rollback && failureAction === api.UpdateFailureAction.FAILURE_ACTION_ROLLBACK) {
    fail(`${field}.failure_action`, 'a rollback cannot itself roll back on failure: use pause or continue');
  }
  const ratio = u?.maxFailureRatio;
  if (isSet(ratio) && (typeof ratio !== 'number' || !Number.isFinite(ratio) || ratio < 0 || ratio > 1)) {
    fail(`${field}.max_failure_ratio`, `must be a number from 0 to 1, got ${show(ratio)}`);
  }
  return {
    parallelism: int(`${field}.parallelism`, u?.parallelism, DEFAULTS.parallelism),
    delayMs: int(`${field}.delay_ms`, u?.delayMs, 0),
    failureAction,
    monitorMs: int(`${field}.monitor_ms`, u?.monitorMs, DEFAULTS.monitorMs),
    maxFailureRatio: ratio ?? 0,
    order: enumValue(`${field}.order`, u?.order, ORDERS, api.UpdateOrder.UPDATE_ORDER_STOP_FIRST, api.UpdateOrder.UPDATE_ORDER_UNSPECIFIED),
  };
}

const PROTOCOLS = { tcp: api.PortProtocol.PROTOCOL_TCP, udp: api.PortProtocol.PROTOCOL_UDP, sctp: api.PortProtocol.PROTOCOL_SCTP };
const PUBLISH_MODES = { ingress: api.PublishMode.PUBLISH_MODE_INGRESS, host: api.PublishMode.PUBLISH_MODE_HOST };

function ports(field: string, v: shoal.api.IPortConfig[] | null | undefined): PortSpec[] {
  const published = new Map<string, number>();
  return list(field, v).map((p, i) => {
    const f = `${field}[${i}]`;
    const protocol = enumValue(`${f}.protocol`, p?.protocol, PROTOCOLS, api.PortProtocol.PROTOCOL_TCP);
    const targetPort = int(`${f}.target_port`, p?.targetPort, 0, 0, 65535);
    if (targetPort === 0) fail(`${f}.target_port`, 'a target port from 1 to 65535 is required');
    const publishedPort = int(`${f}.published_port`, p?.publishedPort, 0, 0, 65535);
    const publishMode = enumValue(`${f}.publish_mode`, p?.publishMode, PUBLISH_MODES, api.PublishMode.PUBLISH_MODE_INGRESS);
    if (publishedPort !== 0) {
      const protoName = Object.entries(PROTOCOLS).find(([, n]) => n === protocol)![0];
      const key = `${publishedPort}/${protoName}`;
      const prev = published.get(key);
      if (prev !== undefined) fail(`${f}.published_port`, `${key} is already published by ${field}[${prev}]: published ports must be unique`);
      published.set(key, i);
    }
    return { protocol, targetPort, publishedPort, publishMode };
  });
}
