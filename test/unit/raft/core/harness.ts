// In-test harness for the raft core: nodes built from a MemoryStorage holding a
// chosen log and hard state, driven through RawNode's Ready loop the way a real
// driver does it, connected by a synchronous in-memory "network" that can cut
// links, isolate nodes, drop messages by predicate, and deliver messages one at
// a time so a test can hand-drive an exact interleaving.
import {
  EntryType, MemoryStorage, NONE, RaftError, RawNode, StateType, bootstrapSnapshot, decodeConfChange, emptyMessage,
  type ConfState, type Entry, type HardState, type Message, type MessageType, type NodeId, type ReadState, type Ready,
  type Snapshot,
} from '../../../../manager/raft/core/index.js';
import type { Config, Raft } from '../../../../manager/raft/core/raft.js';
import { mulberry32 } from '../../../support/random.js';

export const ELECTION_TICK = 10;
export const HEARTBEAT_TICK = 1;

/** Seeded so randomized election timeouts are reproducible. */
export const seededRandom = mulberry32;

export function bytes(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}

export function ent(index: number, term: number, data: Uint8Array = new Uint8Array(0), type = EntryType.Normal): Entry {
  return { index, term, type, data };
}

/**
 * A MemoryStorage whose initial configuration is given directly (as etcd's
 * tests do with `withPeers`) instead of through a snapshot, so a log can start
 * at index 1 exactly as in the paper's figures. Once a real snapshot has been
 * applied the snapshot's configuration wins.
 */
export class TestStorage extends MemoryStorage {
  constructor(private readonly initialConf: ConfState) {
    super();
  }

  override initialState(): { hardState: HardState; confState: ConfState } {
    const s = super.initialState();
    if (this.snapshot().metadata.index !== 0) return s;
    return { hardState: s.hardState, confState: { voters: [...this.initialConf.voters], learners: [...this.initialConf.learners] } };
  }
}

export interface StorageSpec {
  voters: NodeId[];
  learners?: NodeId[];
  /** Terms of the log entries at index 1, 2, 3, ... */
  terms?: number[];
  /** Explicit entries starting at index 1 (instead of `terms`). */
  entries?: Entry[];
  /** Hard state; term defaults to the last entry's term. */
  term?: number;
  vote?: NodeId;
  commit?: number;
}

/** A storage holding a log with the given terms and the given hard state. */
export function makeStorage(spec: StorageSpec): TestStorage {
  const s = new TestStorage({ voters: [...spec.voters], learners: [...(spec.learners ?? [])] });
  const ents = spec.entries ?? (spec.terms ?? []).map((t, i) => ent(i + 1, t));
  s.append(ents);
  const lastTerm = ents.length > 0 ? ents[ents.length - 1]!.term : 0;
  s.setHardState({ term: spec.term ?? lastTerm, vote: spec.vote ?? NONE, commit: spec.commit ?? 0 });
  return s;
}

/** The storage every member of a brand-new cluster starts from (as the project's drivers do). */
export function bootstrapStorage(voters: NodeId[], data: Uint8Array = new Uint8Array(0)): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot(bootstrapSnapshot(voters, data));
  s.setHardState({ term: 1, vote: NONE, commit: 1 });
  return s;
}

export type NodeConfig = Partial<Omit<Config, 'id' | 'storage'>>;

/** One member: a RawNode plus what its driver has persisted, applied and been handed. */
export class TestNode {
  raw: RawNode;
  /** Every Ready handled, in order. */
  readonly readies: Ready[] = [];
  /** Committed entries handed to the application, in order. */
  readonly applied: Entry[] = [];
  readonly readStates: ReadState[] = [];
  /** Snapshots the driver restored. */
  readonly snapshots: Snapshot[] = [];
  /** Apply committed ConfChange entries (raw.applyConfChange) as a driver does. */
  autoApplyConfChange = true;

  constructor(readonly id: NodeId, readonly storage: MemoryStorage, readonly config: NodeConfig = {}) {
    this.raw = new RawNode(this.fullConfig(config.applied));
  }

  private fullConfig(applied: number | undefined): Config {
    return {
      electionTick: ELECTION_TICK,
      heartbeatTick: HEARTBEAT_TICK,
      random: seededRandom(this.id * 7919),
      ...this.config,
      id: this.id,
      storage: this.storage,
      ...(applied !== undefined ? { applied } : {}),
    };
  }

  get raft(): Raft {
    return this.raw.raft;
  }

