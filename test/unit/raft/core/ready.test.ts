// The Ready/advance contract: what must be synced, what may be sent before it
// is durable, and recovering exactly from what was persisted.
import { describe, expect, it } from 'vitest';
import { MessageType, NONE, StateType, type Ready } from '../../../../manager/raft/core/index.js';
import { Network, TestNode, bootstrapStorage, ent, msg, newNode } from './harness.js';

/** Take one Ready from a node by hand (and hand it back to the driver). */
function takeReady(net: Network, id: number): Ready {
  const n = net.node(id);
  expect(n.raw.hasReady()).toBe(true);
  const rd = n.raw.ready();
  net.outbox.push(...n.handle(rd));
  return rd;
}

describe('Ready', () => {
  it.each<{ name: string; mustSync: boolean; make: () => Ready }>([
    {
      name: 'only the commit index changed',
      mustSync: false,
      make: () => {
        const net = Network.create(3);
        const lead = net.elect(1);
        net.propose(1, 'x');
        net.round((m) => m.type === MessageType.App && m.to === 2);
        net.round((m) => m.type === MessageType.AppResp && m.from === 2);
        net.discard(); // the append that would tell node 2 the new commit index is lost
        // Node 2 already stores the entry; the heartbeat only raises its commit index.
        const f = net.node(2);
        expect(f.commit()).toBe(lead.commit() - 1);
        f.raw.step(msg(MessageType.Heartbeat, 1, 2, { term: lead.term(), commit: lead.commit() }));
        const rd = takeReady(net, 2);
        expect(rd.hardState?.commit).toBe(lead.commit());
        expect(rd.entries).toEqual([]);
        return rd;
      },
    },
    {
      name: 'new entries',
      mustSync: true,
      make: () => {
        const net = Network.create(3);
        const lead = net.elect(1);
        lead.raw.propose(new Uint8Array([1]));
        return takeReady(net, 1);
      },
    },
    {
      name: 'the term changed',
      mustSync: true,
      make: () => {
        const n = newNode(2, { voters: [1, 2, 3], terms: [1], term: 1 });
        n.drain();
        n.raw.step(msg(MessageType.Heartbeat, 1, 2, { term: 2 }));
        const rd = n.raw.ready();
        expect(rd.entries).toEqual([]);
        expect(rd.hardState).toEqual({ term: 2, vote: NONE, commit: 0 });
        return rd;
      },
    },
    {
      name: 'the vote changed',
      mustSync: true,
      make: () => {
        const n = newNode(2, { voters: [1, 2, 3], terms: [1], term: 2 });
        n.drain();
        n.raw.step(msg(MessageType.Vote, 1, 2, { term: 2, index: 1, logTerm: 1 }));
        const rd = n.raw.ready();
        expect(rd.hardState).toEqual({ term: 2, vote: 1, commit: 0 });
        return rd;
      },
    },
    {
      name: 'only messages (a heartbeat round)',
      mustSync: false,
      make: () => {
        const net = Network.create(3);
        net.elect(1);
        net.node(1).raw.tick();
        const rd = takeReady(net, 1);
        expect(rd.hardState).toBeUndefined();
        expect(rd.messages.map((m) => m.type)).toEqual([MessageType.Heartbeat, MessageType.Heartbeat]);
        return rd;
      },
    },
  ])('mustSync when $name: $mustSync', ({ mustSync, make }) => {
    expect(make().mustSync).toBe(mustSync);
  });

  it.each<{ name: string; sendFirst: boolean; make: () => Ready }>([
    {
      name: 'a candidate that just bumped its term and voted for itself',
      sendFirst: false,
      make: () => {
        const net = Network.create(3);
        net.node(1).raw.campaign();
        return takeReady(net, 1);
      },
    },
    {
      name: 'a follower that just voted',
      sendFirst: false,
      make: () => {
        const net = Network.create(3);
        net.campaign(1);
        const vote = net.take((m) => m.to === 2)[0]!;
        net.node(2).raw.step(vote);
        const rd = takeReady(net, 2);
        expect(rd.messages.map((m) => m.type)).toEqual([MessageType.VoteResp]);
        return rd;
      },
    },
    {
      name: 'the node that just became leader (its term and vote were already synced)',
      sendFirst: false,
      make: () => {
        const net = Network.create(3);
        net.campaign(1);
        net.round((m) => m.type === MessageType.Vote);
        for (const m of net.take((m) => m.type === MessageType.VoteResp)) net.node(1).raw.step(m);
        const rd = takeReady(net, 1);
        expect(rd.softState?.state).toBe(StateType.Leader);
        expect(rd.hardState).toBeUndefined();
        expect(rd.entries).toHaveLength(1);
        return rd;
      },
    },
    {
      name: 'a single node that became leader in the same Ready as its term change',
      sendFirst: false,
      make: () => {
        const net = Network.create(1);
        net.node(1).raw.campaign();
        const rd = takeReady(net, 1);
        expect(rd.softState?.state).toBe(StateType.Leader);
        return rd;
      },
    },
    {
      name: 'a steady leader appending a proposal',
      sendFirst: true,
      make: () => {
        const net = Network.create(3);
        const lead = net.elect(1);
        lead.raw.propose(new Uint8Array([1]));
        const rd = takeReady(net, 1);
        expect(rd.entries).toHaveLength(1);
        expect(rd.messages.filter((m) => m.type === MessageType.App)).toHaveLength(2);
        return rd;
      },
    },
    {
      name: 'a follower appending entries',
      sendFirst: false,
      make: () => {
        const net = Network.create(3);
        net.elect(1);
        net.propose(1, 'x');
        net.round((m) => m.to === 2 && m.type === MessageType.App);
        return net.node(2).readies[net.node(2).readies.length - 1]!;
      },
    },
  ])('sendFirst for $name: $sendFirst', ({ sendFirst, make }) => {
    expect(make().sendFirst).toBe(sendFirst);
  });

  it('one Ready per step; nothing left after advance', () => {
    const net = Network.create(3);
    const lead = net.elect(1);
    lead.raw.propose(new Uint8Array([7]));
    const rd = lead.raw.ready();
    expect(rd.entries).toHaveLength(1);
    lead.handle(rd);
    expect(lead.raw.hasReady()).toBe(false);
    // The entry was persisted by the driver and is now stable.
    expect(lead.raft.raftLog.unstableEntries()).toEqual([]);
    expect(lead.storage.lastIndex()).toBe(lead.lastIndex());
  });
});

