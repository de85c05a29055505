// The cluster on real lab hosts: six network namespaces, one shoald each
// (run from dist/), the `shoal` CLI talking to each host's socket from the
// root namespace. host1..host5 become the cluster (3 managers, 2 workers);
// host6 stays outside and is the stranger that tries to get in.
//
// The tests are one story and run in order: each starts from the cluster the
// previous one left (all five nodes Ready) and says which hosts it needs by
// role, not by name, since leadership moves.
//
// Needs root and the lab's packages (and a build): without them the suite is
// skipped with the reason printed; under CI=true it fails instead.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatJoinToken, newTokenSecret, parseJoinToken } from '../../../manager/ca/index.js';
import {
  ClusterLab, SHOAL, byHost, clusterPrerequisites, leaders, managerHosts, repo, summary, waitFor, type NodeView,
} from './harness.js';
import { autogroupNice, threadNice } from '../../support/sched.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const PROBE = path.join(here, 'control-probe.mjs');
const pre = clusterPrerequisites('cluster system tests');

const MANAGERS = ['host1', 'host2', 'host3'];
const WORKERS = ['host4', 'host5'];
const MEMBERS = [...MANAGERS, ...WORKERS];

/** Five Ready nodes, three managers all Reachable, exactly one Leader. */
function healthy(ns: NodeView[]): boolean {
  return ns.length === 5
    && ns.every((n) => n.Status.State === 'ready')
    && managerHosts(ns).join() === MANAGERS.join()
    && leaders(ns).length === 1
    && ns.every((n) => !n.ManagerStatus || n.ManagerStatus.Leader || n.ManagerStatus.Reachability === 'reachable');
}

