// A 3-member etcd cluster on 127.0.0.1 for the raft bench.
//
// Members use distinct free client/peer ports, keep their data under the
// bench's work dir (same disk as the repo by default), sync the WAL with
// fdatasync as etcd does by default, and log to <workDir>/<name>.log.
// start() returns once a put commits and all members agree on a leader; the
// load then goes to the leader's client port, so a put costs one raft round
// and no forwarding hop (a client talking to a follower would add one:
// followers forward proposals to the leader).

import fs from 'node:fs';
import path from 'node:path';
import { freePorts, sleep, spawnServer, stopServer, tailFile, type Server } from '../lib/proc.js';
import { EtcdClient, makeEtcdClient, type EtcdClientArgs } from './etcd-client.js';
import type { BenchSystem } from './systems.js';

export { makeEtcdClient };

export interface EtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  server?: Server;
}

export interface EtcdClusterOptions {
  /** etcd binary (default: $ETCD_BIN, else `etcd` on PATH). */
  bin?: string;
  members?: number;
  /** --quota-backend-bytes (default 8 GiB, etcd's suggested maximum). */
  quotaBackendBytes?: number;
  /** Give up on start after this long. */
  startTimeoutMs?: number;
}

export function findEtcd(explicit?: string): string {
  const candidates = [explicit, process.env.ETCD_BIN].filter((c): c is string => !!c);
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir) candidates.push(path.join(dir, 'etcd'));
  }
  candidates.push('/usr/bin/etcd', '/usr/local/bin/etcd');
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  throw new Error('etcd binary not found (apt-get install etcd-server, or set ETCD_BIN)');
}

export class EtcdCluster implements BenchSystem {
  readonly name = 'etcd';
  members: EtcdMember[] = [];
  leader?: EtcdMember;
  version = '';
  private readonly opts: Required<EtcdClusterOptions>;

  constructor(opts: EtcdClusterOptions = {}) {
    this.opts = {
      bin: opts.bin ?? '',
      members: opts.members ?? 3,
      quotaBackendBytes: opts.quotaBackendBytes ?? 8 * 1024 ** 3,
      startTimeoutMs: opts.startTimeoutMs ?? 30_000,
    };
  }

  async start(workDir: string): Promise<{ clientArgs: EtcdClientArgs; notes: string[] }> {
    const bin = findEtcd(this.opts.bin || undefined);
    const n = this.opts.members;
    const ports = await freePorts(2 * n);
    this.members = Array.from({ length: n }, (_, i) => ({
      name: `etcd${i}`,
      clientPort: ports[2 * i]!,
      peerPort: ports[2 * i + 1]!,
      dataDir: path.join(workDir, `etcd${i}`),
    }));
    const initialCluster = this.members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
    const token = `shoal-bench-${process.pid}-${Date.now()}`;

    // etcd also reads its flags from ETCD_* variables; keep the caller's out.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_')) env[k] = v;

    for (const m of this.members) {
      const args = [
        '--name', m.name,
        '--data-dir', m.dataDir,
        '--listen-client-urls', `http://127.0.0.1:${m.clientPort}`,
        '--advertise-client-urls', `http://127.0.0.1:${m.clientPort}`,
        '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', token,
        '--quota-backend-bytes', String(this.opts.quotaBackendBytes),
        '--logger', 'zap',
        '--log-outputs', 'stderr',
        '--log-level', 'warn',
      ];
      m.server = spawnServer(m.name, bin, args, path.join(workDir, `${m.name}.log`), { env });
    }

    const deadline = Date.now() + this.opts.startTimeoutMs;
    const failIfExited = (): void => {
      for (const m of this.members) {
        if (m.server && m.server.child.exitCode !== null) {
          throw new Error(`${m.name} exited during start:\n${tailFile(m.server.logFile)}`);
        }
      }
    };

    // 1. A put through member 0 commits: a leader exists and a quorum syncs.
    //    (A fresh client per attempt: the h2 transport does not reconnect.)
    const endpoint0 = `127.0.0.1:${this.members[0]!.clientPort}`;
    for (let attempt = 0; ; attempt++) {
      failIfExited();
      const probe = new EtcdClient(endpoint0, { timeoutMs: 2000 });
      try {
        await probe.putHeader(Buffer.from('bench/ready'), Buffer.from(String(attempt)));
        break;
      } catch (err) {
        if (Date.now() > deadline) {
          throw new Error(`etcd cluster not ready after ${this.opts.startTimeoutMs} ms: ${String(err)}`);
        }
        await sleep(200);
      } finally {
        probe.close();
      }
    }

    // 2. Every member reports the same leader; pick that member's endpoint.
    for (;;) {
      failIfExited();
      const statuses = await Promise.all(
        this.members.map(async (m) => {
          const c = new EtcdClient(`127.0.0.1:${m.clientPort}`, { timeoutMs: 2000 });
          try {
            return await c.status();
          } catch {
            return undefined;
          } finally {
            c.close();
          }
        }),
      );
      const leaders = new Set(statuses.map((s) => s?.leader));
      const leaderId = statuses[0]?.leader;
      const idx = statuses.findIndex((s) => s !== undefined && s.header.memberId === leaderId);
      if (leaders.size === 1 && leaderId && leaderId !== '0' && idx >= 0) {
        this.leader = this.members[idx];
        this.version = statuses[idx]!.version;
        break;
      }
      if (Date.now() > deadline) throw new Error('etcd members do not agree on a leader');
      await sleep(200);
    }

    const leader = this.leader!;
    return {
      clientArgs: { endpoint: `127.0.0.1:${leader.clientPort}` },
      notes: [
        `etcd ${this.version} (${bin}), ${n} members, load sent to the leader ${leader.name} ` +
          `(127.0.0.1:${leader.clientPort})`,
      ],
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => (m.server ? stopServer(m.server, 5000) : undefined)));
  }
}

export const etcdSystem = (): EtcdCluster => new EtcdCluster();
