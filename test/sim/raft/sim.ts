// Deterministic simulation of a raft-ts cluster: simulated clock, network and
// disks driven by one seeded scheduler, with faults injected throughout, and
// the safety properties of the Raft paper checked after every step.
import {
  ConfChangeType, EntryType, MessageType, NONE, RaftError, RawNode, StateType, MemoryStorage,
  bootstrapSnapshot, decodeConfChange,
  type Entry, type HardState, type Message, type NodeId, type Ready, type Snapshot,
} from '../../../manager/raft/core/index.js';
import { Rng } from './rng.js';

export interface SimOptions {
  seed: number;
  nodes: number;
  /** Simulated milliseconds of faults. */
  faultMs: number;
  /** Simulated milliseconds allowed after healing for a leader and all new proposals to commit. */
  healBoundMs: number;
  tickMs: number;
  electionTick: number;
  heartbeatTick: number;
  /** Keep the full event trace (printed for a failing seed). */
  trace: boolean;
  /** Break each node on purpose (tests of the checker itself). */
  sabotage?: (raw: RawNode) => void;
}

export const defaultSimOptions: Omit<SimOptions, 'seed'> = {
  nodes: 3,
  faultMs: 10_000,
  healBoundMs: 10_000,
  tickMs: 10,
  electionTick: 10,
  heartbeatTick: 1,
  trace: false,
};

export type FaultName =
  | 'dropped' | 'duplicated' | 'delaySpikes' | 'partitionsSymmetric' | 'partitionsAsymmetric' | 'crashes'
  | 'tornCrashes' | 'restarts' | 'addLearner' | 'promote' | 'removeNode' | 'transfers' | 'snapshotsTaken'
  | 'snapshotsSent' | 'proposals' | 'acked' | 'reads' | 'readsServed' | 'elections';

export type FaultCounts = Record<FaultName, number>;

export class SafetyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetyViolation';
  }
}

export interface SimResult {
  seed: number;
  ok: boolean;
  error?: string;
  counts: FaultCounts;
  /** Simulated ms from healing until a leader answered and every new proposal committed. */
  healMs: number;
  trace: string[];
  finalApplied: number;
}

/** What survives a crash: the node's disk. */
interface Disk {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: Entry[];
}

interface StateMachine {
  /** (index, value) of every normal entry applied, in order. */
  applied: Array<[number, number]>;
  appliedIndex: number;
}

interface SimNode {
  id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  sm: StateMachine;
  /** Proposals made here awaiting their entry: index -> {term, values}. */
  pending: Map<number, { term: number; value: number }>;
  /** Read requests made here: ctx -> highest acknowledged index when it was made. */
  reads: Map<string, number>;
  lastSnapIndex: number;
  /** Crash in the middle of the next disk write that has entries. */
  tornNext: boolean;
  incarnation: number;
}

interface InFlight {
  at: number;
  seq: number;
  m: Message;
}

function encodeValue(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, v, true);
  return b;
}

function decodeValue(d: Uint8Array): number {
  return new DataView(d.buffer, d.byteOffset, d.byteLength).getFloat64(0, true);
}

function encodeSm(sm: StateMachine): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(sm));
}

