// What a leader knows of each follower's log, and how it paces appends to it.
import type { NodeId } from './types.js';

export enum ProgressState {
  /** Unknown match: send one append per heartbeat interval and wait for the answer. */
  Probe = 0,
  /** Match known: stream appends optimistically, up to the in-flight window. */
  Replicate = 1,
  /** Follower needs a snapshot; appends pause until it reports. */
  Snapshot = 2,
}

/** A bounded ring of the last index of each append in flight to one follower. */
export class Inflights {
  private start = 0;
  count = 0;
  private readonly buffer: number[];

  constructor(readonly size: number) {
    this.buffer = new Array<number>(size).fill(0);
  }

  add(index: number): void {
    if (this.full()) throw new Error('cannot add into a full inflights');
    let next = this.start + this.count;
    if (next >= this.size) next -= this.size;
    this.buffer[next] = index;
    this.count++;
  }

  /** Free every append whose last index is <= `to` (acknowledged). */
  freeLE(to: number): void {
    if (this.count === 0 || to < this.buffer[this.start]!) return;
    let idx = this.start;
    let i = 0;
    for (; i < this.count; i++) {
      if (to < this.buffer[idx]!) break;
      idx++;
      if (idx >= this.size) idx -= this.size;
    }
    this.count -= i;
    this.start = idx;
    if (this.count === 0) this.start = 0;
  }

  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.buffer[this.start]!);
  }

  full(): boolean {
    return this.count === this.size;
  }

  reset(): void {
    this.count = 0;
    this.start = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state = ProgressState.Probe;
  /** Index of the snapshot in flight while in Snapshot state. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** In Probe state: an append was sent and we wait for an answer or a heartbeat tick. */
  probeSent = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: number, maxInflight: number, isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
    this.isLearner = isLearner;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** An append up to n was acknowledged. Returns false if the ack is stale. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Record an append up to n as sent (Replicate state streams ahead of acks). */
  sentEntries(lastIndex: number, count: number): void {
    if (this.state === ProgressState.Replicate) {
      if (count > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }

  /**
   * The follower rejected an append at `rejected`; `matchHint` is its guess of
   * where our logs may agree. Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe: return this.probeSent;
      case ProgressState.Replicate: return this.inflights.full();
      case ProgressState.Snapshot: return true;
    }
  }

  toString(): string {
    return `${ProgressState[this.state]} match=${this.match} next=${this.next}` +
      (this.isLearner ? ' learner' : '') + (this.pendingSnapshot ? ` pendingSnap=${this.pendingSnapshot}` : '') +
      ` inflight=${this.inflights.count}`;
  }
}

export enum VoteResult {
  Pending = 0,
  Lost = 1,
  Won = 2,
}

/** Membership and per-peer progress; majority arithmetic over the voters. */
export class ProgressTracker {
  voters = new Set<NodeId>();
  learners = new Set<NodeId>();
  progress = new Map<NodeId, Progress>();
  votes = new Map<NodeId, boolean>();

  constructor(readonly maxInflight: number) {}

  quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  isSingleton(): boolean {
    return this.voters.size === 1 && this.learners.size === 0;
  }

  /** Highest index replicated on a majority of voters. */
  committed(): number {
    const n = this.voters.size;
    if (n === 0) return Number.MAX_SAFE_INTEGER; // no voters: nothing constrains (matches etcd)
    const matches: number[] = [];
    for (const id of this.voters) matches.push(this.progress.get(id)?.match ?? 0);
    matches.sort((a, b) => b - a);
    return matches[this.quorum() - 1]!;
  }

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    const q = this.quorum();
    let result = VoteResult.Pending;
    if (granted >= q) result = VoteResult.Won;
    else if (rejected >= q || rejected > this.voters.size - q) result = VoteResult.Lost;
    return { granted, rejected, result };
  }

  /** Did a majority of voters talk to us recently? Resets the flags for the next round. */
  quorumActive(selfId: NodeId): boolean {
    let active = 0;
    for (const id of this.voters) {
      const pr = this.progress.get(id);
      if (!pr) continue;
      if (id === selfId || pr.recentActive) active++;
    }
    for (const [id, pr] of this.progress) {
      if (id !== selfId) pr.recentActive = false;
    }
    return active >= this.quorum();
  }

  isVoter(id: NodeId): boolean {
    return this.voters.has(id);
  }

  voterIds(): NodeId[] {
    return [...this.voters].sort((a, b) => a - b);
  }

  learnerIds(): NodeId[] {
    return [...this.learners].sort((a, b) => a - b);
  }
}
