// Plain data types shared by the raft core, its storage and its transport.
// Node IDs, terms and indexes are JavaScript numbers: safe integers up to 2^53,
// far beyond anything a cluster reaches.

export type NodeId = number;

/** No node: used for "no vote" and "no leader". */
export const NONE: NodeId = 0;

export enum EntryType {
  Normal = 0,
  /** data is an encoded ConfChange (see confchange.ts). */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** What must be durable before any message of the same Ready is sent. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

export enum ConfChangeType {
  AddVoter = 0,
  AddLearner = 1,
  RemoveNode = 2,
}

/** One server at a time membership change (Ongaro's thesis, section 4.1). */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  /** Opaque to raft: the application puts e.g. the new member's address here. */
  context: Uint8Array;
}

export enum MessageType {
  // Local messages: never sent over the network.
  Hup = 0,
  Beat = 1,
  Prop = 2,
  Unreachable = 3,
  SnapStatus = 4,
  CheckQuorum = 5,
  TransferLeader = 6,
  ReadIndex = 7,
  // Network messages.
  App = 10,
  AppResp = 11,
  Vote = 12,
  VoteResp = 13,
  PreVote = 14,
  PreVoteResp = 15,
  Snap = 16,
  Heartbeat = 17,
  HeartbeatResp = 18,
  TimeoutNow = 19,
  ReadIndexResp = 20,
}

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** Term of the entry at `index` (App: the entry before `entries`; Vote: last log term). */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot;
  reject: boolean;
  rejectHint: number;
  /** Read index request context, or campaign-transfer marker for votes. */
  context: Uint8Array;
}

export enum StateType {
  Follower = 0,
  Candidate = 1,
  Leader = 2,
  PreCandidate = 3,
}

export interface SoftState {
  lead: NodeId;
  state: StateType;
}

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

/**
 * Everything the core hands to its driver in one step. The driver must:
 * 1. persist snapshot, entries and hardState (fsync if mustSync) in that order,
 * 2. then send messages (or send them before step 1 when sendFirst is set),
 * 3. apply the snapshot (if any) and committedEntries to the state machine,
 * 4. call advance(),
 * and step nothing into the core between ready() and advance().
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  /** True when hardState or entries changed in a way that needs an fsync. */
  mustSync: boolean;
  /** Messages may go out before the entries are durable (a steady leader's appends). */
  sendFirst: boolean;
}

export function emptyMessage(type: MessageType, to: NodeId, from: NodeId): Message {
  return {
    type, to, from, term: 0, logTerm: 0, index: 0, entries: [], commit: 0,
    reject: false, rejectHint: 0, context: EMPTY_BYTES,
  };
}

export const EMPTY_BYTES = new Uint8Array(0);

/** Messages only the local driver may step; a peer sending one is a bug or an attack. */
export function isLocalMessage(t: MessageType): boolean {
  return t === MessageType.Hup || t === MessageType.Beat || t === MessageType.Unreachable
    || t === MessageType.SnapStatus || t === MessageType.CheckQuorum;
}

export function isResponseMessage(t: MessageType): boolean {
  return t === MessageType.AppResp || t === MessageType.VoteResp || t === MessageType.HeartbeatResp
    || t === MessageType.Unreachable || t === MessageType.PreVoteResp || t === MessageType.ReadIndexResp;
}

export function voteRespType(t: MessageType): MessageType {
  return t === MessageType.PreVote ? MessageType.PreVoteResp : MessageType.VoteResp;
}

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return !s || s.metadata.index === 0;
}

export function isEmptyHardState(h: HardState): boolean {
  return h.term === 0 && h.vote === 0 && h.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** Size used for batching limits: the payload dominates. */
export function entrySize(e: Entry): number {
  return e.data.byteLength + 24;
}
