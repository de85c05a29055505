// Three RaftNodes, each with a Store as its state machine, over real disks and
// gRPC on loopback: replication with identical versions, NOT_LEADER on a
// follower, linearizable follower reads, follower watches, restarts from disk
// (after raft snapshots), catch-up by InstallSnapshot, and the LeadershipGate
// following a real leadership transfer.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RaftError } from '../../../manager/raft/core/index.js';
import { RaftNode, type Peers } from '../../../manager/raft/node/index.js';
import { GrpcTransport } from '../../../manager/raft/transport/index.js';
import {
  defineTable, isStoreError, jsonCodec, LeadershipGate, Store, type StoreEvent, type StoreObject,
} from '../../../manager/store/index.js';
import { freePort } from '../../support/raftkv/cluster.js';
import { waitUntil } from '../../support/wait.js';

interface Item extends StoreObject {
  group: string;
  n: number;
}

const items = defineTable<Item>({
  name: 'items',
  codec: jsonCodec<Item>(),
  indexes: [{ name: 'group', key: (i) => i.group }],
});

interface Member {
  id: number;
  addr: string;
  store: Store;
  node: RaftNode;
  transport: GrpcTransport;
  gate: LeadershipGate;
  leaderRuns: number;
}


const dump = (s: Store) => s.view((r) => r.list(items));

