// Errors the store reports. Business-rule failures are values of this class,
// produced identically on every member by apply(), so callers can branch on
// `code` without parsing messages.

export type StoreErrorCode =
  /** An update or delete read an object at a version that is no longer current. Retryable. */
  | 'CONFLICT'
  /** A create hit an existing id, or a write took a unique index key held by another object. */
  | 'EXISTS'
  /** An update or delete named an object that does not exist. */
  | 'NOT_FOUND'
  /** A malformed entry or object (unknown table, codec failure, id mismatch). */
  | 'INVALID'
  /** A watcher fell more than its buffer behind; re-sync with viewAndWatch(). */
  | 'WATCH_OVERFLOW'
  /** The store was replaced by a snapshot; watchers must re-sync with viewAndWatch(). */
  | 'WATCH_RESTORED'
  /** The store was closed. */
  | 'CLOSED';

export interface StoreErrorDetails {
  table?: string;
  id?: string;
  expected?: number;
  actual?: number;
  index?: string;
  key?: string;
  /** For unique index violations: the object already holding the key. */
  holder?: string;
}

export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string, readonly details: StoreErrorDetails = {}) {
    super(message);
    this.name = 'StoreError';
  }
}

export function isStoreError(e: unknown, code?: StoreErrorCode): e is StoreError {
  return e instanceof StoreError && (code === undefined || e.code === code);
}
