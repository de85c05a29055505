// Snapshots (Raft paper §7): a follower behind the leader's compacted log is
// sent the leader's snapshot, restores it, and resumes from the log after it.
import { describe, expect, it } from 'vitest';
import {
  ConfChangeType, MemoryStorage, MessageType, StateType, type ConfState, type Snapshot,
} from '../../../../manager/raft/core/index.js';
import { ProgressState } from '../../../../manager/raft/core/progress.js';
import { Network, TestNode, bytes, msg, newNode, text } from './harness.js';

const isSnap = (m: { type: MessageType }) => m.type === MessageType.Snap;

/** Three nodes; node 3 misses 10 entries, then the leader snapshots and compacts its log. */
function behindCompaction(): { net: Network; snapIndex: number } {
  const net = Network.create(3);
  const lead = net.elect(1);
  net.isolate(3);
  for (let i = 0; i < 10; i++) net.propose(1, `e${i}`);
  net.flush();
  const snapIndex = lead.appliedIndex();
  expect(snapIndex).toBe(11);
  lead.storage.createSnapshot(snapIndex, lead.raft.confState(), bytes(`state@${snapIndex}`));
  lead.storage.compact(snapIndex);
  expect(lead.raft.raftLog.firstIndex()).toBe(snapIndex + 1);
  net.heal();
  return { net, snapIndex };
}

function snapshot(index: number, term: number, confState: ConfState, data = 'snap'): Snapshot {
  return { metadata: { index, term, confState }, data: bytes(data) };
}

