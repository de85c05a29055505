// Linearizable reads without log writes (thesis §6.4): ReadIndex confirmed by
// a heartbeat quorum (Safe), or by the CheckQuorum lease (LeaseBased).
import { describe, expect, it } from 'vitest';
import { MessageType, ReadOnlyOption, StateType } from '../../../../manager/raft/core/index.js';
import { Network, bytes, newNode, text } from './harness.js';

const isHeartbeat = (m: { type: MessageType }) => m.type === MessageType.Heartbeat;

describe('ReadIndex (Safe)', () => {
  it.each([
    { size: 3, acksNeeded: 1 },
    { size: 5, acksNeeded: 2 },
  ])('on the leader of $size: a read state appears only after $acksNeeded heartbeat ack(s)', ({ size, acksNeeded }) => {
    const net = Network.create(size);
    const lead = net.elect(1);
    const commitAtRequest = lead.commit();
    lead.raw.readIndex(bytes('r1'));
    net.collect(1);
    expect(lead.readStates).toEqual([]);
    const hbs = net.outbox.filter(isHeartbeat);
    expect(hbs).toHaveLength(size - 1);
    for (const hb of hbs) expect(text(hb.context)).toBe('r1');

    net.round(isHeartbeat);
    const acks = net.take((m) => m.type === MessageType.HeartbeatResp);
    expect(acks).toHaveLength(size - 1);
    for (let i = 0; i < acks.length; i++) {
      net.deliver(acks[i]!);
      expect(lead.readStates, `after ${i + 1} ack(s)`).toHaveLength(i + 1 >= acksNeeded ? 1 : 0);
    }
    expect(text(lead.readStates[0]!.requestCtx)).toBe('r1');
    expect(lead.readStates[0]!.index).toBe(commitAtRequest);
  });

  it('the read index is the commit index when the read was requested, not when it was confirmed', () => {
    const net = Network.create(3);
    const lead = net.elect(1);
    const c0 = lead.commit();
    lead.raw.readIndex(bytes('early'));
    net.collect(1);
    const held = net.take(isHeartbeat);
    for (let i = 0; i < 3; i++) net.propose(1, `w${i}`);
    net.flush();
    expect(lead.commit()).toBe(c0 + 3);
    expect(lead.readStates).toEqual([]);
    net.send(...held);
    expect(lead.readStates.map((rs) => [text(rs.requestCtx), rs.index])).toEqual([['early', c0]]);
  });

  it('one heartbeat round confirms every read queued before it', () => {
    const net = Network.create(3);
    const lead = net.elect(1);
    lead.raw.readIndex(bytes('a'));
    net.collect(1);
    net.discard(isHeartbeat); // the round for "a" is lost
    net.propose(1, 'w');
    net.flush();
    lead.raw.readIndex(bytes('b'));
    net.collect(1);
    net.flush();
    expect(lead.readStates.map((rs) => text(rs.requestCtx))).toEqual(['a', 'b']);
    expect(lead.readStates[0]!.index).toBe(lead.commit() - 1);
    expect(lead.readStates[1]!.index).toBe(lead.commit());
  });

  it('a new leader answers only once it has committed an entry of its own term', () => {
    const net = Network.create(3);
    const lead = net.node(1);
    net.campaign(1);
    net.flush((m) => m.type === MessageType.Vote || m.type === MessageType.VoteResp);
    expect(lead.state()).toBe(StateType.Leader);
    expect(lead.commit()).toBe(0); // its empty entry is not committed yet
    lead.raw.readIndex(bytes('r'));
    net.collect(1);
    expect(net.outbox.filter(isHeartbeat)).toHaveLength(0); // held back, not even a round started
    expect(lead.readStates).toEqual([]);

    net.flush();
    expect(lead.commit()).toBe(1);
    expect(lead.readStates).toHaveLength(1);
    expect(lead.readStates[0]!.index).toBe(1);
    expect(lead.termAt(lead.readStates[0]!.index)).toBe(lead.term());
  });

  it('a follower forwards its read to the leader and gets the answer back', () => {
    const net = Network.create(3);
    const lead = net.elect(1);
    net.propose(1, 'w');
    net.flush();
    const f = net.node(2);
    f.raw.readIndex(bytes('from-2'));
    const out = net.collect(2);
    expect(out.map((m) => [m.type, m.to])).toEqual([[MessageType.ReadIndex, 1]]);
    net.flush();
    expect(f.readStates.map((rs) => [text(rs.requestCtx), rs.index])).toEqual([['from-2', lead.commit()]]);
    expect(lead.readStates).toEqual([]);
    expect(net.deliveredWhere((m) => m.type === MessageType.ReadIndexResp && m.to === 2)).toHaveLength(1);
  });

  it('a follower without a leader refuses the read', () => {
    const n = newNode(2, { voters: [1, 2, 3] });
    expect(() => n.raw.readIndex(bytes('x'))).toThrow(expect.objectContaining({ code: 'PROPOSAL_DROPPED' }));
  });

  it('a single-node leader answers at once', () => {
    const net = Network.create(1);
    const lead = net.elect(1);
    lead.raw.readIndex(bytes('solo'));
    net.collect(1);
    expect(lead.readStates.map((rs) => rs.index)).toEqual([lead.commit()]);
  });
});

describe('ReadIndex (LeaseBased)', () => {
  it.each([
    { option: ReadOnlyOption.Safe, immediate: false, heartbeats: 2 },
    { option: ReadOnlyOption.LeaseBased, immediate: true, heartbeats: 0 },
  ])('readOnlyOption=$option: answered without a heartbeat round=$immediate', ({ option, immediate, heartbeats }) => {
    const net = Network.create(3, { checkQuorum: true, readOnlyOption: option });
    const lead = net.elect(1);
    lead.raw.readIndex(bytes('r'));
    net.collect(1);
    expect(net.outbox.filter(isHeartbeat)).toHaveLength(heartbeats);
    expect(lead.readStates.map((rs) => rs.index)).toEqual(immediate ? [lead.commit()] : []);
    net.flush();
    expect(lead.readStates.map((rs) => rs.index)).toEqual([lead.commit()]);
  });

  it('LeaseBased without CheckQuorum is an invalid configuration', () => {
    expect(() => newNode(1, { voters: [1] }, { readOnlyOption: ReadOnlyOption.LeaseBased })).toThrow(
      expect.objectContaining({ code: 'INVALID_CONFIG' }),
    );
    expect(() => newNode(1, { voters: [1] }, { readOnlyOption: ReadOnlyOption.LeaseBased, checkQuorum: true })).not.toThrow();
  });
});