describe('store on a 3-member raft cluster', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'store-cluster-'));
  const members = new Map<number, Member>();
  const addrs: Peers = {};

  function open(id: number): { store: Store; node: RaftNode } {
    const store = new Store({ tables: [items] });
    const node = RaftNode.open({
      id, dataDir: path.join(base, `n${id}`), stateMachine: store, advertiseAddr: addrs[id]!, bootstrap: addrs,
      tickMs: 20, snapshotEntries: 20, compactionMargin: 5,
    });
    store.setRaft(node);
    return { store, node };
  }

  async function start(id: number, opened = open(id)): Promise<Member> {
    const { store, node } = opened;
    const transport = new GrpcTransport({
      id, listen: addrs[id]!, onMessage: (m) => node.step(m),
      onUnreachable: (p) => node.reportUnreachable(p), onSnapshotStatus: (p, f) => node.reportSnapshot(p, f),
    });
    await transport.start();
    node.start(transport);
    const m: Member = { id, addr: addrs[id]!, store, node, transport, gate: new LeadershipGate(node), leaderRuns: 0 };
    m.gate.add('probe', async (signal) => {
      m.leaderRuns++;
      await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
    });
    m.gate.start();
    members.set(id, m);
    return m;
  }

  async function shutdown(id: number): Promise<void> {
    const m = members.get(id)!;
    members.delete(id);
    await m.gate.stop();
    m.node.stop();
    m.store.close();
    await m.transport.stop();
  }

  const leader = () => [...members.values()].find((m) => m.node.isLeader());
  const followers = () => [...members.values()].filter((m) => !m.node.isLeader());

  beforeAll(async () => {
    for (const id of [1, 2, 3]) addrs[id] = `127.0.0.1:${await freePort()}`;
    for (const id of [1, 2, 3]) await start(id);
    await waitUntil('a leader', () => leader() !== undefined);
  });

  afterAll(async () => {
    for (const id of [...members.keys()]) await shutdown(id);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('writes through the leader appear on every member with identical versions', async () => {
    const l = leader()!;
    let last = 0;
    for (let b = 0; b < 6; b++) {
      const res = await l.store.update((tx) => {
        for (let i = 0; i < 5; i++) tx.create(items, { id: `i${b * 5 + i}`, group: `g${i % 2}`, n: 0 });
      });
      expect(res.version).toBeGreaterThan(last);
      last = res.version;
    }
    await waitUntil('followers to apply', () => [...members.values()].every((m) => m.store.version >= last));
    const want = dump(l.store);
    expect(want).toHaveLength(30);
    for (const m of members.values()) {
      expect(dump(m.store)).toEqual(want);
      expect(Buffer.from(m.store.snapshot()).equals(Buffer.from(l.store.snapshot()))).toBe(true);
      expect(m.store.view((r) => r.find(items, 'group', 'g1'))).toHaveLength(12);
    }
  });

  it('an update on a follower fails with raft\'s NOT_LEADER, naming the leader', async () => {
    const l = leader()!;
    const f = followers()[0]!;
    let err: unknown;
    try {
      await f.store.update((tx) => tx.create(items, { id: 'x', group: 'g', n: 0 }), { retries: 3 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RaftError);
    expect(err).toMatchObject({ code: 'NOT_LEADER', details: { leader: l.id, leaderAddr: l.addr } });
    expect(f.store.view((r) => r.get(items, 'x'))).toBeUndefined();
  });

  it('readCurrent on a follower sees a write acknowledged just before', async () => {
    const l = leader()!;
    const f = followers()[0]!;
    for (let k = 1; k <= 15; k++) {
      const res = await l.store.update((tx) => tx.update(items, { ...tx.get(items, 'i0')!, n: k }));
      const seen = await f.store.readCurrent((r) => r.get(items, 'i0')!);
      expect(seen.n).toBe(k);
      expect(seen.meta.version).toBe(res.version);
    }
  });

  it('concurrent conflicting updates: retries make every increment count', async () => {
    const l = leader()!;
    const incr = () => l.store.update((tx) => {
      const it = tx.get(items, 'i1')!;
      tx.update(items, { ...it, n: it.n + 1 });
    }, { retries: 50 });
    await Promise.all(Array.from({ length: 20 }, incr));
    expect(l.store.view((r) => r.get(items, 'i1')!.n)).toBe(20);
    const stale = l.store.view((r) => r.get(items, 'i1')!);
    await incr();
    const err = await l.store.update((tx) => tx.update(items, { ...stale, n: -1 })).catch((e: unknown) => e);
    expect(isStoreError(err, 'CONFLICT')).toBe(true);
  });

  it('a watch on a follower sees the leader\'s writes in order', async () => {
    const l = leader()!;
    const f = followers()[1]!;
    const { value: start, watch } = f.store.viewAndWatch((r) => r.get(items, 'i2')!.n, { table: items, filter: (e) => e.object.id === 'i2' });
    const seen: StoreEvent[] = [];
    const consumer = (async () => {
      for await (const ev of watch) {
        seen.push(ev);
        if (seen.length === 25) return;
      }
    })();
    for (let k = 1; k <= 25; k++) {
      await l.store.update((tx) => tx.update(items, { ...tx.get(items, 'i2')!, n: start + k }));
    }
    await consumer;
    expect(seen.map((e) => (e.object as Item).n)).toEqual(Array.from({ length: 25 }, (_, k) => start + k + 1));
    const versions = seen.map((e) => e.version);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    expect(seen.every((e) => e.kind === 'update' && e.object.meta.version === e.version)).toBe(true);
  });

  it('a restarted member recovers the same tables and versions from disk, after raft snapshots', async () => {
    const l = leader()!;
    const f = followers()[0]!;
    const want = dump(l.store);
    await waitUntil('follower to catch up', () => f.store.version === l.store.version);
    await shutdown(f.id);

    const reopened = open(f.id);
    // Opened, not started: the state comes from its own raft snapshot.
    expect(reopened.store.version).toBeGreaterThan(20);
    const m = await start(f.id, reopened);
    await waitUntil('restarted member to replay its log', () => m.store.version === l.store.version);
    expect(dump(m.store)).toEqual(want);
    expect(Buffer.from(m.store.snapshot()).equals(Buffer.from(l.store.snapshot()))).toBe(true);
  });

  it('a member behind the compacted log catches up by snapshot; its watches re-sync', async () => {
    const l = leader()!;
    const f = followers()[0]!;
    await shutdown(f.id);
    for (let k = 0; k < 60; k++) {
      await l.store.update((tx) => tx.create(items, { id: `late${k}`, group: 'late', n: k }));
    }
    const reopened = open(f.id);
    const early = reopened.store.watch();
    const m = await start(f.id, reopened);
    await waitUntil('member to catch up', () => m.store.version === l.store.version);
    await expect(early.next()).rejects.toMatchObject({ code: 'WATCH_RESTORED' });
    expect(dump(m.store)).toEqual(dump(l.store));
    expect(m.store.view((r) => r.find(items, 'group', 'late'))).toHaveLength(60);
  });

  it('the LeadershipGate runs leader-only work on exactly the leader, and follows a transfer', async () => {
    const l = leader()!;
    await waitUntil('the leader\'s gate', () => l.gate.leading);
    expect([...members.values()].filter((m) => m.gate.leading).map((m) => m.id)).toEqual([l.id]);
    const runsBefore = l.leaderRuns;
    const target = followers()[0]!;
    await l.node.transferLeadership(target.id);
    await waitUntil('the new leader\'s gate', () => target.gate.leading);
    expect(l.gate.leading).toBe(false);
    expect(l.leaderRuns).toBe(runsBefore);
    expect(target.leaderRuns).toBeGreaterThan(0);
    // The new leader accepts writes against what it has applied.
    const res = await target.store.update((tx) => tx.update(items, { ...tx.get(items, 'i3')!, n: 99 }));
    await waitUntil('all members', () => [...members.values()].every((m) => m.store.version >= res.version));
    for (const m of members.values()) expect(m.store.view((r) => r.get(items, 'i3')!.n)).toBe(99);
  });
});