  /** Highest index the application has applied (entries or a restored snapshot). */
  appliedIndex(): number {
    const lastEntry = this.applied.length > 0 ? this.applied[this.applied.length - 1]!.index : 0;
    const lastSnap = this.snapshots.length > 0 ? this.snapshots[this.snapshots.length - 1]!.metadata.index : 0;
    return Math.max(lastEntry, lastSnap, this.raft.raftLog.applied);
  }

  /** A crash and restart: a fresh RawNode over the same (durable) storage. */
  restart(): void {
    this.raw = new RawNode(this.fullConfig(this.appliedIndex()));
  }

  /** Handle one Ready as a driver does: persist, apply, then advance. Returns the messages to send. */
  handle(rd: Ready): Message[] {
    this.readies.push(rd);
    if (rd.snapshot) {
      this.storage.applySnapshot(rd.snapshot);
      this.snapshots.push(rd.snapshot);
    }
    this.storage.append(rd.entries);
    if (rd.hardState) this.storage.setHardState(rd.hardState);
    for (const e of rd.committedEntries) {
      this.applied.push(e);
      if (this.autoApplyConfChange && e.type === EntryType.ConfChange) this.raw.applyConfChange(decodeConfChange(e.data));
    }
    this.readStates.push(...rd.readStates);
    this.raw.advance(rd);
    return rd.messages;
  }

  /** Run the Ready loop until quiet; returns the messages the node sends. */
  drain(): Message[] {
    const out: Message[] = [];
    while (this.raw.hasReady()) out.push(...this.handle(this.raw.ready()));
    return out;
  }

  state(): StateType {
    return this.raft.state;
  }

  term(): number {
    return this.raft.term;
  }

  commit(): number {
    return this.raft.raftLog.committed;
  }

  lastIndex(): number {
    return this.raft.raftLog.lastIndex();
  }

  /** Every entry in the node's log after its snapshot, stable or not. */
  log(): Entry[] {
    return this.raft.raftLog.allEntries();
  }

  /** Terms of the log from its first index; index i of the result is log index firstIndex + i. */
  logTerms(): number[] {
    return this.log().map((e) => e.term);
  }

  termAt(index: number): number | undefined {
    return this.raft.raftLog.termOrUndefined(index);
  }
}

export function newNode(id: NodeId, spec: StorageSpec | MemoryStorage, config: NodeConfig = {}): TestNode {
  const storage = spec instanceof MemoryStorage ? spec : makeStorage(spec);
  return new TestNode(id, storage, config);
}

