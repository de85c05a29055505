// The rolling update, as one more level-triggered decision of a pass: given a
// service and the live task of each of its slots (or nodes, for a global
// service), which tasks still made from an older task template to replace now,
// and what the service's update status becomes. Everything it needs is in the
// store (the status with its start time, the tasks with their templates,
// states and timestamps), so a new leader carries on where the old one was.
//
//   in flight   tasks of the new template made since the update started that
//               are not yet running, or running for less than the delay; they
//               use up the parallelism (0: no limit)
//   failures    tasks of the new template made since the update started that
//               were rejected, or failed before they ran or within the monitor
//               period after they started running (as Swarm counts them);
//               above max_failure_ratio of the slots the failure action
//               applies: pause, continue, or roll back
//   completed   no task of an older template is left and the new ones made by
//               the update have run for the monitor period
import type { ServiceObject, TaskObject } from '../cluster/tables.js';
import { api } from '../../proto/services.js';
import { S, hasEnded, stateOf } from './states.js';

const U = api.UpdateState;

export interface UpdateStatusLike {
  state: number;
  startedAt: number;
  completedAt: number;
  message: string;
}

export interface UpdateInput {
  svc: ServiceObject;
  /** The live task of each slot (node, for a global service), after this pass's other decisions. */
  units: readonly TaskObject[];
  /** Every task of the service, live or not. */
  tasks: readonly TaskObject[];
  /** Whether a task was made from an older template than the service's. */
  outdated: (t: TaskObject) => boolean;
  now: number;
}

export interface UpdateDecision {
  /** Live tasks to replace now by tasks of the current template. */
  replace: TaskObject[];
  /** Start the replacement before stopping the old task (order start-first). */
  startFirst: boolean;
  /** The service's new update status, when it changes. */
  status?: UpdateStatusLike;
  /** Roll the service back to its previous spec (failure action rollback). */
  rollback?: boolean;
  /** When a pass is next due for this update without any change (delay or monitor ends). */
  wakeAt?: number;
}

export const isRollback = (state: number): boolean => state === U.UPDATE_ROLLBACK_STARTED || state === U.UPDATE_ROLLBACK_PAUSED;
export const isPaused = (state: number): boolean => state === U.UPDATE_PAUSED || state === U.UPDATE_ROLLBACK_PAUSED;
export const isUpdating = (state: number): boolean => state === U.UPDATE_UPDATING || state === U.UPDATE_ROLLBACK_STARTED;

export function statusOf(svc: ServiceObject): UpdateStatusLike {
  const s = svc.updateStatus;
  return { state: Number(s?.state ?? 0), startedAt: Number(s?.startedAt ?? 0), completedAt: Number(s?.completedAt ?? 0), message: s?.message ?? '' };
}

