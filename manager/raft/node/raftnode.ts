// RaftNode: the I/O edge around the pure core. It owns the timers, the disk
// and the transport, batches proposals and reads, applies committed entries to
// the application's state machine and resolves callers' promises.
import { EventEmitter } from 'node:events';
import { renameSync } from 'node:fs';
import {
  ConfChangeType, EntryType, MemoryStorage, MessageType, NONE, RaftError, RawNode, ReadOnlyOption, StateType, bootstrapSnapshot,
  decodeConfChange,
  type ConfChange, type ConfState, type Message, type NodeId, type Ready, type Snapshot, type Status,
} from '../core/index.js';
import { RaftDisk } from '../storage/index.js';
import { decodeEnvelope, encodeEnvelope, type Peers } from './envelope.js';

/** The application's replicated state. Everything here runs on the event loop, in log order. */
export interface StateMachine {
  /** Apply one committed entry; the result resolves the proposer's promise on this node. */
  apply(index: number, data: Uint8Array): unknown;
  /** The whole state, for a snapshot. */
  snapshot(): Uint8Array;
  /** Replace the whole state (restart from a snapshot, or one sent by the leader). */
  restore(data: Uint8Array): void;
  /**
   * Optional: the snapshot without stalling the event loop. It must capture
   * the state as of the call before it returns (entries applied afterwards
   * must not show in the result); turning that into bytes may then take its
   * time. RaftNode then also writes the file off the loop and goes on
   * applying meanwhile, so a large state does not cost missed heartbeats.
   */
  snapshotAsync?(): Promise<Uint8Array>;
}

/** What RaftNode needs of a transport (GrpcTransport in production, an in-process one in tests). */
export interface Transport {
  send(messages: Message[]): void;
  addPeer(id: NodeId, addr: string): void;
  removePeer(id: NodeId): void;
  /** Write queued messages now (optional: transports that batch per loop turn). */
  flushNow?(): void;
}

export interface RaftNodeOptions {
  id: NodeId;
  dataDir: string;
  stateMachine: StateMachine;
  /** This node's address as peers dial it; stored in the replicated address book. */
  advertiseAddr: string;
  /** Start a new cluster with these members (id -> address), when dataDir holds no state. */
  bootstrap?: Peers;
  /**
   * Joining an existing cluster: the current members' addresses (as a join
   * RPC returns them), so this node can answer the leader before the first
   * snapshot brings it the replicated address book.
   */
  join?: Peers;
  /** Milliseconds per raft tick. Default 100. */
  tickMs?: number;
  /** Ticks; defaults 10 and 1: a leader is missed after 1-2 s, heartbeats every 100 ms. */
  electionTick?: number;
  heartbeatTick?: number;
  /**
   * Take a snapshot (and compact the log) after this many applied entries. Default 10,000.
   * A function is asked at every check, so the policy can follow configuration that changes
   * at run time (shoal keeps it in the replicated cluster object).
   */
  snapshotEntries?: number | (() => number);
  /**
   * Besides snapshotEntries, wait until the entries applied since the last
   * snapshot hold at least this many times its size in bytes (LogCabin's
   * snapshotRatio). A large state is then snapshotted no more often than it
   * is rewritten by the log, so its snapshots cost at most what the log
   * writes. Default 0: entries alone decide.
   */
  snapshotLogRatio?: number;
  /** Entries kept in the log behind a snapshot so slow followers catch up without one. Default 5,000. */
  compactionMargin?: number | (() => number);
  /** Max bytes of one proposal. Default 1.5 MiB. */
  maxEntryBytes?: number;
  /** Leader lease reads instead of a heartbeat round per read batch. Default false. */
  leaseReads?: boolean;
  /** Give up on a proposal or read that has not completed after this long. Default 10 s. */
  requestTimeoutMs?: number;
  /**
   * A leader's appends that carry no entries (a new commit index, or a probe)
   * wait this many milliseconds before they go out, and are dropped if an
   * append with entries to the same follower (which carries the commit index
   * too) leaves first. Under steady writes the commit index then rides on the
   * next append instead of costing each follower a message and an answer per
   * commit; an idle follower learns it this much later. 0 sends them at once.
   * Default 5.
   */
  commitNoticeDelayMs?: number;
  /** Unsafe: skip fsync. Tests only. */
  noSync?: boolean;
  random?: () => number;
  logger?: NodeLogger;
}

