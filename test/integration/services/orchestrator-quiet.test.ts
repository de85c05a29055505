// The orchestrator's debounce applies only inside a burst: a change after a
// quiet spell (a `service create`, a `scale`) gets its pass at once. With a
// debounce of a minute and the orchestrator's clock moved two minutes past
// its last pass, the service's tasks must still appear in moments.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RaftNode } from '../../../manager/raft/node/index.js';
import { LeadershipGate, Store } from '../../../manager/store/index.js';
import { clusterTables, nodesTable, servicesTable, tasksTable } from '../../../manager/cluster/tables.js';
import { Orchestrator } from '../../../manager/orchestrator/loop.js';
import { validateServiceSpec } from '../../../manager/controlapi/servicespec.js';
import { api } from '../../../proto/services.js';
import { waitFor } from '../../support/wait.js';

const quiet = { info() {}, warn() {}, debug() {} };

describe('orchestrator: a change after a quiet spell', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orch-quiet-'));
  const store = new Store({ tables: clusterTables });
  const raft = RaftNode.open({ id: 1, dataDir: dir, stateMachine: store, advertiseAddr: '127.0.0.1:1', bootstrap: { 1: '127.0.0.1:1' }, tickMs: 10 });
  store.setRaft(raft);
  const gate = new LeadershipGate(raft);
  let skew = 0;
  const orch = new Orchestrator(store, { logger: quiet, debounceMs: 60_000, now: () => Date.now() + skew });

  beforeAll(async () => {
    raft.start({ send() {}, addPeer() {}, removePeer() {} });
    raft.campaign();
    await waitFor('leader', () => raft.isLeader() || undefined, 5000, 10);
    await store.update((tx) => void tx.create(nodesTable, {
      id: 'n1', role: 0, spec: { labels: {}, desiredRole: 0, availability: 0 },
      description: { hostname: 'n1', platform: { os: 'linux', architecture: 'x86_64' }, resources: { nanoCpus: 2e9, memoryBytes: 1e9 } },
      status: { state: api.NodeState.NODE_READY },
    } as never));
    gate.add('orchestrator', (signal) => orch.run(signal));
    gate.start();
    await waitFor('first pass', () => orch.passes > 0 || undefined, 5000, 10);
    // The start-up pass is long past, as far as the orchestrator can tell.
    skew = 120_000;
  });

  afterAll(async () => {
    await gate.stop();
    raft.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs its pass at once, not after the debounce', async () => {
    const spec = validateServiceSpec({ name: 'web', replicated: { replicas: 2 }, taskTemplate: { container: { image: 'busybox' } } } as never);
    await store.update((tx) => void tx.create(servicesTable, { id: 'svc-web', spec } as never));
    const tasks = await waitFor('2 tasks', () => {
      const ts = store.view((r) => r.find(tasksTable, 'service', 'svc-web'));
      return ts.length === 2 ? ts : undefined;
    }, 5000, 10);
    expect(tasks.every((t) => t.nodeId === 'n1')).toBe(true);
  });
});