export function ids(n: number): NodeId[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

export type MessagePredicate = (m: Message) => boolean;

export const isType = (...types: MessageType[]): MessagePredicate => (m) => types.includes(m.type);

/**
 * A synchronous network. Messages a node emits go to `outbox`; `flush` delivers
 * them (and whatever they cause) in FIFO order until none is left; `deliver`
 * steps exactly one. Link state is checked at delivery: a message over a cut
 * link, to an isolated node, to an unknown node or matching a drop filter is
 * lost (recorded in `dropped`).
 */
export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  outbox: Message[] = [];
  readonly delivered: Message[] = [];
  readonly dropped: Message[] = [];
  /** Errors the core raised while a delivered message was stepped (e.g. a forwarded proposal dropped). */
  readonly stepErrors: RaftError[] = [];
  private readonly blocked = new Set<string>();
  private filters: MessagePredicate[] = [];

  constructor(nodes: TestNode[]) {
    for (const n of nodes) this.nodes.set(n.id, n);
  }

  /** `count` voters (ids 1..count) with empty logs, all knowing the full configuration. */
  static create(count: number, config: NodeConfig = {}, learners: NodeId[] = []): Network {
    const voters = ids(count);
    const all = [...voters, ...learners];
    return new Network(all.map((id) => newNode(id, { voters, learners }, config)));
  }

  /** Members bootstrapped from the project's index-1 snapshot. */
  static bootstrap(count: number, config: NodeConfig = {}): Network {
    const voters = ids(count);
    return new Network(voters.map((id) => new TestNode(id, bootstrapStorage(voters), config)));
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  add(n: TestNode): void {
    this.nodes.set(n.id, n);
  }

  remove(id: NodeId): void {
    this.nodes.delete(id);
  }

  // ---- faults ----

  /** Block messages from -> to (one direction). */
  block(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Cut the link between a and b (both directions). */
  cut(a: NodeId, b: NodeId): void {
    this.block(a, b);
    this.block(b, a);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  /** Restore the links of one node, or every link and filter. */
  heal(id?: NodeId): void {
    if (id === undefined) {
      this.blocked.clear();
      this.filters = [];
      return;
    }
    for (const k of [...this.blocked]) {
      const [a, b] = k.split('>').map(Number);
      if (a === id || b === id) this.blocked.delete(k);
    }
  }

  /** Drop every message matching `pred` until heal(). */
  dropWhere(pred: MessagePredicate): void {
    this.filters.push(pred);
  }

  linkUp(m: Message): boolean {
    if (!this.nodes.has(m.to)) return false;
    if (this.blocked.has(`${m.from}>${m.to}`)) return false;
    return !this.filters.some((f) => f(m));
  }

  // ---- driving ----

  /** Run a node's Ready loop; its messages go to the outbox (and are returned). */
  collect(id: NodeId): Message[] {
    const msgs = this.node(id).drain();
    this.outbox.push(...msgs);
    return msgs;
  }

  collectAll(): void {
    for (const id of this.nodes.keys()) this.collect(id);
  }

  /** Deliver one message (if its link is up); returns the messages the receiver emitted. */
  deliver(m: Message): Message[] {
    if (!this.linkUp(m)) {
      this.dropped.push(m);
      return [];
    }
    const n = this.node(m.to);
    this.delivered.push(m);
    try {
      n.raw.step({ ...m, entries: m.entries.slice() });
    } catch (e) {
      if (!(e instanceof RaftError) || e.code !== 'PROPOSAL_DROPPED') throw e;
      this.stepErrors.push(e);
    }
    return this.collect(n.id);
  }

  /** Deliver outbox messages matching `pred` (others stay queued) until none matches. */
  flush(pred: MessagePredicate = () => true, limit = 100_000): number {
    let count = 0;
    for (;;) {
      const i = this.outbox.findIndex(pred);
      if (i < 0) return count;
      const [m] = this.outbox.splice(i, 1);
      this.deliver(m!);
      if (++count > limit) throw new Error('network did not quiesce');
    }
  }

  /** Deliver the messages queued now that match `pred`, but not the ones they cause: one round. */
  round(pred: MessagePredicate = () => true): number {
    const batch = this.take(pred);
    for (const m of batch) this.deliver(m);
    return batch.length;
  }

  /** Queue messages and deliver everything (etcd's network.send). */
  send(...msgs: Message[]): void {
    this.outbox.push(...msgs);
    this.flush();
  }

  /** Remove and return the queued messages matching `pred`. */
  take(pred: MessagePredicate = () => true): Message[] {
    const out = this.outbox.filter(pred);
    this.outbox = this.outbox.filter((m) => !pred(m));
    return out;
  }

  /** Throw away queued messages (all, or those matching `pred`). */
  discard(pred: MessagePredicate = () => true): number {
    return this.take(pred).length;
  }

  tick(id: NodeId, n = 1): void {
    const node = this.node(id);
    for (let i = 0; i < n; i++) {
      node.raw.tick();
      this.collect(id);
    }
  }

  /** Tick every node once, then deliver everything; repeat n times. */
  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const id of [...this.nodes.keys()]) if (this.nodes.has(id)) this.tick(id);
      this.flush();
    }
  }

  campaign(id: NodeId): void {
    this.node(id).raw.campaign();
    this.collect(id);
  }

  /** Campaign and deliver everything: the node should now lead. */
  elect(id: NodeId): TestNode {
    this.campaign(id);
    this.flush();
    const n = this.node(id);
    if (n.state() !== StateType.Leader) throw new Error(`node ${id} failed to become leader (state ${StateType[n.state()]})`);
    return n;
  }

  propose(id: NodeId, data: Uint8Array | string): { index: number; term: number } {
    const r = this.node(id).raw.propose(typeof data === 'string' ? bytes(data) : data);
    this.collect(id);
    return r;
  }

  /** Make a node leader without an election (as etcd's tests do), then send its first appends. */
  forceLeader(id: NodeId): TestNode {
    const n = this.node(id);
    n.raft.becomeCandidate();
    n.raft.becomeLeader();
    n.raft.bcastAppend();
    this.collect(id);
    return n;
  }

  leaders(): TestNode[] {
    return [...this.nodes.values()].filter((n) => n.state() === StateType.Leader);
  }

  /** Messages delivered so far matching `pred`. */
  deliveredWhere(pred: MessagePredicate): Message[] {
    return this.delivered.filter(pred);
  }
}

/** A message for stepping by hand. */
export function msg(type: MessageType, from: NodeId, to: NodeId, fields: Partial<Message> = {}): Message {
  return { ...emptyMessage(type, to, from), ...fields };
}
