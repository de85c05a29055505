// The Raft paper's Figure 8 (§5.4.2), driven message by message on five nodes.
//
// A leader may not conclude that an entry of an earlier term is committed
// because it is stored on a majority: a later leader holding a conflicting
// entry of a higher term can still be elected and overwrite it. Only an entry
// of the leader's current term is committed by counting replicas; committing
// it commits every entry before it.
//
// Our leaders append an empty entry of their term on election (§8), so the
// figure's states are built such that S1's term-4 entry is that empty entry.
// Starting point, just after the figure's (b) with S1 back up and S5 down:
//
//   index:  1  2
//   S1      1  2      term 3 (led term 2, replicated index 2 to nobody)
//   S2      1         term 3
//   S3      1         term 3
//   S4      1         term 3
//   S5      1  3      term 3 (led term 3, replicated index 2 to nobody)
//
// Index 1 is committed everywhere.
import { describe, expect, it } from 'vitest';
import { MessageType, StateType, type Message } from '../../../../manager/raft/core/index.js';
import { Network, isType, newNode } from './harness.js';

const voters = [1, 2, 3, 4, 5];

function figure8(): Network {
  return new Network([
    // One entry per append, so the old-term entry travels alone (the figure's step (c)).
    newNode(1, { voters, terms: [1, 2], term: 3, commit: 1 }, { maxSizePerMsg: 1 }),
    newNode(2, { voters, terms: [1], term: 3, commit: 1 }),
    newNode(3, { voters, terms: [1], term: 3, commit: 1 }),
    newNode(4, { voters, terms: [1], term: 3, commit: 1 }),
    newNode(5, { voters, terms: [1, 3], term: 3, commit: 1 }),
  ]);
}

const appTo = (...to: number[]) => (m: Message) => m.type === MessageType.App && to.includes(m.to);

/** (c): S1 is elected for term 4 and replicates its term-2 entry to S2 and S3, one round trip at a time. */
function stepC(net: Network): void {
  const s1 = net.node(1);
  net.isolate(5); // S5 is down
  net.campaign(1);
  net.flush(isType(MessageType.Vote, MessageType.VoteResp));
  expect(s1.state()).toBe(StateType.Leader);
  expect(s1.term()).toBe(4);
  expect(s1.logTerms()).toEqual([1, 2, 4]); // its empty entry of term 4 at index 3
  expect(s1.commit()).toBe(1);

  net.discard(appTo(4, 5)); // S4 stays at [1], as in the figure
  // Round 1: the probe at index 2 is refused (S2 and S3 lack index 2).
  expect(net.round(appTo(2, 3))).toBe(2);
  const refusals = net.outbox.filter((m) => m.type === MessageType.AppResp);
  expect(refusals.map((m) => m.reject)).toEqual([true, true]);
  // Round 2: the refusals bring S1 back to index 1; it sends the term-2 entry alone.
  net.round(isType(MessageType.AppResp));
  const resend = net.outbox.filter(appTo(2, 3));
  expect(resend.map((m) => [m.index, m.logTerm, m.entries.map((e) => `${e.index}@${e.term}`)])).toEqual([
    [1, 1, ['2@2']],
    [1, 1, ['2@2']],
  ]);
  // Round 3: S2 and S3 store it.
  net.round(appTo(2, 3));
  expect(net.node(2).logTerms()).toEqual([1, 2]);
  expect(net.node(3).logTerms()).toEqual([1, 2]);
  // Round 4: S1 hears both acks. Index 2 is now on S1, S2 and S3 — a majority —
  // but it is from term 2, so it must NOT be committed.
  net.round(isType(MessageType.AppResp));
  expect(s1.raft.prs.progress.get(2)!.match).toBe(2);
  expect(s1.raft.prs.progress.get(3)!.match).toBe(2);
  expect(s1.raft.prs.committed()).toBe(2); // what counting replicas alone would commit
  expect(s1.commit()).toBe(1);
  for (const id of [2, 3, 4]) expect(net.node(id).commit()).toBe(1);
  expect(s1.applied.map((e) => e.index)).toEqual([1]); // nothing past index 1 reached the application
  // The term-4 entry is on its way to S2 and S3.
  expect(net.outbox.filter(appTo(2, 3)).map((m) => m.entries.map((e) => `${e.index}@${e.term}`))).toEqual([['3@4'], ['3@4']]);
}

