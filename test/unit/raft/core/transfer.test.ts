// Leadership transfer (thesis §3.10): the leader brings the transferee up to
// date, then tells it to campaign at once with TimeoutNow.
import { describe, expect, it } from 'vitest';
import { MessageType, NONE, StateType } from '../../../../manager/raft/core/index.js';
import { ELECTION_TICK, Network, bytes } from './harness.js';

const isTimeoutNow = (m: { type: MessageType }) => m.type === MessageType.TimeoutNow;

describe('leadership transfer', () => {
  it.each([
    { preVote: false, checkQuorum: false },
    { preVote: true, checkQuorum: false },
    { preVote: false, checkQuorum: true },
    { preVote: true, checkQuorum: true },
  ])('to an up-to-date follower: TimeoutNow, and it wins at once (preVote=$preVote, checkQuorum=$checkQuorum)', (cfg) => {
    const net = Network.create(3, cfg);
    const lead = net.elect(1);
    net.tickAll(1); // a heartbeat round: with CheckQuorum every follower is inside its lease
    const term = lead.term();
    lead.raw.transferLeader(2);
    const out = net.collect(1);
    expect(out.map((m) => [m.type, m.to])).toEqual([[MessageType.TimeoutNow, 2]]);
    expect(lead.raft.leadTransferee).toBe(2);
    net.flush(); // no ticks: it must win without waiting out anybody's timeout
    const n2 = net.node(2);
    expect(n2.state()).toBe(StateType.Leader);
    expect(n2.term()).toBe(term + 1);
    for (const n of net.nodes.values()) {
      expect(n.raft.lead).toBe(2);
      expect(n.term()).toBe(term + 1);
    }
    expect(lead.raft.leadTransferee).toBe(NONE);
    // It skipped the pre-vote: straight to a real vote marked as a transfer.
    expect(net.deliveredWhere((m) => m.type === MessageType.PreVote && m.from === 2)).toEqual([]);
  });

  it('to a lagging follower: the leader first catches it up, then sends TimeoutNow', () => {
    const net = Network.create(3);
    const lead = net.elect(1);
    net.cut(1, 3);
    for (let i = 0; i < 5; i++) net.propose(1, `e${i}`);
    net.flush();
    net.heal();
    const n3 = net.node(3);
    expect(n3.lastIndex()).toBeLessThan(lead.lastIndex());

    lead.raw.transferLeader(3);
    const out = net.collect(1);
    expect(out.filter(isTimeoutNow)).toEqual([]);
    expect(out.map((m) => [m.type, m.to])).toEqual([[MessageType.App, 3]]);
    const last = lead.lastIndex();
    net.flush();

    expect(n3.state()).toBe(StateType.Leader);
    const order = net.delivered;
    const timeoutNow = order.findIndex(isTimeoutNow);
    const caughtUp = order.findIndex((m) => m.type === MessageType.AppResp && m.from === 3 && !m.reject && m.index === last);
    expect(caughtUp).toBeGreaterThanOrEqual(0);
    expect(timeoutNow).toBeGreaterThan(caughtUp);
    expect(n3.log().slice(0, last).map((e) => e.term)).toEqual(lead.log().slice(0, last).map((e) => e.term));
  });

  it.each([
    { during: true, outcome: 'PROPOSAL_DROPPED' },
    { during: false, outcome: 'accepted' },
  ])('proposals during a transfer are dropped (during=$during -> $outcome)', ({ during }) => {
    const net = Network.create(3);
    const lead = net.elect(1);
    net.isolate(3); // the transfer cannot finish
    if (during) lead.raw.transferLeader(3);
    const before = lead.lastIndex();
    if (during) {
      expect(() => lead.raw.propose(bytes('x'))).toThrow(expect.objectContaining({ code: 'PROPOSAL_DROPPED' }));
      expect(lead.lastIndex()).toBe(before);
    } else {
      expect(lead.raw.propose(bytes('x')).index).toBe(before + 1);
    }
  });

  it('a transfer that does not finish within an election timeout is abandoned', () => {
    const net = Network.create(3);
    const lead = net.elect(1);
    net.isolate(3);
    lead.raw.transferLeader(3);
    expect(lead.raft.leadTransferee).toBe(3);
    net.tick(1, ELECTION_TICK - 1);
    net.flush();
    expect(lead.raft.leadTransferee).toBe(3);
    net.tick(1);
    net.flush();
    expect(lead.raft.leadTransferee).toBe(NONE);
    expect(lead.state()).toBe(StateType.Leader);
    const { index } = net.propose(1, 'after');
    net.flush();
    expect(lead.commit()).toBe(index);
  });

  it('a transfer to a learner is ignored', () => {
    const net = Network.create(3, {}, [4]);
    const lead = net.elect(1);
    lead.raw.transferLeader(4);
    expect(lead.raft.leadTransferee).toBe(NONE);
    expect(net.collect(1).filter(isTimeoutNow)).toEqual([]);
    net.flush();
    expect(lead.state()).toBe(StateType.Leader);
    expect(net.node(4).state()).toBe(StateType.Follower);
  });

  it('a transfer to the leader itself is a no-op; a follower forwards a transfer request to the leader', () => {
    const net = Network.create(3);
    const lead = net.elect(1);
    lead.raw.transferLeader(1);
    expect(lead.raft.leadTransferee).toBe(NONE);
    net.node(2).raw.transferLeader(2);
    net.collect(2);
    net.flush();
    expect(net.node(2).state()).toBe(StateType.Leader);
    expect(lead.state()).toBe(StateType.Follower);
  });
});
