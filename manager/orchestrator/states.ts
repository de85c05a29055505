// Task state numbers (Swarm's, from proto/objects.proto) and the questions the
// orchestrators ask of them. Numbers are ordered: everything above RUNNING has
// ended or is on its way out.
import { api } from '../../proto/services.js';

export const S = api.TaskState;

export type TaskLike = {
  desiredState?: number | null;
  status?: { state?: number | null } | null;
};

export const stateOf = (t: TaskLike): number => Number(t.status?.state ?? 0);
export const desiredOf = (t: TaskLike): number => Number(t.desiredState ?? 0);

/** The managers want it to run (or to have run, for a finished job). */
export const isLive = (t: TaskLike): boolean => desiredOf(t) <= S.TASK_RUNNING;

/** The managers want it gone (scaled down, its service removed): once ended, it is deleted with no history kept. */
export const toBeRemoved = (t: TaskLike): boolean => desiredOf(t) >= S.TASK_REMOVE;

/** Its process has ended, or it never will run (rejected, orphaned). */
export const hasEnded = (t: TaskLike): boolean => stateOf(t) > S.TASK_RUNNING;

/** Placed on a node and not yet ended: it holds the node's resources. */
export const holdsNode = (t: TaskLike & { nodeId?: string | null }): boolean =>
  !!t.nodeId && isLive(t) && stateOf(t) >= S.TASK_ASSIGNED && !hasEnded(t);

const NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(api.TaskState).map(([k, v]) => [v as number, k.replace(/^TASK_/, '').toLowerCase()]),
);

export function stateName(n: number | null | undefined): string {
  return NAMES[Number(n ?? 0)] ?? String(n);
}