export function planUpdate(input: UpdateInput): UpdateDecision {
  const { svc, units, now } = input;
  const st = statusOf(svc);
  const rollback = isRollback(st.state);
  const cfg = (rollback ? svc.spec?.rollbackConfig : svc.spec?.updateConfig) ?? {};
  const startFirst = Number(cfg.order) === api.UpdateOrder.UPDATE_ORDER_START_FIRST;
  const out: UpdateDecision = { replace: [], startFirst };
  const old = units.filter(input.outdated);
  const byUpdate = (t: TaskObject) => Number(t.meta.createdAt) >= st.startedAt && !input.outdated(t);
  const runningSince = (t: TaskObject) => (stateOf(t) === S.TASK_RUNNING ? startedAt(t) : undefined);
  const wake = (at: number) => {
    out.wakeAt = Math.min(out.wakeAt ?? at, at);
  };

  if (old.length === 0) {
    if (!isUpdating(st.state)) return out;
    // Done once the new tasks have run for the monitor period (they may still fail and count).
    const monitorMs = Number(cfg.monitorMs ?? 0);
    let watching = false;
    for (const t of units) {
      if (!byUpdate(t)) continue;
      const since = runningSince(t);
      if (since === undefined) watching ||= !hasEnded(t);
      else if (since + monitorMs > now) {
        watching = true;
        wake(since + monitorMs);
      }
    }
    if (!watching && !failed(input, st, cfg, out)) {
      // A rollback the failure action started keeps its cause: `service update` may look only now.
      const cause = rollback && st.message.startsWith('update rolled back') ? `${st.message}; ` : '';
      out.status = { ...st, state: rollback ? U.UPDATE_ROLLBACK_COMPLETED : U.UPDATE_COMPLETED, completedAt: now, message: rollback ? `${cause}rollback completed` : 'update completed' };
    }
    return out;
  }
  if (isPaused(st.state)) return out;
  if (!isUpdating(st.state)) {
    // Tasks of an older template and no update under way (the spec changed without one being
    // started, or the last one completed before a restart brought an old task back): start one.
    out.status = { state: U.UPDATE_UPDATING, startedAt: now, completedAt: 0, message: 'update in progress' };
    return out;
  }
  if (failed(input, st, cfg, out)) return out;

  const delayMs = Number(cfg.delayMs ?? 0);
  let inFlight = 0;
  for (const t of units) {
    if (!byUpdate(t) || hasEnded(t)) continue;
    const since = runningSince(t);
    if (since === undefined) inFlight++;
    else if (since + delayMs > now) {
      inFlight++;
      wake(since + delayMs);
    }
  }
  const parallelism = Number(cfg.parallelism ?? 1);
  const budget = parallelism === 0 ? old.length : Math.max(0, parallelism - inFlight);
  // Tasks that do not run anyway go first: replacing them costs nothing that works.
  const order = [...old].sort((a, b) => Number(stateOf(a) === S.TASK_RUNNING) - Number(stateOf(b) === S.TASK_RUNNING) || Number(a.slot) - Number(b.slot) || a.nodeId.localeCompare(b.nodeId));
  out.replace = order.slice(0, budget);
  return out;
}

/**
 * Whether the update's failures pass its limit; if so, sets the decision's status (paused) or
 * rollback. Continue ignores failures.
 */
function failed(
  input: UpdateInput, st: UpdateStatusLike, cfg: { failureAction?: number | null; maxFailureRatio?: number | null; monitorMs?: unknown }, out: UpdateDecision,
): boolean {
  const action = Number(cfg.failureAction ?? api.UpdateFailureAction.FAILURE_ACTION_PAUSE);
  if (action === api.UpdateFailureAction.FAILURE_ACTION_CONTINUE) return false;
  const monitorMs = Number(cfg.monitorMs ?? 0);
  // A task that ran for the monitor period before it failed passed the update's watch.
  const watched = (t: TaskObject) => {
    const since = Number(t.status?.startedAt ?? 0);
    return since === 0 || Number(t.status?.timestamp ?? 0) - since < monitorMs;
  };
  const failures = input.tasks.filter((t) => Number(t.meta.createdAt) >= st.startedAt && !input.outdated(t)
    && (stateOf(t) === S.TASK_FAILED || stateOf(t) === S.TASK_REJECTED) && watched(t));
  if (failures.length === 0) return false;
  const slots = Math.max(1, input.units.length);
  if (failures.length / slots <= Number(cfg.maxFailureRatio ?? 0)) return false;
  const first = failures.sort((a, b) => Number(a.status?.timestamp ?? 0) - Number(b.status?.timestamp ?? 0))[0]!;
  const why = `task ${first.id} ${stateOf(first) === S.TASK_REJECTED ? 'was rejected' : 'failed'}${first.status?.err ? `: ${first.status.err}` : ''}`;
  const rollback = isRollback(st.state);
  if (action === api.UpdateFailureAction.FAILURE_ACTION_ROLLBACK && !rollback && input.svc.previousSpec) {
    out.rollback = true;
    out.status = { state: U.UPDATE_ROLLBACK_STARTED, startedAt: input.now, completedAt: 0, message: `update rolled back: ${why}` };
  } else {
    out.status = { ...st, state: rollback ? U.UPDATE_ROLLBACK_PAUSED : U.UPDATE_PAUSED, message: `${rollback ? 'rollback' : 'update'} paused: ${why}` };
  }
  return true;
}

/** Since when a task runs: its container's start as the agent reported it (or, from an agent that does not say, its status time). */
function startedAt(t: TaskObject): number {
  return Number(t.status?.startedAt ?? 0) || Number(t.status?.timestamp ?? 0);
}
