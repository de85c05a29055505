// `service create` and `service scale` flags -> service specs, with docker's flag names and
// syntax. Pure: no I/O. Only the flags' own syntax is checked here (numbers, units, durations,
// `--mount` fields, the accepted words of a flag); the rules of a spec (names, paths, images,
// limits) are the control API's, whose errors name the field (manager/controlapi/servicespec.ts).
import type { shoal } from '../../proto/gen/api.js';
import { api } from '../../proto/services.js';
import { parseDuration } from './format.js';

export type SpecInput = shoal.api.IServiceSpec;

/** A flag value that does not parse: the message names the flag and the accepted form (exit code 1). */
export class FlagError extends Error {}

/** The flags of `service create`, as commander hands them over (strings, lists, booleans). */
export interface CreateFlags {
  name?: string;
  replicas?: string;
  mode?: string;
  maxConcurrent?: string;
  env?: string[];
  /** The contents of the --env-file files, read by the caller (this module does no I/O): path and text. */
  envFiles?: Array<{ path: string; text: string }>;
  workdir?: string;
  user?: string;
  hostname?: string;
  mount?: string[];
  label?: string[];
  containerLabel?: string[];
  constraint?: string[];
  placementPref?: string[];
  replicasMaxPerNode?: string;
  reserveCpu?: string;
  reserveMemory?: string;
  limitCpu?: string;
  limitMemory?: string;
  restartCondition?: string;
  restartDelay?: string;
  restartMaxAttempts?: string;
  restartWindow?: string;
  stopSignal?: string;
  stopGracePeriod?: string;
  readOnly?: boolean;
  init?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  entrypoint?: string;
  updateParallelism?: string;
  updateDelay?: string;
  updateFailureAction?: string;
  updateMonitor?: string;
  updateMaxFailureRatio?: string;
  updateOrder?: string;
}

export const MODES = ['replicated', 'global', 'replicated-job', 'global-job'] as const;
export type Mode = (typeof MODES)[number];

function fail(msg: string): never {
  throw new FlagError(msg);
}

const show = (v: string) => JSON.stringify(v);

/** One of a flag's words. */
export function oneOf<K extends string>(flag: string, v: string, words: Record<K, number>): number {
  const hit = (words as Record<string, number>)[v];
  if (hit === undefined) fail(`invalid ${flag} ${show(v)}: use one of ${Object.keys(words).join(', ')}`);
  return hit;
}

/** A whole number, 0 or more. */
export function parseCount(v: string, flag: string): number {
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) fail(`invalid ${flag} ${show(v)}: use a whole number, 0 or more`);
  return Number(v);
}

/** Decimal CPUs, as docker's --limit-cpu: "0.5" -> 500000000 nano-CPUs, exactly (at most 9 decimals). */
export function parseCpus(v: string, flag: string): number {
  const m = /^([0-9]*)(?:\.([0-9]*))?$/.exec(v);
  if (!m || (m[1] === '' && !m[2])) fail(`invalid ${flag} ${show(v)}: use a number of CPUs, e.g. 0.5 or 2`);
  const frac = m[2] ?? '';
  if (frac.length > 9) fail(`invalid ${flag} ${show(v)}: at most 9 decimal places (a nano-CPU)`);
  const nano = Number(m[1] || '0') * 1e9 + Number(frac.padEnd(9, '0'));
  if (!Number.isSafeInteger(nano)) fail(`invalid ${flag} ${show(v)}: too large`);
  return nano;
}

const BINARY: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * Bytes, as docker's --limit-memory and tmpfs-size (binary units): "512m", "1.5g", "64MiB",
 * "100" (bytes), "100b".
 */
export function parseBytes(v: string, flag: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?) ?([kmgtp]?)(i?)(b?)$/i.exec(v);
  if (!m || (m[3] && !m[2])) fail(`invalid ${flag} ${show(v)}: use a number of bytes with an optional unit b, k, m or g (e.g. 512m, 1.5g)`);
  const bytes = Math.floor(Number(m[1]) * BINARY[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) fail(`invalid ${flag} ${show(v)}: too large`);
  return bytes;
}

export function duration(v: string, flag: string): number {
  try {
    return parseDuration(v, flag);
  } catch (e) {
    throw new FlagError((e as Error).message);
  }
}

