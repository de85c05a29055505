// The worker's session with the leader's dispatcher: one Session stream that
// brings assignments (handed to the TaskRunner) and log requests; status
// changes go back in batched UpdateTaskStatus calls, retried until the leader
// has them. When the leader changes the stream breaks; the session follows
// the leader hint (or tries every known manager) and starts again, while the
// containers run on untouched: the new full assignment set is reconciled
// against what runs, nothing is restarted.
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { leaderHint, managerClient, relayMetadata, type TlsMaterial } from '../../proto/client.js';
import { DispatcherService, type LogLine, type Task, type TaskStatus } from '../../proto/services.js';
import { readTaskLog } from './logs.js';
import { ReportPacer } from './reportpacer.js';
import type { TaskRunner } from './tasks.js';
import type { Route } from './agent.js';

export interface SessionOptions {
  nodeId: () => string;
  tls: () => TlsMaterial;
  /** Known manager addresses, the leader first when known. */
  managers: () => string[];
  runner: TaskRunner;
  logDir: string;
  description: () => object;
  logger: { info(o: object, m?: string): void; warn(o: object, m?: string): void; debug(o: object, m?: string): void };
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2_000;

export class WorkerSession {
  private stopped = false;
  private readonly clients = new Map<string, grpc.Client>();
  private tlsKey = '';
  private addr: string | undefined;
  /** The established session is relayed to the leader by the manager at addr. */
  private via = false;
  /** Where the heartbeats last reached the leader: directly, or relayed by a manager. */
  private route: Route | undefined;
  private stream: grpc.ClientReadableStream<unknown> | undefined;
  /** Where the open (or opening) stream goes. */
  private streamRoute: Route | undefined;
  /** Where the next session goes first: the leader the heartbeats found. */
  private nextAddr: string | undefined;
  private readonly pending = new Map<string, TaskStatus>();
  private flushing = false;
  private flushTimer: NodeJS.Timeout | undefined;
  /** When the pending flush timer fires (epoch ms). */
  private flushDue = 0;
  private readonly pacer = new ReportPacer();
  private readonly logSubs = new Map<string, AbortController>();
  /** Sessions opened so far (tests read it). */
  sessions = 0;

  constructor(private readonly opts: SessionOptions) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.stream?.cancel();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const ac of this.logSubs.values()) ac.abort();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  /**
   * The heartbeats reached the leader by `route`: directly at route.addr, or
   * relayed by the manager at route.addr (the leader does not answer this
   * node). A session going another way is ended and opened this way at once:
   * a leader cut off by a partition can end nothing, and its stream would
   * wait for assignments that only the new leader sends.
   */
  follow(route: Route): void {
    if (!route.addr) return;
    this.route = route;
    if (this.stopped || !this.stream) return;
    const cur = this.streamRoute;
    if (cur && cur.addr === route.addr && cur.via === route.via) return;
    this.opts.logger.info({ manager: cur?.addr, relayed: cur?.via, to: route.addr, relay: route.via },
      route.via ? 'the leader does not answer this node: its session goes through another manager' : 'session is not with the leader: moving it to the leader');
    this.nextAddr = route.addr;
    this.stream.cancel();
  }

  /** TaskRunner's report callback: queue the latest status per task, sent as the pacer says. */
  report(u: { taskId: string; status: TaskStatus }): void {
    this.pending.set(u.taskId, u.status);
    this.pacer.queued(u.taskId, Number(u.status.state));
    this.scheduleFlush(this.pacer.delay());
  }

  private client(addr: string): grpc.Client {
    const tls = this.opts.tls();
    if ((tls.certPem ?? '') !== this.tlsKey) {
      this.tlsKey = tls.certPem ?? '';
      for (const c of this.clients.values()) c.close();
      this.clients.clear();
    }
    let c = this.clients.get(addr);
    if (!c) this.clients.set(addr, (c = managerClient(addr, tls)));
    return c;
  }

  private async loop(): Promise<void> {
    let backoff = BACKOFF_MIN_MS;
    let hint: string | undefined;
    let turn = 0;
    while (!this.stopped) {
      const known = this.opts.managers();
      const addr = hint ?? this.nextAddr ?? known[turn++ % Math.max(1, known.length)];
      hint = undefined;
      this.nextAddr = undefined;
      if (!addr) {
        await sleep(backoff);
        continue;
      }
      const started = Date.now();
      const via = this.route?.via === true && this.route.addr === addr;
      const err = await this.runSession(addr, via);
      if (this.stopped) break;
      hint = leaderHint(err);
      if (hint === addr) hint = undefined;
      // A session that lasted a while was healthy: reconnect at once.
      backoff = Date.now() - started > 5_000 ? BACKOFF_MIN_MS : Math.min(BACKOFF_MAX_MS, backoff * 2);
      this.opts.logger.debug({ manager: addr, err: (err as grpc.ServiceError | undefined)?.details, next: hint }, 'session ended');
      await sleep(hint || this.nextAddr ? 0 : backoff * (0.5 + Math.random() / 2));
    }
  }

