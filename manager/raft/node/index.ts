export { RaftNode, type RaftNodeOptions, type StateMachine, type Transport, type NodeLogger } from './raftnode.js';
export type { Peers } from './envelope.js';
