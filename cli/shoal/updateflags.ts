// `service update` flags -> the service's new spec: docker's flag names, applied to the spec
// as read (add/rm flags edit lists and maps, the others replace a value). Pure: no I/O. As
// with create, only the flags' own syntax is checked here; the spec's rules are the control
// API's.
import type { shoal } from '../../proto/gen/api.js';
import {
  FAILURE_ACTIONS, FlagError, RESTART_CONDITIONS, UPDATE_ORDERS, duration, oneOf, parseBytes, parseCount, parseCpus, parseEnv,
  parseLabels, parseMount, ratio, shellWords, type CreateFlags, type SpecInput,
} from './serviceflags.js';

/** The flags of `service update`, as commander hands them over: create's own that replace one value, and the add/rm ones. */
export type UpdateFlags = Pick<CreateFlags,
  'replicas' | 'workdir' | 'user' | 'hostname' | 'entrypoint' | 'reserveCpu' | 'reserveMemory' | 'limitCpu' | 'limitMemory'
  | 'restartCondition' | 'restartDelay' | 'restartMaxAttempts' | 'restartWindow' | 'stopSignal' | 'stopGracePeriod'
  | 'updateParallelism' | 'updateDelay' | 'updateFailureAction' | 'updateMonitor' | 'updateMaxFailureRatio' | 'updateOrder'> & {
  image?: string;
  args?: string;
  envAdd?: string[];
  envRm?: string[];
  labelAdd?: string[];
  labelRm?: string[];
  containerLabelAdd?: string[];
  containerLabelRm?: string[];
  constraintAdd?: string[];
  constraintRm?: string[];
  mountAdd?: string[];
  mountRm?: string[];
  rollbackParallelism?: string;
  rollbackDelay?: string;
  rollbackFailureAction?: string;
  rollbackMonitor?: string;
  rollbackMaxFailureRatio?: string;
  rollbackOrder?: string;
  force?: boolean;
};

const keyOf = (entry: string) => (entry.includes('=') ? entry.slice(0, entry.indexOf('=')) : entry);

