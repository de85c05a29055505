// `service logs` on the leader: find the tasks, ask their nodes (through the
// worker sessions) for their output, and stream it to the caller. Tasks on
// nodes that cannot be reached are named in warnings; the rest still stream.
import * as grpc from '@grpc/grpc-js';
import type { LogLine } from '../../proto/services.js';
import type { Manager } from '../cluster/manager.js';
import { nodesTable, servicesTable, tasksTable, type TaskObject } from '../cluster/tables.js';
import { CallError } from '../cluster/auth.js';
import { S, stateOf } from '../orchestrator/states.js';
import { resolveService } from './services.js';

export interface LogsRequest {
  ref?: string | null;
  follow?: boolean | null;
  tail?: number | null;
  since?: number | null;
}

export interface LogsSink {
  write(msg: { lines?: LogLine[]; warnings?: string[] }): void;
  end(): void;
  onCancel(fn: () => void): void;
}

export function streamServiceLogs(m: Manager, req: LogsRequest, sink: LogsSink): void {
  if (!m.isLeader()) throw m.notLeader();
  const ref = req.ref ?? '';
  const { tasks, nodes, services } = m.store.view((r) => ({ tasks: r.list(tasksTable), nodes: r.list(nodesTable), services: r.list(servicesTable) }));
  let chosen: TaskObject[];
  const task = tasks.find((t) => t.id === ref);
  if (task) chosen = [task];
  else {
    const svc = resolveService(m, ref);
    chosen = tasks.filter((t) => t.serviceId === svc.id);
  }
  if (chosen.length === 0 && !task && services.length === 0) throw new CallError(grpc.status.NOT_FOUND, `no such service or task: ${ref}`);
  const host = new Map(nodes.map((n) => [n.id, n.description?.hostname ?? '']));
  // Only tasks that got as far as a node can have output.
  const withNode = chosen.filter((t) => t.nodeId && stateOf(t) >= S.TASK_ASSIGNED);
  const cancel = m.sessions.subscribeLogs(
    withNode.map((t) => ({
      id: t.id, nodeId: t.nodeId, nodeName: host.get(t.nodeId) ?? '',
      name: `${t.serviceName}.${Number(t.slot) || t.nodeId}.${t.id.slice(0, 12)}`,
    })),
    { follow: !!req.follow, tail: req.tail === null || req.tail === undefined ? -1 : Number(req.tail), since: Number(req.since ?? 0) },
    { onLines: (lines) => sink.write({ lines }), onWarning: (w) => sink.write({ warnings: [w] }), onEnd: () => sink.end() },
  );
  sink.onCancel(cancel);
}
