// Log replication (Raft paper §5.3): followers converge on the leader's log,
// conflicting suffixes are replaced, the rejection hint skips whole terms, and
// an entry commits only once a majority of voters stores it.
import { describe, expect, it } from 'vitest';
import { MessageType, StateType } from '../../../../manager/raft/core/index.js';
import { ProgressTracker } from '../../../../manager/raft/core/progress.js';
import { Network, bytes, newNode } from './harness.js';

// The paper's Figure 7: the leader of term 8 and six possible followers.
const FIG7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];

describe('log replication', () => {
  // `naive` is how many refusals one-entry-at-a-time backtracking would take,
  // for comparison; `rejections` is what the term-skipping hint achieves.
  it.each([
    { name: 'Fig.7 (a) missing the last entry', leader: FIG7_LEADER, follower: [1, 1, 1, 4, 4, 5, 5, 6, 6], rejections: 1, naive: 1 },
    { name: 'Fig.7 (b) missing many entries', leader: FIG7_LEADER, follower: [1, 1, 1, 4], rejections: 1, naive: 6 },
    { name: 'Fig.7 (c) one extra uncommitted entry', leader: FIG7_LEADER, follower: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], rejections: 0, naive: 0 },
    { name: 'Fig.7 (d) extra entries of a later term', leader: FIG7_LEADER, follower: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], rejections: 0, naive: 0 },
    { name: 'Fig.7 (e) missing entries plus a conflicting term-4 suffix', leader: FIG7_LEADER, follower: [1, 1, 1, 4, 4, 4, 4], rejections: 1, naive: 5 },
    { name: 'Fig.7 (f) a long conflicting suffix of terms 2 and 3', leader: FIG7_LEADER, follower: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], rejections: 1, naive: 7 },
    // Leader and follower terms interleave: each refusal skips one whole term.
    { name: 'interleaved terms', leader: [1, 3, 3, 5, 5], follower: [1, 2, 2, 4, 4], rejections: 2, naive: 4 },
  ])('$name: identical after $rejections refusal(s)', ({ leader, follower, rejections, naive }) => {
    const lterm = leader[leader.length - 1]!;
    const fterm = Math.max(...follower);
    const net = new Network([
      newNode(1, { voters: [1, 2], terms: leader, term: Math.max(lterm, fterm), commit: 1 }),
      newNode(2, { voters: [1, 2], terms: follower, term: fterm, commit: 1 }),
    ]);
    const lead = net.forceLeader(1); // a new term, with its empty entry appended
    const expected = [...leader, lead.term()];
    net.flush();

    const refusals = net.deliveredWhere((m) => m.type === MessageType.AppResp && m.from === 2 && m.reject);
    expect(refusals).toHaveLength(rejections);
    expect(rejections).toBeLessThanOrEqual(naive);
    const f = net.node(2);
    expect(lead.logTerms()).toEqual(expected);
    expect(f.logTerms()).toEqual(expected);
    expect(f.storage.lastIndex()).toBe(expected.length); // the driver's copy too: the stale tail is gone
    expect(lead.commit()).toBe(expected.length);
    expect(f.commit()).toBe(expected.length);
    expect(f.raft.lead).toBe(1);
  });

  it('a follower with a conflicting suffix gets it truncated and its log made identical, data included', () => {
    const voters = [1, 2, 3];
    const net = new Network([
      newNode(1, { voters, terms: [1, 1, 2], term: 3, commit: 1 }),
      newNode(2, { voters, terms: [1, 1, 2], term: 2, commit: 1 }),
      newNode(3, { voters, terms: [1, 1, 3, 3, 3], term: 3, commit: 1 }),
    ]);
    // Node 3's last term (3) is the highest, so make node 1 leader directly.
    const lead = net.forceLeader(1);
    expect(lead.term()).toBe(4);
    net.propose(1, 'x');
    net.flush();
    const leaderLog = lead.log().map((e) => [e.index, e.term, Buffer.from(e.data).toString()]);
    expect(net.node(3).log().map((e) => [e.index, e.term, Buffer.from(e.data).toString()])).toEqual(leaderLog);
    expect(net.node(3).storage.lastIndex()).toBe(lead.lastIndex());
    expect(net.node(3).storage.term(3)).toBe(2);
    expect(net.node(3).commit()).toBe(lead.commit());
  });

  it('a follower far behind catches up, streaming within its in-flight window', () => {
    const net = Network.create(3, { maxInflightMsgs: 4, maxSizePerMsg: 100 });
    const lead = net.elect(1);
    net.isolate(3);
    for (let i = 0; i < 60; i++) net.propose(1, `entry-${i}`);
    net.flush();
    expect(lead.commit()).toBe(61);
    expect(net.node(3).lastIndex()).toBe(1);

    net.heal();
    for (let i = 0; i < 5 && net.node(3).commit() < lead.commit(); i++) net.tickAll(1);
    expect(net.node(3).logTerms()).toEqual(lead.logTerms());
    expect(net.node(3).log().map((e) => Buffer.from(e.data).toString())).toEqual(lead.log().map((e) => Buffer.from(e.data).toString()));
    expect(net.node(3).commit()).toBe(lead.commit());
    expect(net.node(3).applied.map((e) => e.index)).toEqual(Array.from({ length: 61 }, (_, i) => i + 1));
    // It never had more appends in flight than the window allows.
    expect(net.deliveredWhere((m) => m.type === MessageType.Snap)).toHaveLength(0);
    const pr = lead.raft.prs.progress.get(3)!;
    expect(pr.match).toBe(lead.lastIndex());
    expect(pr.inflights.count).toBe(0);
  });

  it.each([
    { size: 3, reached: 0, commits: false },
    { size: 3, reached: 1, commits: true },
    { size: 4, reached: 1, commits: false },
    { size: 4, reached: 2, commits: true },
    { size: 5, reached: 1, commits: false },
    { size: 5, reached: 2, commits: true },
    { size: 5, reached: 4, commits: true },
  ])('$size voters, entry stored on leader + $reached followers: committed=$commits', ({ size, reached, commits }) => {
    const net = Network.create(size);
    const lead = net.elect(1);
    const before = lead.commit();
    for (let id = 2 + reached; id <= size; id++) net.cut(1, id);
    const { index } = net.propose(1, 'x');
    net.flush();
    expect(lead.commit()).toBe(commits ? index : before);
    expect(lead.applied.some((e) => e.index === index)).toBe(commits);
    for (let id = 2; id < 2 + reached; id++) expect(net.node(id).lastIndex()).toBe(index);
  });

  it('learners receive entries but do not count toward commit', () => {
    const net = Network.create(3, {}, [4, 5]);
    const lead = net.elect(1);
    expect(lead.raft.prs.voterIds()).toEqual([1, 2, 3]);
    expect(lead.raft.prs.learnerIds()).toEqual([4, 5]);
    const before = lead.commit();
    net.cut(1, 2);
    net.cut(1, 3);
    const { index } = net.propose(1, 'x');
    net.flush();
    // Both learners store and acknowledge it: 3 of 5 members, but 1 of 3 voters.
    for (const id of [4, 5]) {
      expect(net.node(id).lastIndex()).toBe(index);
      expect(lead.raft.prs.progress.get(id)!.match).toBe(index);
    }
    expect(lead.commit()).toBe(before);

    net.heal();
    net.tick(1);
    net.flush();
    expect(lead.commit()).toBe(index);
    for (const id of [2, 3, 4, 5]) expect(net.node(id).commit()).toBe(index);
    expect(net.node(4).state()).toBe(StateType.Follower);
  });

  it.each([
    { name: '3 voters', voters: [1, 2, 3], learners: [], matches: { 1: 5, 2: 4, 3: 2 }, committed: 4 },
    { name: '3 voters, all equal', voters: [1, 2, 3], learners: [], matches: { 1: 7, 2: 7, 3: 7 }, committed: 7 },
    { name: '4 voters: needs 3', voters: [1, 2, 3, 4], learners: [], matches: { 1: 9, 2: 9, 3: 3, 4: 1 }, committed: 3 },
    { name: '5 voters', voters: [1, 2, 3, 4, 5], learners: [], matches: { 1: 9, 2: 8, 3: 1, 4: 1, 5: 6 }, committed: 6 },
    { name: 'learners ahead do not help', voters: [1, 2, 3], learners: [4, 5], matches: { 1: 9, 2: 1, 3: 1, 4: 9, 5: 9 }, committed: 1 },
    { name: 'single voter', voters: [1], learners: [2], matches: { 1: 3, 2: 10 }, committed: 3 },
  ])('quorum commit index: $name -> $committed', ({ voters, learners, matches, committed }) => {
    // The tracker a raft builds from this configuration, with matches set by hand.
    const prs = newNode(1, { voters, learners }).raft.prs;
    for (const [id, m] of Object.entries(matches)) prs.progress.get(Number(id))!.match = m;
    expect(prs.committed()).toBe(committed);
  });

  it('a tracker without voters does not constrain the commit index', () => {
    expect(new ProgressTracker(16).committed()).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('a follower only commits what it is known to hold, even if the leader committed more', () => {
    const net = Network.create(3);
    const lead = net.elect(1);
    net.cut(1, 3);
    const { index } = net.propose(1, bytes('x'));
    net.flush();
    expect(lead.commit()).toBe(index);
    // Heal only the heartbeat path: node 3's log lacks the entry, so the
    // heartbeat's commit is capped at what the leader knows node 3 has.
    net.heal();
    net.tick(1);
    const hb = net.outbox.find((m) => m.type === MessageType.Heartbeat && m.to === 3)!;
    expect(hb.commit).toBe(index - 1);
    net.flush();
    expect(net.node(3).commit()).toBe(index);
  });
});