export function ratio(v: string, flag: string): number {
  if (!/^([0-9]+(\.[0-9]*)?|\.[0-9]+)$/.test(v)) fail(`invalid ${flag} ${show(v)}: use a number from 0 to 1, e.g. 0.2`);
  return Number(v);
}

function parseBool(v: string, what: string): boolean {
  const l = v.toLowerCase();
  if (['1', 't', 'true'].includes(l)) return true;
  if (['0', 'f', 'false'].includes(l)) return false;
  return fail(`invalid ${what} ${show(v)}: use true or false`);
}

/** key=value pairs (a bare key has an empty value), as docker's --label. */
export function parseLabels(list: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const i = item.indexOf('=');
    const key = i < 0 ? item : item.slice(0, i);
    if (key === '') fail(`invalid ${flag} ${show(item)}: the key is empty; use key=value`);
    out[key] = i < 0 ? '' : item.slice(i + 1);
  }
  return out;
}

/** KEY=VALUE; a bare KEY takes its value from this shell's environment, as docker's --env does. */
export function parseEnv(list: string[], lookup: (k: string) => string | undefined): string[] {
  return list.map((item) => {
    const i = item.indexOf('=');
    if (i === 0) fail(`invalid --env ${show(item)}: the variable name is empty; use KEY=VALUE`);
    if (i > 0) return item;
    const v = lookup(item);
    if (v === undefined) fail(`invalid --env ${show(item)}: use KEY=VALUE (${item} is not set in this shell to take its value from)`);
    return `${item}=${v}`;
  });
}

/**
 * An --env-file's text, as docker reads one: a KEY=VALUE per line, the value taken as written
 * (quotes included); blank lines and lines starting with # skipped; a bare KEY takes its value
 * from this shell, and is left out when the shell has none.
 */
export function parseEnvFile(text: string, path: string, lookup: (k: string) => string | undefined): string[] {
  const out: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trimStart();
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line.trimEnd() : line.slice(0, eq);
    const where = `invalid --env-file ${path}, line ${i + 1}`;
    if (key === '') fail(`${where}: the variable name is empty; use KEY=VALUE`);
    if (/\s/.test(key)) fail(`${where}: variable name ${show(key)} contains whitespace; use KEY=VALUE`);
    if (eq >= 0) out.push(line);
    else if (lookup(key) !== undefined) out.push(`${key}=${lookup(key)}`);
  });
  return out;
}

/** Splits a line into words as a shell would: spaces separate, quotes group, backslash escapes. */
export function shellWords(s: string, flag: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else cur += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = undefined;
      else if (ch === '\\' && i + 1 < s.length && '"\\$`'.includes(s[i + 1]!)) cur += s[++i];
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) fail(`invalid ${flag} ${show(s)}: a ${quote} quote is not closed`);
  if (inWord) words.push(cur);
  return words;
}

/** Comma-separated fields; a field in double quotes may hold commas ("volume-label=a=b,c"). */
function csvFields(s: string, flag: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '"') {
      if (quoted && s[i + 1] === '"') {
        cur += '"';
        i++;
      } else quoted = !quoted;
    } else if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (quoted) fail(`invalid ${flag} ${show(s)}: a " quote is not closed`);
  out.push(cur);
  return out;
}

const MOUNT_TYPES = { volume: api.MountType.MOUNT_TYPE_VOLUME, bind: api.MountType.MOUNT_TYPE_BIND, tmpfs: api.MountType.MOUNT_TYPE_TMPFS };
const MOUNT_KEYS = 'type, source (src), target (dst, destination), readonly (ro), volume-nocopy, volume-label, tmpfs-size, tmpfs-mode';
// Docker's keys for things shoal does not have: refused by name rather than as unknown.
const UNSUPPORTED_MOUNT_KEYS = ['bind-propagation', 'bind-nonrecursive', 'bind-recursive', 'bind-create-host-path', 'volume-driver', 'volume-opt', 'volume-subpath', 'consistency', 'tmpfs-options'];

/**
 * docker's --mount syntax: `type=bind,source=/src,target=/dst,readonly`, with src/dst/ro
 * aliases, volume-nocopy, volume-label=k=v, tmpfs-size=64m, tmpfs-mode=1770 (octal).
 */
