// One-server-at-a-time membership changes (thesis §4.1): learners, promotion,
// removal, one pending change at a time, and no campaigning across an
// unapplied change.
import { describe, expect, it } from 'vitest';
import {
  ConfChangeType, EntryType, MemoryStorage, MessageType, NONE, StateType, decodeConfChange, encodeConfChange,
  type ConfChange, type NodeId,
} from '../../../../manager/raft/core/index.js';
import { ELECTION_TICK, Network, TestNode, ent, msg, newNode } from './harness.js';

function cc(type: ConfChangeType, nodeId: NodeId): ConfChange {
  return { type, nodeId, context: new Uint8Array(0) };
}

function proposeCC(net: Network, leader: NodeId, change: ConfChange): number {
  const { index } = net.node(leader).raw.proposeConfChange(change);
  net.collect(leader);
  return index;
}

/** Bootstrapped 3-node cluster with an empty node 4 added as a learner and caught up. */
function withLearner4(): Network {
  const net = Network.bootstrap(3);
  net.elect(1);
  net.add(new TestNode(4, new MemoryStorage()));
  proposeCC(net, 1, cc(ConfChangeType.AddLearner, 4));
  net.flush();
  return net;
}

describe('membership', () => {
  it('AddLearner: the learner receives entries but never campaigns or counts', () => {
    const net = withLearner4();
    const lead = net.node(1);
    const n4 = net.node(4);
    expect(lead.raft.prs.learnerIds()).toEqual([4]);
    expect(n4.raft.isLearner).toBe(true);
    expect(n4.raft.promotable()).toBe(false);
    const { index } = net.propose(1, 'x');
    net.flush();
    expect(n4.lastIndex()).toBe(index);
    expect(n4.commit()).toBe(index);
    expect(n4.logTerms()).toEqual(lead.logTerms());

    // Cut off from everyone for many election timeouts: it never campaigns.
    net.isolate(4);
    const term = n4.term();
    for (let i = 0; i < 5 * ELECTION_TICK; i++) net.tick(4);
    expect(n4.state()).toBe(StateType.Follower);
    expect(n4.term()).toBe(term);
    expect(net.outbox.filter((m) => m.from === 4)).toEqual([]);
    n4.raw.campaign();
    expect(n4.state()).toBe(StateType.Follower);
    net.discard();
    net.heal();

    // Its acknowledgement alone does not commit anything.
    net.cut(1, 2);
    net.cut(1, 3);
    const before = lead.commit();
    const { index: y } = net.propose(1, 'y');
    net.flush();
    expect(lead.raft.prs.progress.get(4)!.match).toBe(y);
    expect(lead.commit()).toBe(before);
  });

  it('a newly added member is contacted as soon as the leader applies the change, without waiting for a heartbeat', () => {
    const net = Network.bootstrap(3);
    const lead = net.elect(1);
    lead.autoApplyConfChange = false;
    const index = proposeCC(net, 1, cc(ConfChangeType.AddLearner, 4));
    net.flush();
    expect(lead.commit()).toBe(index);
    expect(net.outbox).toEqual([]);
    lead.raw.applyConfChange(cc(ConfChangeType.AddLearner, 4));
    const out = net.collect(1);
    expect(out.map((m) => [m.type, m.to])).toEqual([[MessageType.App, 4]]);
    expect(lead.raft.prs.progress.get(4)!.isPaused()).toBe(true); // a probe is in flight
  });

  it('AddVoter promotes a learner, which then counts toward the quorum', () => {
    const net = withLearner4();
    const lead = net.node(1);
    const n4 = net.node(4);
    proposeCC(net, 1, cc(ConfChangeType.AddVoter, 4));
    net.flush();
    for (const n of net.nodes.values()) expect(n.raft.confState(), `node ${n.id}`).toEqual({ voters: [1, 2, 3, 4], learners: [] });
    expect(n4.raft.isLearner).toBe(false);
    expect(n4.raft.promotable()).toBe(true);
    expect(lead.raft.prs.quorum()).toBe(3);

    // With node 3 unreachable, the leader needs node 4 and node 2.
    net.cut(1, 3);
    net.cut(1, 4);
    const a = net.propose(1, 'a').index;
    net.flush();
    expect(lead.commit()).toBe(a - 1);
    net.heal(4);
    net.tick(1);
    net.flush();
    expect(lead.commit()).toBe(a);
  });

  it('RemoveNode shrinks the quorum, so a pending entry can commit', () => {
    const net = Network.bootstrap(2);
    const lead = net.elect(1);
    lead.autoApplyConfChange = false;
    expect(lead.raft.prs.quorum()).toBe(2);
    net.cut(1, 2);
    const ccIndex = proposeCC(net, 1, cc(ConfChangeType.RemoveNode, 2));
    const x = net.propose(1, 'x').index;
    expect(x).toBe(ccIndex + 1);
    expect(lead.commit()).toBe(ccIndex - 1);

    // Node 2 acknowledges the conf change entry only: it commits, "x" does not.
    lead.raw.step(msg(MessageType.AppResp, 2, 1, { term: lead.term(), index: ccIndex }));
    net.collect(1);
    expect(lead.commit()).toBe(ccIndex);
    const committedCC = lead.applied[lead.applied.length - 1]!;
    expect(committedCC.index).toBe(ccIndex);
    expect(committedCC.type).toBe(EntryType.ConfChange);

    // Applying it leaves a quorum of one: "x" commits at once.
    lead.raw.applyConfChange(decodeConfChange(committedCC.data));
    expect(lead.raft.prs.quorum()).toBe(1);
    expect(lead.commit()).toBe(x);
    net.collect(1);
    expect(lead.applied.map((e) => e.index)).toContain(x);
  });

  it.each([
    { name: 'while the first is pending, a second change becomes an empty entry', waitForApply: false, secondIsConfChange: false },
    { name: 'after the first is applied, a second change is accepted', waitForApply: true, secondIsConfChange: true },
  ])('$name', ({ waitForApply, secondIsConfChange }) => {
    const net = Network.bootstrap(3);
    const lead = net.elect(1);
    const first = proposeCC(net, 1, cc(ConfChangeType.AddLearner, 4));
    if (waitForApply) net.flush();
    const second = proposeCC(net, 1, cc(ConfChangeType.AddLearner, 5));
    expect(second).toBe(lead.lastIndex());
    const e1 = lead.log().find((e) => e.index === first)!;
    const e2 = lead.log().find((e) => e.index === second)!;
    expect(e1.type).toBe(EntryType.ConfChange);
    expect(e2.type).toBe(secondIsConfChange ? EntryType.ConfChange : EntryType.Normal);
    if (!secondIsConfChange) expect(e2.data.byteLength).toBe(0);
    net.flush();
    expect(lead.raft.prs.learnerIds()).toEqual(secondIsConfChange ? [4, 5] : [4]);
  });

  it('a leader that removes itself steps down, and the others elect a new leader', () => {
    const net = Network.bootstrap(3);
    const lead = net.elect(1);
    const term = lead.term();
    proposeCC(net, 1, cc(ConfChangeType.RemoveNode, 1));
    net.flush();
    expect(lead.state()).toBe(StateType.Follower);
    expect(lead.raft.lead).toBe(NONE);
    expect(lead.raft.promotable()).toBe(false);
    for (const id of [2, 3]) expect(net.node(id).raft.confState()).toEqual({ voters: [2, 3], learners: [] });
    expect(() => lead.raw.propose(new Uint8Array([1]))).toThrow(expect.objectContaining({ code: 'NOT_LEADER' }));

    net.remove(1);
    for (let i = 0; i < 5 * ELECTION_TICK && net.leaders().length === 0; i++) net.tickAll(1);
    const leaders = net.leaders();
    expect(leaders).toHaveLength(1);
    expect([2, 3]).toContain(leaders[0]!.id);
    expect(leaders[0]!.term()).toBeGreaterThan(term);
    const { index } = net.propose(leaders[0]!.id, 'after');
    net.flush();
    expect(net.node(2).commit()).toBe(index);
    expect(net.node(3).commit()).toBe(index);
  });

  // Node 1's log: index 1 (term 1) normal, index 2 (term 1) as given; both committed.
  it.each([
    { name: 'committed conf change not yet applied', type: EntryType.ConfChange, applied: 1, campaigns: false },
    { name: 'committed conf change applied', type: EntryType.ConfChange, applied: 2, campaigns: true },
    { name: 'committed normal entry not yet applied', type: EntryType.Normal, applied: 1, campaigns: true },
  ])('$name: campaigns=$campaigns', ({ type, applied, campaigns }) => {
    const data = type === EntryType.ConfChange ? encodeConfChange(cc(ConfChangeType.AddLearner, 9)) : new Uint8Array(0);
    const n = newNode(1, { voters: [1, 2, 3], entries: [ent(1, 1), ent(2, 1, data, type)], term: 1, commit: 2 }, { applied });
    n.raw.campaign();
    expect(n.state()).toBe(campaigns ? StateType.Candidate : StateType.Follower);
    expect(n.term()).toBe(campaigns ? 2 : 1);
    // Election timeouts do not get around it either.
    if (!campaigns) {
      for (let i = 0; i < 3 * ELECTION_TICK; i++) n.raw.tick();
      expect(n.state()).toBe(StateType.Follower);
      expect(n.raft.msgs.filter((m) => m.type === MessageType.Vote)).toEqual([]);
      // Once the driver applies it, campaigning works.
      n.drain();
      expect(n.raft.raftLog.applied).toBe(2);
      n.raw.campaign();
      expect(n.state()).toBe(StateType.Candidate);
    }
  });
});
