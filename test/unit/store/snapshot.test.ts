// Snapshots and determinism: members applying one log reach byte-identical
// state; restore rebuilds indexes, keeps versions, and makes watchers re-sync.
import { describe, expect, it } from 'vitest';
import {
  decodeEntry, decodeSnapshot, encodeEntry, encodeSnapshot, isStoreError, Store,
} from '../../../manager/store/index.js';
import { Reader, Writer } from '../../../manager/store/encoding.js';
import { allTables, FakeRaft, newStore, node, nodes, tasks } from './helpers.js';

async function populate(store: Store): Promise<void> {
  await store.update((tx) => {
    for (let i = 0; i < 20; i++) tx.create(nodes, node(`n${i}`, `h${i}`, { labels: i % 2 ? ['odd'] : ['even'] }));
  });
  for (let i = 0; i < 50; i++) {
    await store.update((tx) => tx.create(tasks, { id: `t${i}`, serviceId: `s${i % 3}`, nodeId: `n${i % 20}`, state: 'new' }));
  }
  await store.update((tx) => {
    for (const t of tx.find(tasks, 'service', 's1')) tx.update(tasks, { ...t, state: 'running' });
    for (const t of tx.find(tasks, 'service', 's2')) tx.delete(tasks, t);
    tx.update(nodes, { ...tx.get(nodes, 'n3')!, hostname: 'renamed' });
  });
}

describe('snapshot and restore', () => {
  it('members applying the same log hold identical state', async () => {
    const leader = newStore();
    const follower = newStore();
    new FakeRaft().attach(leader, follower);
    await populate(leader);
    expect(Buffer.from(follower.snapshot()).equals(Buffer.from(leader.snapshot()))).toBe(true);
    expect(follower.version).toBe(leader.version);
  });

  it('snapshotAsync gives the bytes of the state at the call, whatever is written while it encodes', async () => {
    const a = newStore();
    new FakeRaft().attach(a);
    await populate(a);
    // Enough objects for several encoding slices, so writes land in between.
    await a.update((tx) => {
      for (let i = 0; i < 1200; i++) tx.create(tasks, { id: `bulk${i}`, serviceId: 's9', nodeId: 'n1', state: 'new' });
    });
    const before = Buffer.from(a.snapshot());
    const pending = a.snapshotAsync();
    await a.update((tx) => {
      tx.update(tasks, { ...tx.get(tasks, 'bulk5')!, state: 'running' });
      tx.delete(tasks, tx.get(tasks, 'bulk900')!);
      tx.create(tasks, { id: 'late', serviceId: 's9', nodeId: 'n2', state: 'new' });
    });
    const got = Buffer.from(await pending);
    expect(got.equals(before)).toBe(true);
    expect(Buffer.from(a.snapshot()).equals(before)).toBe(false);
  });

  it('round-trips tables, versions and the applied index, and rebuilds indexes', async () => {
    const a = newStore();
    const raft = new FakeRaft().attach(a);
    await populate(a);
    const snap = a.snapshot();

    const b = newStore();
    b.restore(snap);
    expect(b.version).toBe(a.version);
    const dump = (s: Store) => s.view((r) => ({ nodes: r.list(nodes), tasks: r.list(tasks) }));
    expect(dump(b)).toEqual(dump(a));
    b.view((r) => {
      expect(r.find(tasks, 'service', 's2')).toEqual([]);
      expect(r.find(tasks, 'service', 's1').every((t) => t.state === 'running')).toBe(true);
      expect(r.find(tasks, 'service', 's1')).toHaveLength(17);
      expect(r.find(nodes, 'hostname', 'renamed').map((n) => n.id)).toEqual(['n3']);
      expect(r.find(nodes, 'hostname', 'h3')).toEqual([]);
      expect(r.find(nodes, 'label', 'odd')).toHaveLength(10);
      expect(r.find(tasks, 'node', 'n0').map((t) => t.id).sort()).toEqual(['t0', 't40']); // t20 was deleted with s2
      expect(Object.isFrozen(r.get(nodes, 'n1'))).toBe(true);
    });
    expect(Buffer.from(b.snapshot()).equals(Buffer.from(snap))).toBe(true);

    // The restored store continues the log exactly like the original: unique
    // indexes enforced, versions checked, identical state.
    raft.attach(b);
    await a.update((tx) => tx.update(nodes, { ...tx.get(nodes, 'n1')!, role: 'manager' }));
    const dup = await a.update((tx) => tx.create(nodes, node('nx', 'renamed'))).catch((e: unknown) => e);
    expect(isStoreError(dup, 'EXISTS')).toBe(true);
    // Bypass the proposer's early check: the follower must reject at apply too.
    const entry = encodeEntry({ timestamp: 1, actions: [{ op: 'create', table: 'nodes', id: 'nx', expected: 0, data: nodes.codec.encode({ ...node('nx', 'h1'), meta: { version: 0, createdAt: 0, updatedAt: 0 } }) }] });
    expect(a.apply(1000, entry)).toMatchObject({ ok: false, error: { code: 'EXISTS' } });
    expect(b.apply(1000, entry)).toMatchObject({ ok: false, error: { code: 'EXISTS' } });
    expect(Buffer.from(b.snapshot()).equals(Buffer.from(a.snapshot()))).toBe(true);
  });

  it('restore ends watches with WATCH_RESTORED', async () => {
    const a = newStore();
    new FakeRaft().attach(a);
    await populate(a);
    const b = newStore();
    const w = b.watch();
    const pending = w.next();
    b.restore(a.snapshot());
    await expect(pending).rejects.toMatchObject({ code: 'WATCH_RESTORED' });
    const { value } = b.viewAndWatch((r) => r.count(tasks));
    expect(value).toBe(34);
  });

  it('an empty snapshot empties the store', async () => {
    const a = newStore();
    new FakeRaft().attach(a);
    await populate(a);
    a.restore(new Uint8Array(0));
    expect(a.version).toBe(0);
    expect(a.view((r) => r.count(nodes) + r.count(tasks))).toBe(0);
    a.restore(newStore().snapshot());
    expect(a.view((r) => r.list(nodes))).toEqual([]);
  });

  it('keeps tables it does not know, so they survive the next snapshot', async () => {
    const a = newStore();
    new FakeRaft().attach(a);
    await populate(a);
    const narrow = new Store({ tables: [nodes] });
    narrow.restore(a.snapshot());
    expect(narrow.view((r) => r.count(nodes))).toBe(20);
    const wide = new Store({ tables: allTables });
    wide.restore(narrow.snapshot());
    expect(wide.view((r) => r.list(tasks))).toEqual(a.view((r) => r.list(tasks)));
  });

  it('rejects a corrupt snapshot without touching the current state', async () => {
    const a = newStore();
    new FakeRaft().attach(a);
    await populate(a);
    const snap = a.snapshot();
    const before = a.snapshot();
    expect(() => a.restore(snap.subarray(0, snap.length - 3))).toThrow(/truncated/);
    expect(() => a.restore(new Uint8Array([1, 2, 3]))).toThrow(/not a store snapshot/);
    expect(a.snapshot()).toEqual(before);
  });
});

