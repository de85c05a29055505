// A demotion is two writes: the raft removal, then the node's role in the
// store. A leader that loses leadership between them leaves the node a
// "manager" outside raft (seen in CI: the demoted node kept its manager status
// and renewed its certificate every second). The next leader must finish it.
// One real manager (raft on disk, store, CA) in this process.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RootCA, formatJoinToken, generateKeyAndCsr, newTokenSecret } from '../../../manager/ca/index.js';
import { Manager, ROLE } from '../../../manager/cluster/manager.js';
import { nodesTable, type NodeObject } from '../../../manager/cluster/tables.js';
import { defaultSpec } from '../../../cli/shoald/daemon.js';
import { api } from '../../../proto/services.js';
import { waitFor } from '../../support/wait.js';

import { pino } from 'pino';

const quiet = pino({ level: 'silent' });

describe('membership reconciliation', () => {
  let dir: string;
  let server: grpc.Server;
  let m: Manager;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'shoal-demotion-'));
    const clusterId = 'demotion';
    const ca = RootCA.create({ clusterId });
    const { keyPem, csrPem } = generateKeyAndCsr();
    const { certPem } = ca.issue(csrPem, { nodeId: 'mgr1', role: 'manager', clusterId, validityMs: 3600_000 });
    server = new grpc.Server();
    m = await Manager.start({
      nodeId: 'mgr1', raftId: 101, stateDir: dir, advertiseAddr: '127.0.0.1:1', server,
      tls: { ca: Buffer.from(ca.certPem), cert: Buffer.from(certPem), key: Buffer.from(keyPem) },
      bootstrap: {
        clusterId, spec: defaultSpec(), ca, certPem, hostname: 'm1',
        workerToken: formatJoinToken(ca.digest, newTokenSecret()), managerToken: formatJoinToken(ca.digest, newTokenSecret()),
      },
      tickMs: 20, electionTick: 10, snapshotInterval: 10_000, logger: quiet,
    });
    await waitFor('leadership', () => (m.isLeader() ? true : undefined), 10_000, 20);
  }, 30_000);

  afterAll(async () => {
    await m?.stop();
    server?.forceShutdown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finishes a demotion whose raft removal happened but whose store write did not', async () => {
    // What the earlier leader left: desired worker, still a manager with a raft id that raft no longer has.
    await m.store.update((tx) => {
      tx.create(nodesTable, {
        id: 'half1',
        spec: { labels: {}, desiredRole: ROLE.worker, availability: api.NodeAvailability.AVAILABILITY_ACTIVE },
        description: { hostname: 'half', platform: null, resources: null, version: '', engineLabels: {} },
        status: { state: api.NodeState.NODE_READY, message: '', addr: '127.0.0.2', updatedAt: Date.now() },
        managerStatus: { raftId: 999, addr: '127.0.0.2:4377' },
        role: ROLE.manager,
      } as unknown as NodeObject);
    });
    expect(m.raft.status().config.voters).not.toContain(999);
    const n = await waitFor('the demotion finished', () => {
      const cur = m.store.view((r) => r.get(nodesTable, 'half1'));
      return cur && cur.role === ROLE.worker ? cur : undefined;
    }, 10_000, 20);
    expect(n.managerStatus ?? null).toBeNull();
    // The leader itself is untouched.
    expect(m.store.view((r) => r.get(nodesTable, 'mgr1'))?.role).toBe(ROLE.manager);
  });
});