describe.skipIf(pre.skip)('cluster on lab hosts: join, failover, recovery, refusals', () => {
  let c: ClusterLab;
  /** Node ID of each host, from its own `shoal info` right after it joined. */
  const ids: Record<string, string> = {};
  let workerToken = '';
  let managerToken = '';

  beforeAll(async () => {
    if (!pre.ok) throw new Error(`cluster system test prerequisites missing: ${pre.problems.join('; ')}`);
    c = new ClusterLab(`c${process.pid}`, 6, '10.232.10.0/24');
    await c.up();
  }, 120_000);

  let failed = false;
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') failed = true;
  });

  afterAll(async () => {
    await c?.down({ keepLogs: failed });
  }, 60_000);

  /**
   * Every test after the first starts from five healthy nodes. A test that
   * failed half-way may have left a daemon down: start whatever is not
   * running (a no-op for running ones) so one failure does not fail the rest.
   */
  async function startHealthy(): Promise<NodeView[]> {
    for (const h of MEMBERS) await c.lab.startDaemon(h);
    return waitHealthy('a healthy cluster');
  }

  /** The current picture, from any manager that answers: everyone is healthy. */
  async function waitHealthy(what: string, via: string[] = MANAGERS, timeoutMs = 30_000): Promise<NodeView[]> {
    let i = 0;
    let last: NodeView[] = [];
    try {
      return await c.waitNodes(what, () => via[i++ % via.length]!, (ns) => {
        last = ns;
        return healthy(ns);
      }, timeoutMs);
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: ${summary(last)}`);
    }
  }

  function roles(ns: NodeView[]): { leader: string; followers: string[] } {
    const leader = leaders(ns)[0]!;
    return { leader, followers: managerHosts(ns).filter((h) => h !== leader) };
  }

  it('init on host1, two managers and two workers join: five Ready nodes, three managers, one Leader', async () => {
    const init = await c.ok('host1', ['swarm', 'init', '--advertise-addr', c.addr('host1'), '--snapshot-interval', '10']);
    expect(init).toMatch(/Swarm initialized: current node \(\w+\) is now a manager/);
    expect(init).toContain(`shoal swarm join --token SHTKN-1-`);
    managerToken = await c.joinToken('host1', 'manager');
    workerToken = await c.joinToken('host1', 'worker');
    expect(managerToken).not.toBe(workerToken);
    expect(init).toContain(workerToken);

    for (const h of ['host2', 'host3']) {
      expect(await c.ok(h, ['swarm', 'join', '--token', managerToken, c.addr('host1')], 60_000)).toContain('joined a swarm as a manager');
    }
    for (const h of WORKERS) {
      expect(await c.ok(h, ['swarm', 'join', '--token', workerToken, c.addr('host1')], 60_000)).toContain('joined a swarm as a worker');
    }
    for (const h of MEMBERS) {
      const info = await c.info(h);
      expect(info.LocalNodeState).toBe('active');
      expect(info.ControlAvailable).toBe(MANAGERS.includes(h));
      ids[h] = info.NodeID;
    }

    const ns = await waitHealthy('five Ready nodes with three managers and a leader', ['host1']);
    expect(ns.map((n) => n.Description.Hostname).sort()).toEqual(MEMBERS);
    for (const h of MEMBERS) {
      const n = byHost(ns, h);
      expect(n.ID).toBe(ids[h]);
      expect(n.Status.State).toBe('ready');
      expect(n.Spec.Role).toBe(MANAGERS.includes(h) ? 'manager' : 'worker');
      // Managers carry a manager status with their raft address; workers none.
      if (MANAGERS.includes(h)) expect(n.ManagerStatus).toMatchObject({ Addr: c.addr(h) });
      else expect(n.ManagerStatus).toBeUndefined();
    }
    expect(leaders(ns)).toHaveLength(1);
    // Every manager gives the same answer (followers forward to the leader).
    for (const h of ['host2', 'host3']) expect(leaders(await c.nodes(h))).toEqual(leaders(ns));
    // Each shoald runs above the containers (--nice default -10): its event loop, and its session's autogroup.
    for (const h of MEMBERS) {
      const pid = c.lab.hostState(h).pid!;
      expect(threadNice(pid), `${h}: nice of shoald's main thread`).toBe(-10);
      // The lab starts shoald leading a session of its own, so it has an autogroup of its own.
      if (existsSync(`/proc/${pid}/autogroup`)) expect(autogroupNice(pid), `${h}: shoald's autogroup`).toBe(-10);
    }
  }, 120_000);

  it('a stranger is refused with a clear error: wrong secret, another cluster\'s CA, a rotated manager token', async () => {
    const { caDigestHex } = parseJoinToken(workerToken);
    const join = (token: string) => c.refused('host6', ['swarm', 'join', '--token', token, c.addr('host1')], 60_000);

    // Well-formed, this cluster's CA, but a secret nobody issued.
    const wrongSecret = formatJoinToken(caDigestHex, newTokenSecret());
    expect(await join(wrongSecret)).toMatch(/refused to join this node: the join token is not valid for this cluster/);

    // The token pins a different CA: the node must not even send its CSR.
    const otherCa = createHash('sha256').update('some other cluster').digest('hex');
    const foreign = formatJoinToken(otherCa, parseJoinToken(workerToken).secret);
    const err = await join(foreign);
    expect(err).toMatch(/CA certificate .* does not match the token's digest/);
    expect(err).toContain(otherCa);

    // Malformed: said precisely, before any connection.
    expect(await join('SHTKN-1-abc-def')).toMatch(/invalid join token: the CA digest part has 3 characters, expected 50/);

    // Rotating the manager token: the old one stops working, the worker token is untouched.
    const rotated = await c.ok('host1', ['swarm', 'join-token', '--rotate', 'manager']);
    expect(rotated).toContain('Successfully rotated manager join token.');
    const fresh = await c.joinToken('host2', 'manager');
    expect(fresh).not.toBe(managerToken);
    expect(parseJoinToken(fresh).caDigestHex).toBe(caDigestHex);
    expect(await c.joinToken('host3', 'worker')).toBe(workerToken);
    expect(await join(managerToken)).toMatch(/the join token is not valid for this cluster \(it may have been rotated\)/);
    managerToken = fresh;

    // None of this left a trace: host6 is still outside, the cluster still has five nodes.
    const info = await c.info('host6');
    expect(info.LocalNodeState).toBe('inactive');
    expect(info.NodeID).toBe('');
    expect((await c.nodes('host1')).map((n) => n.Description.Hostname).sort()).toEqual(MEMBERS);
  }, 120_000);

  it('the control API over TLS refuses a client without a certificate and a worker\'s certificate', async () => {
    const { leader } = roles(await c.nodes('host1'));
    const certs = (h: string) => path.join(c.lab.hostState(h).stateDir, 'certs');
    const probe = async (...tlsFiles: string[]) => {
      // From host6: a machine on the cluster's network that is not a member.
      const r = await c.lab.exec('host6', [process.execPath, PROBE, repo, c.addr(leader), ...tlsFiles], { timeoutMs: 30_000 });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { ok: boolean; nodes?: number; periodMs?: number; code?: number; codeName?: string; details?: string };
    };

    // (a) Trusts the cluster CA but presents no client certificate.
    const anon = await probe(path.join(certs('host4'), 'ca.pem'));
    expect(anon).toMatchObject({ ok: false, codeName: 'UNAUTHENTICATED' });
    expect(anon.details).toMatch(/^the control API needs a cluster client certificate \(none was presented/);

    // (b) A worker's own certificate and key, from its state dir.
    const worker = await probe(path.join(certs('host4'), 'ca.pem'), path.join(certs('host4'), 'node.pem'), path.join(certs('host4'), 'node-key.pem'));
    expect(worker).toMatchObject({ ok: false, codeName: 'PERMISSION_DENIED' });
    expect(worker.details).toContain(`the control API is not allowed for a worker certificate (node ${ids.host4})`);
    // ...while the dispatcher serves it, also the one-call-per-beat Heartbeat that agents before
    // the heartbeat stream use (kept for rolling upgrades).
    const beat = await c.lab.exec('host6', [process.execPath, PROBE, repo, c.addr(leader), ...['ca.pem', 'node.pem', 'node-key.pem'].map((f) => path.join(certs('host4'), f))], {
      timeoutMs: 30_000, env: { ...process.env, PROBE_CALL: 'heartbeat' },
    });
    expect(beat.code, beat.stderr).toBe(0);
    expect(JSON.parse(beat.stdout)).toEqual({ ok: true, periodMs: 1000 });

    // Control: the same call with a manager's certificate is served.
    const mgr = MANAGERS.find((h) => h !== leader)!;
    const manager = await probe(path.join(certs(mgr), 'ca.pem'), path.join(certs(mgr), 'node.pem'), path.join(certs(mgr), 'node-key.pem'));
    expect(manager).toEqual({ ok: true, nodes: 5 });
  }, 60_000);

  it('the CLI with -H reaches a remote manager over mutual TLS with a manager\'s certificate, and refuses what it cannot do remotely', async () => {
    const before = await c.nodes('host1');
    const { followers } = roles(before);
    const tls = (h: string) => ['ca.pem', 'node.pem', 'node-key.pem'].map((f) => path.join(c.lab.hostState(h).stateDir, 'certs', f));
    // From host6 (not a member), against a follower: the CLI follows it to the leader.
    const remote = (certsOf: string | undefined, args: string[]) => {
      const flags = certsOf ? ['--tlscacert', tls(certsOf)[0]!, '--tlscert', tls(certsOf)[1]!, '--tlskey', tls(certsOf)[2]!] : [];
      return c.lab.exec('host6', [process.execPath, SHOAL, '-H', c.addr(followers[0]!), ...flags, ...args], { timeoutMs: 30_000 });
    };

    const ok = await remote(followers[1]!, ['node', 'ls', '--format', 'json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as NodeView[]).map((n) => n.ID).sort()).toEqual(before.map((n) => n.ID).sort());

    const asWorker = await remote('host4', ['node', 'ls']);
    expect(asWorker.code).toBe(1);
    expect(asWorker.stderr).toContain(`the control API is not allowed for a worker certificate (node ${ids.host4})`);

    const noCerts = await remote(undefined, ['node', 'ls']);
    expect(noCerts.code).toBe(2);
    expect(noCerts.stderr).toMatch(/--host needs --tlscacert, --tlscert and --tlskey/);

    // Leaving is the local node's business: refused remotely, and nothing changes.
    const leave = await remote(followers[1]!, ['swarm', 'leave', '--force']);
    expect(leave.code).toBe(2);
    expect(leave.stderr).toMatch(/this command acts on the local node/);
    expect(summary(await c.nodes('host1'))).toBe(summary(before));
  }, 90_000);

  it('SIGKILL of the leader: another manager answers with a new leader; the old one restarts and rejoins with its identity', async () => {
    const { leader, followers } = roles(await startHealthy());
    const t0 = Date.now();
    expect(await c.lab.killDaemon(leader)).toBe(true);
    let attempts = 0;
    const ns = await waitFor(`a new leader to answer node ls on ${followers.join(' or ')}`, async () => {
      const via = followers[attempts++ % followers.length]!;
      const r = await c.shoal(via, ['node', 'ls', '--format', 'json'], 15_000);
      if (r.code !== 0) return undefined;
      const list = JSON.parse(r.stdout) as NodeView[];
      const l = leaders(list);
      return l.length === 1 && l[0] !== leader ? list : undefined;
    }, 20_000, 50);
    const failoverMs = Date.now() - t0;
    console.log(`leader failover: ${leader} SIGKILLed -> ${leaders(ns)[0]} answered node ls as leader after ${failoverMs} ms`);
    expect(followers).toContain(leaders(ns)[0]);
    expect(failoverMs).toBeLessThan(10_000);

    // The new leader sees the old one as unreachable from its first answer on: it counts only what
    // it heard since it won (the dead leader's last heartbeat may be younger than an election timeout).
    const newLeader = leaders(ns)[0]!;
    expect(byHost(ns, leader).ManagerStatus?.Reachability).toBe('unreachable');

    c.markLog(leader);
    await c.lab.startDaemon(leader);
    const back = await waitHealthy(`${leader} to rejoin as a reachable manager`, [newLeader]);
    expect(byHost(back, leader).ID).toBe(ids[leader]);
    expect(back).toHaveLength(5);
    expect((await c.info(leader)).NodeID).toBe(ids[leader]);
    expect(c.logSince(leader)).toContain('rejoining the cluster with saved state');
  }, 90_000);

  it('SIGKILL of a worker: marked Down for missed heartbeats within the bound; Ready again after restart', async () => {
    const worker = 'host5';
    await startHealthy();
    const t0 = Date.now();
    expect(await c.lab.killDaemon(worker)).toBe(true);
    const ns = await c.waitNodes(`${worker} to be marked down`, 'host1', (list) => byHost(list, worker).Status.State === 'down', 10_000);
    const downMs = Date.now() - t0;
    console.log(`worker down detection: ${worker} SIGKILLed -> Down after ${downMs} ms (heartbeat period 1 s)`);
    expect(byHost(ns, worker).Status.Message).toMatch(/heartbeat/);
    // Only the dead one.
    expect(ns.filter((n) => n.Status.State !== 'ready').map((n) => n.Description.Hostname)).toEqual([worker]);

    await c.lab.startDaemon(worker);
    const back = await waitHealthy(`${worker} to be Ready again`);
    expect(byHost(back, worker)).toMatchObject({ ID: ids[worker], Status: { State: 'ready', Message: '' } });
  }, 60_000);

  it('a manager that missed 30 changes catches up through a raft snapshot, and can then lead with all of them', async () => {
    const { leader: L, followers: [F1, F2] } = roles(await startHealthy());
    expect(F1 && F2).toBeTruthy();
    // F1 goes away while the cluster keeps changing.
    expect(await c.lab.killDaemon(F1!)).toBe(true);
    const chain = async (node: string, from: number) => {
      for (let i = from; i < from + 15; i++) await c.ok(L, ['node', 'update', '--label-add', `k${i}=v${i}`, node]);
    };
    await Promise.all([chain('host4', 0), chain('host5', 15)]);

    // With --snapshot-interval 10 the leader has compacted past what F1 had:
    // F1 can only catch up by installing a snapshot.
    c.markLog(F1!);
    await c.lab.startDaemon(F1!);
    await waitFor(`${F1} to restore a snapshot from the leader`, () => (c.logSince(F1!).includes('restored snapshot') ? true : undefined), 30_000, 200);
    await waitHealthy(`${F1} to be a reachable manager again`, [L]);

    // Now F1 must carry the cluster: with F2 gone, a write commits only with F1's vote.
    expect(await c.lab.killDaemon(F2!)).toBe(true);
    await c.ok(L, ['node', 'update', '--label-add', 'final=yes', 'host4'], 30_000);
    // Without L, F2 (which missed `final`) cannot win an election against F1:
    // F1 becomes the leader and answers from its own store.
    expect(await c.lab.killDaemon(L)).toBe(true);
    await c.lab.startDaemon(F2!);
    const ns = await c.waitNodes(`${F1} to lead`, F1!, (list) => leaders(list).length === 1, 30_000);
    expect(leaders(ns)).toEqual([F1]);
    const labels4 = byHost(ns, 'host4').Spec.Labels;
    const labels5 = byHost(ns, 'host5').Spec.Labels;
    expect(labels4).toEqual({ ...Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, `v${i}`])), final: 'yes' });
    expect(labels5).toEqual(Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i + 15}`, `v${i + 15}`])));

    await c.lab.startDaemon(L);
    await waitHealthy('all three managers back', [F1!]);
  }, 150_000);

  it('demoting the leader moves leadership to another manager; the demoted node shows no manager status', async () => {
    const { leader: L } = roles(await startHealthy());
    expect(await c.ok(L, ['node', 'demote', L])).toContain(`Node ${L} demoted in the swarm.`);
    const others = MANAGERS.filter((h) => h !== L);
    let i = 0;
    const ns = await c.waitNodes(`${L} to be a worker and another manager to lead`, () => others[i++ % 2]!, (list) => {
      const n = byHost(list, L);
      return list.length === 5 && !n.ManagerStatus && n.Spec.Role === 'worker' && leaders(list).length === 1 && managerHosts(list).length === 2;
    }, 30_000);
    expect(others).toContain(leaders(ns)[0]);
    expect(managerHosts(ns)).toEqual(others);
    expect(byHost(ns, L).ID).toBe(ids[L]);
    // It stays in the cluster as a worker: Ready, and no longer offers the control API.
    await c.waitNodes(`${L} Ready as a worker`, others[0]!, (list) => byHost(list, L).Status.State === 'ready');
    await waitFor(`${L} to drop its manager role locally`, async () => ((await c.info(L)).ControlAvailable ? undefined : true), 20_000, 200);
    expect(await c.refused(L, ['node', 'ls'])).toMatch(/not a swarm manager/);

    // Promote it back so the story goes on with three managers.
    expect(await c.ok(others[0]!, ['node', 'promote', L])).toContain(`Node ${L} promoted to a manager.`);
    await waitHealthy(`${L} to be a manager again`, others, 40_000);
    expect((await c.info(L)).ControlAvailable).toBe(true);
  }, 120_000);

  it('refuses what would lose quorum or a live node: demote with a manager down, rm of a manager or a Ready worker', async () => {
    const { leader: L, followers: [A, B] } = roles(await startHealthy());
    expect(await c.lab.killDaemon(B!)).toBe(true);
    await c.waitNodes(`${B} to be unreachable`, L, (list) => byHost(list, B!).ManagerStatus?.Reachability === 'unreachable');

    // The operator is on A, a follower: its daemon forwards each request to the
    // leader, and the leader's refusal comes back as it is, at once (a refusal
    // is an answer, not a reason to try again elsewhere).
    const refusal = async (args: string[], want: RegExp) => {
      const r = await c.shoal(A!, args);
      expect(r.code, r.stdout).toBe(1);
      expect(r.stderr).toMatch(want);
      expect(r.ms, `shoal ${args.join(' ')} took ${r.ms} ms to be refused`).toBeLessThan(5_000);
    };
    await refusal(['node', 'demote', A!], new RegExp(`cannot demote ${A}: the cluster would lose quorum \\(only 1 of the 2 remaining managers are reachable`));
    await refusal(['node', 'rm', A!], /is a cluster manager and a member of raft: demote it first/);
    await refusal(['node', 'rm', 'host4'], /node host4 is not down and can't be removed/);
    // Nothing changed.
    const ns = await c.nodes(L);
    expect(byHost(ns, A!).Spec.Role).toBe('manager');
    expect(managerHosts(ns)).toEqual(MANAGERS);
    expect(ns).toHaveLength(5);

    await c.lab.startDaemon(B!);
    await waitHealthy(`${B} back`, [L]);
  }, 90_000);

  it('a manager join cut short by SIGKILL after raft added the learner: the restarted host starts clean, and the leader takes the learner out of raft', async () => {
    const { leader: L } = roles(await startHealthy());
    // host6 is outside the cluster. Its daemon kills itself at the crash point: raft has added it
    // as a learner, and it has not saved node.json yet.
    const H = 'host6';
    await c.lab.killDaemon(H);
    await c.lab.startDaemon(H, undefined, { env: { SHOAL_CRASH_AT: 'join:after-raft-add' } });
    await c.waitDaemon(H);
    const join = await c.shoal(H, ['swarm', 'join', '--token', managerToken, c.addr(L)], 60_000);
    expect(join.code, join.stdout + join.stderr).not.toBe(0);
    expect(c.log(H)).toContain('SHOAL_CRASH_AT=join:after-raft-add: killing this daemon here');
    expect(c.lab.hostState(H).pid).toBeNull();
    const half = await c.waitNodes(`${H} listed as an unreachable manager`, L, (ns) => ns.some((n) => n.Description.Hostname === H && n.ManagerStatus?.Reachability === 'unreachable'));
    const id = byHost(half, H).ID;
    const t0 = Date.now();

    // Restarted, it keeps nothing of the join it did not finish.
    c.markLog(H);
    await c.lab.startDaemon(H);
    await c.waitDaemon(H);
    expect((await c.info(H)).LocalNodeState).toBe('inactive');
    expect(c.logSince(H)).toContain('a swarm init, join or leave was cut short: removed the certificates and raft data it left');

    // Nobody will answer for that learner: after a minute of silence the leader undoes the join
    // as a demotion (the node a down worker, saying why), and raft has the three managers again.
    const undone = await c.waitNodes(`${H}'s join undone`, L, (ns) => {
      const n = ns.find((x) => x.ID === id);
      return !!n && !n.ManagerStatus && n.Spec.Role === 'worker';
    }, 120_000);
    console.log(`abandoned manager join undone ${((Date.now() - t0) / 1000).toFixed(1)} s after the restart`);
    const n = undone.find((x) => x.ID === id)!;
    expect(n.Status.State).toBe('down');
    expect(n.Status.Message).toMatch(/its join as a manager never completed \(no answer to raft for \d+ s\)/);
    expect(managerHosts(undone)).toEqual(MANAGERS);
    expect(leaders(undone)).toEqual([L]);

    // What the message says to do works, and the cluster is as before.
    await c.ok(L, ['node', 'rm', id]);
    await waitHealthy('five healthy nodes again', [L]);
  }, 180_000);

  it('swarm init --force-new-cluster on the last manager recovers a cluster that lost two of its three managers', async () => {
    const { leader: L, followers: [S, other] } = roles(await startHealthy());
    // Two managers die for good; S survives alone without a quorum.
    await c.lab.killDaemon(L);
    await c.lab.killDaemon(other!);
    const stuck = await c.shoal(S!, ['node', 'ls'], 25_000);
    console.log(`without quorum: node ls on ${S} failed after ${stuck.ms} ms: ${stuck.stderr.trim()}`);
    expect(stuck.code).toBe(1);
    expect(stuck.stderr).toMatch(/could not reach a leader .*: the cluster may have lost quorum/);

    const out = await c.ok(S!, ['swarm', 'init', '--force-new-cluster'], 60_000);
    expect(out).toContain(`Swarm initialized: current node (${ids[S!]}) is now a manager.`);
    const ns = await c.waitNodes(`${S} to lead alone with the workers Ready`, S!, (list) =>
      leaders(list).join() === S && WORKERS.every((w) => byHost(list, w).Status.State === 'ready'), 30_000);
    expect(managerHosts(ns)).toEqual([S]);
    expect(byHost(ns, S!).ID).toBe(ids[S!]);
    for (const gone of [L, other!]) {
      expect(byHost(ns, gone)).toMatchObject({ Spec: { Role: 'worker' }, Status: { State: 'down' } });
    }
    // The new leader's dispatcher marks a node down after 3 silent heartbeat
    // periods: the workers staying Ready past that proves they reconnected.
    const until = Date.now() + 4_500;
    while (Date.now() < until) {
      const list = await c.nodes(S!);
      expect(WORKERS.map((w) => byHost(list, w).Status.State), summary(list)).toEqual(['ready', 'ready']);
    }
    // And the cluster takes writes again.
    await c.ok(S!, ['node', 'update', '--label-add', 'recovered=yes', 'host4']);
    expect((await c.inspect(S!, 'host4')).Spec.Labels.recovered).toBe('yes');
  }, 120_000);
  it('a swarm init cut short by SIGKILL before it saved node.json: the restarted daemon drops its leftovers, and init then works', async () => {
    // host6 is outside the cluster: it makes a cluster of its own here, and leaves it at the end.
    const H = 'host6';
    const state = c.lab.hostState(H).stateDir;
    await c.ok(H, ['swarm', 'init', '--advertise-addr', c.addr(H)]);
    await c.lab.killDaemon(H);
    // What a crash between saving the certificates and raft data and saving node.json leaves.
    rmSync(path.join(state, 'node.json'));
    expect(readdirSync(path.join(state, 'certs')).length).toBeGreaterThan(0);
    expect(existsSync(path.join(state, 'raft'))).toBe(true);

    await c.lab.startDaemon(H);
    await c.waitDaemon(H);
    expect((await c.info(H)).LocalNodeState).toBe('inactive');
    expect(c.log(H)).toContain('a swarm init, join or leave was cut short: removed the certificates and raft data it left');
    expect(readdirSync(path.join(state, 'certs'))).toEqual([]);
    expect(existsSync(path.join(state, 'raft'))).toBe(false);

    // Before, the next init opened the old cluster's raft log under a new raft id and never led.
    const out = await c.ok(H, ['swarm', 'init', '--advertise-addr', c.addr(H)], 60_000);
    const id = /current node \((\w+)\) is now a manager/.exec(out)?.[1];
    const ns = await c.waitNodes(`${H} to lead a cluster of its own`, H, (list) => list.length === 1 && leaders(list).join() === H, 30_000);
    expect(ns[0]!.ID).toBe(id);
    await c.ok(H, ['swarm', 'leave', '--force']);
  }, 90_000);
});
