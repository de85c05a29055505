// Worker sessions (leader only): each node holds one Session stream. It gets
// its assigned tasks (the whole set first, then only changes that matter to
// it: new tasks, a new desired state, removals), and requests for the logs of
// its tasks. Status updates come back in UpdateTaskStatus calls and are
// written to the store in batches: many workers' updates, one raft entry.
import * as grpc from '@grpc/grpc-js';
import type { Store, Watch } from '../store/index.js';
import { plain, type LogLine, type TaskStatus } from '../../proto/services.js';
import { tasksTable, type TaskObject } from '../cluster/tables.js';
import { newObjectId } from '../cluster/ids.js';
import { S, hasEnded, stateOf, toBeRemoved } from '../orchestrator/states.js';

export interface SessionsHost {
  store: Store;
  isLeader(): boolean;
  /** The error a follower answers with (names the leader). */
  notLeaderError(): Error;
  logger: { info(o: object, m?: string): void; warn(o: object, m?: string): void; debug(o: object, m?: string): void };
}

type SessionCall = grpc.ServerWritableStream<unknown, unknown>;

/** What the worker hears of a task: a change to anything else is not sent. */
function signature(t: TaskObject): string {
  return `${t.desiredState}|${t.meta.createdAt}`;
}

/** Tasks a worker should know of: placed on it by the scheduler (not merely pinned there while pending). */
function forWorker(t: TaskObject): boolean {
  return stateOf(t) >= S.TASK_ASSIGNED;
}

interface LogSub {
  id: string;
  follow: boolean;
  waiting: Set<string>;
  onLines(lines: LogLine[]): void;
  onWarning(w: string): void;
  onEnd(): void;
  nodes: Set<string>;
  ended?: boolean;
}

class Session {
  readonly id = newObjectId();
  private readonly sent = new Map<string, string>();
  private queue: { updated: Map<string, TaskObject>; removed: Set<string> } = { updated: new Map(), removed: new Set() };
  private flushTimer: NodeJS.Timeout | undefined;
  private watch: Watch | undefined;
  closed = false;

  constructor(readonly nodeId: string, private readonly call: SessionCall, private readonly store: Store, private readonly onClose: (s: Session) => void) {}

  start(): void {
    const { value, watch } = this.store.viewAndWatch((r) => r.find(tasksTable, 'node', this.nodeId), {
      table: 'tasks',
      filter: (ev) => (ev.object as TaskObject).nodeId === this.nodeId || (ev.oldObject as TaskObject | undefined)?.nodeId === this.nodeId,
    });
    this.watch = watch;
    const tasks = value.filter(forWorker);
    for (const t of tasks) this.sent.set(t.id, signature(t));
    this.write({ sessionId: this.id, assignments: { full: true, updated: tasks, removed: [] } });
    void this.follow(watch);
    this.call.on('cancelled', () => this.close());
    this.call.on('error', () => this.close());
  }

  private async follow(watch: Watch): Promise<void> {
    try {
      for await (const ev of watch) {
        const t = ev.object as TaskObject;
        const mine = t.nodeId === this.nodeId;
        if (ev.kind === 'delete' || !mine) {
          if (this.sent.delete(t.id)) this.queueRemove(t.id);
          continue;
        }
        if (!forWorker(t)) continue;
        const sig = signature(t);
        if (this.sent.get(t.id) === sig) continue;
        this.sent.set(t.id, sig);
        this.queue.removed.delete(t.id);
        this.queue.updated.set(t.id, t);
        this.schedule();
      }
    } catch (e) {
      // Overflow or snapshot restore: the worker re-syncs with a new session.
      this.end(grpc.status.UNAVAILABLE, `session reset: ${(e as Error).message}`);
    }
  }

  private queueRemove(id: string): void {
    this.queue.updated.delete(id);
    this.queue.removed.add(id);
    this.schedule();
  }

  private schedule(): void {
    // One message per turn of changes: a pass that assigns 50 tasks sends one.
    if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), 2);
  }

  private flush(): void {
    this.flushTimer = undefined;
    const q = this.queue;
    this.queue = { updated: new Map(), removed: new Set() };
    if (q.updated.size + q.removed.size === 0) return;
    this.write({ sessionId: this.id, assignments: { full: false, updated: [...q.updated.values()], removed: [...q.removed] } });
  }

  /** Store objects go out as they are: encoding only reads them (they are frozen), no copy needed. */
  write(msg: object): void {
    if (this.closed) return;
    this.call.write(msg);
  }

  end(code: grpc.status, details: string, metadata?: grpc.Metadata): void {
    if (this.closed) return;
    this.call.emit('error', { code, details, metadata } as grpc.ServiceError);
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.watch?.close();
    this.onClose(this);
  }
}

