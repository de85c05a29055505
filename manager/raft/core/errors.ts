// Errors the core and its storage raise. Callers match on `code`, people read `message`.

export type RaftErrorCode =
  | 'COMPACTED'
  | 'UNAVAILABLE'
  | 'SNAPSHOT_OUT_OF_DATE'
  | 'SNAPSHOT_TEMPORARILY_UNAVAILABLE'
  | 'PROPOSAL_DROPPED'
  | 'NOT_LEADER'
  | 'TOO_LARGE'
  | 'STEP_LOCAL_MSG'
  | 'STEP_PEER_NOT_FOUND'
  | 'INVALID_CONFIG'
  | 'CORRUPT'
  | 'STOPPED'
  | 'TIMEOUT';

export class RaftError extends Error {
  constructor(readonly code: RaftErrorCode, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'RaftError';
  }
}

export const errCompacted = () => new RaftError('COMPACTED', 'requested index is unavailable due to compaction');
export const errUnavailable = () => new RaftError('UNAVAILABLE', 'requested entry at index is unavailable');
export const errSnapOutOfDate = () => new RaftError('SNAPSHOT_OUT_OF_DATE', 'requested index is older than the existing snapshot');
export const errSnapshotTemporarilyUnavailable = () =>
  new RaftError('SNAPSHOT_TEMPORARILY_UNAVAILABLE', 'snapshot is temporarily unavailable');