describe('restart', () => {
  it.each([
    { name: 'vote and partial commit', terms: [1, 1, 2, 3], term: 4, vote: 2, commit: 3, applied: 2 },
    { name: 'nothing committed', terms: [1, 2], term: 2, vote: 1, commit: 0, applied: undefined },
    { name: 'everything applied', terms: [1, 1, 1], term: 1, vote: NONE, commit: 3, applied: 3 },
  ])('from MemoryStorage ($name) the node recovers term, vote, commit and log exactly', ({ terms, term, vote, commit, applied }) => {
    const storage = newNode(1, { voters: [1, 2, 3], terms, term, vote, commit }).storage;
    const n = new TestNode(1, storage, applied !== undefined ? { applied } : {});
    expect(n.term()).toBe(term);
    expect(n.raft.vote).toBe(vote);
    expect(n.commit()).toBe(commit);
    expect(n.state()).toBe(StateType.Follower);
    expect(n.raft.lead).toBe(NONE);
    expect(n.log()).toEqual(terms.map((t, i) => ent(i + 1, t)));
    expect(n.raft.raftLog.unstableEntries()).toEqual([]);
    // The first Ready hands out exactly the committed entries not yet applied, and no hard state.
    const from = (applied ?? 0) + 1;
    if (commit >= from) {
      const rd = n.raw.ready();
      expect(rd.committedEntries.map((e) => e.index)).toEqual(Array.from({ length: commit - from + 1 }, (_, i) => from + i));
      expect(rd.hardState).toBeUndefined();
      expect(rd.entries).toEqual([]);
    } else {
      expect(n.raw.hasReady()).toBe(false);
    }
  });

  it('a member of a running cluster restarts with exactly what it persisted', () => {
    const net = Network.bootstrap(3);
    net.elect(1);
    for (let i = 0; i < 5; i++) net.propose(1, `e${i}`);
    net.flush();
    net.campaign(2); // term change and vote recorded in node 2's hard state
    net.flush();
    const n2 = net.node(2);
    const before = { term: n2.term(), vote: n2.raft.vote, commit: n2.commit(), log: n2.log(), conf: n2.raft.confState() };
    expect(before.vote).toBe(2);
    n2.restart();
    expect(n2.term()).toBe(before.term);
    expect(n2.raft.vote).toBe(before.vote);
    expect(n2.commit()).toBe(before.commit);
    expect(n2.log()).toEqual(before.log);
    expect(n2.raft.confState()).toEqual(before.conf);
    expect(n2.raft.raftLog.firstIndex()).toBe(2); // after the bootstrap snapshot
    expect(n2.raw.hasReady()).toBe(false); // everything was applied before the restart
    // It rejoins the cluster normally.
    net.tickAll(30);
    expect(net.leaders()).toHaveLength(1);
    expect(n2.commit()).toBe(net.leaders()[0]!.commit());
  });

  it('restart from a snapshot plus entries', () => {
    const storage = bootstrapStorage([1, 2, 3]);
    storage.append([ent(2, 1), ent(3, 2), ent(4, 2)]);
    storage.setHardState({ term: 2, vote: 3, commit: 3 });
    const n = new TestNode(1, storage, { applied: 1 });
    expect(n.raft.raftLog.firstIndex()).toBe(2);
    expect(n.logTerms()).toEqual([1, 2, 2]);
    expect(n.commit()).toBe(3);
    expect(n.raft.confState()).toEqual({ voters: [1, 2, 3], learners: [] });
    expect(n.raw.ready().committedEntries.map((e) => e.index)).toEqual([2, 3]);
  });
});