export function parseMount(s: string): shoal.api.IMount {
  const flag = '--mount';
  const m: shoal.api.IMount = { type: api.MountType.MOUNT_TYPE_VOLUME };
  let tmpfs: shoal.api.ITmpfsOptions | undefined;
  let volume: shoal.api.IVolumeOptions | undefined;
  for (const field of csvFields(s, flag)) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : field.slice(eq + 1);
    if (key === '') fail(`invalid ${flag} ${show(s)}: empty field; use comma-separated key=value fields, e.g. type=bind,source=/src,target=/dst`);
    if (value === undefined) {
      // Docker's boolean keys may stand alone.
      if (key === 'readonly' || key === 'ro') m.readOnly = true;
      else if (key === 'volume-nocopy') (volume ??= {}).noCopy = true;
      else fail(`invalid field ${show(field)} in ${flag} ${show(s)}: must be a key=value pair`);
      continue;
    }
    switch (key) {
      case 'type':
        m.type = oneOf(`${flag} type`, value, MOUNT_TYPES);
        break;
      case 'source':
      case 'src':
        m.source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.target = value;
        break;
      case 'readonly':
      case 'ro':
        m.readOnly = parseBool(value, `${flag} ${key}`);
        break;
      case 'volume-nocopy':
        (volume ??= {}).noCopy = parseBool(value, `${flag} volume-nocopy`);
        break;
      case 'volume-label': {
        const i = value.indexOf('=');
        const k = i < 0 ? value : value.slice(0, i);
        if (k === '') fail(`invalid ${flag} volume-label ${show(value)}: use volume-label=key=value`);
        volume ??= {};
        volume.labels = { ...(volume.labels ?? {}), [k]: i < 0 ? '' : value.slice(i + 1) };
        break;
      }
      case 'tmpfs-size':
        (tmpfs ??= {}).sizeBytes = parseBytes(value, `${flag} tmpfs-size`);
        break;
      case 'tmpfs-mode':
        if (!/^[0-7]{1,5}$/.test(value)) fail(`invalid ${flag} tmpfs-mode ${show(value)}: use octal permission bits, e.g. 1777 or 0700`);
        (tmpfs ??= {}).mode = parseInt(value, 8);
        break;
      default:
        if (UNSUPPORTED_MOUNT_KEYS.includes(key)) fail(`${flag} option ${show(key)} is not supported by shoal (accepted: ${MOUNT_KEYS})`);
        fail(`unknown key ${show(key)} in ${flag} ${show(s)} (accepted: ${MOUNT_KEYS})`);
    }
  }
  if (tmpfs) m.tmpfsOptions = tmpfs;
  if (volume) m.volumeOptions = volume;
  return m;
}

/** --placement-pref spread=node.labels.zone */
export function parsePlacementPref(s: string): shoal.api.IPlacementPreference {
  const eq = s.indexOf('=');
  const strategy = eq < 0 ? '' : s.slice(0, eq).trim().toLowerCase();
  if (eq < 0 || strategy !== 'spread' || s.slice(eq + 1).trim() === '') {
    fail(`invalid --placement-pref ${show(s)}: use spread=<node attribute>, e.g. spread=node.labels.zone (spread is the only strategy)`);
  }
  return { spread: s.slice(eq + 1).trim() };
}

export const RESTART_CONDITIONS = { none: api.RestartCondition.RESTART_NONE, 'on-failure': api.RestartCondition.RESTART_ON_FAILURE, any: api.RestartCondition.RESTART_ANY };
export const FAILURE_ACTIONS = {
  pause: api.UpdateFailureAction.FAILURE_ACTION_PAUSE,
  continue: api.UpdateFailureAction.FAILURE_ACTION_CONTINUE,
  rollback: api.UpdateFailureAction.FAILURE_ACTION_ROLLBACK,
};
export const UPDATE_ORDERS = { 'stop-first': api.UpdateOrder.UPDATE_ORDER_STOP_FIRST, 'start-first': api.UpdateOrder.UPDATE_ORDER_START_FIRST };

/** Copies `o` without its undefined fields (the spec then says only what the flags said). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const has = (...vs: unknown[]) => vs.some((v) => v !== undefined);

/** The files' variables first, then --env's: a later one of a name wins, as docker has it. */
function envOf(f: CreateFlags, lookup: (k: string) => string | undefined): string[] | undefined {
  const env = [...(f.envFiles ?? []).flatMap((e) => parseEnvFile(e.text, e.path, lookup)), ...(f.env?.length ? parseEnv(f.env, lookup) : [])];
  return env.length ? env : undefined;
}

