// Which store changes wake the orchestration loop: a task's progress on its
// node does not, its end, a new desired state or a move does.
import { describe, expect, it } from 'vitest';
import { api } from '../../../proto/services.js';
import { relevant } from '../../../manager/orchestrator/loop.js';
import type { StoreEvent } from '../../../manager/store/index.js';

const S = api.TaskState;
const task = (state: number, o: { desired?: number; node?: string } = {}) =>
  ({ id: 't', meta: { version: 1, createdAt: 1, updatedAt: 1 }, desiredState: o.desired ?? S.TASK_RUNNING, nodeId: o.node ?? 'n1', status: { state } });
const upd = (table: string, oldObject: object, object: object): StoreEvent => ({ kind: 'update', table, oldObject, object, version: 2 }) as unknown as StoreEvent;

describe('relevant()', () => {
  const cases: Array<[string, StoreEvent, boolean]> = [
    ['a new task', { kind: 'create', table: 'tasks', object: task(S.TASK_PENDING), version: 2 } as unknown as StoreEvent, true],
    ['a deleted task', { kind: 'delete', table: 'tasks', object: task(S.TASK_FAILED), version: 2 } as unknown as StoreEvent, true],
    ['assigned by the scheduler', upd('tasks', task(S.TASK_PENDING, { node: '' }), task(S.TASK_ASSIGNED)), false],
    ['a pending reason rewritten', upd('tasks', task(S.TASK_PENDING, { node: '' }), task(S.TASK_PENDING, { node: '' })), false],
    ['preparing -> running', upd('tasks', task(S.TASK_PREPARING), task(S.TASK_RUNNING)), false],
    ['running -> failed', upd('tasks', task(S.TASK_RUNNING), task(S.TASK_FAILED)), true],
    ['running -> complete', upd('tasks', task(S.TASK_RUNNING), task(S.TASK_COMPLETE)), true],
    ['desired state shutdown', upd('tasks', task(S.TASK_RUNNING), task(S.TASK_RUNNING, { desired: S.TASK_SHUTDOWN })), true],
    ['moved to another node', upd('tasks', task(S.TASK_ASSIGNED), task(S.TASK_ASSIGNED, { node: 'n2' })), true],
    ['a service changed', upd('services', { id: 's' }, { id: 's' }), true],
    ['a node heartbeat that changes nothing read', upd('nodes', { spec: {}, status: { state: 2 } }, { spec: {}, status: { state: 2 } }), false],
    ['a node marked down', upd('nodes', { spec: {}, status: { state: 2 } }, { spec: {}, status: { state: 1 } }), true],
    ['a node drained', upd('nodes', { spec: { availability: 0 }, status: { state: 2 } }, { spec: { availability: 2 }, status: { state: 2 } }), true],
  ];
  it.each(cases)('%s -> %s', (_name, ev, want) => {
    expect(relevant(ev)).toBe(want);
  });
});