  /** One session with one manager; resolves with the error that ended it. */
  private runSession(addr: string, via: boolean): Promise<unknown> {
    return new Promise((resolve) => {
      const def = DispatcherService.session;
      let s: grpc.ClientReadableStream<unknown>;
      try {
        s = this.client(addr).makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, { description: this.opts.description() } as never, relayMetadata(via));
      } catch (e) {
        resolve(e);
        return;
      }
      this.stream = s;
      this.streamRoute = { addr, via };
      let done = false;
      const finish = (e: unknown) => {
        if (done) return;
        done = true;
        this.stream = undefined;
        this.streamRoute = undefined;
        if (this.addr === addr) this.addr = undefined;
        resolve(e);
      };
      s.on('data', (msg: { assignments?: { full?: boolean; updated?: Task[]; removed?: string[] } | null; logSubscription?: LogSubscription | null }) => {
        if (msg.assignments) {
          if (this.addr !== addr || this.via !== via) {
            this.addr = addr;
            this.via = via;
            this.sessions++;
            this.opts.logger.info({ manager: addr, ...(via ? { relayed: true } : {}) }, 'session with the leader established');
          }
          const a = msg.assignments;
          this.opts.runner.assign({ full: !!a.full, updated: a.updated ?? [], removed: a.removed ?? [] });
          for (const t of a.updated ?? []) this.pacer.assigned(t.id, Number(t.desiredState), Number(t.status?.state ?? 0));
          for (const id of a.removed ?? []) this.pacer.forget(id);
          if (a.full) {
            this.pacer.retain(new Set((a.updated ?? []).map((t) => t.id)));
            this.resendNewer(a.updated ?? []);
            // A new session: what the old leader may not have got goes now.
            this.scheduleFlush(0);
          }
        }
        if (msg.logSubscription) this.onLogSubscription(addr, msg.logSubscription);
      });
      s.on('error', (e) => finish(e));
      s.on('end', () => finish(undefined));
    });
  }

  /** After a reconnect: statuses the managers do not have yet (lost with the old leader) go again. */
  private resendNewer(tasks: Task[]): void {
    const mine = this.opts.runner.statuses();
    for (const t of tasks) {
      const st = mine.get(t.id);
      if (st && Number(st.state) > Number(t.status?.state ?? 0) && !this.pending.has(t.id)) this.pending.set(t.id, st);
    }
  }

  /** Flush within ms: an earlier flush already due stays, a later one is brought forward. */
  private scheduleFlush(ms: number): void {
    if (this.flushing || this.stopped) return;
    const due = Date.now() + ms;
    if (this.flushTimer) {
      if (this.flushDue <= due) return;
      clearTimeout(this.flushTimer);
    }
    this.flushDue = due;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, ms);
  }

  private async flush(): Promise<void> {
    if (this.pending.size === 0 || this.stopped) return;
    const addr = this.addr;
    if (!addr) return; // sent once a session is up (runSession flushes)
    this.flushing = true;
    const batch = new Map(this.pending);
    const def = DispatcherService.updateTaskStatus;
    try {
      await new Promise<void>((resolve, reject) => {
        this.client(addr).makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize,
          { updates: [...batch].map(([taskId, status]) => ({ taskId, status })) } as never, relayMetadata(this.via),
          { deadline: Date.now() + 10_000 }, (e) => (e ? reject(e) : resolve()));
      });
      // Only what was sent and not superseded meanwhile is done.
      for (const [id, st] of batch) if (this.pending.get(id) === st) this.pending.delete(id);
      this.pacer.sent(this.pending.size > 0);
    } catch (e) {
      this.opts.logger.debug({ err: (e as grpc.ServiceError).details ?? String(e) }, 'task status update failed; retrying');
      this.flushing = false;
      this.scheduleFlush(200);
      return;
    }
    this.flushing = false;
    if (this.pending.size > 0) this.scheduleFlush(this.pacer.delay());
  }

  // ---- logs ----

  private onLogSubscription(addr: string, sub: LogSubscription): void {
    const id = sub.id ?? '';
    if (sub.close) {
      this.logSubs.get(id)?.abort();
      this.logSubs.delete(id);
      return;
    }
    if (this.logSubs.has(id)) return;
    const ac = new AbortController();
    this.logSubs.set(id, ac);
    const def = DispatcherService.publishLogs;
    const stream = this.client(addr).makeClientStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, relayMetadata(this.via), () => {
      ac.abort();
      this.logSubs.delete(id);
    });
    const up = { write: (m: object) => stream.write(m as never), end: () => stream.end() };
    const q = { follow: !!sub.follow, tail: sub.tail === null || sub.tail === undefined ? -1 : Number(sub.tail), since: Number(sub.since ?? 0) };
    const nodeId = this.opts.nodeId();
    const known = this.opts.runner.statuses();
    const reads = (sub.taskIds ?? []).map(async (taskId) => {
      if (!known.has(taskId)) {
        up.write({ subscriptionId: id, warnings: [`task ${taskId}: not on this node any more`] });
        return;
      }
      await readTaskLog(path.join(this.opts.logDir, `${taskId}.log`), taskId, nodeId, q, (lines: LogLine[]) => {
        if (!ac.signal.aborted) up.write({ subscriptionId: id, lines });
      }, ac.signal).catch((e: unknown) => up.write({ subscriptionId: id, warnings: [`task ${taskId}: ${(e as Error).message}`] }));
    });
    void Promise.all(reads).then(() => {
      if (!ac.signal.aborted) up.write({ subscriptionId: id, close: true });
      up.end();
      this.logSubs.delete(id);
    });
  }
}

interface LogSubscription {
  id?: string | null;
  taskIds?: string[] | null;
  follow?: boolean | null;
  tail?: number | null;
  since?: number | null;
  close?: boolean | null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