export interface NodeLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

const EMPTY = new Uint8Array(0);
/** A log write this slow (ms) is logged: the whole process, heartbeats included, waits for it. */
const SLOW_PERSIST_MS = 100;

const noLog: NodeLogger = { debug() {}, info() {}, warn() {} };

interface PendingProposal {
  term: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface PendingRead {
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface QueuedProposal {
  data: Uint8Array;
  type: EntryType;
  /** Set for a membership change (data is then unused): proposed as is, not re-decoded. */
  cc?: ConfChange;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export interface RaftNodeEvents {
  /** Leader or role changed. */
  state: [{ lead: NodeId; state: StateType; term: number }];
  /** Membership changed (committed and applied). */
  config: [ConfState];
}

export class RaftNode extends EventEmitter<RaftNodeEvents> {
  readonly id: NodeId;
  private readonly raw: RawNode;
  private readonly disk: RaftDisk;
  private readonly storage: MemoryStorage;
  private readonly sm: StateMachine;
  private transport: Transport | undefined;
  private readonly log: NodeLogger;
  private peers: Peers;
  private applied: number;
  private lastSnapIndex: number;
  private confState: ConfState;
  private readonly snapshotEntries: () => number;
  private readonly compactionMargin: () => number;
  private readonly requestTimeoutMs: number;
  private ticker: NodeJS.Timeout | undefined;
  private scheduled = false;
  /** A Ready's messages are out but its write is not done yet. */
  private midReady = false;
  private held: Array<() => void> = [];
  private stopped = false;
  private queued: QueuedProposal[] = [];
  private readonly pending = new Map<number, PendingProposal>();
  private readWaiters: PendingRead[] = [];
  /** Read batches waiting for their ReadState: ctx -> waiters. */
  private readonly readBatches = new Map<string, PendingRead[]>();
  /** Read batches whose index is known, waiting for apply: sorted by index. */
  private readsAwaitingApply: Array<{ index: number; waiters: PendingRead[] }> = [];
  private readSeq = 0;
  private lead: NodeId = NONE;
  private role: StateType = StateType.Follower;
  private readonly tickMs: number;
  private readonly heartbeatTicks: number;
  private readonly commitNoticeDelayMs: number;
  /** Entry-less appends held back (commitNoticeDelayMs), by follower. */
  private readonly deferredApps = new Map<NodeId, Message>();
  /** A snapshot of the state machine is being made off the loop (snapshotAsync). */
  private snapshotting = false;
  private readonly snapshotLogRatio: number;
  /** Bytes of the entries applied since the last snapshot began, and the size of the last snapshot. */
  private appliedBytes = 0;
  private lastSnapBytes = 0;
  private deferTimer: NodeJS.Timeout | undefined;

  private constructor(opts: RaftNodeOptions) {
    super();
    this.id = opts.id;
    this.sm = opts.stateMachine;
    this.log = opts.logger ?? noLog;
    this.tickMs = opts.tickMs ?? 100;
    this.heartbeatTicks = opts.heartbeatTick ?? 1;
    const se = opts.snapshotEntries ?? 10_000;
    const cm = opts.compactionMargin ?? 5_000;
    this.snapshotEntries = typeof se === 'function' ? se : () => se;
    this.compactionMargin = typeof cm === 'function' ? cm : () => cm;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.commitNoticeDelayMs = opts.commitNoticeDelayMs ?? 5;
    this.snapshotLogRatio = opts.snapshotLogRatio ?? 0;
    if (!(this.snapshotLogRatio >= 0 && Number.isFinite(this.snapshotLogRatio))) {
      throw new RaftError('INVALID_CONFIG', `snapshotLogRatio must be a number >= 0 (0: entries alone decide), got ${opts.snapshotLogRatio}`);
    }

    const opened = RaftDisk.open(opts.dataDir, { noSync: opts.noSync, logger: (m) => this.log.warn({}, m) });
    this.disk = opened.disk;
    this.storage = opened.storage;
    let snapshot = opened.snapshot;
    if (opened.fresh && opts.bootstrap) {
      // A new cluster: every founding member starts from the same snapshot at index 1.
      const ids = Object.keys(opts.bootstrap).map(Number);
      snapshot = bootstrapSnapshot(ids, encodeEnvelope(opts.bootstrap, this.sm.snapshot()));
      const hs = { term: 1, vote: NONE, commit: 1 };
      this.disk.saveSnapshot(snapshot);
      this.disk.save(hs, [], snapshot, true);
      this.storage.applySnapshot(snapshot);
      this.storage.setHardState(hs);
    }
    this.peers = {};
    this.applied = 0;
    this.lastSnapIndex = 0;
    this.confState = { voters: [], learners: [] };
    if (snapshot) {
      const env = decodeEnvelope(snapshot.data);
      this.sm.restore(env.app);
      this.peers = env.peers;
      this.applied = snapshot.metadata.index;
      this.lastSnapIndex = snapshot.metadata.index;
      this.lastSnapBytes = snapshot.data.byteLength;
      this.confState = snapshot.metadata.confState;
    }
    if (opts.join) {
      for (const [id, addr] of Object.entries(opts.join)) if (!(id in this.peers)) this.peers[Number(id)] = addr;
    }
    this.peers[this.id] = opts.advertiseAddr;

    this.raw = new RawNode({
      id: opts.id,
      storage: this.storage,
      applied: this.applied,
      electionTick: opts.electionTick ?? 10,
      heartbeatTick: this.heartbeatTicks,
      checkQuorum: true,
      preVote: true,
      readOnlyOption: opts.leaseReads ? ReadOnlyOption.LeaseBased : ReadOnlyOption.Safe,
      maxSizePerMsg: 1024 * 1024,
      maxInflightMsgs: 256,
      maxEntryBytes: opts.maxEntryBytes ?? 1.5 * 1024 * 1024,
      maxUncommittedEntriesSize: 1 << 30,
      random: opts.random ?? Math.random,
      logger: {
        debug: (m) => this.log.debug({ raft: this.id }, m),
        info: (m) => this.log.info({ raft: this.id }, m),
        warn: (m) => this.log.warn({ raft: this.id }, m),
      },
    });
  }

  /**
   * Open the node's state (creating a new cluster when `bootstrap` is given and
   * there is none), replay committed entries, and start ticking once a
   * transport is attached.
   */
  static open(opts: RaftNodeOptions): RaftNode {
    return new RaftNode(opts);
  }

  /**
   * Disaster recovery (etcd's --force-new-cluster): keep this member's state
   * and make it the only voter. Everything committed is applied to a fresh
   * state machine and written as a snapshot whose configuration is this node
   * alone, in a new data dir; the old one is kept beside it (`<dir>.old-<ms>`).
   * Uncommitted entries are dropped. Start the node normally afterwards.
   */
  static forceNewCluster(opts: Pick<RaftNodeOptions, 'id' | 'dataDir' | 'stateMachine' | 'advertiseAddr'>): void {
    const opened = RaftDisk.open(opts.dataDir);
    const { storage, hardState } = opened;
    const sm = opts.stateMachine;
    let peers: Peers = {};
    let applied = 0;
    if (opened.snapshot) {
      const env = decodeEnvelope(opened.snapshot.data);
      sm.restore(env.app);
      peers = env.peers;
      applied = opened.snapshot.metadata.index;
    }
    const commit = hardState.commit;
    if (commit > applied) {
      for (const e of storage.entries(applied + 1, commit + 1, Number.MAX_SAFE_INTEGER)) {
        if (e.type === EntryType.Normal && e.data.byteLength > 0) sm.apply(e.index, e.data);
      }
    }
    const term = commit > 0 ? storage.term(commit) : 0;
    opened.disk.close();
    const snap: Snapshot = {
      metadata: { index: Math.max(commit, 1), term: Math.max(term, 1), confState: { voters: [opts.id], learners: [] } },
      data: encodeEnvelope({ [opts.id]: opts.advertiseAddr }, sm.snapshot()),
    };
    void peers;
    const old = `${opts.dataDir}.old-${Date.now()}`;
    renameSync(opts.dataDir, old);
    const fresh = RaftDisk.open(opts.dataDir);
    fresh.disk.saveSnapshot(snap);
    fresh.disk.save({ term: hardState.term + 1, vote: NONE, commit: snap.metadata.index }, [], snap, true);
    fresh.disk.close();
  }

  /** Attach the transport and start the clock. Peers from the address book are registered. */
  start(transport: Transport): void {
    this.transport = transport;
    for (const [id, addr] of Object.entries(this.peers)) {
      if (Number(id) !== this.id) transport.addPeer(Number(id), addr);
    }
    this.ticker = setInterval(() => this.tick(), this.tickMs);
    this.schedule();
  }

  // ---- inputs ----

  /** A message from a peer (the transport's onMessage). */
  step(m: Message): void {
    if (this.stopped) return;
    // Between ready() and advance() the core must not change: hold inputs back.
    if (this.midReady) {
      this.held.push(() => this.step(m));
      return;
    }
    try {
      this.raw.step(m);
    } catch (e) {
      if (e instanceof RaftError && (e.code === 'PROPOSAL_DROPPED' || e.code === 'STEP_LOCAL_MSG')) {
        this.log.debug({ err: e.message, from: m.from }, 'dropped message');
      } else {
        throw e;
      }
    }
    this.schedule();
  }

  reportUnreachable(peer: NodeId): void {
    if (this.stopped) return;
    if (this.midReady) {
      this.held.push(() => this.reportUnreachable(peer));
      return;
    }
    this.raw.reportUnreachable(peer);
    this.schedule();
  }

  reportSnapshot(peer: NodeId, failed: boolean): void {
    if (this.stopped) return;
    if (this.midReady) {
      this.held.push(() => this.reportSnapshot(peer, failed));
      return;
    }
    this.raw.reportSnapshot(peer, failed);
    this.schedule();
  }

  private tick(): void {
    if (this.midReady) {
      this.held.push(() => this.tick());
      return;
    }
    this.raw.tick();
    this.schedule();
  }

  /**
   * Replicate `data`; resolves with the state machine's result once the entry
   * is committed and applied here. Only the leader accepts proposals.
   */
  propose(data: Uint8Array): Promise<unknown> {
    return this.enqueue(data, EntryType.Normal);
  }

  /** Add or remove a member; resolves with the new configuration once applied here. */
  async changeMembership(type: ConfChangeType, nodeId: NodeId, addr?: string): Promise<ConfState> {
    const context = addr ? new TextEncoder().encode(addr) : new Uint8Array(0);
    return (await this.enqueue(EMPTY, EntryType.ConfChange, { type, nodeId, context })) as ConfState;
  }

  private enqueue(data: Uint8Array, type: EntryType, cc?: ConfChange): Promise<unknown> {
    if (this.stopped) return Promise.reject(new RaftError('STOPPED', 'raft node is stopped'));
    const err = this.notLeaderError();
    if (err) return Promise.reject(err);
    return new Promise((resolve, reject) => {
      this.queued.push({ data, type, cc, resolve, reject });
      this.schedule();
    });
  }

  private notLeaderError(): RaftError | undefined {
    if (this.raw.raft.state === StateType.Leader) return undefined;
    const lead = this.raw.raft.lead;
    const addr = lead !== NONE ? this.peers[lead] : undefined;
    return new RaftError('NOT_LEADER',
      lead === NONE ? 'not the leader, and no leader is known (an election may be under way): retry shortly'
        : `not the leader; send this request to the leader, node ${lead} at ${addr ?? 'an unknown address'}`,
      { leader: lead, leaderAddr: addr });
  }

  /**
   * Wait until this node's state machine reflects every write committed before
   * the call (ReadIndex, thesis §6.4). Concurrent reads share one round.
   */
  readBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(new RaftError('STOPPED', 'raft node is stopped'));
    return new Promise((resolve, reject) => {
      const w: PendingRead = {
        resolve, reject,
        timer: setTimeout(() => this.failRead(w, new RaftError('TIMEOUT', `read not confirmed within ${this.requestTimeoutMs} ms (no leader reachable?)`)), this.requestTimeoutMs),
      };
      this.readWaiters.push(w);
      this.schedule();
    });
  }

  private failRead(w: PendingRead, e: Error): void {
    clearTimeout(w.timer);
    const remove = (list: PendingRead[]) => {
      const i = list.indexOf(w);
      if (i >= 0) list.splice(i, 1);
    };
    remove(this.readWaiters);
    for (const b of this.readBatches.values()) remove(b);
    for (const b of this.readsAwaitingApply) remove(b.waiters);
    w.reject(e);
  }

  /** Hand leadership to `to` and wait until it is leader (or time out). */
  async transferLeadership(to: NodeId, timeoutMs = 5000): Promise<void> {
    this.withCore(() => this.raw.transferLeader(to));
    const deadline = Date.now() + timeoutMs;
    while (this.raw.raft.lead !== to) {
      if (Date.now() > deadline) throw new RaftError('TIMEOUT', `leadership did not move to ${to} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, this.tickMs / 2));
    }
  }

  /** Campaign at once (used to speed up a test or a single-node start). */
  campaign(): void {
    this.withCore(() => this.raw.campaign());
  }

  /** Run f against the core now, or once the Ready in progress is done. */
  private withCore(f: () => void): void {
    if (this.midReady) {
      this.held.push(() => this.withCore(f));
      return;
    }
    f();
    this.schedule();
  }

  status(): Status & { peers: Peers } {
    return { ...this.raw.status(), peers: { ...this.peers } };
  }

  isLeader(): boolean {
    return this.raw.raft.state === StateType.Leader;
  }

  leader(): { id: NodeId; addr: string | undefined } {
    const id = this.raw.raft.lead;
    return { id, addr: id !== NONE ? this.peers[id] : undefined };
  }

  diskStats(): { bytesWritten: number; syncs: number } {
    return this.disk.stats();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = undefined;
    this.deferredApps.clear();
    const err = new RaftError('STOPPED', 'raft node stopped');
    for (const q of this.queued) q.reject(err);
    this.queued = [];
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const w of [...this.readWaiters, ...[...this.readBatches.values()].flat(), ...this.readsAwaitingApply.flatMap((b) => b.waiters)]) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.readWaiters = [];
    this.readBatches.clear();
    this.readsAwaitingApply = [];
    this.disk.close();
  }

  // ---- the loop ----

  /** Coalesce everything that arrives in one event-loop turn into one Ready (one fsync). */
  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.stopped) this.process();
    });
  }

  private process(): void {
    if (this.midReady) return;
    this.submitQueued();
    this.submitReads();
    while (!this.stopped && this.raw.hasReady()) {
      const rd = this.raw.ready();
      if (rd.sendFirst && rd.mustSync && rd.messages.length > 0) {
        // A steady leader's appends: put them on the wire, then let the event
        // loop run once so the socket write really happens (http2 writes are
        // flushed from the loop) before our own fsync blocks it. The
        // followers' fsyncs then overlap ours. (An fdatasync on the thread
        // pool instead, keeping this loop free, measured slower on two cores.)
        this.send(rd.messages);
        this.transport!.flushNow?.();
        this.midReady = true;
        setImmediate(() => {
          this.midReady = false;
          if (this.stopped) return;
          this.persist(rd);
          this.handleReady(rd, true);
          const held = this.held;
          this.held = [];
          for (const f of held) f();
          this.schedule();
        });
        return;
      }
      this.handleReady(rd, false);
    }
  }

  private submitQueued(): void {
    if (this.queued.length === 0) return;
    const batch = this.queued;
    this.queued = [];
    // Conf changes go one per proposal (the core allows one pending at a time).
    let i = 0;
    while (i < batch.length) {
      let j = i;
      while (j < batch.length && batch[j]!.type === EntryType.Normal) j++;
      if (j > i) this.proposeGroup(batch.slice(i, j));
      if (j < batch.length) this.proposeGroup([batch[j]!]);
      i = j + 1;
    }
  }

  private proposeGroup(group: QueuedProposal[]): void {
    try {
      let index: number;
      let term: number;
      if (group[0]!.type === EntryType.ConfChange) {
        ({ index, term } = this.raw.proposeConfChange(group[0]!.cc!));
      } else {
        ({ index, term } = this.raw.proposeBatch(group.map((g) => g.data)));
      }
      const first = index - group.length + 1;
      group.forEach((g, k) => {
        const idx = first + k;
        const timer = setTimeout(() => {
          if (this.pending.delete(idx)) {
            g.reject(new RaftError('TIMEOUT', `proposal at index ${idx} not applied within ${this.requestTimeoutMs} ms; it may still commit`));
          }
        }, this.requestTimeoutMs);
        this.pending.set(idx, { term, resolve: g.resolve, reject: g.reject, timer });
      });
    } catch (e) {
      const err = e instanceof RaftError && e.code === 'NOT_LEADER' ? this.notLeaderError() ?? e : e as Error;
      for (const g of group) g.reject(err);
    }
  }

  private submitReads(): void {
    if (this.readWaiters.length === 0) return;
    const waiters = this.readWaiters;
    this.readWaiters = [];
    const ctx = Buffer.alloc(12);
    ctx.writeUInt32LE(this.id % 0x100000000, 0);
    ctx.writeDoubleLE(++this.readSeq, 4);
    try {
      this.raw.readIndex(ctx);
      this.readBatches.set(ctx.toString('latin1'), waiters);
    } catch (e) {
      const err = e instanceof RaftError && e.code === 'PROPOSAL_DROPPED'
        ? new RaftError('NOT_LEADER', 'no leader is known, so a linearizable read cannot be served: retry shortly', { leader: NONE })
        : e as Error;
      for (const w of waiters) {
        clearTimeout(w.timer);
        w.reject(err);
      }
    }
  }

  /** Hand messages to the transport, holding back a leader's entry-less appends (commitNoticeDelayMs). */
  private send(msgs: Message[]): void {
    const transport = this.transport!;
    if (this.commitNoticeDelayMs <= 0 || this.raw.raft.state !== StateType.Leader) {
      transport.send(msgs);
      return;
    }
    let out: Message[] | undefined;
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      if (m.type === MessageType.App) {
        if (m.entries.length === 0) {
          // A newer one replaces an older one: both carry only (index, commit) news.
          this.deferredApps.set(m.to, m);
          out ??= msgs.slice(0, i);
          continue;
        }
        // Carries the commit index itself.
        this.deferredApps.delete(m.to);
      } else {
        // Anything else to that follower goes after the held one, in order: a
        // TimeoutNow, say, must not overtake the commit of the follower's promotion.
        const held = this.deferredApps.get(m.to);
        if (held) {
          out ??= msgs.slice(0, i);
          out.push(held);
          this.deferredApps.delete(m.to);
        }
      }
      out?.push(m);
    }
    if (this.deferredApps.size === 0) {
      if (this.deferTimer) clearTimeout(this.deferTimer);
      this.deferTimer = undefined;
    } else if (!this.deferTimer) {
      this.deferTimer = setTimeout(() => this.sendDeferred(), this.commitNoticeDelayMs);
    }
    const toSend = out ?? msgs;
    if (toSend.length > 0) transport.send(toSend);
  }

  private sendDeferred(): void {
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = undefined;
    if (this.stopped || this.deferredApps.size === 0) return;
    const msgs = [...this.deferredApps.values()];
    this.deferredApps.clear();
    // Only a leader of the same term may still send them; anything else drops them (raft resends).
    if (this.raw.raft.state !== StateType.Leader) return;
    this.transport?.send(msgs.filter((m) => m.term === this.raw.raft.term));
  }

  /** Write a Ready's snapshot, entries and hard state; fdatasync them if the Ready needs it. */
  private persist(rd: Ready): void {
    const t0 = performance.now();
    if (rd.snapshot) this.disk.saveSnapshot(rd.snapshot);
    if (rd.hardState || rd.entries.length > 0 || rd.snapshot) {
      this.disk.save(rd.hardState, rd.entries, rd.snapshot, rd.mustSync);
    }
    const ms = performance.now() - t0;
    // Nothing else of this process runs meanwhile (no heartbeats either): an operator must see it.
    if (ms >= SLOW_PERSIST_MS) {
      this.log.warn({ raft: this.id, ms: Math.round(ms), entries: rd.entries.length, sync: rd.mustSync }, 'raft: writing the log to disk was slow');
    }
  }

  /**
   * Carry out a Ready. `early`: its messages were sent and its state made
   * durable already (the leader's path in process()).
   */
  private handleReady(rd: Ready, early: boolean): void {
    if (rd.softState) this.onSoftState(rd.softState.lead, rd.softState.state);
    const transport = this.transport!;
    if (!early) {
      if (rd.sendFirst && rd.messages.length > 0) this.send(rd.messages);
      this.persist(rd);
    }
    if (rd.snapshot) this.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) this.storage.append(rd.entries);
    if (rd.hardState) this.storage.setHardState(rd.hardState);

    if (!rd.sendFirst && rd.messages.length > 0) {
      this.send(rd.messages);
      // Answers (a follower's AppResp) go out now rather than a loop turn later.
      transport.flushNow?.();
    }

    if (rd.snapshot) this.restoreSnapshot(rd.snapshot);
    for (const e of rd.committedEntries) this.applyEntry(e.index, e.term, e.type, e.data);
    for (const rs of rd.readStates) {
      const key = Buffer.from(rs.requestCtx.buffer, rs.requestCtx.byteOffset, rs.requestCtx.byteLength).toString('latin1');
      const waiters = this.readBatches.get(key);
      if (!waiters) continue;
      this.readBatches.delete(key);
      this.readsAwaitingApply.push({ index: rs.index, waiters });
    }
    this.raw.advance(rd);
    this.releaseReads();
    this.maybeSnapshot();
  }

  private onSoftState(lead: NodeId, state: StateType): void {
    const wasLeader = this.role === StateType.Leader;
    this.lead = lead;
    this.role = state;
    this.log.info({ raft: this.id, lead, state: StateType[state], term: this.raw.raft.term }, 'raft state changed');
    if (wasLeader && state !== StateType.Leader) {
      // Reads waiting for a heartbeat round we will never finish as leader.
      const err = new RaftError('NOT_LEADER', 'leadership lost while confirming a read: retry', { leader: lead });
      for (const [k, ws] of this.readBatches) {
        for (const w of ws) {
          clearTimeout(w.timer);
          w.reject(err);
        }
        this.readBatches.delete(k);
      }
    }
    this.emit('state', { lead, state, term: this.raw.raft.term });
  }

  private applyEntry(index: number, term: number, type: EntryType, data: Uint8Array): void {
    let result: unknown;
    let error: Error | undefined;
    if (type === EntryType.ConfChange) {
      const cc = decodeConfChange(data);
      this.confState = this.raw.applyConfChange(cc);
      this.applyPeerChange(cc);
      // Members learn of the commit now, not commitNoticeDelayMs later: a
      // promoted learner must know it votes before anything asks it to.
      this.sendDeferred();
      result = this.confState;
      this.emit('config', this.confState);
    } else if (data.byteLength > 0) {
      try {
        result = this.sm.apply(index, data);
      } catch (e) {
        // A deterministic application error is the proposer's problem, not raft's.
        error = e as Error;
      }
    }
    this.applied = index;
    this.appliedBytes += data.byteLength;
    const p = this.pending.get(index);
    if (!p) return;
    this.pending.delete(index);
    clearTimeout(p.timer);
    if (p.term !== term) {
      p.reject(new RaftError('PROPOSAL_DROPPED', 'proposal lost: leadership changed before it committed; retry'));
    } else if (error) {
      p.reject(error);
    } else {
      p.resolve(result);
    }
  }

  private applyPeerChange(cc: ConfChange): void {
    if (cc.type === ConfChangeType.RemoveNode) {
      delete this.peers[cc.nodeId];
      if (cc.nodeId !== this.id) this.transport?.removePeer(cc.nodeId);
      return;
    }
    if (cc.context.byteLength > 0) {
      const addr = new TextDecoder().decode(cc.context);
      this.peers[cc.nodeId] = addr;
      if (cc.nodeId !== this.id) this.transport?.addPeer(cc.nodeId, addr);
    }
  }

  private restoreSnapshot(s: Snapshot): void {
    const env = decodeEnvelope(s.data);
    this.sm.restore(env.app);
    const self = this.peers[this.id];
    for (const id of Object.keys(this.peers)) {
      if (!(id in env.peers) && Number(id) !== this.id) this.transport?.removePeer(Number(id));
    }
    this.peers = env.peers;
    if (self) this.peers[this.id] = self;
    for (const [id, addr] of Object.entries(this.peers)) {
      if (Number(id) !== this.id) this.transport?.addPeer(Number(id), addr);
    }
    this.applied = s.metadata.index;
    this.lastSnapIndex = s.metadata.index;
    this.lastSnapBytes = s.data.byteLength;
    this.appliedBytes = 0;
    this.confState = s.metadata.confState;
    this.disk.releaseTo(s.metadata.index);
    // Proposals at or below the snapshot were decided elsewhere; their outcome is unknown here.
    for (const [idx, p] of this.pending) {
      if (idx <= s.metadata.index) {
        clearTimeout(p.timer);
        p.reject(new RaftError('PROPOSAL_DROPPED', 'proposal outcome unknown: state replaced by a snapshot; retry'));
        this.pending.delete(idx);
      }
    }
  }

  private releaseReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const still: typeof this.readsAwaitingApply = [];
    for (const b of this.readsAwaitingApply) {
      if (b.index <= this.applied) {
        for (const w of b.waiters) {
          clearTimeout(w.timer);
          w.resolve();
        }
      } else {
        still.push(b);
      }
    }
    this.readsAwaitingApply = still;
  }

  private maybeSnapshot(): void {
    if (this.snapshotting || this.applied - this.lastSnapIndex < this.snapshotEntries()) return;
    if (this.appliedBytes < this.snapshotLogRatio * this.lastSnapBytes) return;
    this.appliedBytes = 0;
    const index = this.applied;
    const confState = this.confState;
    const peers = this.peersForSnapshot();
    const started = Date.now();
    if (!this.sm.snapshotAsync) {
      const snap = this.storage.createSnapshot(index, confState, encodeEnvelope(peers, this.sm.snapshot()));
      this.disk.saveSnapshot(snap);
      this.snapshotTaken(snap, started);
      return;
    }
    this.snapshotting = true;
    void (async () => {
      let handedOver = false;
      try {
        const app = await this.sm.snapshotAsync!();
        if (this.stopped || index <= this.lastSnapIndex) return;
        // Throws if a snapshot from the leader replaced the log meanwhile: ours is then stale.
        const snap = this.storage.createSnapshot(index, confState, encodeEnvelope(peers, app));
        if (!(await this.disk.saveSnapshotAsync(snap))) return;
        // Mid-Ready this waits for advance(); the next snapshot may start only after it.
        handedOver = true;
        this.withCore(() => {
          this.snapshotting = false;
          if (!this.stopped && index > this.lastSnapIndex) this.snapshotTaken(snap, started);
        });
      } catch (e) {
        if (!this.stopped) this.log.warn({ raft: this.id, index, err: String(e) }, 'snapshot abandoned');
      } finally {
        if (!handedOver) this.snapshotting = false;
      }
    })();
  }

  /** The snapshot's file is durable: point the WAL at it, then compact and release what it replaces. */
  private snapshotTaken(snap: Snapshot, started: number): void {
    const index = snap.metadata.index;
    this.disk.save(undefined, [], snap, true);
    const compactTo = index - this.compactionMargin();
    if (compactTo > this.storage.firstIndex()) this.storage.compact(compactTo);
    this.disk.releaseTo(index);
    this.lastSnapIndex = index;
    this.lastSnapBytes = snap.data.byteLength;
    this.log.info({ raft: this.id, index, bytes: snap.data.byteLength, ms: Date.now() - started }, 'snapshot taken');
  }

  private peersForSnapshot(): Peers {
    const out: Peers = {};
    const members = new Set([...this.confState.voters, ...this.confState.learners]);
    for (const [id, addr] of Object.entries(this.peers)) if (members.has(Number(id))) out[Number(id)] = addr;
    return out;
  }

  /** Milliseconds per tick (for callers computing timeouts). */
  get tickInterval(): number {
    return this.tickMs;
  }

  /** Milliseconds between a leader's heartbeats. */
  get heartbeatInterval(): number {
    return this.tickMs * this.heartbeatTicks;
  }

  get currentLeader(): NodeId {
    return this.lead;
  }
}