describe('Figure 8: committing entries from previous terms', () => {
  it('(c) -> (d): a majority-replicated entry of an old term is not committed, and a later leader overwrites it', () => {
    const net = figure8();
    stepC(net);

    // (d): S1 crashes before its term-4 entry arrives anywhere; S5 comes back.
    net.discard();
    net.heal();
    net.isolate(1);
    const s5 = net.node(5);
    // Its first try (term 4) meets voters who already voted in term 4.
    net.campaign(5);
    net.flush();
    expect(s5.state()).toBe(StateType.Follower);
    expect(s5.term()).toBe(4);
    // The next (term 5) wins: S5's last term 3 beats the others' last term 2 or 1.
    net.campaign(5);
    net.flush(isType(MessageType.Vote, MessageType.VoteResp));
    expect(s5.state()).toBe(StateType.Leader);
    expect(s5.term()).toBe(5);
    const votes = net.deliveredWhere((m) => m.type === MessageType.VoteResp && m.to === 5 && m.term === 5);
    expect(votes.filter((m) => !m.reject).map((m) => m.from).sort()).toEqual([2, 3, 4]);
    expect(s5.commit()).toBe(1);

    net.flush();
    // Index 2 now holds S5's term-3 entry everywhere it reached: the term-2
    // entry S1 had on a majority is gone, which is why it was never committed.
    for (const id of [2, 3, 4, 5]) {
      expect(net.node(id).logTerms(), `S${id}`).toEqual([1, 3, 5]);
      expect(net.node(id).commit(), `S${id}`).toBe(3);
    }
    expect(net.node(1).logTerms()).toEqual([1, 2, 4]); // S1 is still down with its stale tail

    // When S1 returns it is brought in line too.
    net.heal();
    net.tick(5);
    net.flush();
    expect(net.node(1).logTerms()).toEqual([1, 3, 5]);
    expect(net.node(1).commit()).toBe(3);
  });

  it('(c) -> (e): once an entry of the current term is on a majority, it and the old entry are committed and survive', () => {
    const net = figure8();
    stepC(net);
    const s1 = net.node(1);

    // (e): the term-4 entry reaches S2 and S3 before S1 can crash.
    net.round(appTo(2, 3));
    expect(net.node(2).logTerms()).toEqual([1, 2, 4]);
    expect(s1.commit()).toBe(1); // S1 has not heard the acks yet
    net.round(isType(MessageType.AppResp));
    expect(s1.commit()).toBe(3); // index 3 is of term 4: committing it commits index 2 too
    expect(s1.applied.map((e) => `${e.index}@${e.term}`)).toEqual(['1@1', '2@2', '3@4']);
    net.flush();
    expect(net.node(2).commit()).toBe(3);
    expect(net.node(3).commit()).toBe(3);

    // S1 crashes; S5 returns and cannot win: S2 and S3 hold a later last term.
    net.discard();
    net.heal();
    net.isolate(1);
    const s5 = net.node(5);
    for (let i = 0; i < 3; i++) {
      net.campaign(5);
      net.flush();
      expect(s5.state()).not.toBe(StateType.Leader);
    }
    // In its last attempt (a term nobody else voted in) only S4, as stale as S5, agrees.
    const last = net.deliveredWhere((m) => m.type === MessageType.VoteResp && m.to === 5 && m.term === s5.term());
    expect(last.filter((m) => m.reject).map((m) => m.from).sort()).toEqual([2, 3]);
    expect(last.filter((m) => !m.reject).map((m) => m.from)).toEqual([4]);

    // A server holding the committed entries wins instead, and keeps them.
    net.campaign(2);
    net.flush();
    expect(net.node(2).state()).toBe(StateType.Leader);
    for (const id of [2, 3, 4, 5]) {
      const n = net.node(id);
      expect(n.termAt(2), `S${id}`).toBe(2);
      expect(n.termAt(3), `S${id}`).toBe(4);
      expect(n.commit(), `S${id}`).toBe(n.lastIndex());
    }
  });
});
