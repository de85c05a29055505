// Leader election (Raft paper §5.2, §5.4.1): who wins, who is refused, and when
// a follower times out.
import { describe, expect, it } from 'vitest';
import { MessageType, NONE, StateType, type Message, type NodeId } from '../../../../manager/raft/core/index.js';
import { ELECTION_TICK, Network, TestNode, makeStorage, msg, newNode, seededRandom } from './harness.js';

function responses(msgs: Message[], type: MessageType): Message[] {
  return msgs.filter((m) => m.type === type);
}

describe('election', () => {
  it.each([
    { preVote: false },
    { preVote: true },
  ])('a single node becomes leader by itself after its election timeout (preVote=$preVote)', ({ preVote }) => {
    const net = Network.create(1, { preVote });
    const n = net.node(1);
    net.tick(1, ELECTION_TICK - 1);
    expect(n.state()).toBe(StateType.Follower);
    net.tick(1, ELECTION_TICK); // the randomized timeout is < 2 * electionTick
    expect(n.state()).toBe(StateType.Leader);
    expect(n.term()).toBe(1);
    expect(n.raft.lead).toBe(1);
    // Its empty entry of the new term commits at once: it is the whole quorum.
    expect(n.commit()).toBe(1);
    expect(n.applied.map((e) => e.index)).toEqual([1]);
  });

  it.each([
    { size: 3, preVote: false },
    { size: 3, preVote: true },
    { size: 5, preVote: false },
    { size: 5, preVote: true },
  ])('$size nodes elect exactly one leader by ticking (preVote=$preVote)', ({ size, preVote }) => {
    const net = Network.create(size, { preVote });
    const leaderOfTerm = new Map<number, NodeId>();
    const record = () => {
      for (const l of net.leaders()) {
        const prev = leaderOfTerm.get(l.term());
        expect(prev === undefined || prev === l.id, `two leaders in term ${l.term()}`).toBe(true);
        leaderOfTerm.set(l.term(), l.id);
      }
    };
    let ticks = 0;
    while (net.leaders().length === 0 && ticks < 10 * ELECTION_TICK) {
      net.tickAll(1);
      record();
      ticks++;
    }
    // Let things settle for a few election timeouts; nobody may challenge a live leader.
    for (let i = 0; i < 3 * ELECTION_TICK; i++) {
      net.tickAll(1);
      record();
    }
    const leaders = net.leaders();
    expect(leaders).toHaveLength(1);
    const leader = leaders[0]!;
    for (const n of net.nodes.values()) {
      expect(n.raft.lead).toBe(leader.id);
      expect(n.term()).toBe(leader.term());
      expect(n.commit()).toBe(leader.commit());
    }
    expect(leader.commit()).toBeGreaterThanOrEqual(1);
  });

  // Voter's log: terms [1, 2, 2] (last index 3, last term 2), current term 2.
  const upToDateCases = [
    { name: 'lower last term, longer log', index: 5, logTerm: 1, granted: false },
    { name: 'same last term, shorter log', index: 2, logTerm: 2, granted: false },
    { name: 'same last term, same length', index: 3, logTerm: 2, granted: true },
    { name: 'same last term, longer log', index: 4, logTerm: 2, granted: true },
    { name: 'higher last term, shorter log', index: 1, logTerm: 3, granted: true },
  ];

  it.each(upToDateCases)('Vote from a candidate with $name: granted=$granted', ({ index, logTerm, granted }) => {
    const voter = newNode(1, { voters: [1, 2, 3], terms: [1, 2, 2], term: 2 });
    voter.raw.step(msg(MessageType.Vote, 2, 1, { term: 3, index, logTerm }));
    const resp = responses(voter.drain(), MessageType.VoteResp);
    expect(resp).toHaveLength(1);
    expect(resp[0]!.reject).toBe(!granted);
    expect(resp[0]!.to).toBe(2);
    expect(resp[0]!.term).toBe(3);
    // The higher term is adopted either way; the vote only when granted.
    expect(voter.term()).toBe(3);
    expect(voter.raft.vote).toBe(granted ? 2 : NONE);
  });

  it.each(upToDateCases)('PreVote from a candidate with $name: granted=$granted, term untouched', ({ index, logTerm, granted }) => {
    const voter = newNode(1, { voters: [1, 2, 3], terms: [1, 2, 2], term: 2 });
    voter.raw.step(msg(MessageType.PreVote, 2, 1, { term: 3, index, logTerm }));
    const resp = responses(voter.drain(), MessageType.PreVoteResp);
    expect(resp).toHaveLength(1);
    expect(resp[0]!.reject).toBe(!granted);
    expect(voter.term()).toBe(2);
    expect(voter.raft.vote).toBe(NONE);
  });

  it.each([
    { name: 'lower last term', candidate: [1, 1, 1], others: [1, 2] },
    { name: 'same last term but shorter', candidate: [1, 2], others: [1, 2, 2] },
  ])('a candidate whose log is stale ($name) loses; an up-to-date one then wins', ({ candidate, others }) => {
    const voters = [1, 2, 3];
    const net = new Network([
      newNode(1, { voters, terms: candidate, term: 2 }),
      newNode(2, { voters, terms: others, term: 2 }),
      newNode(3, { voters, terms: others, term: 2 }),
    ]);
    net.campaign(1);
    net.flush();
    expect(net.node(1).state()).toBe(StateType.Follower);
    expect(net.leaders()).toHaveLength(0);
    const rejections = net.deliveredWhere((m) => m.type === MessageType.VoteResp && m.to === 1);
    expect(rejections.map((m) => m.reject)).toEqual([true, true]);

    net.campaign(2);
    net.flush();
    expect(net.node(2).state()).toBe(StateType.Leader);
    // The stale node's divergent tail is gone: its log now equals the leader's.
    expect(net.node(1).logTerms()).toEqual(net.node(2).logTerms());
  });

  it('a node votes at most once per term (but repeats its vote to the same candidate)', () => {
    const voter = newNode(1, { voters: [1, 2, 3, 4], terms: [1], term: 1 });
    const steps: Array<{ from: NodeId; term: number; granted: boolean; voteAfter: NodeId }> = [
      { from: 2, term: 2, granted: true, voteAfter: 2 },
      { from: 3, term: 2, granted: false, voteAfter: 2 }, // second candidate, same term
      { from: 2, term: 2, granted: true, voteAfter: 2 }, // same candidate again (a retransmission)
      { from: 4, term: 2, granted: false, voteAfter: 2 },
      { from: 3, term: 3, granted: true, voteAfter: 3 }, // a new term frees the vote
    ];
    for (const s of steps) {
      voter.raw.step(msg(MessageType.Vote, s.from, 1, { term: s.term, index: 1, logTerm: 1 }));
      const resp = responses(voter.drain(), MessageType.VoteResp);
      expect(resp, `vote request from ${s.from} at term ${s.term}`).toHaveLength(1);
      expect(resp[0]!.reject, `vote request from ${s.from} at term ${s.term}`).toBe(!s.granted);
      expect(voter.raft.vote).toBe(s.voteAfter);
      expect(voter.term()).toBe(s.term);
    }
  });

  it('a follower that knows a leader in its term does not vote for another candidate of that term', () => {
    const voter = newNode(1, { voters: [1, 2, 3], terms: [1], term: 1 });
    voter.raw.step(msg(MessageType.Heartbeat, 2, 1, { term: 2 }));
    voter.drain();
    expect(voter.raft.lead).toBe(2);
    voter.raw.step(msg(MessageType.Vote, 3, 1, { term: 2, index: 5, logTerm: 2 }));
    const resp = responses(voter.drain(), MessageType.VoteResp);
    expect(resp[0]!.reject).toBe(true);
  });

  it.each([
    { type: MessageType.Vote, answer: undefined },
    // A stale pre-candidate is told our term so it stops asking.
    { type: MessageType.PreVote, answer: MessageType.PreVoteResp },
  ])('vote requests from lower terms are ignored ($type)', ({ type, answer }) => {
    const voter = newNode(1, { voters: [1, 2, 3], terms: [1, 5], term: 5 });
    voter.raw.step(msg(type, 2, 1, { term: 3, index: 10, logTerm: 3 }));
    const out = voter.drain();
    expect(voter.term()).toBe(5);
    expect(voter.raft.vote).toBe(NONE);
    if (answer === undefined) {
      expect(out).toEqual([]);
    } else {
      expect(out).toHaveLength(1);
      expect(out[0]!.type).toBe(answer);
      expect(out[0]!.reject).toBe(true);
      expect(out[0]!.term).toBe(5);
    }
  });

  it('a vote response from an older term does not count', () => {
    const net = Network.create(3);
    net.campaign(1); // term 1
    net.discard();
    net.campaign(1); // term 2
    net.discard();
    const n = net.node(1);
    expect(n.term()).toBe(2);
    for (const from of [2, 3]) n.raw.step(msg(MessageType.VoteResp, from, 1, { term: 1 }));
    n.drain();
    expect(n.state()).toBe(StateType.Candidate);
  });

  describe('a split vote is retried sooner', () => {
    /** Nodes 1 and 2 stand in the same term while 3 is gone: each votes for itself and refuses the other. */
    function splitVote(preVote: boolean, random: () => number) {
      const net = Network.create(3, { preVote, random });
      net.isolate(3);
      for (const id of [1, 2] as NodeId[]) {
        net.node(id).raw.campaign();
        net.collect(id);
      }
      // Pre-votes are granted (nobody leads), then the two Vote requests cross.
      net.flush();
      return net;
    }

    it.each([
      { preVote: false, random: 0, retryTicks: 2 },
      { preVote: true, random: 0, retryTicks: 2 },
      { preVote: true, random: 0.5, retryTicks: 7 },
      { preVote: true, random: 1 - 2 ** -53, retryTicks: 11 },
    ])('each rival stands again after $retryTicks ticks, not 1-2 election timeouts (preVote=$preVote, random=$random)', ({ preVote, random, retryTicks }) => {
      const net = splitVote(preVote, () => random);
      const [a, b] = [net.node(1), net.node(2)];
      expect([a.state(), b.state()]).toEqual([StateType.Candidate, StateType.Candidate]);
      const term = a.term();
      expect(b.term()).toBe(term);
      // Both refused the other: the split is visible in the responses.
      const refusals = net.delivered.filter((m) => m.type === MessageType.VoteResp && m.reject && m.to !== 3);
      expect(refusals.map((m) => m.to).sort()).toEqual([1, 2]);
      for (const n of [a, b]) {
        expect(n.raft.randomizedElectionTimeout).toBe(retryTicks);
        for (let i = 0; i < retryTicks - 1; i++) n.raw.tick();
        expect(n.term(), 'no new campaign before the retry is due').toBe(term);
        expect(n.state()).toBe(StateType.Candidate);
      }
      net.collectAll();
      expect(net.outbox.filter((m) => m.type === MessageType.Vote || m.type === MessageType.PreVote)).toEqual([]);
      a.raw.tick();
      const again = net.collect(1);
      expect(again.some((m) => m.type === (preVote ? MessageType.PreVote : MessageType.Vote)), 'node 1 stands again').toBe(true);
    });

    it('the retry is drawn once per term: a repeated rival request does not push it back', () => {
      const net = splitVote(true, seededRandom(42));
      const a = net.node(1);
      const due = a.raft.randomizedElectionTimeout;
      a.raw.tick();
      const repeat = net.delivered.find((m) => m.type === MessageType.Vote && m.to === 1)!;
      a.raw.step({ ...repeat });
      expect(a.raft.randomizedElectionTimeout).toBe(due);
      expect(a.raft.electionElapsed).toBe(1);
    });

    it('after the split, the retry elects one leader well within the normal timeout', () => {
      const net = splitVote(true, seededRandom(7));
      let ticks = 0;
      while (net.leaders().length === 0 && ticks < 4 * ELECTION_TICK) {
        net.tickAll(1);
        ticks++;
      }
      expect(net.leaders()).toHaveLength(1);
      expect(ticks).toBeLessThan(2 + ELECTION_TICK + 1);
    });

    it('a candidate that is not met by a rival keeps its full timeout', () => {
      const net = Network.create(3, { preVote: true, random: () => 0.5 });
      net.isolate(2);
      net.isolate(3);
      net.node(1).raw.campaign();
      net.collect(1);
      net.flush();
      expect(net.node(1).state()).toBe(StateType.PreCandidate);
      expect(net.node(1).raft.randomizedElectionTimeout).toBe(15);
    });
  });

  describe('randomized election timeout', () => {
    it.each([
      { electionTick: 10, random: 0, expected: 10 },
      { electionTick: 10, random: 0.5, expected: 15 },
      { electionTick: 10, random: 1 - 2 ** -53, expected: 19 },
      { electionTick: 5, random: 0.2, expected: 6 },
      { electionTick: 3, random: 0.999, expected: 5 },
    ])('electionTick=$electionTick, random=$random -> $expected ticks', ({ electionTick, random, expected }) => {
      const n = new TestNode(1, makeStorage({ voters: [1, 2, 3] }), { electionTick, random: () => random });
      expect(n.raft.randomizedElectionTimeout).toBe(expected);
      expect(expected).toBeGreaterThanOrEqual(electionTick);
      expect(expected).toBeLessThan(2 * electionTick);
      // It campaigns on exactly that tick, not before.
      for (let i = 0; i < expected - 1; i++) n.raw.tick();
      expect(n.state()).toBe(StateType.Follower);
      n.raw.tick();
      expect(n.state()).toBe(StateType.Candidate);
    });

    it('every draw lies in [electionTick, 2*electionTick) and the range is used', () => {
      const n = newNode(1, { voters: [1, 2, 3] });
      const seen = new Set<number>();
      for (let i = 0; i < 2000; i++) {
        n.raft.becomeFollower(n.term() + 1, NONE);
        const t = n.raft.randomizedElectionTimeout;
        expect(t).toBeGreaterThanOrEqual(ELECTION_TICK);
        expect(t).toBeLessThan(2 * ELECTION_TICK);
        expect(Number.isInteger(t)).toBe(true);
        seen.add(t);
      }
      expect(seen.size).toBe(ELECTION_TICK);
    });
  });
});