interface PendingStatus {
  status: TaskStatus;
  waiters: Array<() => void>;
}

export class Sessions {
  private readonly byNode = new Map<string, Session>();
  private readonly subs = new Map<string, LogSub>();
  private pending = new Map<string, PendingStatus>();
  private flushing: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(private readonly host: SessionsHost) {}

  connected(nodeId: string): boolean {
    return this.byNode.has(nodeId);
  }

  /** The Session RPC. */
  open(nodeId: string, call: SessionCall): void {
    if (!this.host.isLeader()) {
      const e = this.host.notLeaderError() as grpc.ServiceError;
      call.emit('error', { code: e.code ?? grpc.status.UNAVAILABLE, details: e.message, metadata: e.metadata });
      return;
    }
    this.byNode.get(nodeId)?.end(grpc.status.ABORTED, 'replaced by a newer session of the same node');
    const s = new Session(nodeId, call, this.host.store, (x) => {
      if (this.byNode.get(nodeId) === x) this.byNode.delete(nodeId);
      for (const sub of [...this.subs.values()]) {
        if (!sub.nodes.has(nodeId)) continue;
        sub.onWarning(`node ${nodeId} disconnected while streaming logs`);
        this.nodeDone(sub, nodeId);
      }
    });
    this.byNode.set(nodeId, s);
    s.start();
    this.host.logger.debug({ node: nodeId, session: s.id }, 'worker session opened');
  }

  /** Leadership ended: every session ends, naming the new leader when known. */
  closeAll(): void {
    const e = this.host.notLeaderError() as grpc.ServiceError;
    for (const s of [...this.byNode.values()]) s.end(grpc.status.UNAVAILABLE, `leadership changed: ${e.message}`, e.metadata);
    this.byNode.clear();
    for (const sub of [...this.subs.values()]) {
      sub.onWarning('leadership changed while streaming logs');
      sub.nodes.clear();
      this.maybeEnd(sub);
    }
  }

  // ---- task status ----

  /** UpdateTaskStatus: resolves once the updates are in the store (or found stale). */
  async updateTaskStatus(nodeId: string, updates: Array<{ taskId?: string | null; status?: TaskStatus | null }>): Promise<void> {
    if (!this.host.isLeader()) throw this.host.notLeaderError();
    const waits: Promise<void>[] = [];
    for (const u of updates) {
      if (!u.taskId || !u.status) continue;
      const t = this.host.store.view((r) => r.get(tasksTable, u.taskId!));
      // Only a task's own node speaks for it, and only forwards.
      if (!t || t.nodeId !== nodeId || Number(u.status.state) < stateOf(t)) continue;
      // Said again (an agent resending after a reconnect): nothing to write. A rewrite would move
      // the timestamp, which says since when a task runs (a rolling update's delay counts from it).
      if (sameStatus(t.status, u.status) && !this.pending.has(t.id)) continue;
      let p = this.pending.get(t.id);
      if (!p || Number(u.status.state) >= Number(p.status.state)) {
        const waiters = p?.waiters ?? [];
        this.pending.set(t.id, (p = { status: plain(u.status), waiters }));
      }
      waits.push(new Promise<void>((resolve) => p!.waiters.push(resolve)));
    }
    if (waits.length === 0) return;
    // Gather the updates of every worker that reports at about the same time into one entry.
    if (!this.flushTimer) this.flushTimer = setTimeout(() => void this.flushStatuses(), 15);
    await Promise.all(waits);
  }

  private async flushStatuses(): Promise<void> {
    this.flushTimer = undefined;
    if (this.flushing) await this.flushing;
    const batch = this.pending;
    this.pending = new Map();
    if (batch.size === 0) return;
    this.flushing = (async () => {
      try {
        await this.host.store.batch(async (b) => {
          for (const [id, p] of batch) {
            await b.update((tx) => {
              const cur = tx.get(tasksTable, id);
              if (!cur || Number(p.status.state) < stateOf(cur) || sameStatus(cur.status, p.status)) return;
              if (toBeRemoved(cur) && hasEnded({ status: p.status })) {
                // Told to go (scaled down, service removed) and now ended: the reaper keeps no
                // history of such a task and would delete it next. Deleted with its end, it costs
                // the managers one raft entry instead of two, and its worker hears of it at once.
                tx.delete(tasksTable, cur);
                return;
              }
              const next = { ...cur } as TaskObject; // only the status changes; the rest stays shared (frozen)
              next.status = { ...p.status, timestamp: Number(p.status.timestamp) || Date.now() } as never;
              tx.update(tasksTable, next);
            });
          }
        });
      } catch (e) {
        this.host.logger.warn({ err: String(e) }, 'task status batch failed');
      } finally {
        for (const p of batch.values()) for (const w of p.waiters) w();
        this.flushing = undefined;
      }
    })();
    await this.flushing;
  }

