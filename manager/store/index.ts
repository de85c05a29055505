export {
  Store, type StoreOptions, type Proposer, type ReadTx, type Tx, type UpdateOptions, type UpdateResult, type ApplyResult,
  type Batch, type BatchOptions, type BatchResult,
} from './store.js';
export { StoreError, isStoreError, type StoreErrorCode, type StoreErrorDetails } from './errors.js';
export {
  defineTable, jsonCodec, deepFreeze,
  type StoreObject, type Meta, type NewObject, type Codec, type IndexDef, type TableDef, type TableRef,
} from './types.js';
export { Watch, type StoreEvent, type EventKind, type WatchOptions } from './watch.js';
export { encodeEntry, decodeEntry, encodeSnapshot, decodeSnapshot, type Entry, type EntryAction, type ActionOp } from './encoding.js';
export { LeadershipGate, type LeadershipSource, type LeaderTask, type LeadershipGateOptions } from './leadership.js';
