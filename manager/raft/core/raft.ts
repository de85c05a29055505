// The raft consensus state machine (Ongaro's thesis; the shape of etcd's raft).
// Pure: no clocks, sockets or files. Driven by tick() and step(); its outputs
// (messages, entries to persist, committed entries) are collected by RawNode.
import { decodeConfChange } from './confchange.js';
import { RaftError } from './errors.js';
import { RaftLog } from './log.js';
import { Progress, ProgressState, ProgressTracker, VoteResult } from './progress.js';
import { ReadOnly, ReadOnlyOption } from './readonly.js';
import type { Storage } from './storage.js';
import {
  ConfChangeType, EMPTY_BYTES, EntryType, MessageType, NONE, StateType,
  emptyMessage, entrySize, voteRespType,
  type ConfChange, type ConfState, type Entry, type HardState, type Message, type NodeId, type ReadState,
  type Snapshot,
} from './types.js';

export interface RaftLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

/** Ticks before a candidate that met a rival in its term may stand again (plus up to an election timeout). */
const SPLIT_RETRY_BASE_TICKS = 2;

const silentLogger: RaftLogger = { debug() {}, info() {}, warn() {} };

export interface Config {
  id: NodeId;
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [n, 2n)). */
  electionTick: number;
  /** Ticks between leader heartbeats. Must be < electionTick. */
  heartbeatTick: number;
  storage: Storage;
  /** Last index the application has applied (on restart). */
  applied?: number;
  /** Max bytes of entries in one App message. */
  maxSizePerMsg?: number;
  /** Max bytes of committed entries in one Ready. */
  maxCommittedSizePerReady?: number;
  /** Max bytes of uncommitted entries a leader accepts; 0 means no limit. */
  maxUncommittedEntriesSize?: number;
  /** Max App messages in flight to one follower in Replicate state. */
  maxInflightMsgs?: number;
  /** Max bytes of one proposed entry's data. */
  maxEntryBytes?: number;
  checkQuorum?: boolean;
  preVote?: boolean;
  readOnlyOption?: ReadOnlyOption;
  /** Random number in [0, 1): injected so simulations are reproducible. */
  random: () => number;
  logger?: RaftLogger;
}

enum CampaignType {
  PreElection = 0,
  Election = 1,
  Transfer = 2,
}

/** Marks a vote request sent on leadership transfer: it may disrupt a live leader's lease. */
export const CAMPAIGN_TRANSFER = new Uint8Array([0x54]);

