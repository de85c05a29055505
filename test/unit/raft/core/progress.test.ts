// Flow control: the in-flight ring, and how a leader paces appends to each
// follower in Probe, Replicate and Snapshot state.
import { describe, expect, it } from 'vitest';
import { MessageType, type Message } from '../../../../manager/raft/core/index.js';
import { Inflights, Progress, ProgressState } from '../../../../manager/raft/core/progress.js';
import { Network, msg } from './harness.js';

type Op = ['add', number] | ['freeLE', number] | ['freeFirstOne'] | ['reset'];

describe('Inflights', () => {
  it.each<{ name: string; size: number; ops: Op[]; count: number; full: boolean; thenFree: number; left: number }>([
    { name: 'empty', size: 4, ops: [], count: 0, full: false, thenFree: 100, left: 0 },
    { name: 'partly filled', size: 4, ops: [['add', 1], ['add', 2]], count: 2, full: false, thenFree: 1, left: 1 },
    { name: 'filled', size: 3, ops: [['add', 5], ['add', 6], ['add', 7]], count: 3, full: true, thenFree: 6, left: 1 },
    { name: 'freeLE below the first keeps all', size: 3, ops: [['add', 5], ['add', 6]], count: 2, full: false, thenFree: 4, left: 2 },
    { name: 'freeLE between entries', size: 8, ops: [['add', 2], ['add', 4], ['add', 6], ['add', 8]], count: 4, full: false, thenFree: 5, left: 2 },
    {
      name: 'wrap-around: free the head, refill past the end of the buffer',
      size: 4,
      ops: [['add', 1], ['add', 2], ['add', 3], ['add', 4], ['freeLE', 2], ['add', 5], ['add', 6]],
      count: 4, full: true, thenFree: 4, left: 2,
    },
    {
      name: 'wrap-around twice',
      size: 3,
      ops: [['add', 1], ['add', 2], ['add', 3], ['freeLE', 2], ['add', 4], ['add', 5], ['freeLE', 4], ['add', 6], ['add', 7]],
      count: 3, full: true, thenFree: 6, left: 1,
    },
    { name: 'freeFirstOne frees exactly one', size: 3, ops: [['add', 1], ['add', 2], ['add', 3], ['freeFirstOne']], count: 2, full: false, thenFree: 2, left: 1 },
    { name: 'freeLE everything resets', size: 3, ops: [['add', 1], ['add', 2], ['freeLE', 9], ['add', 10]], count: 1, full: false, thenFree: 10, left: 0 },
    { name: 'reset', size: 2, ops: [['add', 1], ['add', 2], ['reset']], count: 0, full: false, thenFree: 0, left: 0 },
  ])('$name', ({ size, ops, count, full, thenFree, left }) => {
    const inf = new Inflights(size);
    for (const op of ops) {
      if (op[0] === 'add') inf.add(op[1]);
      else if (op[0] === 'freeLE') inf.freeLE(op[1]);
      else if (op[0] === 'freeFirstOne') inf.freeFirstOne();
      else inf.reset();
    }
    expect(inf.count).toBe(count);
    expect(inf.full()).toBe(full);
    inf.freeLE(thenFree);
    expect(inf.count).toBe(left);
  });

  it('refuses to add into a full ring, and frees in order after many wraps', () => {
    const inf = new Inflights(5);
    let next = 1;
    let oldest = 1;
    for (let round = 0; round < 50; round++) {
      while (!inf.full()) inf.add(next++);
      expect(() => inf.add(next)).toThrow();
      // Acknowledge the two oldest; exactly two slots open.
      inf.freeLE(oldest + 1);
      oldest += 2;
      expect(inf.count).toBe(3);
    }
    inf.freeLE(next - 2);
    expect(inf.count).toBe(1);
    inf.freeLE(next - 1);
    expect(inf.count).toBe(0);
  });
});

describe('Progress', () => {
  it.each([
    { name: 'Probe: rejection at next-1 moves next to hint+1', state: ProgressState.Probe, match: 0, next: 10, rejected: 9, hint: 4, ok: true, nextAfter: 5 },
    { name: 'Probe: stale rejection (not next-1) is ignored', state: ProgressState.Probe, match: 0, next: 10, rejected: 7, hint: 4, ok: false, nextAfter: 10 },
    { name: 'Probe: hint beyond the rejected index is capped', state: ProgressState.Probe, match: 0, next: 10, rejected: 9, hint: 20, ok: true, nextAfter: 9 },
    { name: 'Probe: never below 1', state: ProgressState.Probe, match: 0, next: 1, rejected: 0, hint: 0, ok: true, nextAfter: 1 },
    { name: 'Replicate: rejection at or below match is stale', state: ProgressState.Replicate, match: 5, next: 9, rejected: 5, hint: 2, ok: false, nextAfter: 9 },
    { name: 'Replicate: rejection above match goes back to match+1', state: ProgressState.Replicate, match: 5, next: 9, rejected: 8, hint: 2, ok: true, nextAfter: 6 },
  ])('maybeDecrTo — $name', ({ state, match, next, rejected, hint, ok, nextAfter }) => {
    const pr = new Progress(next, 8, false);
    pr.match = match;
    if (state === ProgressState.Replicate) {
      pr.becomeReplicate();
      pr.next = next;
    }
    expect(pr.maybeDecrTo(rejected, hint)).toBe(ok);
    expect(pr.next).toBe(nextAfter);
  });

  it.each([
    { name: 'newer ack', match: 3, next: 5, ack: 4, updated: true, matchAfter: 4, nextAfter: 5 },
    { name: 'ack past next', match: 3, next: 5, ack: 9, updated: true, matchAfter: 9, nextAfter: 10 },
    { name: 'stale ack', match: 3, next: 5, ack: 2, updated: false, matchAfter: 3, nextAfter: 5 },
  ])('maybeUpdate — $name', ({ match, next, ack, updated, matchAfter, nextAfter }) => {
    const pr = new Progress(next, 8, false);
    pr.match = match;
    expect(pr.maybeUpdate(ack)).toBe(updated);
    expect(pr.match).toBe(matchAfter);
    expect(pr.next).toBe(nextAfter);
  });
});