/**
 * The spec `service create [flags] IMAGE [COMMAND] [ARG...]` asks for. As docker's: COMMAND and
 * ARGs replace the image's CMD (spec args), --entrypoint its ENTRYPOINT (spec command). What no
 * flag sets is left out, for the control API to fill with its defaults.
 */
export function buildServiceSpec(image: string, args: string[], f: CreateFlags, lookupEnv: (k: string) => string | undefined = (k) => process.env[k]): SpecInput {
  const mode = (f.mode ?? 'replicated') as Mode;
  if (!MODES.includes(mode)) fail(`invalid --mode ${show(f.mode!)}: use one of ${MODES.join(', ')}`);
  const replicas = f.replicas === undefined ? undefined : parseCount(f.replicas, '--replicas');
  const maxConcurrent = f.maxConcurrent === undefined ? undefined : parseCount(f.maxConcurrent, '--max-concurrent');
  const maxPerNode = f.replicasMaxPerNode === undefined ? undefined : parseCount(f.replicasMaxPerNode, '--replicas-max-per-node');
  if (replicas !== undefined && mode !== 'replicated' && mode !== 'replicated-job') {
    fail(`--replicas can only be used with replicated or replicated-job mode (the mode is ${mode})`);
  }
  if (maxConcurrent !== undefined && mode !== 'replicated-job') fail(`--max-concurrent can only be used with replicated-job mode (the mode is ${mode})`);
  if (maxPerNode !== undefined && mode !== 'replicated') fail(`--replicas-max-per-node can only be used with replicated mode (the mode is ${mode})`);

  const spec: SpecInput = { name: f.name ?? '' };
  if (f.label?.length) spec.labels = parseLabels(f.label, '--label');
  switch (mode) {
    case 'replicated':
      spec.replicated = defined({ replicas });
      break;
    case 'global':
      spec.global = {};
      break;
    case 'replicated-job':
      // docker's: --replicas is the number of completions, and as many run at once unless
      // --max-concurrent says otherwise.
      spec.replicatedJob = defined({ maxConcurrent: maxConcurrent ?? replicas, totalCompletions: replicas });
      break;
    case 'global-job':
      spec.globalJob = {};
      break;
  }

  const container: shoal.api.IContainerSpec = defined({
    image,
    args: args.length ? args : undefined,
    command: f.entrypoint !== undefined ? shellWords(f.entrypoint, '--entrypoint') : undefined,
    env: envOf(f, lookupEnv),
    dir: f.workdir,
    user: f.user,
    hostname: f.hostname,
    mounts: f.mount?.length ? f.mount.map(parseMount) : undefined,
    labels: f.containerLabel?.length ? parseLabels(f.containerLabel, '--container-label') : undefined,
    stopSignal: f.stopSignal,
    stopGracePeriodMs: f.stopGracePeriod === undefined ? undefined : duration(f.stopGracePeriod, '--stop-grace-period'),
    readOnly: f.readOnly || undefined,
    init: f.init || undefined,
    capAdd: f.capAdd?.length ? f.capAdd : undefined,
    capDrop: f.capDrop?.length ? f.capDrop : undefined,
  });
  const task: shoal.api.ITaskSpec = { container };

  if (has(f.reserveCpu, f.reserveMemory, f.limitCpu, f.limitMemory)) {
    const res = (cpu: string | undefined, mem: string | undefined, kind: string) => (has(cpu, mem) ? defined({
      nanoCpus: cpu === undefined ? undefined : parseCpus(cpu, `--${kind}-cpu`),
      memoryBytes: mem === undefined ? undefined : parseBytes(mem, `--${kind}-memory`),
    }) : undefined);
    task.resources = defined({ reservations: res(f.reserveCpu, f.reserveMemory, 'reserve'), limits: res(f.limitCpu, f.limitMemory, 'limit') });
  }

  if (has(f.restartCondition, f.restartDelay, f.restartMaxAttempts, f.restartWindow)) {
    task.restartPolicy = defined({
      condition: f.restartCondition === undefined ? undefined : oneOf('--restart-condition', f.restartCondition, RESTART_CONDITIONS),
      delayMs: f.restartDelay === undefined ? undefined : duration(f.restartDelay, '--restart-delay'),
      maxAttempts: f.restartMaxAttempts === undefined ? undefined : parseCount(f.restartMaxAttempts, '--restart-max-attempts'),
      windowMs: f.restartWindow === undefined ? undefined : duration(f.restartWindow, '--restart-window'),
    });
  }

  if (f.constraint?.length || f.placementPref?.length || maxPerNode !== undefined) {
    task.placement = defined({
      constraints: f.constraint?.length ? f.constraint : undefined,
      preferences: f.placementPref?.length ? f.placementPref.map(parsePlacementPref) : undefined,
      maxReplicas: maxPerNode,
    });
  }
  spec.taskTemplate = task;

  if (has(f.updateParallelism, f.updateDelay, f.updateFailureAction, f.updateMonitor, f.updateMaxFailureRatio, f.updateOrder)) {
    spec.updateConfig = defined({
      parallelism: f.updateParallelism === undefined ? undefined : parseCount(f.updateParallelism, '--update-parallelism'),
      delayMs: f.updateDelay === undefined ? undefined : duration(f.updateDelay, '--update-delay'),
      failureAction: f.updateFailureAction === undefined ? undefined : oneOf('--update-failure-action', f.updateFailureAction, FAILURE_ACTIONS),
      monitorMs: f.updateMonitor === undefined ? undefined : duration(f.updateMonitor, '--update-monitor'),
      maxFailureRatio: f.updateMaxFailureRatio === undefined ? undefined : ratio(f.updateMaxFailureRatio, '--update-max-failure-ratio'),
      order: f.updateOrder === undefined ? undefined : oneOf('--update-order', f.updateOrder, UPDATE_ORDERS),
    });
  }
  return spec;
}