function isTransferCampaign(ctx: Uint8Array): boolean {
  return ctx.byteLength === 1 && ctx[0] === 0x54;
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  readStates: ReadState[] = [];
  readonly raftLog: RaftLog;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly maxEntryBytes: number;
  prs: ProgressTracker;
  state = StateType.Follower;
  isLearner = false;
  msgs: Message[] = [];
  lead: NodeId = NONE;
  leadTransferee: NodeId = NONE;
  /** Only one conf change may be pending: its index, or an index after which none can be. */
  pendingConfIndex = 0;
  uncommittedSize = 0;
  readonly readOnly: ReadOnly;
  /** ReadIndex requests that arrived before the leader committed an entry of its term. */
  private pendingReadIndexMessages: Message[] = [];
  electionElapsed = 0;
  heartbeatElapsed = 0;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  randomizedElectionTimeout = 0;
  /** The term in which the election timeout was last shortened for a split vote. */
  private splitRetryTerm = 0;
  private readonly random: () => number;
  readonly logger: RaftLogger;
  private tickFn: () => void;
  private stepFn: (m: Message) => void;

  constructor(c: Config) {
    if (c.id === NONE) throw new RaftError('INVALID_CONFIG', 'cannot use 0 as a node id');
    if (c.heartbeatTick <= 0) throw new RaftError('INVALID_CONFIG', 'heartbeatTick must be greater than 0');
    if (c.electionTick <= c.heartbeatTick) {
      throw new RaftError('INVALID_CONFIG', 'electionTick must be greater than heartbeatTick');
    }
    const maxInflight = c.maxInflightMsgs ?? 256;
    if (maxInflight <= 0) throw new RaftError('INVALID_CONFIG', 'maxInflightMsgs must be greater than 0');
    if (c.readOnlyOption === ReadOnlyOption.LeaseBased && !c.checkQuorum) {
      throw new RaftError('INVALID_CONFIG', 'checkQuorum must be enabled when readOnlyOption is LeaseBased');
    }
    this.id = c.id;
    this.maxMsgSize = c.maxSizePerMsg ?? 1024 * 1024;
    this.maxUncommittedSize = c.maxUncommittedEntriesSize ?? 0;
    this.maxEntryBytes = c.maxEntryBytes ?? 8 * 1024 * 1024;
    this.raftLog = new RaftLog(c.storage, c.maxCommittedSizePerReady ?? 64 * 1024 * 1024);
    this.prs = new ProgressTracker(maxInflight);
    this.readOnly = new ReadOnly(c.readOnlyOption ?? ReadOnlyOption.Safe);
    this.checkQuorum = c.checkQuorum ?? false;
    this.preVote = c.preVote ?? false;
    this.heartbeatTimeout = c.heartbeatTick;
    this.electionTimeout = c.electionTick;
    this.random = c.random;
    this.logger = c.logger ?? silentLogger;
    this.tickFn = this.tickElection;
    this.stepFn = this.stepFollower;

    const { hardState, confState } = c.storage.initialState();
    this.applyConfState(confState);
    if (hardState.term !== 0 || hardState.vote !== 0 || hardState.commit !== 0) this.loadState(hardState);
    if (c.applied && c.applied > 0) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, NONE);
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.raftLog.committed || hs.commit > this.raftLog.lastIndex()) {
      throw new RaftError('CORRUPT', `${this.id} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
    }
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---- sending ----

  private send(m: Message): void {
    // Forwarded messages (proposals, reads, transfer requests) keep their origin.
    if (m.from === NONE) m.from = this.id;
    const t = m.type;
    if (t === MessageType.Vote || t === MessageType.VoteResp || t === MessageType.PreVote || t === MessageType.PreVoteResp) {
      // Vote messages carry the term they campaign for (PreVote: term + 1), set by the caller.
      if (m.term === 0) throw new Error(`term should be set when sending ${MessageType[t]}`);
    } else {
      if (m.term !== 0) throw new Error(`term should not be set when sending ${MessageType[t]} (was ${m.term})`);
      // Proposals and read requests forwarded to the leader are local-term-free.
      if (t !== MessageType.Prop && t !== MessageType.ReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  /** Send an append (or a snapshot) to `to` if its progress allows. Returns whether a message went out. */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const m = emptyMessage(MessageType.App, to, this.id);
    let prevTerm: number | undefined;
    let ents: Entry[] | undefined;
    try {
      prevTerm = this.raftLog.term(pr.next - 1);
      ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    } catch (e) {
      if (!(e instanceof RaftError) || (e.code !== 'COMPACTED' && e.code !== 'UNAVAILABLE')) throw e;
      prevTerm = undefined;
    }
    if (prevTerm === undefined || ents === undefined) {
      // The entries it needs are compacted: send a snapshot, but only to a peer we know is alive.
      if (!pr.recentActive) return false;
      let snap: Snapshot;
      try {
        snap = this.raftLog.snapshot();
      } catch (e) {
        if (e instanceof RaftError && e.code === 'SNAPSHOT_TEMPORARILY_UNAVAILABLE') return false;
        throw e;
      }
      if (snap.metadata.index === 0) throw new Error('need non-empty snapshot');
      m.type = MessageType.Snap;
      m.snapshot = snap;
      pr.becomeSnapshot(snap.metadata.index);
      this.logger.debug(`${this.id} paused sending replication messages to ${to}: sent snapshot at ${snap.metadata.index}`);
      this.send(m);
      return true;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    m.index = pr.next - 1;
    m.logTerm = prevTerm;
    m.entries = ents;
    m.commit = this.raftLog.committed;
    pr.sentEntries(ents.length > 0 ? ents[ents.length - 1]!.index : m.index, ents.length);
    this.send(m);
    return true;
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array): void {
    // Never advance a follower's commit past what it is known to hold.
    const pr = this.prs.progress.get(to)!;
    const m = emptyMessage(MessageType.Heartbeat, to, this.id);
    m.commit = Math.min(pr.match, this.raftLog.committed);
    m.context = ctx;
    this.send(m);
  }

  bcastAppend(): void {
    for (const id of this.prs.progress.keys()) {
      if (id !== this.id) this.sendAppend(id);
    }
  }

  private bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx() ?? EMPTY_BYTES);
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array): void {
    for (const id of this.prs.progress.keys()) {
      if (id !== this.id) this.sendHeartbeat(id, ctx);
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(emptyMessage(MessageType.TimeoutNow, to, this.id));
  }

  // ---- commit and append ----

  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.prs.committed(), this.term);
  }

  private appendEntry(es: Entry[]): boolean {
    let li = this.raftLog.lastIndex();
    for (let i = 0; i < es.length; i++) {
      es[i]!.term = this.term;
      es[i]!.index = li + 1 + i;
    }
    if (!this.increaseUncommittedSize(es)) {
      this.logger.debug(`${this.id} appending new entries to log would exceed uncommitted entry size limit; dropping proposal`);
      return false;
    }
    li = this.raftLog.append(es);
    this.prs.progress.get(this.id)?.maybeUpdate(li);
    this.maybeCommit();
    return true;
  }

  private increaseUncommittedSize(es: Entry[]): boolean {
    let s = 0;
    for (const e of es) s += e.data.byteLength;
    if (this.maxUncommittedSize > 0 && this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > this.maxUncommittedSize) {
      return false;
    }
    this.uncommittedSize += s;
    return true;
  }

  reduceUncommittedSize(es: Entry[]): void {
    if (this.uncommittedSize === 0) return;
    let s = 0;
    for (const e of es) s += e.data.byteLength;
    this.uncommittedSize = s > this.uncommittedSize ? 0 : this.uncommittedSize - s;
  }

  // ---- state transitions ----

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.prs.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, old] of this.prs.progress) {
      const pr = new Progress(last + 1, this.prs.maxInflight, old.isLearner);
      if (id === this.id) pr.match = last;
      this.prs.progress.set(id, pr);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly.reset();
    this.pendingReadIndexMessages = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.stepFn = this.stepFollower;
    this.reset(term);
    this.tickFn = this.tickElection;
    this.lead = lead;
    this.state = StateType.Follower;
  }

  becomeCandidate(): void {
    if (this.state === StateType.Leader) throw new Error('invalid transition [leader -> candidate]');
    this.stepFn = this.stepCandidate;
    this.reset(this.term + 1);
    this.tickFn = this.tickElection;
    this.vote = this.id;
    this.state = StateType.Candidate;
    this.logger.info(`${this.id} became candidate at term ${this.term}`);
  }

  becomePreCandidate(): void {
    if (this.state === StateType.Leader) throw new Error('invalid transition [leader -> pre-candidate]');
    // A pre-candidate changes neither term nor vote: it only asks whether it could win.
    this.stepFn = this.stepCandidate;
    this.prs.resetVotes();
    this.tickFn = this.tickElection;
    this.lead = NONE;
    this.state = StateType.PreCandidate;
    this.logger.info(`${this.id} became pre-candidate at term ${this.term}`);
  }

  becomeLeader(): void {
    if (this.state === StateType.Follower) throw new Error('invalid transition [follower -> leader]');
    this.stepFn = this.stepLeader;
    this.reset(this.term);
    this.tickFn = this.tickHeartbeat;
    this.lead = this.id;
    this.state = StateType.Leader;
    this.prs.progress.get(this.id)?.becomeReplicate();
    // Conservatively assume the tail may hold an unapplied conf change.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // An empty entry of our term: committing it commits everything before (§5.4.2).
    this.appendEntry([{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES }]);
    this.uncommittedSize = 0;
    this.logger.info(`${this.id} became leader at term ${this.term}`);
  }

  private hup(t: CampaignType): void {
    if (this.state === StateType.Leader) return;
    if (!this.promotable()) {
      this.logger.debug(`${this.id} is unpromotable and can not campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.logger.warn(`${this.id} cannot campaign at term ${this.term} since there are still pending configuration changes to apply`);
      return;
    }
    this.campaign(t);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) return false;
    const lo = this.raftLog.applied + 1;
    const hi = this.raftLog.committed + 1;
    let ents: Entry[];
    try {
      ents = this.raftLog.slice(Math.max(lo, this.raftLog.firstIndex()), hi, Number.MAX_SAFE_INTEGER);
    } catch {
      return true;
    }
    return ents.some((e) => e.type === EntryType.ConfChange);
  }

  private campaign(t: CampaignType): void {
    let term: number;
    let voteMsg: MessageType;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteMsg = MessageType.PreVote;
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.Vote;
      term = this.term;
    }
    const { result } = this.poll(this.id, voteRespType(voteMsg), true);
    if (result === VoteResult.Won) {
      // A single-voter cluster wins at once.
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election);
      else this.becomeLeader();
      return;
    }
    for (const id of this.prs.voterIds()) {
      if (id === this.id) continue;
      const m = emptyMessage(voteMsg, id, this.id);
      m.term = term;
      m.index = this.raftLog.lastIndex();
      m.logTerm = this.raftLog.lastTerm();
      if (t === CampaignType.Transfer) m.context = CAMPAIGN_TRANSFER;
      this.send(m);
    }
  }

  private poll(id: NodeId, t: MessageType, granted: boolean): { granted: number; rejected: number; result: VoteResult } {
    this.logger.debug(`${this.id} received ${MessageType[t]} ${granted ? '' : 'rejection '}from ${id} at term ${this.term}`);
    this.prs.recordVote(id, granted);
    return this.prs.tallyVotes();
  }

  promotable(): boolean {
    return this.prs.voters.has(this.id) && !this.raftLog.hasPendingSnapshot();
  }

  // ---- ticks ----

  tick(): void {
    this.tickFn();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(emptyMessage(MessageType.Hup, NONE, this.id));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(emptyMessage(MessageType.CheckQuorum, NONE, this.id));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === StateType.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(emptyMessage(MessageType.Beat, NONE, this.id));
    }
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  /**
   * A rival stands in our term: each of us voted for itself, so the vote is
   * likely split. Waiting out the rest of a full randomized timeout (1-2
   * election timeouts from our campaign) only delays the retry, so the wait is
   * drawn again, from a shorter base with the same spread of one election
   * timeout (the spread is what keeps the two retries apart). The base of a
   * few ticks leaves time for a rival that did win to reach us first.
   */
  private retrySoonerAfterSplit(): void {
    if (this.splitRetryTerm === this.term) return; // once per term: a second rival must not push it back
    this.splitRetryTerm = this.term;
    const base = Math.min(SPLIT_RETRY_BASE_TICKS, this.electionTimeout);
    this.electionElapsed = 0;
    this.randomizedElectionTimeout = base + Math.floor(this.random() * this.electionTimeout);
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(this.random() * this.electionTimeout);
  }

  // ---- step ----

  step(m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = isTransferCampaign(m.context);
        const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // We heard from a leader within the election timeout: a disruptive
          // candidate (e.g. one that was partitioned away) must not depose it.
          this.logger.info(`${this.id} [term: ${this.term}] ignored ${MessageType[m.type]} from ${m.from} at term ${m.term}: lease is not expired`);
          return;
        }
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote never changes our term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // We will bump our term when we get a quorum of these.
      } else {
        this.logger.info(`${this.id} [term: ${this.term}] received a ${MessageType[m.type]} message with higher term from ${m.from} [term: ${m.term}]`);
        if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, NONE);
        }
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A stale leader (e.g. healed from a partition) learns our term from
        // this and steps down; otherwise CheckQuorum/PreVote could leave it
        // stuck disrupting nobody and unable to rejoin.
        this.send(emptyMessage(MessageType.AppResp, m.from, this.id));
      } else if (m.type === MessageType.PreVote) {
        const r = emptyMessage(MessageType.PreVoteResp, m.from, this.id);
        r.term = this.term;
        r.reject = true;
        this.send(r);
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.preVote ? CampaignType.PreElection : CampaignType.Election);
        return;
      case MessageType.Vote:
      case MessageType.PreVote: {
        const canVote = this.vote === m.from
          || (this.vote === NONE && this.lead === NONE)
          || (m.type === MessageType.PreVote && m.term > this.term);
        const r = emptyMessage(voteRespType(m.type), m.from, this.id);
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          // Answer with the message's term: a PreVote's term is one we have not entered.
          r.term = m.term;
          this.send(r);
          if (m.type === MessageType.Vote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          r.term = this.term;
          r.reject = true;
          this.send(r);
          if (m.type === MessageType.Vote && this.state === StateType.Candidate) this.retrySoonerAfterSplit();
        }
        return;
      }
      default:
        this.stepFn(m);
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat();
        return;
      case MessageType.CheckQuorum:
        if (!this.prs.quorumActive(this.id)) {
          this.logger.warn(`${this.id} stepped down to follower since quorum is not active`);
          this.becomeFollower(this.term, NONE);
        }
        return;
      case MessageType.Prop: {
        if (m.entries.length === 0) throw new Error(`${this.id} stepped empty MsgProp`);
        if (!this.prs.progress.has(this.id)) {
          throw new RaftError('PROPOSAL_DROPPED', 'proposal dropped: this node was removed from the configuration');
        }
        if (this.leadTransferee !== NONE) {
          throw new RaftError('PROPOSAL_DROPPED', `proposal dropped: leadership is being transferred to ${this.leadTransferee}`);
        }
        for (let i = 0; i < m.entries.length; i++) {
          const e = m.entries[i]!;
          if (e.type !== EntryType.ConfChange) continue;
          if (this.pendingConfIndex > this.raftLog.applied) {
            // One change at a time: turning it into a no-op keeps the batch's indexes intact.
            this.logger.info(`${this.id} ignoring conf change at index ${i}: a previous change is not yet applied (pending ${this.pendingConfIndex}, applied ${this.raftLog.applied})`);
            m.entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES };
          } else {
            this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
          }
        }
        if (!this.appendEntry(m.entries)) {
          throw new RaftError('PROPOSAL_DROPPED', 'proposal dropped: too many uncommitted entries');
        }
        this.bcastAppend();
        return;
      }
      case MessageType.ReadIndex:
        // The only voter needs nobody's confirmation (learners do not count).
        if (this.prs.voters.size === 1 && this.prs.voters.has(this.id)) {
          this.respondReadIndex(m, this.raftLog.committed);
          return;
        }
        // Until an entry of our term is committed we do not know the true commit index.
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m);
          return;
        }
        this.handleReadIndex(m);
        return;
    }

    const pr = this.prs.progress.get(m.from);
    if (!pr) {
      this.logger.debug(`${this.id} no progress available for ${m.from}`);
      return;
    }
    switch (m.type) {
      case MessageType.AppResp: {
        pr.recentActive = true;
        if (m.reject) {
          this.logger.debug(`${this.id} received AppResp(rejected, hint: (index ${m.rejectHint}, term ${m.logTerm})) from ${m.from} for index ${m.index}`);
          let nextProbeIdx = m.rejectHint;
          if (m.logTerm > 0) nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm);
          if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
            if (pr.state === ProgressState.Replicate) pr.becomeProbe();
            this.sendAppend(m.from);
          }
        } else {
          const oldPaused = pr.isPaused();
          if (pr.maybeUpdate(m.index)) {
            if (pr.state === ProgressState.Probe) {
              pr.becomeReplicate();
            } else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
              pr.becomeProbe();
              pr.becomeReplicate();
            } else if (pr.state === ProgressState.Replicate) {
              pr.inflights.freeLE(m.index);
            }
            if (this.maybeCommit()) {
              this.releasePendingReadIndexMessages();
              this.bcastAppend();
            } else if (oldPaused) {
              this.sendAppend(m.from);
            }
            // Fill the in-flight window with whatever else is waiting.
            while (this.maybeSendAppend(m.from, false)) { /* keep sending */ }
            if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
              this.logger.info(`${this.id} sent TimeoutNow to ${m.from} after its log caught up`);
              this.sendTimeoutNow(m.from);
            }
          }
        }
        return;
      }
      case MessageType.HeartbeatResp: {
        pr.recentActive = true;
        pr.probeSent = false;
        // Free one slot so a full window whose acks were lost can make progress.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);
        if (this.readOnly.option !== ReadOnlyOption.Safe || m.context.byteLength === 0) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (!acks) return;
        let n = 1; // ourselves
        for (const id of acks) if (id !== this.id && this.prs.voters.has(id)) n++;
        if (n < this.prs.quorum()) return;
        for (const rs of this.readOnly.advance(m.context)) this.respondReadIndex(rs.req, rs.index);
        return;
      }
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for the follower's answer (or a heartbeat) before probing again.
        pr.probeSent = true;
        return;
      case MessageType.Unreachable:
        // Appends in flight were probably lost: go back to probing.
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
      case MessageType.TransferLeader: {
        if (pr.isLearner) {
          this.logger.info(`${this.id} ignored transferring leadership to learner ${m.from}`);
          return;
        }
        const transferee = m.from;
        if (this.leadTransferee !== NONE) {
          if (this.leadTransferee === transferee) return;
          this.abortLeaderTransfer();
        }
        if (transferee === this.id) return;
        // A transfer must finish within an election timeout.
        this.electionElapsed = 0;
        this.leadTransferee = transferee;
        if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
        else this.sendAppend(transferee);
        return;
      }
    }
  }

  private stepCandidate(m: Message): void {
    const myVoteRespType = this.state === StateType.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        throw new RaftError('PROPOSAL_DROPPED', 'proposal dropped: no leader (election in progress)');
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myVoteRespType: {
        const { result } = this.poll(m.from, m.type, !m.reject);
        if (result === VoteResult.Won) {
          if (this.state === StateType.PreCandidate) {
            this.campaign(CampaignType.Election);
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === VoteResult.Lost) {
          // A PreVoteResp rejection carries our term or a higher one; stay at ours.
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      case MessageType.TimeoutNow:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) throw new RaftError('PROPOSAL_DROPPED', 'proposal dropped: no leader');
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) {
          this.logger.info(`${this.id} no leader at term ${this.term}; dropping leader transfer msg`);
          return;
        }
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.TimeoutNow:
        // Leadership transfer: campaign at once, skipping PreVote, since the
        // leader asked for it.
        this.hup(CampaignType.Transfer);
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) throw new RaftError('PROPOSAL_DROPPED', 'read index dropped: no leader');
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.ReadIndexResp:
        if (m.entries.length !== 1) return;
        this.readStates.push({ index: m.index, requestCtx: m.entries[0]!.data });
        return;
    }
  }

  // ---- handlers ----

  private handleAppendEntries(m: Message): void {
    const r = emptyMessage(MessageType.AppResp, m.from, this.id);
    if (m.index < this.raftLog.committed) {
      r.index = this.raftLog.committed;
      this.send(r);
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      r.index = lastNew;
      this.send(r);
      return;
    }
    // Reject with a hint: the largest index <= m.index whose term is <= m.logTerm,
    // so the leader can skip every entry that certainly conflicts.
    const hintIndex = Math.min(m.index, this.raftLog.lastIndex());
    const hint = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    r.index = m.index;
    r.reject = true;
    r.rejectHint = hint;
    r.logTerm = this.raftLog.termOrUndefined(hint) ?? 0;
    this.send(r);
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    const r = emptyMessage(MessageType.HeartbeatResp, m.from, this.id);
    r.context = m.context;
    this.send(r);
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (!s) return;
    const r = emptyMessage(MessageType.AppResp, m.from, this.id);
    if (this.restore(s)) {
      this.logger.info(`${this.id} [commit: ${this.raftLog.committed}] restored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
      r.index = this.raftLog.lastIndex();
    } else {
      r.index = this.raftLog.committed;
    }
    this.send(r);
  }

  /** Restore from a leader's snapshot. Returns false if it was stale or redundant. */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== StateType.Follower) {
      // Defensive: only followers receive snapshots.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = s.metadata.confState;
    const inConfig = cs.voters.includes(this.id) || cs.learners.includes(this.id);
    const knowsNoConfig = this.prs.voters.size === 0 && this.prs.learners.size === 0;
    // A brand-new member may get a snapshot older than its own addition; it
    // learns of itself from the log that follows.
    if (!inConfig && !knowsNoConfig) {
      this.logger.warn(`${this.id} attempted to restore snapshot but it is not in the ConfState; should never happen`);
      return false;
    }
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have this prefix: just fast-forward the commit index.
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    this.prs = new ProgressTracker(this.prs.maxInflight);
    this.applyConfState(cs);
    return true;
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrUndefined(this.raftLog.committed) === this.term;
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.handleReadIndex(m);
  }

  private handleReadIndex(m: Message): void {
    if (this.readOnly.option === ReadOnlyOption.Safe) {
      this.readOnly.addRequest(this.raftLog.committed, m);
      this.readOnly.recvAck(this.id, m.entries[0]!.data);
      this.bcastHeartbeatWithCtx(m.entries[0]!.data);
    } else {
      this.respondReadIndex(m, this.raftLog.committed);
    }
  }

  private respondReadIndex(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.entries[0]!.data });
      return;
    }
    const r = emptyMessage(MessageType.ReadIndexResp, req.from, this.id);
    r.index = index;
    r.entries = req.entries;
    this.send(r);
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  // ---- membership ----

  private applyConfState(cs: ConfState): void {
    const last = this.raftLog.lastIndex();
    for (const id of cs.voters) this.addNode(id, false, last);
    for (const id of cs.learners) this.addNode(id, true, last);
    this.isLearner = this.prs.learners.has(this.id);
  }

  private addNode(id: NodeId, learner: boolean, lastIndex: number): void {
    let pr = this.prs.progress.get(id);
    if (!pr) {
      pr = new Progress(lastIndex + 1, this.prs.maxInflight, learner);
      // Treat a new peer as active so CheckQuorum does not count it against us at once.
      pr.recentActive = true;
      if (id === this.id) pr.match = lastIndex;
      this.prs.progress.set(id, pr);
    }
    pr.isLearner = learner;
    if (learner) {
      this.prs.voters.delete(id);
      this.prs.learners.add(id);
    } else {
      this.prs.learners.delete(id);
      this.prs.voters.add(id);
    }
  }

  /** Apply a committed ConfChange entry; returns the new configuration. */
  applyConfChange(cc: ConfChange): ConfState {
    const last = this.raftLog.lastIndex();
    const added = cc.type !== ConfChangeType.RemoveNode && !this.prs.progress.has(cc.nodeId);
    switch (cc.type) {
      case ConfChangeType.AddVoter:
        this.addNode(cc.nodeId, false, last);
        break;
      case ConfChangeType.AddLearner:
        this.addNode(cc.nodeId, true, last);
        break;
      case ConfChangeType.RemoveNode:
        this.prs.voters.delete(cc.nodeId);
        this.prs.learners.delete(cc.nodeId);
        this.prs.progress.delete(cc.nodeId);
        this.prs.votes.delete(cc.nodeId);
        break;
    }
    this.isLearner = this.prs.learners.has(this.id);
    if (this.state === StateType.Leader) {
      if (!this.prs.voters.has(this.id)) {
        // Removed or demoted: a leader must be a voter. Step down; the rest elect anew.
        this.logger.info(`${this.id} is no longer a voter; stepping down`);
        this.becomeFollower(this.term, NONE);
      } else {
        if (this.leadTransferee !== NONE && !this.prs.voters.has(this.leadTransferee)) this.abortLeaderTransfer();
        // A smaller quorum may commit more; new members need their first appends.
        // A new member's progress starts past our log, so probe it even when
        // there is nothing new to send, rather than wait for a heartbeat.
        if (this.maybeCommit()) this.bcastAppend();
        else for (const id of this.prs.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, added && id === cc.nodeId);
      }
    }
    return this.confState();
  }

  confState(): ConfState {
    return { voters: this.prs.voterIds(), learners: this.prs.learnerIds() };
  }

  /** Entry helper used by RawNode to decode conf changes when it must. */
  static decodeConfChange(e: Entry): ConfChange {
    return decodeConfChange(e.data);
  }

  /** Approximate bytes of entries, for callers that batch. */
  static entriesSize(es: Entry[]): number {
    let s = 0;
    for (const e of es) s += entrySize(e);
    return s;
  }
}
