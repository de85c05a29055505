// The leader's loops on a real manager in this process (raft on disk, store,
// CA): what they must do after a leader change or a stall.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLE } from '../../../manager/cluster/manager.js';
import { defaultSpec } from '../../../cli/shoald/daemon.js';
import { nodesTable } from '../../../manager/cluster/tables.js';
import type { CertIdentity } from '../../../manager/ca/index.js';
import { api } from '../../../proto/services.js';
import { ABANDONED_JOIN_MS, startTestManager, type TestManager } from '../../support/manager.js';
import { sleep, waitFor } from '../../support/wait.js';

describe('leader loops of a manager', () => {
  let t: TestManager;
  beforeAll(async () => {
    t = await startTestManager();
  }, 30_000);
  afterAll(async () => t?.stop());

  it('heartbeats every 3 ticks unless the cluster spec says otherwise (the spec a new cluster gets says so too)', async () => {
    // The test manager ticks every 20 ms and leaves the heartbeat to the default.
    expect(t.m.raft.tickInterval).toBe(20);
    expect(t.m.raft.heartbeatInterval).toBe(60);
    expect(defaultSpec().raft).toMatchObject({ tickMs: 100, electionTick: 10, heartbeatTick: 3 });
  });

  // A demotion is two writes: the raft removal, then the node's role in the store. A leader
  // that loses leadership between them leaves the node a "manager" outside raft (seen in CI:
  // the demoted node kept its manager status and renewed its certificate every second).
  it('finishes a demotion whose raft removal happened but whose store write did not', async () => {
    await t.addNode('half1', { role: ROLE.manager, managerStatus: { raftId: 999, addr: '127.0.0.2:4377' } as never });
    expect(t.m.raft.status().config.voters).not.toContain(999);
    const n = await waitFor('the demotion finished', () => {
      const cur = t.m.store.view((r) => r.get(nodesTable, 'half1'));
      return cur && cur.role === ROLE.worker ? cur : undefined;
    }, 10_000, 20);
    expect(n.managerStatus ?? null).toBeNull();
    // The leader itself is untouched.
    expect(t.m.store.view((r) => r.get(nodesTable, 'mgr1'))?.role).toBe(ROLE.manager);
  });

  // A manager join is: the certificate (the node object), raft's AddLearner, then the joining
  // daemon saves its state. A daemon killed between the last two starts over with nothing of that
  // join; the learner it leaves behind would be replicated to, and listed, for good.
  it('a learner silent for a while whose node is not ready (a join cut short) leaves raft, and its node becomes a down worker that says why; one whose node is ready stays', async () => {
    const managerSpec = { labels: {}, desiredRole: ROLE.manager, availability: api.NodeAvailability.AVAILABILITY_ACTIVE };
    const learners = () => t.m.raft.status().config.learners;
    const node = (id: string) => t.m.store.view((r) => r.get(nodesTable, id));
    // Both unreachable (nothing listens on port 9); only the second node never got as far as a heartbeat.
    await t.addNode('slowpoke', { role: ROLE.manager, spec: managerSpec as never });
    const kept = (await t.m.joinRaft({ nodeId: 'slowpoke', role: 'manager' } as CertIdentity, '127.0.0.1:9')).raftId;
    await t.addNode('ghost', {
      role: ROLE.manager, spec: managerSpec as never,
      status: { state: api.NodeState.NODE_UNKNOWN, message: 'joining', addr: '127.0.0.3', updatedAt: Date.now() } as never,
    });
    const gone = (await t.m.joinRaft({ nodeId: 'ghost', role: 'manager' } as CertIdentity, '127.0.0.1:9')).raftId;
    expect(learners()).toEqual(expect.arrayContaining([kept, gone]));
    const started = Date.now();

    const ghost = await waitFor('the abandoned join undone', () => (node('ghost')?.role === ROLE.worker ? node('ghost') : undefined), 15_000, 20);
    expect(Date.now() - started).toBeGreaterThanOrEqual(ABANDONED_JOIN_MS - 100);
    expect(learners()).not.toContain(gone);
    expect(ghost!.spec?.desiredRole).toBe(ROLE.worker);
    expect(ghost!.managerStatus ?? null).toBeNull();
    expect(ghost!.status?.state).toBe(api.NodeState.NODE_DOWN);
    expect(ghost!.status?.message).toMatch(/^its join as a manager never completed \(no answer to raft for \d+ s\): taken out of raft as a worker; `shoal node rm` it, or join the host again$/);
    // The ready node's learner was silent as long (it joined first), and stays.
    expect(learners()).toContain(kept);
    expect(node('slowpoke')?.role).toBe(ROLE.manager);

    // Leave the cluster as it was: demoting the ready one takes it out of raft.
    await t.m.store.update((tx) => {
      const cur = tx.get(nodesTable, 'slowpoke')!;
      tx.update(nodesTable, { ...cur, spec: { ...managerSpec, desiredRole: ROLE.worker } } as never);
    });
    await waitFor('the ready one demoted', () => (learners().includes(kept) ? undefined : true), 10_000, 20);
  });

  it('a heartbeat with a runtime error marks its node down with the reason (kept short), and one without makes it ready', async () => {
    await t.addNode('rt1', {});
    const id = { nodeId: 'rt1', role: 'worker' } as CertIdentity;
    const reason = `container runtime unavailable (containerd at /x.sock): ${'x'.repeat(5000)}`;
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2', reason);
    let n = t.m.store.view((r) => r.get(nodesTable, 'rt1'))!;
    expect(n.status?.state).toBe(api.NodeState.NODE_DOWN);
    expect(n.status?.message).toBe(reason.slice(0, 1024));
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2');
    n = t.m.store.view((r) => r.get(nodesTable, 'rt1'))!;
    expect(n.status?.state).toBe(api.NodeState.NODE_READY);
    expect(n.status?.message).toBe('');
  });

  it('a node heard only through another manager says so in its status (an operator should know a link is down); a relayed beat beside direct ones does not', async () => {
    await t.addNode('rl1', {});
    await t.addNode('relayhost', { role: ROLE.manager });
    const id = { nodeId: 'rl1', role: 'worker' } as CertIdentity;
    const message = () => t.m.store.view((r) => r.get(nodesTable, 'rl1'))!.status?.message;
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2');
    // The agent's hedge: a relayed beat while direct ones still come (the leader was only slow).
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2', '', 'relayhost');
    expect(message()).toBe('');
    // Only relayed ones for more than 1.5 periods (1 s here): the link is down.
    await sleep(1_600);
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2', '', 'relayhost');
    expect(message()).toBe('reached through manager relayhost: no direct connection to the leader');
    expect(t.m.store.view((r) => r.get(nodesTable, 'rl1'))!.status?.state).toBe(api.NodeState.NODE_READY);
    // Direct again: cleared.
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2');
    expect(message()).toBe('');
  });

  it('a node relayed by two managers at once (the agent\'s hedge) keeps one named in its note, with no write per beat; the other is named once the first stops', async () => {
    await t.addNode('rl2', {});
    await t.addNode('relaya', { role: ROLE.manager });
    await t.addNode('relayb', { role: ROLE.manager });
    const id = { nodeId: 'rl2', role: 'worker' } as CertIdentity;
    const stored = () => t.m.store.view((r) => r.get(nodesTable, 'rl2'))!;
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2');
    await sleep(1_600);
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2', '', 'relaya');
    expect(stored().status?.message).toBe('reached through manager relaya: no direct connection to the leader');
    const written = Number(stored().meta?.version);
    for (let i = 0; i < 4; i++) {
      await t.m.dispatcher.heartbeat(id, null, '127.0.0.2', '', 'relayb');
      await t.m.dispatcher.heartbeat(id, null, '127.0.0.2', '', 'relaya');
    }
    expect(stored().status?.message).toContain('relaya');
    expect(Number(stored().meta?.version)).toBe(written);
    // relaya gave out (dropped by the agent): after 1.5 periods of relayb alone, the note names relayb.
    await sleep(1_600);
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2', '', 'relayb');
    expect(stored().status?.message).toBe('reached through manager relayb: no direct connection to the leader');
  });

  it('a heartbeat\'s description reaches the store when anything in it changed (an upgrade), and costs no write when not', async () => {
    await t.addNode('up1', {});
    const id = { nodeId: 'up1', role: 'worker' } as CertIdentity;
    const desc = (version: string) => ({ hostname: 'up1', platform: { os: 'linux', architecture: 'x64' }, resources: { nanoCpus: 2e9, memoryBytes: 2 ** 30 }, version, engineLabels: {} });
    const stored = () => t.m.store.view((r) => r.get(nodesTable, 'up1'))!;
    await t.m.dispatcher.heartbeat(id, desc('0.1.0') as never, '127.0.0.2');
    expect(stored().description?.version).toBe('0.1.0');
    const written = Number(stored().meta?.version);
    expect(written).toBeGreaterThan(0);
    // The same again, and a beat without one: nothing to write.
    await t.m.dispatcher.heartbeat(id, desc('0.1.0') as never, '127.0.0.2');
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2');
    expect(Number(stored().meta?.version)).toBe(written);
    // Upgraded in place: same host, new version (was ignored: only a new hostname was written).
    await t.m.dispatcher.heartbeat(id, desc('0.2.0') as never, '127.0.0.2');
    expect(stored().description?.version).toBe('0.2.0');
    expect(stored().description?.hostname).toBe('up1');
  });

  // Seen in bench:converge: a leader whose event loop was blocked for seconds (a slow fsync
  // on a saturated disk) ran its down check before reading the heartbeats queued meanwhile,
  // and marked a live node down.
  it('forgets the heartbeat state of a node removed from the cluster', async () => {
    await t.addNode('gone1', {});
    await t.addNode('relayc', { role: ROLE.manager });
    const id = { nodeId: 'gone1', role: 'worker' } as CertIdentity;
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2');
    await sleep(1_600);
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2', '', 'relayc'); // named in its note: kept in every map
    expect(t.m.dispatcher.tracked()).toContain('gone1');
    await t.m.store.update((tx) => tx.delete(nodesTable, 'gone1'));
    await waitFor('gone1 forgotten', () => (t.m.dispatcher.tracked().includes('gone1') ? undefined : true), 5_000);
    expect(t.m.dispatcher.tracked()).not.toContain('gone1');
  });

  it('a leader that stalls longer than the grace period does not mark a node down whose heartbeats were queued meanwhile', async () => {
    await t.addNode('live1', {});
    const id = { nodeId: 'live1', role: 'worker' } as CertIdentity;
    await t.m.dispatcher.heartbeat(id, null, '127.0.0.2');
    // Every state the node goes through from here on (a flap down and back up counts).
    const states: number[] = [];
    const { watch } = t.m.store.viewAndWatch(() => undefined, { table: nodesTable, filter: (ev) => ev.object.id === 'live1' });
    void (async () => {
      for await (const ev of watch) states.push(Number((ev.object as { status?: { state?: number } }).status?.state));
    })();
    // Block the event loop for 4 heartbeat periods (the grace is 3), then let the heartbeat
    // that "arrived" meanwhile be read after the overdue timers, as queued I/O is.
    const until = Date.now() + 4 * t.m.dispatcher.periodMs();
    while (Date.now() < until) { /* a blocked event loop */ }
    setImmediate(() => void t.m.dispatcher.heartbeat(id, null, '127.0.0.2'));
    const beats = setInterval(() => void t.m.dispatcher.heartbeat(id, null, '127.0.0.2'), 500);
    try {
      await sleep(2 * t.m.dispatcher.periodMs());
    } finally {
      clearInterval(beats);
      watch.close();
    }
    expect(states).not.toContain(api.NodeState.NODE_DOWN);
    expect(t.m.store.view((r) => r.get(nodesTable, 'live1'))?.status?.state).toBe(api.NodeState.NODE_READY);
  }, 30_000);
});