/** The spec read from the control API, changed as the flags say. Refuses flags that do not fit the service's mode. */
export function updateSpec(current: SpecInput, f: UpdateFlags, lookupEnv: (k: string) => string | undefined = (k) => process.env[k]): SpecInput {
  const spec = structuredClone(current);
  const task = (spec.taskTemplate ??= {});
  const c = (task.container ??= {});

  if (f.replicas !== undefined) {
    const n = parseCount(f.replicas, '--replicas');
    if (spec.replicated) spec.replicated = { ...spec.replicated, replicas: n };
    else if (spec.replicatedJob) spec.replicatedJob = { ...spec.replicatedJob, totalCompletions: n };
    else throw new FlagError('--replicas can only be used with replicated or replicated-job mode');
  }
  if (f.labelAdd?.length || f.labelRm?.length) spec.labels = editMap(spec.labels, f.labelAdd, f.labelRm, '--label-add');

  if (f.image !== undefined) c.image = f.image;
  if (f.args !== undefined) c.args = shellWords(f.args, '--args');
  if (f.entrypoint !== undefined) c.command = shellWords(f.entrypoint, '--entrypoint');
  if (f.workdir !== undefined) c.dir = f.workdir;
  if (f.user !== undefined) c.user = f.user;
  if (f.hostname !== undefined) c.hostname = f.hostname;
  if (f.stopSignal !== undefined) c.stopSignal = f.stopSignal;
  if (f.stopGracePeriod !== undefined) c.stopGracePeriodMs = duration(f.stopGracePeriod, '--stop-grace-period');
  if (f.envAdd?.length || f.envRm?.length) {
    // docker's: --env-rm drops a variable by name, --env-add sets one (replacing it if set).
    const added = f.envAdd?.length ? parseEnv(f.envAdd, lookupEnv) : [];
    const gone = new Set([...(f.envRm ?? []), ...added.map(keyOf)]);
    c.env = [...(c.env ?? []).filter((e) => !gone.has(keyOf(e))), ...added];
  }
  if (f.containerLabelAdd?.length || f.containerLabelRm?.length) c.labels = editMap(c.labels, f.containerLabelAdd, f.containerLabelRm, '--container-label-add');
  if (f.mountAdd?.length || f.mountRm?.length) {
    const added = (f.mountAdd ?? []).map(parseMount);
    const gone = new Set([...(f.mountRm ?? []), ...added.map((m) => m.target ?? '')]);
    c.mounts = [...(c.mounts ?? []).filter((m) => !gone.has(m.target ?? '')), ...added];
  }

  if (f.constraintAdd?.length || f.constraintRm?.length) {
    const p = (task.placement ??= {});
    const gone = new Set(f.constraintRm ?? []);
    const kept = (p.constraints ?? []).filter((x) => !gone.has(x));
    p.constraints = [...kept, ...(f.constraintAdd ?? []).filter((x) => !kept.includes(x))];
  }

  const resources = (kind: 'reservations' | 'limits', cpu: string | undefined, mem: string | undefined, flag: string) => {
    if (cpu === undefined && mem === undefined) return;
    const r = (task.resources ??= {});
    const cur: shoal.api.IResources = { ...(r[kind] ?? {}) };
    if (cpu !== undefined) cur.nanoCpus = parseCpus(cpu, `--${flag}-cpu`);
    if (mem !== undefined) cur.memoryBytes = parseBytes(mem, `--${flag}-memory`);
    r[kind] = cur;
  };
  resources('reservations', f.reserveCpu, f.reserveMemory, 'reserve');
  resources('limits', f.limitCpu, f.limitMemory, 'limit');

  if ([f.restartCondition, f.restartDelay, f.restartMaxAttempts, f.restartWindow].some((v) => v !== undefined)) {
    const r = (task.restartPolicy = { ...(task.restartPolicy ?? {}) });
    if (f.restartCondition !== undefined) r.condition = oneOf('--restart-condition', f.restartCondition, RESTART_CONDITIONS);
    if (f.restartDelay !== undefined) r.delayMs = duration(f.restartDelay, '--restart-delay');
    if (f.restartMaxAttempts !== undefined) r.maxAttempts = parseCount(f.restartMaxAttempts, '--restart-max-attempts');
    if (f.restartWindow !== undefined) r.windowMs = duration(f.restartWindow, '--restart-window');
  }

  spec.updateConfig = updateConfig(spec.updateConfig, 'update', [f.updateParallelism, f.updateDelay, f.updateFailureAction, f.updateMonitor, f.updateMaxFailureRatio, f.updateOrder]);
  spec.rollbackConfig = updateConfig(spec.rollbackConfig, 'rollback', [f.rollbackParallelism, f.rollbackDelay, f.rollbackFailureAction, f.rollbackMonitor, f.rollbackMaxFailureRatio, f.rollbackOrder]);

  // docker's --force: redeploy even when nothing changed.
  if (f.force) task.forceUpdate = Number(task.forceUpdate ?? 0) + 1;
  return spec;
}

function editMap(cur: Record<string, string> | null | undefined, add: string[] | undefined, rm: string[] | undefined, flag: string): Record<string, string> {
  const out = { ...(cur ?? {}) };
  for (const k of rm ?? []) delete out[k];
  return { ...out, ...(add?.length ? parseLabels(add, flag) : {}) };
}

type Six = [string | undefined, string | undefined, string | undefined, string | undefined, string | undefined, string | undefined];

function updateConfig(cur: shoal.api.IUpdateConfig | null | undefined, kind: 'update' | 'rollback', [parallelism, delay, action, monitor, maxRatio, order]: Six): shoal.api.IUpdateConfig | null | undefined {
  if ([parallelism, delay, action, monitor, maxRatio, order].every((v) => v === undefined)) return cur;
  const u: shoal.api.IUpdateConfig = { ...(cur ?? {}) };
  if (parallelism !== undefined) u.parallelism = parseCount(parallelism, `--${kind}-parallelism`);
  if (delay !== undefined) u.delayMs = duration(delay, `--${kind}-delay`);
  if (action !== undefined) {
    const words: Record<string, number> = kind === 'update' ? FAILURE_ACTIONS : { pause: FAILURE_ACTIONS.pause, continue: FAILURE_ACTIONS.continue };
    u.failureAction = oneOf(`--${kind}-failure-action`, action, words);
  }
  if (monitor !== undefined) u.monitorMs = duration(monitor, `--${kind}-monitor`);
  if (maxRatio !== undefined) u.maxFailureRatio = ratio(maxRatio, `--${kind}-max-failure-ratio`);
  if (order !== undefined) u.order = oneOf(`--${kind}-order`, order, UPDATE_ORDERS);
  return u;
}
