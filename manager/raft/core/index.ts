// Public surface of the raft core.
export * from './types.js';
export * from './errors.js';
export { MemoryStorage, bootstrapSnapshot, type Storage } from './storage.js';
export { RawNode, type Status, type PeerStatus } from './rawnode.js';
export { Raft, type Config, type RaftLogger } from './raft.js';
export { ReadOnlyOption } from './readonly.js';
export { encodeConfChange, decodeConfChange } from './confchange.js';