function decodeSm(d: Uint8Array): StateMachine {
  if (d.byteLength === 0) return { applied: [], appliedIndex: 0 };
  return JSON.parse(new TextDecoder().decode(d)) as StateMachine;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Simulation {
  readonly opts: SimOptions;
  private readonly rng: Rng;
  now = 0;
  private seq = 0;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly disks = new Map<NodeId, Disk>();
  /** Members that are down and will come back. */
  private readonly crashed = new Map<NodeId, number>();
  /** Nodes removed from the cluster: never restarted. */
  private readonly removed = new Set<NodeId>();
  private nextNodeId: NodeId;
  private queue: InFlight[] = [];
  private snapReports: Array<{ at: number; leader: NodeId; peer: NodeId; failed: boolean }> = [];
  /** from -> set of destinations it cannot reach. */
  private blocked = new Map<NodeId, Set<NodeId>>();
  private partitionHealAt = 0;
  private lossRate: number;
  private dupRate: number;
  private faultsOn = true;
  readonly counts: FaultCounts;
  readonly trace: string[] = [];
  private readonly traceRing: string[] = [];

  // Global knowledge for the checks.
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /**
   * index -> committed entry (learned when any node applies it), with the lowest current term of
   * a node that applied it: the term it was committed in is no higher (a node applies an entry
   * only once it learned of the commit, in that term or a later one).
   */
  private readonly committed = new Map<number, { term: number; type: EntryType; data: Uint8Array; appliedInTerm: number }>();
  /** (index,term) -> the data and the previous entry's term: log matching. */
  private readonly entryAt = new Map<string, { data: Uint8Array; prevTerm: number | undefined }>();
  private readonly valueIndex = new Map<number, number>();
  private readonly acked = new Set<number>();
  private maxAckedIndex = 0;
  private nextValue = 1;
  private nextReadCtx = 1;
  private readonly snapshotEvery: number;
  private readonly intensity: number;
  private readonly maxSizePerMsg: number;
  private readonly maxInflight: number;

  constructor(opts: SimOptions) {
    this.opts = opts;
    this.rng = new Rng(opts.seed);
    this.lossRate = this.rng.next() * 0.1;
    this.dupRate = this.rng.next() * 0.05;
    this.snapshotEvery = this.rng.int(20, 120);
    // Some seeds are calm, some are storms: rare interleavings need many faults.
    this.intensity = this.rng.pick([0.5, 1, 2, 4, 8]);
    // Tiny messages (one entry each) open the paper's Figure 8 interleavings.
    this.maxSizePerMsg = this.rng.pick([1, 64, 4096, 1 << 20]);
    this.maxInflight = this.rng.pick([1, 4, 64]);
    this.counts = {
      dropped: 0, duplicated: 0, delaySpikes: 0, partitionsSymmetric: 0, partitionsAsymmetric: 0, crashes: 0,
      tornCrashes: 0, restarts: 0, addLearner: 0, promote: 0, removeNode: 0, transfers: 0, snapshotsTaken: 0,
      snapshotsSent: 0, proposals: 0, acked: 0, reads: 0, readsServed: 0, elections: 0,
    };
    const voters: NodeId[] = [];
    for (let i = 1; i <= opts.nodes; i++) voters.push(i);
    this.nextNodeId = opts.nodes + 1;
    const boot = bootstrapSnapshot(voters, encodeSm({ applied: [], appliedIndex: 1 }));
    for (const id of voters) {
      this.disks.set(id, { hardState: { term: 1, vote: NONE, commit: 1 }, snapshot: boot, entries: [] });
      this.startNode(id);
    }
  }

  private log(s: string): void {
    const line = `${String(this.now).padStart(6)} ${s}`;
    if (this.opts.trace) this.trace.push(line);
    this.traceRing.push(line);
    if (this.traceRing.length > 400) this.traceRing.splice(0, 100);
  }

  lastTrace(): string[] {
    return this.opts.trace ? this.trace : this.traceRing.slice(-250);
  }

  private fail(msg: string): never {
    this.log(`VIOLATION ${msg}`);
    throw new SafetyViolation(msg);
  }

  // ---- node lifecycle ----

  private startNode(id: NodeId): void {
    const disk = this.disks.get(id)!;
    const storage = new MemoryStorage();
    if (disk.snapshot) storage.applySnapshot(disk.snapshot);
    storage.setHardState(disk.hardState);
    storage.append(disk.entries);
    const sm = disk.snapshot ? decodeSm(disk.snapshot.data) : { applied: [], appliedIndex: 0 };
    if (disk.snapshot) sm.appliedIndex = disk.snapshot.metadata.index;
    const nodeRng = this.rng.fork();
    const raw = new RawNode({
      id,
      electionTick: this.opts.electionTick,
      heartbeatTick: this.opts.heartbeatTick,
      storage,
      applied: sm.appliedIndex,
      checkQuorum: true,
      preVote: true,
      maxSizePerMsg: this.maxSizePerMsg,
      maxInflightMsgs: this.maxInflight,
      random: () => nodeRng.next(),
    });
    this.opts.sabotage?.(raw);
    const prev = this.nodes.get(id);
    this.nodes.set(id, {
      id, raw, storage, sm, pending: new Map(), reads: new Map(), lastSnapIndex: disk.snapshot?.metadata.index ?? 0,
      tornNext: false, incarnation: (prev?.incarnation ?? 0) + 1,
    });
    this.log(`n${id} start (term ${disk.hardState.term}, commit ${disk.hardState.commit}, snap ${disk.snapshot?.metadata.index ?? 0}, entries ${disk.entries.length})`);
  }

  private crash(id: NodeId, torn: boolean): void {
    this.nodes.delete(id);
    this.crashed.set(id, this.now + this.rng.int(50, Math.round(3000 / this.intensity)));
    this.counts[torn ? 'tornCrashes' : 'crashes']++;
    this.log(`n${id} CRASH${torn ? ' (torn write)' : ''}`);
  }

  // ---- the driver, as the real one does it ----

  private drain(n: SimNode): void {
    while (this.nodes.get(n.id) === n && n.raw.hasReady()) {
      const rd = n.raw.ready();
      if (!this.handleReady(n, rd)) return;
    }
  }

  /** Returns false if the node crashed while handling the Ready. */
  private handleReady(n: SimNode, rd: Ready): boolean {
    if (rd.softState) {
      this.log(`n${n.id} ${StateType[rd.softState.state]} lead=${rd.softState.lead} term=${n.raw.raft.term}`);
      if (rd.softState.state === StateType.Leader) this.checkNewLeader(n);
    }
    if (rd.sendFirst) this.sendAll(rd.messages);
    const disk = this.disks.get(n.id)!;
    if (rd.snapshot) {
      disk.snapshot = rd.snapshot;
      disk.entries = [];
    }
    if (n.tornNext && rd.entries.length > 0) {
      // Power loss in the middle of the write: a prefix of the entries made it.
      const keep = this.rng.int(0, rd.entries.length - 1);
      this.persistEntries(disk, rd.entries.slice(0, keep));
      this.crash(n.id, true);
      return false;
    }
    this.persistEntries(disk, rd.entries);
    if (rd.hardState) disk.hardState = { ...rd.hardState };
    // The in-memory storage mirrors the disk once it is durable.
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    this.checkLogMatching(n, rd.entries);
    if (!rd.sendFirst) this.sendAll(rd.messages);

    if (rd.snapshot) {
      n.sm = decodeSm(rd.snapshot.data);
      n.sm.appliedIndex = rd.snapshot.metadata.index;
      n.lastSnapIndex = rd.snapshot.metadata.index;
      this.log(`n${n.id} restored snapshot ${rd.snapshot.metadata.index}`);
    }
    for (const e of rd.committedEntries) this.apply(n, e);
    for (const rs of rd.readStates) {
      const key = Buffer.from(rs.requestCtx).toString('hex');
      const ackedAtStart = n.reads.get(key);
      if (ackedAtStart === undefined) continue;
      n.reads.delete(key);
      if (rs.index < ackedAtStart) {
        this.fail(`read on n${n.id} at index ${rs.index} misses a write acknowledged at ${ackedAtStart} before the read began`);
      }
      this.counts.readsServed++;
    }
    n.raw.advance(rd);
    this.maybeSnapshot(n);
    return true;
  }

  private persistEntries(disk: Disk, ents: Entry[]): void {
    if (ents.length === 0) return;
    const first = ents[0]!.index;
    // A write at index i replaces the tail from i (a follower's conflicting suffix).
    const keep = disk.entries.findIndex((e) => e.index >= first);
    if (keep >= 0) disk.entries.length = keep;
    for (const e of ents) disk.entries.push(e);
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.sm.appliedIndex + 1) {
      this.fail(`n${n.id} applied index ${e.index} after ${n.sm.appliedIndex}: gap or repeat`);
    }
    const known = this.committed.get(e.index);
    if (known) {
      if (known.term !== e.term || known.type !== e.type || !bytesEqual(known.data, e.data)) {
        this.fail(`state machine safety: n${n.id} applied a different entry at index ${e.index} (term ${e.term} vs ${known.term})`);
      }
      known.appliedInTerm = Math.min(known.appliedInTerm, n.raw.raft.term);
    } else {
      this.committed.set(e.index, { term: e.term, type: e.type, data: e.data, appliedInTerm: n.raw.raft.term });
    }
    n.sm.appliedIndex = e.index;
    const p = n.pending.get(e.index);
    if (p) n.pending.delete(e.index);
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      const cs = n.raw.applyConfChange(cc);
      this.log(`n${n.id} applied conf change ${ConfChangeType[cc.type]} n${cc.nodeId} @${e.index} -> voters [${cs.voters}] learners [${cs.learners}]`);
      // The operator acts once the change is committed: a removed member is
      // shut down for good; an added one is started, empty.
      if (cc.type === ConfChangeType.RemoveNode) this.shutdownRemoved(cc.nodeId);
      if (cc.type === ConfChangeType.AddLearner && !this.disks.has(cc.nodeId) && !this.removed.has(cc.nodeId)) {
        this.disks.set(cc.nodeId, { hardState: { term: 0, vote: NONE, commit: 0 }, snapshot: undefined, entries: [] });
        this.startNode(cc.nodeId);
      }
      return;
    }
    if (e.data.byteLength === 0) return;
    const v = decodeValue(e.data);
    const prevIndex = this.valueIndex.get(v);
    if (prevIndex !== undefined && prevIndex !== e.index) {
      this.fail(`value ${v} applied twice: at index ${prevIndex} and ${e.index}`);
    }
    this.valueIndex.set(v, e.index);
    n.sm.applied.push([e.index, v]);
    if (p && p.term === e.term && p.value === v) {
      this.acked.add(v);
      this.counts.acked++;
      if (e.index > this.maxAckedIndex) this.maxAckedIndex = e.index;
    }
  }

  /** An operator shuts a removed member down for good once its removal is committed. */
  private shutdownRemoved(id: NodeId): void {
    if (this.removed.has(id)) return;
    this.removed.add(id);
    this.crashed.delete(id);
    if (this.nodes.delete(id)) this.log(`n${id} shut down after removal`);
  }

  private maybeSnapshot(n: SimNode): void {
    if (this.nodes.get(n.id) !== n) return;
    if (n.sm.appliedIndex - n.lastSnapIndex < this.snapshotEvery) return;
    const index = n.sm.appliedIndex;
    const snap = n.storage.createSnapshot(index, n.raw.raft.confState(), encodeSm(n.sm));
    const keep = this.rng.int(0, 10);
    const compactTo = Math.max(index - keep, n.storage.firstIndex());
    if (compactTo > n.storage.firstIndex() - 1 && compactTo <= n.storage.lastIndex()) n.storage.compact(compactTo);
    const disk = this.disks.get(n.id)!;
    disk.snapshot = snap;
    disk.entries = disk.entries.filter((e) => e.index > compactTo);
    n.lastSnapIndex = index;
    this.counts.snapshotsTaken++;
    this.log(`n${n.id} snapshot at ${index}, compacted to ${compactTo}`);
  }

  // ---- network ----

  private sendAll(msgs: Message[]): void {
    for (const m of msgs) this.send(m);
  }

  private send(m: Message): void {
    const lost = this.blocked.get(m.from)?.has(m.to) || (this.faultsOn && this.rng.chance(this.lossRate));
    if (lost) {
      this.counts.dropped++;
      // The transport learns a snapshot stream failed and tells raft so.
      if (m.type === MessageType.Snap) this.snapReports.push({ at: this.now + this.rng.int(1, 50), leader: m.from, peer: m.to, failed: true });
      return;
    }
    if (m.type === MessageType.Snap) this.counts.snapshotsSent++;
    this.enqueue(m);
    if (this.faultsOn && this.rng.chance(this.dupRate)) {
      this.counts.duplicated++;
      this.enqueue(m);
    }
  }

  private enqueue(m: Message): void {
    let latency = this.rng.int(1, 5);
    if (this.faultsOn && this.rng.chance(0.03)) {
      latency += this.rng.int(20, 200);
      this.counts.delaySpikes++;
    }
    this.queue.push({ at: this.now + latency, seq: this.seq++, m });
  }

  private deliverDue(): void {
    const due: InFlight[] = [];
    const rest: InFlight[] = [];
    for (const f of this.queue) (f.at <= this.now ? due : rest).push(f);
    this.queue = rest;
    due.sort((a, b) => a.at - b.at || a.seq - b.seq);
    for (const f of due) {
      const n = this.nodes.get(f.m.to);
      if (!n) {
        if (f.m.type === MessageType.Snap) this.snapReports.push({ at: this.now + 1, leader: f.m.from, peer: f.m.to, failed: true });
        continue;
      }
      const m: Message = { ...f.m };
      try {
        n.raw.step(m);
      } catch (e) {
        if (!(e instanceof RaftError && e.code === 'PROPOSAL_DROPPED')) throw e;
      }
      if (f.m.type === MessageType.Snap) this.snapReports.push({ at: this.now, leader: f.m.from, peer: f.m.to, failed: false });
      this.drain(n);
    }
    const reports = this.snapReports;
    this.snapReports = [];
    for (const r of reports) {
      if (r.at > this.now) {
        this.snapReports.push(r);
        continue;
      }
      const sender = this.nodes.get(r.leader);
      if (!sender) continue;
      sender.raw.reportSnapshot(r.peer, r.failed);
      this.drain(sender);
    }
  }

  // ---- checks ----

  private checkNewLeader(n: SimNode): void {
    const term = n.raw.raft.term;
    this.counts.elections++;
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== n.id) this.fail(`election safety: n${other} and n${n.id} both leaders of term ${term}`);
    this.leaderOfTerm.set(term, n.id);
    // Leader completeness (Raft §5.4): an entry committed in a term is in the log of every leader
    // of a later term. A leader of an earlier term may still win late (its votes were delayed) and
    // lack later commits: it can commit nothing, as a majority has moved past its term.
    const log = n.raw.raft.raftLog;
    const snapIndex = log.firstIndex() - 1;
    for (const [index, c] of this.committed) {
      if (index <= snapIndex || c.appliedInTerm >= term) continue;
      const t = log.termOrUndefined(index);
      if (t !== c.term) this.fail(`leader completeness: n${n.id} leader of term ${term} lacks committed entry ${index} (term ${c.term}, has ${t})`);
    }
  }

  private checkLogMatching(n: SimNode, ents: Entry[]): void {
    for (const e of ents) {
      const key = `${e.index}/${e.term}`;
      const prevTerm = n.raw.raft.raftLog.termOrUndefined(e.index - 1);
      const seen = this.entryAt.get(key);
      if (!seen) {
        this.entryAt.set(key, { data: e.data, prevTerm });
        continue;
      }
      if (!bytesEqual(seen.data, e.data)) this.fail(`log matching: two different entries at index ${e.index} term ${e.term} (n${n.id})`);
      if (seen.prevTerm !== undefined && prevTerm !== undefined && seen.prevTerm !== prevTerm) {
        this.fail(`log matching: entry ${e.index}/${e.term} on n${n.id} follows term ${prevTerm}, elsewhere term ${seen.prevTerm}`);
      }
    }
  }

  // ---- the schedule ----

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.raw.raft.state === StateType.Leader && (!best || n.raw.raft.term > best.raw.raft.term)) best = n;
    }
    return best;
  }

  private propose(n: SimNode, count: number): void {
    const values: number[] = [];
    for (let i = 0; i < count; i++) values.push(this.nextValue++);
    try {
      const { index, term } = n.raw.proposeBatch(values.map(encodeValue));
      for (let i = 0; i < values.length; i++) n.pending.set(index - values.length + 1 + i, { term, value: values[i]! });
      this.counts.proposals += count;
    } catch (e) {
      if (!(e instanceof RaftError) || (e.code !== 'PROPOSAL_DROPPED' && e.code !== 'NOT_LEADER')) throw e;
    }
    this.drain(n);
  }

  private read(n: SimNode): void {
    const ctx = new Uint8Array(8);
    new DataView(ctx.buffer).setFloat64(0, this.nextReadCtx++, true);
    try {
      n.raw.readIndex(ctx);
      n.reads.set(Buffer.from(ctx).toString('hex'), this.maxAckedIndex);
      this.counts.reads++;
    } catch (e) {
      if (!(e instanceof RaftError && e.code === 'PROPOSAL_DROPPED')) throw e;
    }
    this.drain(n);
  }

  private injectFaults(): void {
    const r = this.rng;
    const live = [...this.nodes.values()];
    const members = [...this.nodes.keys(), ...this.crashed.keys()];
    if (this.now >= this.partitionHealAt && this.blocked.size > 0) {
      this.blocked.clear();
      this.log('partition healed');
    }
    if (this.blocked.size === 0 && r.chance(0.003 * this.intensity) && members.length > 1) {
      const kind = r.int(0, 2);
      if (kind === 0) {
        const victim = r.pick(members);
        for (const o of members) if (o !== victim) { this.block(victim, o); this.block(o, victim); }
        this.counts.partitionsSymmetric++;
        this.log(`partition: n${victim} isolated`);
      } else if (kind === 1) {
        const side = new Set(members.filter(() => r.chance(0.5)));
        for (const a of members) for (const b of members) if (side.has(a) !== side.has(b)) this.block(a, b);
        this.counts.partitionsSymmetric++;
        this.log(`partition: [${[...side]}] | rest`);
      } else {
        const pairs = r.int(1, members.length);
        const desc: string[] = [];
        for (let i = 0; i < pairs; i++) {
          const a = r.pick(members);
          const b = r.pick(members);
          if (a !== b) { this.block(a, b); desc.push(`n${a}->n${b}`); }
        }
        this.counts.partitionsAsymmetric++;
        this.log(`asymmetric partition: ${desc.join(' ')}`);
      }
      this.partitionHealAt = this.now + r.int(300, Math.round(5000 / this.intensity));
    }
    if (live.length > 0 && r.chance(0.002 * this.intensity)) this.crash(r.pick(live).id, false);
    if (live.length > 0 && r.chance(0.001 * this.intensity)) r.pick(live).tornNext = true;
    const lead = this.leader();
    if (lead && r.chance(0.004)) this.changeMembership(lead);
    if (lead && r.chance(0.002)) {
      const voters = lead.raw.raft.prs.voterIds().filter((id) => id !== lead.id);
      if (voters.length > 0) {
        const to = r.pick(voters);
        this.counts.transfers++;
        this.log(`n${lead.id} transfer leadership to n${to}`);
        lead.raw.transferLeader(to);
        this.drain(lead);
      }
    }
  }

  private block(a: NodeId, b: NodeId): void {
    let s = this.blocked.get(a);
    if (!s) this.blocked.set(a, (s = new Set()));
    s.add(b);
  }

  private changeMembership(lead: SimNode): void {
    const raft = lead.raw.raft;
    if (raft.pendingConfIndex > raft.raftLog.applied) return;
    const voters = raft.prs.voterIds();
    const learners = raft.prs.learnerIds();
    let type: ConfChangeType;
    let nodeId: NodeId;
    if (voters.length > this.opts.nodes) {
      type = ConfChangeType.RemoveNode;
      nodeId = this.rng.pick(voters);
    } else if (learners.length > 0) {
      nodeId = learners[0]!;
      const pr = raft.prs.progress.get(nodeId)!;
      // Promote only a learner that has caught up, as the thesis advises (§4.2.1).
      if (pr.match < raft.raftLog.committed) return;
      type = ConfChangeType.AddVoter;
    } else {
      type = ConfChangeType.AddLearner;
      nodeId = this.nextNodeId++;
    }
    try {
      lead.raw.proposeConfChange({ type, nodeId, context: new Uint8Array(0) });
    } catch (e) {
      if (!(e instanceof RaftError && (e.code === 'PROPOSAL_DROPPED' || e.code === 'NOT_LEADER'))) throw e;
      return;
    }
    this.log(`n${lead.id} proposes ${ConfChangeType[type]} n${nodeId}`);
    if (type === ConfChangeType.AddLearner) {
      this.counts.addLearner++;
    } else if (type === ConfChangeType.AddVoter) {
      this.counts.promote++;
    } else {
      this.counts.removeNode++;
    }
    this.drain(lead);
  }

  private restartDue(all: boolean): void {
    for (const [id, at] of [...this.crashed]) {
      if (all || at <= this.now) {
        this.crashed.delete(id);
        if (this.removed.has(id)) continue;
        this.startNode(id);
        this.counts.restarts++;
      }
    }
  }

  private tickAll(): void {
    for (const n of [...this.nodes.values()]) {
      if (this.nodes.get(n.id) !== n) continue;
      n.raw.tick();
      this.drain(n);
    }
  }

  /** One simulated tick: deliveries during it, faults, client load, then the raft tick. */
  private stepTick(load: boolean): void {
    const end = this.now + this.opts.tickMs;
    while (this.now < end) {
      this.now++;
      this.deliverDue();
    }
    if (this.faultsOn) {
      this.injectFaults();
      this.restartDue(false);
    }
    if (load) {
      const lead = this.leader();
      if (lead && this.rng.chance(0.5)) this.propose(lead, this.rng.chance(0.2) ? this.rng.int(2, 8) : 1);
      const live = [...this.nodes.values()];
      if (live.length > 0 && this.rng.chance(0.05)) this.read(this.rng.pick(live));
    }
    this.tickAll();
  }

  run(): SimResult {
    const result: SimResult = { seed: this.opts.seed, ok: true, counts: this.counts, healMs: 0, trace: [], finalApplied: 0 };
    try {
      while (this.now < this.opts.faultMs) this.stepTick(true);
      this.heal();
      result.healMs = this.awaitLiveness();
      this.checkFinal();
      result.finalApplied = Math.max(...[...this.nodes.values()].map((n) => n.sm.appliedIndex));
    } catch (e) {
      result.ok = false;
      result.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      if (!(e instanceof SafetyViolation) && e instanceof Error && e.stack) result.error += `\n${e.stack}`;
      result.trace = this.lastTrace();
    }
    if (result.ok && this.opts.trace) result.trace = this.trace;
    return result;
  }

  private heal(): void {
    this.faultsOn = false;
    this.blocked.clear();
    for (const n of this.nodes.values()) n.tornNext = false;
    this.restartDue(true);
    this.log('HEAL: partitions healed, crashed nodes restarted, no more loss');
  }

  /**
   * After healing: a leader must emerge and new proposals must commit within
   * the bound. The client retries a proposal the leader refused (e.g. during a
   * leadership transfer) or that a leader change lost, with a fresh value.
   */
  private awaitLiveness(): number {
    const start = this.now;
    const deadline = start + this.opts.healBoundMs;
    let lead: SimNode | undefined;
    while (this.now < deadline) {
      this.stepTick(false);
      lead = this.leader();
      if (lead && this.leaderStable(lead)) break;
    }
    if (!lead) this.fail(`liveness: no leader ${this.opts.healBoundMs} ms after healing`);
    const probes: number[] = [];
    for (let i = 0; i < 5; i++) probes.push(this.nextValue++);
    let outstanding = [...probes];
    while (this.now < deadline) {
      outstanding = outstanding.filter((v) => !this.acked.has(v));
      if (outstanding.length === 0 && this.converged()) return this.now - start;
      const l = this.leader();
      if (l) {
        const inFlight = new Set([...l.pending.values()].map((p) => p.value));
        outstanding = outstanding.map((v) => {
          if (inFlight.has(v)) return v;
          const fresh = this.nextValue;
          this.proposeValue(l, fresh);
          return fresh;
        });
      }
      this.stepTick(false);
    }
    this.fail(`liveness: ${this.opts.healBoundMs} ms after healing, proposals [${outstanding}] not committed or nodes not converged (${this.describe()})`);
  }

  private proposeValue(n: SimNode, v: number): void {
    this.nextValue = Math.max(this.nextValue, v + 1);
    try {
      const { index, term } = n.raw.propose(encodeValue(v));
      n.pending.set(index, { term, value: v });
      this.counts.proposals++;
    } catch (e) {
      if (!(e instanceof RaftError) || (e.code !== 'PROPOSAL_DROPPED' && e.code !== 'NOT_LEADER')) throw e;
      this.log(`n${n.id} refused proposal ${v}: ${e.message}`);
    }
    this.drain(n);
  }

  private leaderStable(lead: SimNode): boolean {
    // Every live member follows this leader.
    for (const n of this.nodes.values()) if (n.raw.raft.lead !== lead.id) return false;
    return true;
  }

  private converged(): boolean {
    const lead = this.leader();
    if (!lead) return false;
    const target = lead.raw.raft.raftLog.committed;
    for (const n of this.nodes.values()) if (n.sm.appliedIndex !== target) return false;
    return true;
  }

  private describe(): string {
    return [...this.nodes.values()].map((n) => `n${n.id}:${StateType[n.raw.raft.state]} t${n.raw.raft.term} c${n.raw.raft.raftLog.committed} a${n.sm.appliedIndex}`).join(' ');
  }

  /** No acknowledged write lost or applied twice, on every live member. */
  private checkFinal(): void {
    for (const n of this.nodes.values()) {
      const seen = new Set<number>();
      for (const [, v] of n.sm.applied) {
        if (seen.has(v)) this.fail(`n${n.id} state machine holds value ${v} twice`);
        seen.add(v);
      }
      for (const v of this.acked) {
        if (!seen.has(v)) this.fail(`acknowledged value ${v} lost on n${n.id}`);
      }
    }
    const seqs = [...this.nodes.values()].map((n) => JSON.stringify(n.sm.applied));
    if (new Set(seqs).size > 1) this.fail('state machines differ after convergence');
  }
}

export function runSeed(seed: number, opts: Partial<Omit<SimOptions, 'seed'>> = {}): SimResult {
  return new Simulation({ ...defaultSimOptions, ...opts, seed }).run();
}
