// Store semantics against a fake in-process raft: transactions, versions,
// indexes, atomicity, retries, immutability, errors.
import { describe, expect, it } from 'vitest';
import {
  decodeEntry, encodeEntry, isStoreError, StoreError, type Store, type Tx,
} from '../../../manager/store/index.js';
import { counters, FakeRaft, newStore, node, nodes, NotLeader, tasks, type Node, type Task } from './helpers.js';

function setup(mode: 'sync' | 'async' = 'sync'): { store: Store; raft: FakeRaft } {
  const store = newStore();
  const raft = new FakeRaft(mode).attach(store);
  return { store, raft };
}

async function rejection(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof StoreError) return e;
    throw e;
  }
  throw new Error('expected a StoreError, but the promise resolved');
}

describe('transactions: create, update, delete', () => {
  it('assigns meta from the entry: version = raft index, timestamps from the proposer', async () => {
    const { store } = setup();
    const r1 = await store.update((tx) => tx.create(nodes, node('n1', 'h1')));
    expect(r1.version).toBe(2);
    const n1 = store.view((r) => r.get(nodes, 'n1'))!;
    expect(n1.meta).toEqual({ version: 2, createdAt: 2000, updatedAt: 2000 });
    expect(r1.value).toMatchObject({ id: 'n1', hostname: 'h1' });
    expect(r1.changes).toEqual([{ kind: 'create', table: 'nodes', object: n1, version: 2 }]);

    const r2 = await store.update((tx) => tx.update(nodes, { ...tx.get(nodes, 'n1')!, role: 'manager' }));
    const n1b = store.view((r) => r.get(nodes, 'n1'))!;
    expect(r2.version).toBe(3);
    expect(n1b.meta).toEqual({ version: 3, createdAt: 2000, updatedAt: 3000 });
    expect(n1b.role).toBe('manager');

    await store.update((tx) => tx.delete(nodes, 'n1'));
    expect(store.view((r) => r.get(nodes, 'n1'))).toBeUndefined();
    expect(store.version).toBe(4);
  });

  it('does not propose an empty transaction', async () => {
    const { store, raft } = setup();
    const r = await store.update((tx) => tx.list(nodes).length);
    expect(r).toEqual({ value: 0, version: 0, changes: [] });
    expect(raft.log).toHaveLength(0);
  });

  type Case = {
    name: string;
    tx: (tx: Tx) => void;
    code?: 'CONFLICT' | 'EXISTS' | 'NOT_FOUND';
    message?: RegExp;
  };
  // Each case starts from n1(h1, v2), n2(h2, v3), t1(service s1 on n1, v4).
  const cases: Case[] = [
    { name: 'create a new node', tx: (tx) => tx.create(nodes, node('n3', 'h3')) },
    { name: 'create an existing id', tx: (tx) => tx.create(nodes, node('n1', 'hx')), code: 'EXISTS', message: /nodes n1 already exists \(version 2\)/ },
    { name: 'update at the current version', tx: (tx) => tx.update(nodes, { ...tx.get(nodes, 'n1')!, role: 'manager' }) },
    { name: 'update at a stale version', tx: (tx) => tx.update(nodes, { ...tx.get(nodes, 'n1')!, meta: { version: 1, createdAt: 0, updatedAt: 0 } }), code: 'CONFLICT', message: /nodes n1.*version 1.*version 2/ },
    { name: 'update a missing object', tx: (tx) => tx.update(nodes, { ...node('n9', 'h9'), meta: { version: 5, createdAt: 0, updatedAt: 0 } }), code: 'NOT_FOUND', message: /nodes n9/ },
    { name: 'delete by id', tx: (tx) => tx.delete(nodes, 'n2') },
    { name: 'delete a missing id', tx: (tx) => tx.delete(nodes, 'n9'), code: 'NOT_FOUND' },
    { name: 'delete by stale object', tx: (tx) => tx.delete(nodes, { ...tx.get(nodes, 'n2')!, meta: { version: 2, createdAt: 0, updatedAt: 0 } }), code: 'CONFLICT', message: /version 2.*version 3/ },
    { name: 'unique index: create with a taken hostname', tx: (tx) => tx.create(nodes, node('n3', 'h1')), code: 'EXISTS', message: /hostname "h1" is already taken by nodes n1/ },
    { name: 'unique index: rename to a taken hostname', tx: (tx) => tx.update(nodes, { ...tx.get(nodes, 'n2')!, hostname: 'h1' }), code: 'EXISTS', message: /taken by nodes n1/ },
    {
      name: 'unique index: swap two hostnames in one transaction',
      tx: (tx) => {
        tx.update(nodes, { ...tx.get(nodes, 'n1')!, hostname: 'h2' });
        tx.update(nodes, { ...tx.get(nodes, 'n2')!, hostname: 'h1' });
      },
    },
    {
      name: 'unique index: two new objects claim one key',
      tx: (tx) => {
        tx.create(nodes, node('n3', 'h3'));
        tx.create(nodes, node('n4', 'h3'));
      },
      code: 'EXISTS', message: /n4: hostname "h3" is already taken by nodes n3/,
    },
    {
      name: 'unique index: delete one holder and give its key to a new object',
      tx: (tx) => {
        tx.delete(nodes, 'n1');
        tx.create(nodes, node('n3', 'h1'));
      },
    },
    { name: 'non-unique index: many objects share a key', tx: (tx) => tx.create(tasks, { id: 't2', serviceId: 's1', nodeId: 'n1', state: 'new' }) },
  ];

  for (const c of cases) {
    it(`${c.name} -> ${c.code ?? 'ok'}`, async () => {
      const { store, raft } = setup();
      await store.update((tx) => {
        tx.create(nodes, node('n1', 'h1'));
      });
      await store.update((tx) => {
        tx.create(nodes, node('n2', 'h2'));
      });
      await store.update((tx) => {
        tx.create(tasks, { id: 't1', serviceId: 's1', nodeId: 'n1', state: 'new' });
      });
      const before = store.snapshot();
      const entries = raft.log.length;
      const p = store.update(c.tx);
      if (!c.code) {
        await p;
        return;
      }
      const err = await rejection(p);
      expect(err.code).toBe(c.code);
      if (c.message) expect(err.message).toMatch(c.message);
      // Nothing written; checks made before proposing do not even use raft.
      expect(raft.log.length).toBe(entries);
      expect(store.snapshot()).toEqual(before);
    });
  }

  it('the same checks hold at apply time, where they are authoritative', () => {
    const store = newStore();
    const enc = new TextEncoder();
    const obj = (o: object) => enc.encode(JSON.stringify(o));
    const apply = (index: number, actions: Parameters<typeof encodeEntry>[0]['actions']) =>
      store.apply(index, encodeEntry({ timestamp: 42, actions }));

    expect(apply(2, [{ op: 'create', table: 'nodes', id: 'n1', expected: 0, data: obj(node('n1', 'h1')) }]).ok).toBe(true);
    const cases: Array<[Parameters<typeof apply>[1], string, RegExp]> = [
      [[{ op: 'create', table: 'nodes', id: 'n1', expected: 0, data: obj(node('n1', 'h1')) }], 'EXISTS', /create of nodes n1: it already exists \(version 2\)/],
      [[{ op: 'update', table: 'nodes', id: 'n1', expected: 1, data: obj(node('n1', 'h1')) }], 'CONFLICT', /update of nodes n1: the transaction read version 1 but it is now at version 2/],
      [[{ op: 'delete', table: 'nodes', id: 'n1', expected: 7, data: new Uint8Array() }], 'CONFLICT', /read version 7 but it is now at version 2/],
      [[{ op: 'update', table: 'nodes', id: 'nx', expected: 1, data: obj(node('nx', 'h1')) }], 'NOT_FOUND', /update of nodes nx: no such object \(the transaction read version 1\)/],
      [[{ op: 'create', table: 'pods', id: 'p', expected: 0, data: obj({ id: 'p' }) }], 'INVALID', /unknown table "pods"/],
      [[{ op: 'create', table: 'nodes', id: 'n2', expected: 0, data: obj(node('n3', 'h3')) }], 'INVALID', /does not match/],
      [[{ op: 'create', table: 'nodes', id: 'n2', expected: 0, data: enc.encode('{nope') }], 'INVALID', /create of nodes n2/],
      [[
        { op: 'create', table: 'nodes', id: 'n2', expected: 0, data: obj(node('n2', 'h2')) },
        { op: 'update', table: 'nodes', id: 'n2', expected: 0, data: obj(node('n2', 'h2')) },
      ], 'INVALID', /written twice/],
    ];
    let index = 3;
    for (const [actions, code, message] of cases) {
      const before = store.snapshot().slice(1);
      const res = apply(index, actions);
      expect(res.ok).toBe(false);
      if (res.ok) continue;
      expect(res.error.code).toBe(code);
      expect(res.error.message).toMatch(message);
      expect(res.version).toBe(index);
      expect(store.version).toBe(index);
      // Only the applied index moved.
      expect(store.snapshot().slice(1)).not.toEqual(before);
      expect(store.view((r) => r.list(nodes))).toHaveLength(1);
      index++;
    }
    // Garbage is rejected, not thrown: a member must never crash on an entry.
    const bad = store.apply(index, new Uint8Array([1, 2, 3]));
    expect(bad).toMatchObject({ ok: false, error: { code: 'INVALID' } });
  });

  it('a transaction that read a version another commit overtook fails with CONFLICT at apply, writing nothing', async () => {
    const { store } = setup('async');
    await store.update((tx) => {
      tx.create(nodes, node('n1', 'h1'));
      tx.create(counters, { id: 'c', n: 0 });
    });
    const watch = store.watch();
    // Both read version 2 in the same turn; the second to apply is stale.
    const a = store.update((tx) => {
      tx.update(nodes, { ...tx.get(nodes, 'n1')!, role: 'a' });
    });
    const b = store.update((tx) => {
      tx.create(tasks, { id: 't1', serviceId: 's', state: 'new' });
      tx.update(counters, { ...tx.get(counters, 'c')!, n: 1 });
      tx.update(nodes, { ...tx.get(nodes, 'n1')!, role: 'b' });
    });
    await a;
    const err = await rejection(b);
    expect(err.code).toBe('CONFLICT');
    expect(err.message).toBe('update of nodes n1: the transaction read version 2 but it is now at version 3; re-read and retry');
    expect(err.details).toEqual({ table: 'nodes', id: 'n1', expected: 2, actual: 3 });
    store.view((r) => {
      expect(r.get(tasks, 't1')).toBeUndefined();
      expect(r.get(counters, 'c')!.n).toBe(0);
      expect(r.get(nodes, 'n1')!.role).toBe('a');
    });
    expect(watch.drain().map((e) => `${e.kind} ${e.object.id}`)).toEqual(['update n1']);
  });

  it('retries re-run the function on CONFLICT until it commits', async () => {
    const { store } = setup('async');
    await store.update((tx) => tx.create(counters, { id: 'c', n: 0 }));
    let runs = 0;
    const incr = (retries: number) => store.update((tx) => {
      runs++;
      const c = tx.get(counters, 'c')!;
      tx.update(counters, { ...c, n: c.n + 1 });
      return c.n + 1;
    }, { retries });
    const results = await Promise.all(Array.from({ length: 10 }, () => incr(20)));
    expect(store.view((r) => r.get(counters, 'c')!.n)).toBe(10);
    expect(results.map((r) => r.value).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(runs).toBeGreaterThan(10);

    // Without retries, the losers see CONFLICT.
    const outcomes = await Promise.allSettled([incr(0), incr(0), incr(0)]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes) if (o.status === 'rejected') expect(isStoreError(o.reason, 'CONFLICT')).toBe(true);
  });

  it('does not retry EXISTS or NOT_FOUND', async () => {
    const { store } = setup();
    await store.update((tx) => tx.create(nodes, node('n1', 'h1')));
    let runs = 0;
    const err = await rejection(store.update((tx) => {
      runs++;
      tx.create(nodes, node('n2', 'h1'));
    }, { retries: 5 }));
    expect(err.code).toBe('EXISTS');
    expect(runs).toBe(1);
  });

  it('surfaces raft errors (NOT_LEADER with the leader address) unchanged', async () => {
    const { store, raft } = setup();
    raft.leader = false;
    let caught: unknown;
    try {
      await store.update((tx) => tx.create(nodes, node('n1', 'h1')), { retries: 3 });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(NotLeader);
    expect(caught).toMatchObject({ code: 'NOT_LEADER', details: { leaderAddr: '10.0.0.2:4377' } });
  });

  it('an error thrown by the function aborts the transaction', async () => {
    const { store, raft } = setup();
    await expect(store.update((tx) => {
      tx.create(nodes, node('n1', 'h1'));
      throw new Error('changed my mind');
    })).rejects.toThrow('changed my mind');
    expect(raft.log).toHaveLength(0);
  });

  it('reads inside a transaction see its own writes', async () => {
    const { store } = setup();
    await store.update((tx) => {
      tx.create(nodes, node('n1', 'h1', { role: 'manager' }));
      tx.create(nodes, node('n2', 'h2'));
    });
    await store.update((tx) => {
      tx.create(nodes, node('n3', 'h3', { role: 'manager' }));
      tx.update(nodes, { ...tx.get(nodes, 'n2')!, role: 'manager' });
      tx.delete(nodes, 'n1');
      expect(tx.get(nodes, 'n1')).toBeUndefined();
      expect(tx.get(nodes, 'n3')).toMatchObject({ hostname: 'h3', meta: { version: 0 } });
      expect(tx.list(nodes).map((n) => n.id)).toEqual(['n2', 'n3']);
      expect(tx.find(nodes, 'role', 'manager').map((n) => n.id).sort()).toEqual(['n2', 'n3']);
      expect(tx.find(nodes, 'hostname', 'h1')).toEqual([]);
      expect(tx.count(nodes)).toBe(2);
      // A second update of the same object in the transaction uses what it read in it.
      const n2 = tx.get(nodes, 'n2')!;
      tx.update(nodes, { ...n2, labels: ['ssd'] });
      // Created then deleted: no action at all.
      tx.create(nodes, node('n4', 'h4'));
      tx.delete(nodes, 'n4');
    });
    const r = store.view((v) => v.list(nodes).map((n) => `${n.id}:${n.role}:${n.labels?.join(',') ?? ''}`));
    expect(r).toEqual(['n2:manager:ssd', 'n3:manager:']);
  });

  it('deleting then re-creating one id in a transaction is refused', async () => {
    const { store } = setup();
    await store.update((tx) => tx.create(nodes, node('n1', 'h1')));
    await expect(store.update((tx) => {
      tx.delete(nodes, 'n1');
      tx.create(nodes, node('n1', 'h1'));
    })).rejects.toThrow(/deleted and re-created/);
  });

  it('one entry per transaction, holding every action', async () => {
    const { store, raft } = setup();
    await store.update((tx) => {
      for (let i = 0; i < 5; i++) tx.create(tasks, { id: `t${i}`, serviceId: 's', state: 'new' });
      tx.create(nodes, node('n1', 'h1'));
    });
    expect(raft.log).toHaveLength(1);
    const e = decodeEntry(raft.log[0]!);
    expect(e.timestamp).toBe(2000);
    expect(e.actions.map((a) => `${a.op} ${a.table} ${a.id} ${a.expected}`)).toEqual([
      'create tasks t0 0', 'create tasks t1 0', 'create tasks t2 0', 'create tasks t3 0', 'create tasks t4 0', 'create nodes n1 0',
    ]);
    const versions = store.view((r) => [...r.list(tasks), ...r.list(nodes)].map((o) => o.meta.version));
    expect(new Set(versions)).toEqual(new Set([2]));
  });
});

describe('indexes', () => {
  it('stay in sync through creates, updates and deletes', async () => {
    const { store } = setup();
    await store.update((tx) => {
      tx.create(tasks, { id: 't1', serviceId: 's1', nodeId: 'n1', state: 'new' });
      tx.create(tasks, { id: 't2', serviceId: 's1', state: 'new' });
      tx.create(tasks, { id: 't3', serviceId: 's2', nodeId: 'n1', state: 'new' });
      tx.create(nodes, node('n1', 'h1', { labels: ['ssd', 'gpu', 'ssd'] }));
    });
    const ids = (xs: readonly { id: string }[]) => xs.map((x) => x.id).sort();
    store.view((r) => {
      expect(ids(r.find(tasks, 'service', 's1'))).toEqual(['t1', 't2']);
      expect(ids(r.find(tasks, 'node', 'n1'))).toEqual(['t1', 't3']);
      expect(ids(r.find(nodes, 'label', 'ssd'))).toEqual(['n1']);
      expect(ids(r.find(nodes, 'label', 'gpu'))).toEqual(['n1']);
      expect(() => r.find(tasks, 'nope', 'x')).toThrow(/no index "nope"/);
    });

    await store.update((tx) => {
      const t1 = tx.get(tasks, 't1')!;
      tx.update(tasks, { ...t1, serviceId: 's2', nodeId: undefined });
      tx.update(tasks, { ...tx.get(tasks, 't2')!, nodeId: 'n2' });
      tx.delete(tasks, 't3');
      tx.update(nodes, { ...tx.get(nodes, 'n1')!, labels: ['gpu'], hostname: 'h1b' });
    });
    store.view((r) => {
      expect(ids(r.find(tasks, 'service', 's1'))).toEqual(['t2']);
      expect(ids(r.find(tasks, 'service', 's2'))).toEqual(['t1']);
      expect(ids(r.find(tasks, 'node', 'n1'))).toEqual([]);
      expect(ids(r.find(tasks, 'node', 'n2'))).toEqual(['t2']);
      expect(ids(r.find(nodes, 'label', 'ssd'))).toEqual([]);
      expect(ids(r.find(nodes, 'label', 'gpu'))).toEqual(['n1']);
      expect(ids(r.find(nodes, 'hostname', 'h1'))).toEqual([]);
      expect(ids(r.find(nodes, 'hostname', 'h1b'))).toEqual(['n1']);
    });
    // The freed hostname can be taken again.
    await store.update((tx) => tx.create(nodes, node('n2', 'h1')));
    expect(store.view((r) => r.find(nodes, 'hostname', 'h1').map((n) => n.id))).toEqual(['n2']);
  });
});

describe('immutability', () => {
  it('returns frozen objects and keeps no reference to what callers pass in', async () => {
    const { store } = setup();
    const input = node('n1', 'h1', { labels: ['a'] });
    const res = await store.update((tx) => tx.create(nodes, input));
    input.labels!.push('b');
    (input as { hostname: string }).hostname = 'changed';
    const n1 = store.view((r) => r.get(nodes, 'n1'))!;
    expect(n1.hostname).toBe('h1');
    expect(n1.labels).toEqual(['a']);
    expect(Object.isFrozen(n1) && Object.isFrozen(n1.meta) && Object.isFrozen(n1.labels)).toBe(true);
    expect(() => { (n1 as { hostname: string }).hostname = 'x'; }).toThrow(TypeError);
    expect(() => { n1.labels!.push('x'); }).toThrow(TypeError);
    expect(() => { (n1.meta as { version: number }).version = 99; }).toThrow(TypeError);
    expect(Object.isFrozen(res.value)).toBe(true);
    expect(Object.isFrozen(res.changes[0]!.object)).toBe(true);
    // Lists are fresh arrays; changing one does not change the store.
    const all = store.view((r) => r.list(nodes));
    all.pop();
    expect(store.view((r) => r.count(nodes))).toBe(1);
  });

  it('views and transactions cannot be used after their callback', async () => {
    const { store } = setup();
    let leaked: { get: (t: typeof nodes, id: string) => unknown } | undefined;
    store.view((r) => { leaked = r; });
    expect(() => leaked!.get(nodes, 'n1')).toThrow(/after its function returned/);
    let tx: Tx | undefined;
    await store.update((t) => { tx = t; });
    expect(() => tx!.create(nodes, node('n1', 'h1'))).toThrow(/after its function returned/);
  });

  it('rejects unknown tables and objects without an id', async () => {
    const { store } = setup();
    expect(() => store.view((r) => r.list('pods'))).toThrow(/unknown table "pods"/);
    await expect(store.update((tx) => tx.create(nodes, { hostname: 'h' } as unknown as Node))).rejects.toThrow(/non-empty string id/);
  });
});

describe('reads', () => {
  it('readCurrent waits for the raft read barrier', async () => {
    const { store, raft } = setup();
    const order: string[] = [];
    raft.readBarrier = () => new Promise((resolve) => setTimeout(() => { order.push('barrier'); resolve(); }, 5));
    const p = store.readCurrent((r) => { order.push('read'); return r.count(nodes); });
    await store.update((tx) => tx.create(nodes, node('n1', 'h1')));
    expect(await p).toBe(1);
    expect(order).toEqual(['barrier', 'read']);
  });

  it('tables by name work like tables by definition', async () => {
    const { store } = setup();
    await store.update((tx) => tx.create<Task>('tasks', { id: 't1', serviceId: 's', state: 'new' }));
    expect(store.view((r) => r.get<Task>('tasks', 't1')!.serviceId)).toBe('s');
    expect(store.view((r) => r.find('tasks', 'service', 's'))).toHaveLength(1);
  });
});

describe('batch', () => {
  it('packs units into entries of at most maxActions and commits them all', async () => {
    const { store, raft } = setup();
    const res = await store.batch(async (b) => {
      for (let i = 0; i < 250; i++) await b.update((tx) => { tx.create(tasks, { id: `t${i}`, serviceId: 's', state: 'new' }); });
    }, { maxActions: 100 });
    expect(res).toEqual({ committed: 250, failed: [] });
    expect(raft.log).toHaveLength(3);
    expect(store.view((r) => r.count(tasks))).toBe(250);
  });

  it('a unit that throws leaves nothing behind; others commit', async () => {
    const { store } = setup();
    await store.update((tx) => tx.create(nodes, node('n1', 'h1')));
    const res = await store.batch(async (b) => {
      await b.update((tx) => { tx.create(tasks, { id: 'a', serviceId: 's', state: 'new' }); });
      await b.update((tx) => {
        tx.create(tasks, { id: 'b', serviceId: 's', state: 'new' });
        tx.update(tasks, { ...tx.get(tasks, 'a')!, state: 'pending' });
        tx.create(nodes, node('n1', 'dup'));
      });
      await b.update((tx) => { tx.create(tasks, { id: 'c', serviceId: 's', state: 'new' }); });
    });
    expect(res.committed).toBe(2);
    expect(res.failed.map((f) => [f.unit, (f.error as StoreError).code])).toEqual([[1, 'EXISTS']]);
    expect(store.view((r) => r.list(tasks).map((t) => `${t.id}:${t.state}`))).toEqual(['a:new', 'c:new']);
  });

  it('refuses asynchronous units', async () => {
    const { store } = setup();
    const res = await store.batch(async (b) => {
      await b.update((async () => {}) as unknown as (tx: Tx) => void);
    });
    expect(res.committed).toBe(0);
    expect(String(res.failed[0]!.error)).toMatch(/must be synchronous/);
  });

  it('when an entry is rejected, its units are re-run one by one against the fresh state', async () => {
    const { store } = setup('async');
    await store.update((tx) => {
      tx.create(counters, { id: 'c', n: 0 });
      tx.create(counters, { id: 'd', n: 0 });
    });
    const res = await store.batch(async (b) => {
      await b.update((tx) => { const c = tx.get(counters, 'c')!; tx.update(counters, { ...c, n: c.n + 1 }); });
      await b.update((tx) => { const d = tx.get(counters, 'd')!; tx.update(counters, { ...d, n: d.n + 1 }); });
      // Someone else moves c before the batch's entry is proposed.
      await store.update((tx) => { const c = tx.get(counters, 'c')!; tx.update(counters, { ...c, n: c.n + 10 }); });
    });
    expect(res).toEqual({ committed: 2, failed: [] });
    expect(store.view((r) => [r.get(counters, 'c')!.n, r.get(counters, 'd')!.n])).toEqual([11, 1]);
  });
});
