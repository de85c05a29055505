// The restart supervisor's decision, pure: may the task that just ended be
// replaced, when, and with what history. The history rides on the tasks in the
// store (Task.restart_history), so a new leader decides exactly as the old one
// would have: max attempts and the window survive a leader change.
import { api } from '../../proto/services.js';
import type { ServiceObject, TaskObject } from '../cluster/tables.js';
import { S, stateOf } from './states.js';

const C = api.RestartCondition;
/** History kept when the policy sets no bound (max attempts and window both 0). */
const UNBOUNDED_HISTORY_KEEP = 20;

export interface RestartDecision {
  restart: boolean;
  /** Why not, in words (for the task's message). */
  why?: string;
  /** History of the replacement (includes this restart). */
  history?: number[];
  /** Earliest start of the replacement. */
  notBefore?: number;
}

export function isJob(svc: ServiceObject): boolean {
  return !!(svc.spec?.replicatedJob || svc.spec?.globalJob);
}

export function decideRestart(svc: ServiceObject, t: TaskObject, now: number): RestartDecision {
  const p = svc.spec?.taskTemplate?.restartPolicy;
  const cond = Number(p?.condition ?? 0) || C.RESTART_ANY;
  const st = stateOf(t);
  // A job's task that completed is the job's progress, never something to redo.
  if (st === S.TASK_COMPLETE && (isJob(svc) || cond !== C.RESTART_ANY)) return { restart: false, why: 'completed' };
  if (cond === C.RESTART_NONE) return { restart: false, why: 'restart condition is none' };
  const window = Number(p?.windowMs ?? 0);
  const max = Number(p?.maxAttempts ?? 0);
  const past = (t.restartHistory ?? []).map(Number).filter((at) => window <= 0 || at > now - window);
  if (max > 0 && past.length >= max) {
    return { restart: false, why: `restart policy exhausted: ${past.length} restart${past.length === 1 ? '' : 's'}${window > 0 ? ` within ${window / 1000} s` : ''} (max attempts ${max})` };
  }
  const keep = max > 0 ? max : UNBOUNDED_HISTORY_KEEP;
  const history = [...past, now].slice(-keep);
  const delay = p?.delayMs === undefined || p?.delayMs === null ? 5_000 : Number(p.delayMs);
  return { restart: true, history, notBefore: now + delay };
}