// ---- scale ----

export interface ScaleTarget {
  service: string;
  replicas: number;
}

/** `web=5 api=2` -> targets; docker's syntax, refused as a whole before anything changes. */
export function parseScaleArgs(args: string[]): ScaleTarget[] {
  if (args.length === 0) fail('service scale needs at least one SERVICE=REPLICAS, e.g. web=5');
  return args.map((a) => {
    const eq = a.indexOf('=');
    if (eq <= 0) fail(`invalid scale specifier ${show(a)}: use SERVICE=REPLICAS, e.g. web=5`);
    const replicas = a.slice(eq + 1);
    if (!/^[0-9]+$/.test(replicas) || !Number.isSafeInteger(Number(replicas))) {
      fail(`invalid replicas value ${show(replicas)} in ${show(a)}: use a whole number, 0 or more`);
    }
    return { service: a.slice(0, eq), replicas: Number(replicas) };
  });
}

/**
 * The spec with its replicas set to `replicas` (for a replicated job: its total completions), as
 * docker's scale does; global services and global jobs have no replicas to set.
 */
export function scaleSpec<T extends SpecInput>(spec: T, replicas: number): T {
  if (spec.global || spec.globalJob) fail('scale can only be used with replicated or replicated-job mode');
  if (spec.replicatedJob) return { ...spec, replicatedJob: { ...spec.replicatedJob, totalCompletions: replicas } };
  return { ...spec, replicated: { ...(spec.replicated ?? {}), replicas } };
}

// ---- names ----

// A service created without --name gets a docker-style name: adjective_scientist.
const ADJECTIVES = ['admiring', 'brave', 'clever', 'dazzling', 'eager', 'focused', 'gallant', 'happy', 'jolly', 'keen', 'lucid', 'modest',
  'nifty', 'optimistic', 'pensive', 'quirky', 'relaxed', 'serene', 'tender', 'upbeat', 'vibrant', 'wizardly', 'youthful', 'zealous'];
const SCIENTISTS = ['agnesi', 'babbage', 'curie', 'darwin', 'euler', 'fermi', 'galileo', 'hopper', 'jennings', 'kepler', 'lovelace', 'meitner',
  'noether', 'ostrom', 'pascal', 'ramanujan', 'shannon', 'turing', 'varahamihira', 'wozniak', 'yalow', 'zuse'];

export function randomName(rand: () => number = Math.random): string {
  const pick = (l: string[]) => l[Math.floor(rand() * l.length) % l.length]!;
  return `${pick(ADJECTIVES)}_${pick(SCIENTISTS)}`;
}
