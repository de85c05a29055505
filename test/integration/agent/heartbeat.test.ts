// The worker agent's heartbeats against a real gRPC manager endpoint (mutual
// TLS with certificates of a real cluster CA) that answers slowly, as a
// saturated leader does: beats must still start a period apart, so the gap
// the manager sees does not grow by the answer's latency.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RootCA, generateKeyAndCsr } from '../../../manager/ca/index.js';
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
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? rej(e) : res(p))));
    addr = `127.0.0.1:${port}`;
  }, 30_000);

  afterAll(() => server?.forceShutdown());

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
});