describe('snapshots', () => {
  it('a follower behind the compacted log receives a snapshot and restores log, commit and configuration', () => {
    const { net, snapIndex } = behindCompaction();
    const lead = net.node(1);
    const f = net.node(3);
    net.tick(1); // a heartbeat: node 3 answers, the leader finds it needs what was compacted
    net.flush();
    const snaps = net.deliveredWhere((m) => isSnap(m) && m.to === 3);
    expect(snaps).toHaveLength(1);
    expect(snaps[0]!.snapshot!.metadata.index).toBe(snapIndex);
    expect(f.snapshots.map((s) => s.metadata.index)).toEqual([snapIndex]);
    expect(text(f.snapshots[0]!.data)).toBe(`state@${snapIndex}`);
    expect(f.raft.raftLog.firstIndex()).toBe(snapIndex + 1);
    expect(f.storage.snapshot().metadata.index).toBe(snapIndex);
    expect(f.commit()).toBe(lead.commit());
    expect(f.raft.confState()).toEqual({ voters: [1, 2, 3], learners: [] });
    // The snapshot stood in for the entries: none before it was applied one by one.
    expect(f.applied.filter((e) => e.index > 1 && e.index <= snapIndex)).toEqual([]);

    // Replication resumes after it.
    const pr = lead.raft.prs.progress.get(3)!;
    expect(pr.state).toBe(ProgressState.Replicate);
    expect(pr.match).toBe(lead.lastIndex());
    const { index } = net.propose(1, 'after');
    net.flush();
    expect(f.commit()).toBe(index);
    expect(f.applied.map((e) => e.index)).toContain(index);
  });

  it.each([
    { failed: true, nextAfter: 'match+1' },
    { failed: false, nextAfter: 'snapshot+1' },
  ])('a snapshot report (failed=$failed) moves the follower to Probe at $nextAfter; the leader retries', ({ failed }) => {
    const { net, snapIndex } = behindCompaction();
    const lead = net.node(1);
    const pr = lead.raft.prs.progress.get(3)!;
    net.dropWhere(isSnap);
    net.tick(1);
    net.flush();
    expect(net.dropped.filter(isSnap)).toHaveLength(1);
    expect(pr.state).toBe(ProgressState.Snapshot);
    expect(pr.pendingSnapshot).toBe(snapIndex);
    // While a snapshot is in flight nothing else is sent to it.
    net.propose(1, 'meanwhile');
    expect(net.outbox.filter((m) => m.to === 3)).toHaveLength(0);
    net.flush();

    lead.raw.reportSnapshot(3, failed);
    expect(pr.state).toBe(ProgressState.Probe);
    expect(pr.next).toBe(failed ? pr.match + 1 : snapIndex + 1);
    expect(pr.isPaused()).toBe(true); // waits for the next heartbeat answer
    expect(net.collect(1).filter((m) => m.to === 3)).toHaveLength(0);

    net.heal();
    net.tick(1);
    net.flush();
    expect(net.deliveredWhere((m) => isSnap(m) && m.to === 3)).toHaveLength(1); // the retry got through
    const f = net.node(3);
    expect(f.snapshots.map((s) => s.metadata.index)).toEqual([snapIndex]);
    expect(f.logTerms()).toEqual(lead.logTerms());
    expect(f.commit()).toBe(lead.commit());
  });

  // Follower log: terms [1, 1, 2, 2, 2], commit 4.
  it.each([
    { name: 'older than the commit index', index: 3, term: 1, restored: false, commitAfter: 4, firstAfter: 1 },
    { name: 'at the commit index', index: 4, term: 2, restored: false, commitAfter: 4, firstAfter: 1 },
    { name: 'matching an entry already in the log (commit fast-forwards)', index: 5, term: 2, restored: false, commitAfter: 5, firstAfter: 1 },
    { name: 'newer than the log', index: 7, term: 3, restored: true, commitAfter: 7, firstAfter: 8 },
    { name: 'conflicting with the log at its index', index: 5, term: 3, restored: true, commitAfter: 5, firstAfter: 6 },
  ])('snapshot $name: restored=$restored', ({ index, term, restored, commitAfter, firstAfter }) => {
    const f = newNode(2, { voters: [1, 2, 3], terms: [1, 1, 2, 2, 2], term: 3, commit: 4 });
    f.drain();
    f.raw.step(msg(MessageType.Snap, 1, 2, { term: 3, snapshot: snapshot(index, term, { voters: [1, 2, 3], learners: [] }) }));
    const out = f.drain();
    expect(f.snapshots).toHaveLength(restored ? 1 : 0);
    expect(f.commit()).toBe(commitAfter);
    expect(f.raft.raftLog.firstIndex()).toBe(firstAfter);
    if (!restored) expect(f.logTerms()).toEqual([1, 1, 2, 2, 2]);
    else expect(f.log()).toEqual([]);
    const resp = out.filter((m) => m.type === MessageType.AppResp);
    expect(resp).toHaveLength(1);
    expect(resp[0]!.reject).toBe(false);
    expect(resp[0]!.index).toBe(restored ? index : commitAfter);
  });

  it.each([
    { name: 'brand-new, empty member not in the snapshot', id: 4, knows: undefined, accepted: true },
    { name: 'member listed in the snapshot', id: 3, knows: { voters: [1, 2, 3], learners: [] }, accepted: true },
    { name: 'member that knows a configuration but is not in the snapshot', id: 4, knows: { voters: [1, 4], learners: [] }, accepted: false },
  ])('$name: accepted=$accepted', ({ id, knows, accepted }) => {
    const n = knows ? newNode(id, { voters: knows.voters, learners: knows.learners }) : new TestNode(id, new MemoryStorage());
    n.raw.step(msg(MessageType.Snap, 1, id, { term: 2, snapshot: snapshot(5, 2, { voters: [1, 2, 3], learners: [] }) }));
    n.drain();
    expect(n.snapshots).toHaveLength(accepted ? 1 : 0);
    expect(n.commit()).toBe(accepted ? 5 : 0);
    if (accepted) {
      expect(n.raft.confState()).toEqual({ voters: [1, 2, 3], learners: [] });
      expect(n.storage.snapshot().metadata.index).toBe(5);
    }
  });

  it('a new member added after the bootstrap snapshot restores that older snapshot, then learns of itself from the log', () => {
    const net = Network.bootstrap(3);
    const lead = net.elect(1);
    const n4 = new TestNode(4, new MemoryStorage());
    net.add(n4);
    lead.raw.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4, context: new Uint8Array(0) });
    net.collect(1);
    net.flush(); // no ticks: the leader probes the new member as soon as it applies the change
    expect(net.deliveredWhere((m) => isSnap(m) && m.to === 4)).toHaveLength(1);
    expect(n4.snapshots.map((s) => s.metadata)).toEqual([{ index: 1, term: 1, confState: { voters: [1, 2, 3], learners: [] } }]);
    expect(n4.raft.confState()).toEqual({ voters: [1, 2, 3], learners: [4] });
    expect(n4.raft.isLearner).toBe(true);
    expect(n4.logTerms()).toEqual(lead.logTerms());
    expect(n4.commit()).toBe(lead.commit());
    expect(n4.state()).toBe(StateType.Follower);
  });
});
