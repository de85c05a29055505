// The worker agent's heartbeat stream against real gRPC manager endpoints
// (mutual TLS with certificates of a real cluster CA), each served by the
// managers' own stream handler (serveHeartbeats) with a scripted beat:
// - a saturated leader that answers slowly: beats still start a period apart,
//   on one stream, so the gap the manager sees does not grow by the latency;
// - a follower that names the leader is asked once, then the leader only;
// - a leader that dies, or stops answering without closing: the agent moves on;
// - a node the cluster removed is told so.
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RootCA, generateKeyAndCsr } from '../../../manager/ca/index.js';
import { CallError } from '../../../manager/cluster/auth.js';
import { serveHeartbeats, type HeartbeatStream } from '../../../manager/cluster/heartbeats.js';
import { LEADER_META } from '../../../proto/client.js';
import { DispatcherService, api, serviceDef } from '../../../proto/services.js';
import { Agent } from '../../../worker/agent/agent.js';
import { waitFor } from '../../support/wait.js';

type Res = InstanceType<typeof api.HeartbeatResponse>;
type Req = InstanceType<typeof api.HeartbeatRequest>;

const quiet = { info() {}, warn() {}, debug() {} };

describe('agent heartbeats', () => {
  let tls: { caPem: string; certPem: string; keyPem: string };
  let serverCreds: grpc.ServerCredentials;
  const servers: grpc.Server[] = [];
  const agents: Agent[] = [];

  /** A manager endpoint answering each beat with `onBeat`; returns its address and server. */
  async function manager(onBeat: (req: Req) => Promise<Res>): Promise<{ addr: string; server: grpc.Server }> {
    const server = new grpc.Server();
    server.addService(serviceDef({ heartbeats: DispatcherService.heartbeats }), {
      heartbeats: (call: HeartbeatStream<Req, Res>) => serveHeartbeats(call, onBeat),
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', serverCreds, (e, p) => (e ? rej(e) : res(p))));
    servers.push(server);
    return { addr: `127.0.0.1:${port}`, server };
  }

  function agent(managers: string[], extra: Partial<ConstructorParameters<typeof Agent>[0]> = {}): Agent {
    const a = new Agent({
      tls: () => tls, managers: () => managers, role: () => 'worker',
      onManagers() {}, onDesiredRole() {}, onRemoved() {}, logger: quiet, hostname: 'hb-test', ...extra,
    });
    agents.push(a);
    a.start();
    return a;
  }

  const answer = (periodMs: number, delayMs = 0) => () =>
    new Promise<Res>((r) => setTimeout(() => r({ periodMs } as Res), delayMs));

  beforeAll(() => {
    const ca = RootCA.create({ clusterId: 'hb' });
    const mgr = generateKeyAndCsr();
    const wrk = generateKeyAndCsr();
    const mgrCert = ca.issue(mgr.csrPem, { nodeId: 'mgr1', role: 'manager', clusterId: 'hb', validityMs: 3600_000 }).certPem;
    const wrkCert = ca.issue(wrk.csrPem, { nodeId: 'wrk1', role: 'worker', clusterId: 'hb', validityMs: 3600_000 }).certPem;
    tls = { caPem: ca.certPem, certPem: wrkCert, keyPem: wrk.keyPem };
    serverCreds = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ cert_chain: Buffer.from(mgrCert), private_key: Buffer.from(mgr.keyPem) }], true);
  }, 30_000);

  afterEach(() => {
    for (const a of agents.splice(0)) a.stop();
  });

  afterAll(() => {
    for (const s of servers) s.forceShutdown();
  });

  it('start a period apart, on one stream, when the manager takes 400 ms to answer', async () => {
    const PERIOD_MS = 500;
    const received: number[] = [];
    const slow = answer(PERIOD_MS, 400);
    const m = await manager((req) => {
      received.push(Date.now());
      expect(req.description?.hostname).toBe('hb-test');
      return slow();
    });
    const a = agent([m.addr]);
    await waitFor('6 heartbeats', () => (received.length >= 6 ? true : undefined), 15_000, 20);
    // The first gap may include the connection's set-up; the steady ones follow the period.
    const gaps = received.slice(2, 6).map((t, i) => t - received[i + 1]!);
    const sorted = [...gaps].sort((x, y) => x - y);
    const median = (sorted[1]! + sorted[2]!) / 2;
    // A period plus the answer's delay (900 ms) is what beating after each answer gives.
    expect(median).toBeGreaterThanOrEqual(PERIOD_MS - 50);
    expect(median).toBeLessThan(PERIOD_MS + 400 / 2);
    expect(a.lastOk).toBeGreaterThan(0);
    expect(a.streamsOpened).toBe(1);
  }, 30_000);

  it('go to the leader a follower names: the follower is asked once, not every period', async () => {
    const leaderBeats: number[] = [];
    let followerBeats = 0;
    const ok = answer(100);
    const leader = await manager(() => {
      leaderBeats.push(Date.now());
      return ok();
    });
    const follower = await manager(async () => {
      followerBeats++;
      const md = new grpc.Metadata();
      md.set(LEADER_META, leader.addr);
      throw new CallError(grpc.status.FAILED_PRECONDITION, `this manager is not the leader; the leader is at ${leader.addr}`, md);
    });
    const a = agent([follower.addr, leader.addr]);
    await waitFor('5 heartbeats at the leader', () => (leaderBeats.length >= 5 ? true : undefined), 15_000, 20);
    expect(followerBeats).toBe(1);
    expect(a.streamsOpened).toBe(2);
  }, 30_000);

  it('a leader that dies: the next beat reaches another manager within a period', async () => {
    const PERIOD_MS = 200;
    const ok = answer(PERIOD_MS);
    const first: number[] = [];
    const second: number[] = [];
    const a1 = await manager(() => (first.push(Date.now()), ok()));
    const a2 = await manager(() => (second.push(Date.now()), ok()));
    agent([a1.addr, a2.addr]);
    await waitFor('3 heartbeats at the first manager', () => (first.length >= 3 ? true : undefined), 15_000, 10);
    const killedAt = Date.now();
    a1.server.forceShutdown();
    await waitFor('a heartbeat at the second manager', () => (second.length >= 1 ? true : undefined), 15_000, 10);
    expect(second[0]! - killedAt).toBeLessThan(2 * PERIOD_MS);
  }, 30_000);

  it('a manager that stops answering without closing the stream is left after twice the period (at least 2 s)', async () => {
    let answering = true;
    const ok = answer(100);
    let stuckBeats = 0;
    const stuck = await manager(() => {
      if (answering) return ok();
      stuckBeats++;
      return new Promise<Res>(() => undefined);
    });
    const other: number[] = [];
    const good = await manager(() => (other.push(Date.now()), ok()));
    const a = agent([stuck.addr, good.addr]);
    await waitFor('an answered heartbeat', () => (a.lastOk > 0 ? true : undefined), 15_000, 10);
    answering = false;
    const stuckSince = Date.now();
    await waitFor('heartbeats at the other manager', () => (other.length >= 2 ? true : undefined), 15_000, 20);
    const movedAfter = other[0]! - stuckSince;
    expect(movedAfter).toBeGreaterThanOrEqual(2000 - 150);
    expect(movedAfter).toBeLessThan(3500);
    // The managers handle a node's beats one at a time: the rest waited behind the stuck one.
    expect(stuckBeats).toBe(1);
  }, 30_000);

  it('a node the cluster removed is told so, with the reason', async () => {
    const m = await manager(async () => {
      throw new CallError(grpc.status.NOT_FOUND, 'node wrk1 is not part of the cluster (was it removed?)');
    });
    const removed: string[] = [];
    agent([m.addr], { onRemoved: (why) => removed.push(why) });
    await waitFor('the removal', () => (removed.length > 0 ? true : undefined), 15_000, 20);
    expect(removed[0]).toContain('not part of the cluster');
  }, 30_000);
});
