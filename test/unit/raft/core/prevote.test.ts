// PreVote and CheckQuorum (thesis §9.6): a partitioned node must not disrupt a
// healthy leader, and a leader cut off from its quorum must step down.
import { describe, expect, it } from 'vitest';
import { MessageType, NONE, StateType } from '../../../../manager/raft/core/index.js';
import { CAMPAIGN_TRANSFER } from '../../../../manager/raft/core/raft.js';
import { ELECTION_TICK, Network, msg } from './harness.js';

describe('PreVote', () => {
  it.each([
    { preVote: true, termGrowsWhileIsolated: false, leaderDisrupted: false },
    { preVote: false, termGrowsWhileIsolated: true, leaderDisrupted: true },
  ])('an isolated node that rejoins (preVote=$preVote): term grows=$termGrowsWhileIsolated, leader disrupted=$leaderDisrupted',
    ({ preVote, termGrowsWhileIsolated, leaderDisrupted }) => {
      const net = Network.create(3, { preVote });
      const leader = net.elect(1);
      const n3 = net.node(3);
      const term = leader.term();

      net.isolate(3);
      // The majority keeps working, so the isolated node falls behind.
      net.propose(1, 'while-3-is-away');
      net.flush();
      for (let i = 0; i < 5 * ELECTION_TICK; i++) {
        net.tick(3);
        net.flush(); // everything it sends is lost
      }
      if (termGrowsWhileIsolated) {
        expect(n3.term()).toBeGreaterThan(term);
      } else {
        expect(n3.term()).toBe(term);
        expect(n3.state()).toBe(StateType.PreCandidate);
      }

      net.heal();
      let deposed = false;
      for (let i = 0; i < 3 * ELECTION_TICK; i++) {
        net.tickAll(1);
        if (leader.state() !== StateType.Leader || leader.term() !== term) deposed = true;
      }
      expect(deposed).toBe(leaderDisrupted);
      if (!leaderDisrupted) {
        expect(leader.state()).toBe(StateType.Leader);
        for (const n of net.nodes.values()) {
          expect(n.term()).toBe(term);
          expect(n.raft.lead).toBe(1);
        }
        // The rejoined node caught up.
        expect(n3.logTerms()).toEqual(leader.logTerms());
      } else {
        expect(leader.term()).toBeGreaterThan(term);
      }
    });

  it('a pre-candidate keeps its term and vote; a won pre-election then starts the real one', () => {
    const net = Network.create(3, { preVote: true });
    const n1 = net.node(1);
    net.campaign(1);
    expect(n1.state()).toBe(StateType.PreCandidate);
    expect(n1.term()).toBe(0);
    expect(n1.raft.vote).toBe(NONE);
    const pre = net.outbox.filter((m) => m.type === MessageType.PreVote);
    expect(pre.map((m) => m.term)).toEqual([1, 1]);
    // No Ready carried a term change yet: nothing to fsync for a pre-vote.
    expect(n1.readies.every((rd) => rd.hardState === undefined)).toBe(true);
    net.flush();
    expect(n1.state()).toBe(StateType.Leader);
    expect(n1.term()).toBe(1);
  });
});

describe('CheckQuorum', () => {
  it.each([
    { size: 3, cutFrom: [2, 3], stepsDown: true },
    { size: 3, cutFrom: [3], stepsDown: false },
    { size: 5, cutFrom: [2, 3, 4], stepsDown: true },
    { size: 5, cutFrom: [4, 5], stepsDown: false },
  ])('$size nodes, leader cut from $cutFrom: steps down=$stepsDown', ({ size, cutFrom, stepsDown }) => {
    const net = Network.create(size, { checkQuorum: true });
    const leader = net.elect(1);
    const term = leader.term();
    for (const id of cutFrom) net.cut(1, id);

    let ticks = 0;
    while (leader.state() === StateType.Leader && ticks < 10 * ELECTION_TICK) {
      net.tick(1);
      net.flush();
      ticks++;
    }
    if (stepsDown) {
      // It still leads for a full election timeout after losing contact, and
      // gives up within the next one.
      expect(ticks).toBeGreaterThan(ELECTION_TICK);
      expect(ticks).toBeLessThanOrEqual(2 * ELECTION_TICK);
      expect(leader.state()).toBe(StateType.Follower);
      expect(leader.raft.lead).toBe(NONE);
      expect(leader.term()).toBe(term);
    } else {
      expect(leader.state()).toBe(StateType.Leader);
    }
  });

  // A follower that heard from its leader within the election timeout is in a
  // lease: it ignores vote requests from a higher term unless the candidate
  // campaigns because the leader is handing over (TimeoutNow).
  it.each([
    { name: 'Vote, lease active', type: MessageType.Vote, transfer: false, leaseExpired: false, answered: false },
    { name: 'PreVote, lease active', type: MessageType.PreVote, transfer: false, leaseExpired: false, answered: false },
    { name: 'Vote, leadership-transfer campaign', type: MessageType.Vote, transfer: true, leaseExpired: false, answered: true },
    { name: 'Vote, lease expired', type: MessageType.Vote, transfer: false, leaseExpired: true, answered: true },
  ])('$name: answered=$answered', ({ type, transfer, leaseExpired, answered }) => {
    const net = Network.create(3, { checkQuorum: true, random: () => 0.5 });
    const leader = net.elect(1);
    net.tickAll(1); // a heartbeat round: followers just heard from the leader
    const term = leader.term();
    const n2 = net.node(2);
    if (leaseExpired) {
      net.isolate(2);
      net.tick(2, ELECTION_TICK); // electionElapsed reaches electionTick; timeout is 15, so no campaign
      net.flush();
      net.heal();
      expect(n2.state()).toBe(StateType.Follower);
    }
    const n3 = net.node(3);
    const req = msg(type, 3, 2, { term: term + 1, index: n3.lastIndex(), logTerm: n3.termAt(n3.lastIndex())! });
    if (transfer) req.context = CAMPAIGN_TRANSFER;
    const out = net.deliver(req);
    const resp = out.filter((m) => m.type === MessageType.VoteResp || m.type === MessageType.PreVoteResp);
    if (answered) {
      expect(resp).toHaveLength(1);
      expect(resp[0]!.reject).toBe(false);
      expect(n2.term()).toBe(term + 1);
      expect(n2.raft.vote).toBe(3);
    } else {
      expect(out).toEqual([]);
      expect(n2.term()).toBe(term);
      expect(n2.raft.vote).toBe(1); // its vote of this term, for the leader
      expect(n2.raft.lead).toBe(1);
    }
  });

  it('a stale leader healed from a partition learns the new term and steps down', () => {
    const net = Network.create(3, { checkQuorum: true });
    const old = net.elect(1);
    net.isolate(1);
    // The others' leases run out, then one of them wins a new term.
    let ticks = 0;
    while (![2, 3].some((id) => net.node(id).state() === StateType.Leader) && ticks++ < 10 * ELECTION_TICK) {
      net.tick(2);
      net.tick(3);
      net.flush();
    }
    const newLeader = [2, 3].map((id) => net.node(id)).find((n) => n.state() === StateType.Leader)!;
    expect(newLeader).toBeDefined();
    const newTerm = newLeader.term();
    expect(newTerm).toBeGreaterThan(old.term());
    net.heal();
    expect(old.state()).toBe(StateType.Leader); // it has not noticed yet
    net.tick(1); // its heartbeat reaches a follower of the newer term, which answers
    net.flush();
    expect(old.state()).toBe(StateType.Follower);
    expect(old.term()).toBe(newTerm);
  });
});
