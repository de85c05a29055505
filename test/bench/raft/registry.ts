// The systems `bench:raft` knows: how to start each cluster (main process)
// and how to build its client (load-generator process).

import { etcdSystem, makeEtcdClient } from './etcd.js';
import { makeShoalClient, shoalSystem } from './shoal.js';
import type { BenchClientFactory, BenchSystem } from './systems.js';

export interface SystemEntry {
  /** A fresh BenchSystem for one run. */
  system: () => BenchSystem;
  client: BenchClientFactory;
}

export const registry: Record<string, SystemEntry> = {
  etcd: { system: etcdSystem, client: makeEtcdClient },
  shoal: { system: () => shoalSystem, client: makeShoalClient },
};