describe('encoding', () => {
  it('varints round-trip across the safe integer range', () => {
    const values = [0, 1, 127, 128, 255, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1];
    const w = new Writer(1);
    for (const v of values) w.varint(v);
    const r = new Reader(w.finish());
    expect(values.map(() => r.varint())).toEqual(values);
    expect(r.done).toBe(true);
    expect(() => new Writer().varint(-1)).toThrow(RangeError);
    expect(() => new Writer().varint(1.5)).toThrow(RangeError);
  });

  it('entries and snapshots round-trip', () => {
    const e = {
      timestamp: 1712345678901.5,
      actions: [
        { op: 'create' as const, table: 'nodes', id: 'ñ-1', expected: 0, data: new Uint8Array([1, 2, 3]) },
        { op: 'update' as const, table: 'tasks', id: 't', expected: 2 ** 40, data: new Uint8Array(300).fill(7) },
        { op: 'delete' as const, table: 'tasks', id: 'u', expected: 9, data: new Uint8Array(0) },
      ],
    };
    expect(decodeEntry(encodeEntry(e))).toEqual(e);
    const bytes = encodeEntry(e);
    expect([...bytes.subarray(0, 3)]).toEqual([0x53, 1, 1]);
    expect(() => decodeEntry(bytes.subarray(0, bytes.length - 1))).toThrow(/truncated/);
    expect(() => decodeEntry(new Uint8Array([...bytes, 0]))).toThrow(/trailing/);

    const s = { appliedIndex: 77, tables: new Map([['nodes', [{ version: 5, createdAt: 1, updatedAt: 2, data: new Uint8Array([9]) }]], ['empty', []]]) };
    expect(decodeSnapshot(encodeSnapshot(s))).toEqual(s);
  });
});