const appsTo = (msgs: Message[], to: number) => msgs.filter((m) => m.type === MessageType.App && m.to === to);

describe('leader flow control', () => {
  it.each([1, 3, 10])('Probe: one append until answered, whatever is proposed (%i proposals)', (proposals) => {
    const net = Network.create(2);
    net.campaign(1);
    net.flush((m) => m.type === MessageType.Vote || m.type === MessageType.VoteResp);
    const lead = net.node(1);
    const pr = lead.raft.prs.progress.get(2)!;
    expect(pr.state).toBe(ProgressState.Probe);
    expect(appsTo(net.outbox, 2)).toHaveLength(1); // the first probe, not yet answered
    expect(pr.isPaused()).toBe(true);
    for (let i = 0; i < proposals; i++) net.propose(1, `p${i}`);
    expect(appsTo(net.outbox, 2)).toHaveLength(1);

    // A heartbeat answer shows the follower is alive: exactly one more probe goes out.
    net.discard();
    net.tick(1);
    expect(net.outbox.map((m) => m.type)).toEqual([MessageType.Heartbeat]);
    net.round(); // heartbeat delivered
    net.round(); // its answer delivered
    const probes = appsTo(net.outbox, 2);
    expect(probes).toHaveLength(1);
    expect(probes[0]!.entries.length).toBeGreaterThan(0);
    expect(pr.isPaused()).toBe(true);

    // Once acknowledged the follower switches to Replicate and is caught up.
    net.flush();
    expect(pr.state).toBe(ProgressState.Replicate);
    expect(pr.match).toBe(lead.lastIndex());
  });

  it.each([1, 3, 5])('Replicate: pipelines up to maxInflightMsgs=%i appends, then pauses', (maxInflight) => {
    const net = Network.create(2, { maxInflightMsgs: maxInflight });
    const lead = net.elect(1);
    const pr = lead.raft.prs.progress.get(2)!;
    expect(pr.state).toBe(ProgressState.Replicate);
    // Acknowledgements stop coming back; proposals keep arriving.
    const proposals = 6;
    for (let i = 0; i < proposals; i++) {
      net.propose(1, `p${i}`);
      expect(appsTo(net.outbox, 2)).toHaveLength(Math.min(i + 1, maxInflight));
    }
    expect(pr.isPaused()).toBe(true);
    expect(pr.inflights.count).toBe(maxInflight);
    expect(pr.next).toBe(lead.lastIndex() - (proposals - maxInflight) + 1);

    // A heartbeat answer frees one slot, and exactly one more append goes out.
    net.discard();
    const hbResp = msg(MessageType.HeartbeatResp, 2, 1, { term: lead.term() });
    lead.raw.step(hbResp);
    const sent = appsTo(net.collect(1), 2);
    expect(sent).toHaveLength(1);
    expect(pr.inflights.count).toBe(maxInflight);
    expect(pr.state).toBe(ProgressState.Replicate);
  });

  it('an answered append frees its slot and the window refills from the log', () => {
    const net = Network.create(2, { maxInflightMsgs: 2, maxSizePerMsg: 1 });
    const lead = net.elect(1);
    const pr = lead.raft.prs.progress.get(2)!;
    net.block(2, 1); // acks are lost for now
    for (let i = 0; i < 5; i++) net.propose(1, `p${i}`);
    expect(appsTo(net.outbox, 2)).toHaveLength(2);
    net.flush(); // node 2 stores the two entries; its acks are dropped
    expect(net.node(2).lastIndex()).toBe(3);
    net.heal();
    // Hand node 2's ack for the first append to the leader.
    lead.raw.step(msg(MessageType.AppResp, 2, 1, { term: lead.term(), index: 2 }));
    expect(appsTo(net.collect(1), 2)).toHaveLength(1);
    expect(pr.inflights.count).toBe(2);
    net.flush();
    expect(pr.match).toBe(lead.lastIndex());
    expect(net.node(2).logTerms()).toEqual(lead.logTerms());
  });

  it.each([
    { from: ProgressState.Replicate, to: ProgressState.Probe },
    { from: ProgressState.Probe, to: ProgressState.Probe },
    { from: ProgressState.Snapshot, to: ProgressState.Snapshot },
  ])('Unreachable: $from -> $to', ({ from, to }) => {
    const net = Network.create(2);
    const lead = net.elect(1);
    const pr = lead.raft.prs.progress.get(2)!;
    if (from === ProgressState.Probe) pr.becomeProbe();
    if (from === ProgressState.Snapshot) pr.becomeSnapshot(1);
    net.propose(1, 'x'); // something in flight
    lead.raw.reportUnreachable(2);
    expect(pr.state).toBe(to);
    if (to === ProgressState.Probe) {
      expect(pr.inflights.count).toBe(0);
      expect(pr.next).toBe(pr.match + 1);
    }
  });
});
