// Errors the core raises to its driver: codes and details callers match on.
import { describe, expect, it } from 'vitest';
import {
  MessageType, MemoryStorage, NONE, RaftError, RawNode, ReadOnlyOption, StateType, emptyMessage,
} from '../../../../manager/raft/core/index.js';
import type { Config } from '../../../../manager/raft/core/raft.js';
import { Network, bytes, newNode } from './harness.js';

function raftErrorOf(fn: () => unknown): RaftError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(RaftError);
    return e as RaftError;
  }
  throw new Error('expected a RaftError, nothing was thrown');
}

describe('errors', () => {
  it.each([
    { name: 'follower that knows the leader', setup: 'follower', leader: 1 },
    { name: 'follower with no known leader', setup: 'fresh', leader: NONE },
    { name: 'candidate', setup: 'candidate', leader: NONE },
  ])('propose on a $name throws NOT_LEADER with details.leader=$leader', ({ setup, leader }) => {
    const net = Network.create(3);
    if (setup === 'follower') net.elect(1);
    if (setup === 'candidate') net.campaign(2);
    const n = net.node(2);
    if (setup === 'candidate') expect(n.state()).toBe(StateType.Candidate);
    const before = n.lastIndex();
    const err = raftErrorOf(() => n.raw.propose(bytes('x')));
    expect(err.code).toBe('NOT_LEADER');
    expect(err.details).toEqual({ leader });
    expect(n.lastIndex()).toBe(before);
    expect(n.raft.msgs.filter((m) => m.type === MessageType.Prop)).toEqual([]);
    // Same for conf changes.
    expect(raftErrorOf(() => n.raw.proposeConfChange({ type: 0, nodeId: 4, context: new Uint8Array(0) })).code).toBe('NOT_LEADER');
  });

  it.each([
    { size: 16, limit: 16, ok: true },
    { size: 17, limit: 16, ok: false },
    { size: 0, limit: 0, ok: true },
  ])('a proposal of $size bytes with maxEntryBytes=$limit: accepted=$ok', ({ size, limit, ok }) => {
    const net = Network.create(1, { maxEntryBytes: limit });
    const lead = net.elect(1);
    const before = lead.lastIndex();
    if (ok) {
      expect(lead.raw.propose(new Uint8Array(size)).index).toBe(before + 1);
    } else {
      const err = raftErrorOf(() => lead.raw.propose(new Uint8Array(size)));
      expect(err.code).toBe('TOO_LARGE');
      expect(lead.lastIndex()).toBe(before);
    }
  });

  it('a batch with one oversized entry is refused as a whole', () => {
    const net = Network.create(1, { maxEntryBytes: 8 });
    const lead = net.elect(1);
    const before = lead.lastIndex();
    const err = raftErrorOf(() => lead.raw.proposeBatch([new Uint8Array(4), new Uint8Array(9), new Uint8Array(1)]));
    expect(err.code).toBe('TOO_LARGE');
    expect(lead.lastIndex()).toBe(before);
  });

  it.each([
    MessageType.Hup, MessageType.Beat, MessageType.Unreachable, MessageType.SnapStatus, MessageType.CheckQuorum,
  ])('stepping local message type %i through RawNode.step throws STEP_LOCAL_MSG', (type) => {
    const n = newNode(1, { voters: [1, 2, 3] });
    const m = emptyMessage(type, 1, 2);
    const err = raftErrorOf(() => n.raw.step(m));
    expect(err.code).toBe('STEP_LOCAL_MSG');
    expect(n.state()).toBe(StateType.Follower);
    expect(n.term()).toBe(0);
  });

  it('responses from peers outside the configuration are ignored', () => {
    const net = Network.create(3);
    const lead = net.elect(1);
    const m = emptyMessage(MessageType.AppResp, 1, 9);
    m.term = lead.term();
    m.index = 100;
    expect(() => lead.raw.step(m)).not.toThrow();
    expect(lead.raft.prs.progress.has(9)).toBe(false);
  });

  const base = (): Config => ({ id: 1, electionTick: 10, heartbeatTick: 1, storage: new MemoryStorage(), random: () => 0 });
  it.each<{ name: string; change: Partial<Config> }>([
    { name: 'id 0', change: { id: 0 } },
    { name: 'electionTick == heartbeatTick', change: { electionTick: 3, heartbeatTick: 3 } },
    { name: 'electionTick < heartbeatTick', change: { electionTick: 2, heartbeatTick: 5 } },
    { name: 'heartbeatTick 0', change: { heartbeatTick: 0 } },
    { name: 'maxInflightMsgs 0', change: { maxInflightMsgs: 0 } },
    { name: 'LeaseBased reads without CheckQuorum', change: { readOnlyOption: ReadOnlyOption.LeaseBased } },
  ])('invalid config ($name) throws INVALID_CONFIG', ({ change }) => {
    expect(() => new RawNode(base())).not.toThrow();
    const err = raftErrorOf(() => new RawNode({ ...base(), ...change }));
    expect(err.code).toBe('INVALID_CONFIG');
  });

  it('a restart whose hard state commits past the log is refused as corrupt', () => {
    const err = raftErrorOf(() => newNode(1, { voters: [1], terms: [1, 1], term: 1, commit: 5 }));
    expect(err.code).toBe('CORRUPT');
  });
});
