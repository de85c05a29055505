// One real manager in this process, for integration tests of the leader's
// loops: raft on disk (a single voter), the store, a fresh cluster CA. Fast
// raft ticks; nothing listens on the network.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { RootCA, formatJoinToken, generateKeyAndCsr, newTokenSecret } from '../../manager/ca/index.js';
import { Manager, ROLE } from '../../manager/cluster/manager.js';
import { nodesTable, type NodeObject } from '../../manager/cluster/tables.js';
import { defaultSpec } from '../../cli/shoald/daemon.js';
import { api } from '../../proto/services.js';
import { afterAll, beforeAll } from 'vitest';
import { ControlApi } from '../../manager/controlapi/control.js';
import { waitFor } from './wait.js';

export interface TestManager {
  m: Manager;
  stop(): Promise<void>;
  /** Put a node object into the store as joining would, with overrides. */
  addNode(id: string, over: Partial<NodeObject>): Promise<void>;
}

/** The test manager gives up on a silent learner of a node that is not ready after this long. */
export const ABANDONED_JOIN_MS = 1_000;

export async function startTestManager(): Promise<TestManager> {
  const dir = mkdtempSync(path.join(tmpdir(), 'shoal-manager-'));
  const clusterId = 'test';
  const ca = RootCA.create({ clusterId });
  const { keyPem, csrPem } = generateKeyAndCsr();
  const { certPem } = ca.issue(csrPem, { nodeId: 'mgr1', role: 'manager', clusterId, validityMs: 3600_000 });
  const server = new grpc.Server();
  const m = await Manager.start({
    nodeId: 'mgr1', raftId: 101, stateDir: dir, advertiseAddr: '127.0.0.1:1', server,
    tls: { ca: Buffer.from(ca.certPem), cert: Buffer.from(certPem), key: Buffer.from(keyPem) },
    bootstrap: {
      clusterId, spec: defaultSpec(), ca, certPem, hostname: 'm1',
      workerToken: formatJoinToken(ca.digest, newTokenSecret()), managerToken: formatJoinToken(ca.digest, newTokenSecret()),
    },
    tickMs: 20, electionTick: 10, snapshotInterval: 10_000, logger: pino({ level: 'silent' }),
    abandonedJoinMs: ABANDONED_JOIN_MS,
  });
  await waitFor('leadership', () => (m.isLeader() ? true : undefined), 10_000, 20);
  return {
    m,
    async stop() {
      await m.stop();
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    },
    async addNode(id, over) {
      await m.store.update((tx) => {
        tx.create(nodesTable, {
          id,
          spec: { labels: {}, desiredRole: ROLE.worker, availability: api.NodeAvailability.AVAILABILITY_ACTIVE },
          description: { hostname: id, platform: null, resources: null, version: '', engineLabels: {} },
          status: { state: api.NodeState.NODE_READY, message: '', addr: '127.0.0.2', updatedAt: Date.now() },
          managerStatus: null,
          role: ROLE.worker,
          ...over,
        } as unknown as NodeObject);
      });
    },
  };
}

/** For a describe block: one test manager, started before its tests and stopped after them, and its control API. */
export function useTestManagerWithApi(): { readonly t: TestManager; readonly api: ControlApi } {
  const ctx = {} as { t: TestManager; api: ControlApi };
  beforeAll(async () => {
    ctx.t = await startTestManager();
    ctx.api = new ControlApi(ctx.t.m);
  }, 30_000);
  afterAll(async () => ctx.t?.stop());
  return ctx;
}
