// The core's API for a driver: feed it ticks, messages and proposals; take
// Ready batches of work out; call advance() once a batch is done.
import { encodeConfChange } from './confchange.js';
import { RaftError } from './errors.js';
import { ProgressState } from './progress.js';
import { Raft, type Config } from './raft.js';
import {
  EMPTY_BYTES, EntryType, MessageType, NONE, StateType,
  emptyMessage, hardStateEqual, isLocalMessage, isResponseMessage,
  type ConfChange, type ConfState, type Entry, type HardState, type Message, type NodeId, type Ready, type SoftState,
} from './types.js';

export interface PeerStatus {
  match: number;
  next: number;
  state: string;
  recentActive: boolean;
  isLearner: boolean;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  lead: NodeId;
  state: StateType;
  applied: number;
  leadTransferee: NodeId;
  /** Leader only. */
  progress: Map<NodeId, PeerStatus>;
  config: ConfState;
}

export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;

  constructor(config: Config) {
    this.raft = new Raft(config);
    this.prevSoftState = this.softState();
    this.prevHardState = this.raft.hardState();
  }

  tick(): void {
    this.raft.tick();
  }

  /** Campaign now, without waiting for the election timeout. */
  campaign(): void {
    this.raft.step(emptyMessage(MessageType.Hup, NONE, NONE));
  }

  /**
   * Propose data; only the leader accepts. Returns the index the entry got:
   * it is committed when an entry with this index and `term` is applied.
   */
  propose(data: Uint8Array): { index: number; term: number } {
    return this.proposeEntries([data], EntryType.Normal);
  }

  /** Propose many entries at once: one append, one fsync, one message per follower. */
  proposeBatch(datas: Uint8Array[]): { index: number; term: number } {
    return this.proposeEntries(datas, EntryType.Normal);
  }

  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    return this.proposeEntries([encodeConfChange(cc)], EntryType.ConfChange);
  }

  private proposeEntries(datas: Uint8Array[], type: EntryType): { index: number; term: number } {
    const r = this.raft;
    if (r.state !== StateType.Leader) {
      throw new RaftError('NOT_LEADER', r.lead === NONE ? 'not the leader, and no leader is known' : `not the leader; the leader is ${r.lead}`, { leader: r.lead });
    }
    const m = emptyMessage(MessageType.Prop, NONE, NONE);
    for (const data of datas) {
      if (data.byteLength > r.maxEntryBytes) {
        throw new RaftError('TOO_LARGE', `proposal of ${data.byteLength} bytes exceeds the limit of ${r.maxEntryBytes} bytes`);
      }
      m.entries.push({ term: 0, index: 0, type, data });
    }
    r.step(m);
    const last = m.entries[m.entries.length - 1]!;
    return { index: last.index, term: last.term };
  }

  /** Step a message from a peer. */
  step(m: Message): void {
    if (isLocalMessage(m.type)) throw new RaftError('STEP_LOCAL_MSG', `cannot step local message ${MessageType[m.type]} from the network`);
    if (isResponseMessage(m.type) && !this.raft.prs.progress.has(m.from)) {
      // Answers from peers we no longer know are meaningless.
      return;
    }
    this.raft.step(m);
  }

  /** Request a linearizable read; a ReadState with this ctx appears in a later Ready. */
  readIndex(ctx: Uint8Array): void {
    const m = emptyMessage(MessageType.ReadIndex, NONE, NONE);
    m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data: ctx }];
    this.raft.step(m);
  }

  transferLeader(transferee: NodeId): void {
    this.raft.step(emptyMessage(MessageType.TransferLeader, NONE, transferee));
  }

  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(emptyMessage(MessageType.Unreachable, NONE, id));
  }

  reportSnapshot(id: NodeId, failed: boolean): void {
    const m = emptyMessage(MessageType.SnapStatus, NONE, id);
    m.reject = failed;
    this.raft.step(m);
  }

  private softState(): SoftState {
    return { lead: this.raft.lead, state: this.raft.state };
  }

  hasReady(): boolean {
    const r = this.raft;
    const ss = this.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.state !== this.prevSoftState.state) return true;
    const hs = r.hardState();
    if (!hardStateEqual(hs, this.prevHardState)) return true;
    if (r.raftLog.hasPendingSnapshot()) return true;
    if (r.msgs.length > 0 || r.raftLog.unstableEntries().length > 0 || r.raftLog.hasNextEnts()) return true;
    if (r.readStates.length > 0) return true;
    return false;
  }

  /** The next batch of work. Call advance(rd) when it is done. */
  ready(): Ready {
    const r = this.raft;
    const entries = r.raftLog.unstableEntries().slice();
    const rd: Ready = {
      entries,
      committedEntries: r.raftLog.nextEnts(),
      messages: r.msgs,
      readStates: r.readStates,
      mustSync: false,
      sendFirst: false,
    };
    const ss = this.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.state !== this.prevSoftState.state) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    const hs = r.hardState();
    if (!hardStateEqual(hs, this.prevHardState)) rd.hardState = hs;
    if (r.raftLog.hasPendingSnapshot()) rd.snapshot = r.raftLog.unstable.snapshot;
    // A commit index change alone need not be synced: it can be recomputed.
    rd.mustSync = entries.length > 0 || hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote
      || rd.snapshot !== undefined;
    // A steady leader may send appends while it writes the same entries to its
    // own disk (thesis §10.2.1): its own copy counts toward a commit only in a
    // later step, after this Ready is durable. Any term or vote change must be
    // durable before a message reveals it, and the Ready in which a node became
    // leader (softState set) is not yet steady.
    rd.sendFirst = r.state === StateType.Leader && rd.softState === undefined
      && hs.term === this.prevHardState.term && hs.vote === this.prevHardState.vote && rd.snapshot === undefined;
    r.msgs = [];
    r.readStates = [];
    return rd;
  }

  /** The driver persisted, sent and applied `rd`. */
  advance(rd: Ready): void {
    const r = this.raft;
    if (rd.hardState) this.prevHardState = rd.hardState;
    if (rd.snapshot && rd.committedEntries.length === 0) {
      // The driver restored the state machine from the snapshot.
      r.raftLog.appliedTo(rd.snapshot.metadata.index);
    }
    if (rd.committedEntries.length > 0) {
      r.raftLog.appliedTo(rd.committedEntries[rd.committedEntries.length - 1]!.index);
      if (r.state === StateType.Leader) r.reduceUncommittedSize(rd.committedEntries);
    }
    if (rd.entries.length > 0) {
      const e = rd.entries[rd.entries.length - 1]!;
      r.raftLog.stableTo(e.index, e.term);
    }
    if (rd.snapshot) r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
  }

  status(): Status {
    const r = this.raft;
    const progress = new Map<NodeId, PeerStatus>();
    if (r.state === StateType.Leader) {
      for (const [id, pr] of r.prs.progress) {
        progress.set(id, { match: pr.match, next: pr.next, state: ProgressState[pr.state], recentActive: pr.recentActive, isLearner: pr.isLearner });
      }
    }
    return {
      id: r.id, term: r.term, vote: r.vote, commit: r.raftLog.committed, lead: r.lead, state: r.state,
      applied: r.raftLog.applied, leadTransferee: r.leadTransferee, progress, config: r.confState(),
    };
  }
}

export { EMPTY_BYTES };
export type { Entry };