  // ---- logs ----

  /**
   * Ask the nodes of these tasks for their logs. Tasks whose node has no
   * session are reported as warnings. Returns a cancel function.
   */
  subscribeLogs(
    tasks: Array<{ id: string; nodeId: string; name: string; nodeName: string }>,
    q: { follow: boolean; tail: number; since: number },
    cb: { onLines(lines: LogLine[]): void; onWarning(w: string): void; onEnd(): void },
  ): () => void {
    const sub: LogSub = { id: newObjectId(), follow: q.follow, waiting: new Set(), nodes: new Set(), ...cb };
    const byNode = new Map<string, string[]>();
    for (const t of tasks) {
      if (!t.nodeId) continue;
      if (!this.byNode.has(t.nodeId)) {
        sub.onWarning(`task ${t.name} on ${t.nodeName || t.nodeId}: the node is not connected (down or unreachable); its logs are not available now`);
        continue;
      }
      let l = byNode.get(t.nodeId);
      if (!l) byNode.set(t.nodeId, (l = []));
      l.push(t.id);
    }
    this.subs.set(sub.id, sub);
    for (const [nodeId, ids] of byNode) {
      sub.waiting.add(nodeId);
      sub.nodes.add(nodeId);
      this.byNode.get(nodeId)!.write({ sessionId: '', logSubscription: { id: sub.id, taskIds: ids, follow: q.follow, tail: q.tail, since: q.since, close: false } });
    }
    this.maybeEnd(sub);
    return () => this.cancel(sub);
  }

  private cancel(sub: LogSub): void {
    if (!this.subs.delete(sub.id)) return;
    for (const n of sub.nodes) this.byNode.get(n)?.write({ sessionId: '', logSubscription: { id: sub.id, taskIds: [], close: true } });
  }

  /** A subscription ends when every node has sent its last line (or, following, has gone). */
  private maybeEnd(sub: LogSub): void {
    const done = sub.follow ? sub.nodes.size === 0 : sub.waiting.size === 0;
    if (!done || sub.ended) return;
    sub.ended = true;
    this.subs.delete(sub.id);
    sub.onEnd();
  }

  private nodeDone(sub: LogSub, nodeId: string): void {
    sub.waiting.delete(nodeId);
    sub.nodes.delete(nodeId);
    this.maybeEnd(sub);
  }

  /** The PublishLogs stream of a worker. */
  publishLogs(nodeId: string, call: grpc.ServerReadableStream<unknown, unknown>, done: (err: grpc.ServiceError | null) => void): void {
    let finished = false;
    const finish = (err: grpc.ServiceError | null) => {
      if (finished) return;
      finished = true;
      done(err);
    };
    call.on('data', (m: { subscriptionId?: string; lines?: LogLine[]; warnings?: string[]; close?: boolean }) => {
      const sub = this.subs.get(m.subscriptionId ?? '');
      if (!sub || !sub.nodes.has(nodeId)) return;
      for (const w of m.warnings ?? []) sub.onWarning(w);
      if (m.lines?.length) sub.onLines(m.lines.map((l) => ({ ...l, nodeId })) as LogLine[]);
      if (m.close) this.nodeDone(sub, nodeId);
    });
    call.on('end', () => finish(null));
    call.on('error', () => finish(null));
  }
}

/** The same state, message, error, exit code and container: only a timestamp could differ. */
type StatusLike = { state?: unknown; message?: string | null; err?: string | null; exitCode?: number | null; containerId?: string | null };

function sameStatus(a: StatusLike | null | undefined, b: StatusLike): boolean {
  return !!a && Number(a.state) === Number(b.state) && (a.message ?? '') === (b.message ?? '') && (a.err ?? '') === (b.err ?? '')
    && Number(a.exitCode ?? 0) === Number(b.exitCode ?? 0) && (a.containerId ?? '') === (b.containerId ?? '');
}
