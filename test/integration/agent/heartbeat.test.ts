// The worker agent's heartbeats against real gRPC manager endpoints (mutual
// TLS with certificates of a real cluster CA). One answers slowly, as a
// saturated leader does: beats must still start a period apart, so the gap
// the manager sees does not grow by the answer's latency. A follower that
// names the leader is asked once, not every period.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RootCA, generateKeyAndCsr } from '../../../manager/ca/index.js';
import { LEADER_META } from '../../../proto/client.js';
import { DispatcherService, api, serviceDef } from '../../../proto/services.js';
import { Agent } from '../../../worker/agent/agent.js';
import { waitFor } from '../../support/wait.js';

const PERIOD_MS = 500;
const ANSWER_DELAY_MS = 400;

describe('agent heartbeats', () => {
  let server: grpc.Server;
  let addr = '';
  const received: number[] = [];
  let tls: { caPem: string; certPem: string; keyPem: string };
  let serverCreds: grpc.ServerCredentials;
  const others: grpc.Server[] = [];

  /** A manager endpoint whose heartbeat handler is `onBeat`; returns its address. */
  async function manager(onBeat: (cb: grpc.sendUnaryData<InstanceType<typeof api.HeartbeatResponse>>) => void): Promise<string> {
    const s = new grpc.Server();
    s.addService(serviceDef({ heartbeat: DispatcherService.heartbeat }), { heartbeat: (_call: unknown, cb: grpc.sendUnaryData<InstanceType<typeof api.HeartbeatResponse>>) => onBeat(cb) });
    const port = await new Promise<number>((res, rej) => s.bindAsync('127.0.0.1:0', serverCreds, (e, p) => (e ? rej(e) : res(p))));
    others.push(s);
    return `127.0.0.1:${port}`;
  }

  beforeAll(async () => {
    const ca = RootCA.create({ clusterId: 'hb' });
    const mgr = generateKeyAndCsr();
    const wrk = generateKeyAndCsr();
    const mgrCert = ca.issue(mgr.csrPem, { nodeId: 'mgr1', role: 'manager', clusterId: 'hb', validityMs: 3600_000 }).certPem;
    const wrkCert = ca.issue(wrk.csrPem, { nodeId: 'wrk1', role: 'worker', clusterId: 'hb', validityMs: 3600_000 }).certPem;
    tls = { caPem: ca.certPem, certPem: wrkCert, keyPem: wrk.keyPem };
    server = new grpc.Server();
    server.addService(serviceDef({ heartbeat: DispatcherService.heartbeat }), {
      heartbeat: (_call: unknown, cb: grpc.sendUnaryData<InstanceType<typeof api.HeartbeatResponse>>) => {
        received.push(Date.now());
        setTimeout(() => cb(null, { periodMs: PERIOD_MS } as InstanceType<typeof api.HeartbeatResponse>), ANSWER_DELAY_MS);
      },
    });
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ cert_chain: Buffer.from(mgrCert), private_key: Buffer.from(mgr.keyPem) }], true);
    serverCreds = creds;
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? rej(e) : res(p))));
    addr = `127.0.0.1:${port}`;
  }, 30_000);

  afterAll(() => {
    server?.forceShutdown();
    for (const s of others) s.forceShutdown();
  });

  it(`start a period apart when the manager takes ${ANSWER_DELAY_MS} ms to answer`, async () => {
    const quiet = { info() {}, warn() {}, debug() {} };
    const agent = new Agent({
      tls: () => tls, managers: () => [addr], role: () => 'worker',
      onManagers() {}, onDesiredRole() {}, onRemoved() {}, logger: quiet, hostname: 'hb-test',
    });
    agent.start();
    try {
      await waitFor('6 heartbeats', () => (received.length >= 6 ? true : undefined), 15_000, 20);
    } finally {
      agent.stop();
    }
    // The first gap may include the connection's set-up; the steady ones follow the period.
    const gaps = received.slice(2, 6).map((t, i) => t - received[i + 1]!);
    const sorted = [...gaps].sort((a, b) => a - b);
    const median = (sorted[1]! + sorted[2]!) / 2;
    // A period plus the answer's delay (900 ms) is what beating after each answer gives.
    expect(median).toBeGreaterThanOrEqual(PERIOD_MS - 50);
    expect(median).toBeLessThan(PERIOD_MS + ANSWER_DELAY_MS / 2);
    expect(agent.lastOk).toBeGreaterThan(0);
  }, 30_000);

  it('go to the manager that answered: a follower listed first is asked once, not every period', async () => {
    const leaderBeats: number[] = [];
    let followerBeats = 0;
    const leader = await manager((cb) => {
      leaderBeats.push(Date.now());
      cb(null, { periodMs: 100 } as InstanceType<typeof api.HeartbeatResponse>);
    });
    const follower = await manager((cb) => {
      followerBeats++;
      const md = new grpc.Metadata();
      md.set(LEADER_META, leader);
      cb({ code: grpc.status.FAILED_PRECONDITION, details: `this manager is not the leader; the leader is at ${leader}`, metadata: md });
    });
    const quiet = { info() {}, warn() {}, debug() {} };
    const agent = new Agent({
      tls: () => tls, managers: () => [follower, leader], role: () => 'worker',
      onManagers() {}, onDesiredRole() {}, onRemoved() {}, logger: quiet, hostname: 'hb-test',
    });
    agent.start();
    try {
      await waitFor('5 heartbeats at the leader', () => (leaderBeats.length >= 5 ? true : undefined), 15_000, 20);
    } finally {
      agent.stop();
    }
    expect(followerBeats).toBe(1);
  }, 30_000);
});
