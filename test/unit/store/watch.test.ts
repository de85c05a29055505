// Watches: order and content, filters, consistency of viewAndWatch under
// concurrent writers, overflow of slow consumers, and how watches end.
import { describe, expect, it } from 'vitest';
import { isStoreError, type StoreEvent, type StoreObject, type Watch } from '../../../manager/store/index.js';
import { FakeRaft, newStore, node, nodes, tasks, type Task } from './helpers.js';

function setup(mode: 'sync' | 'async' = 'sync') {
  const store = newStore();
  const raft = new FakeRaft(mode).attach(store);
  return { store, raft };
}

const describeEv = (e: StoreEvent) => `${e.version} ${e.kind} ${e.table} ${e.object.id}`;

describe('watch', () => {
  it('delivers every change in commit order, after the transaction applied', async () => {
    const { store } = setup();
    const w = store.watch();
    await store.update((tx) => {
      tx.create(nodes, node('n1', 'h1'));
      tx.create(tasks, { id: 't1', serviceId: 's', state: 'new' });
    });
    await store.update((tx) => tx.update(nodes, { ...tx.get(nodes, 'n1')!, role: 'manager' }));
    await store.update((tx) => tx.delete(tasks, 't1'));

    const seen: string[] = [];
    const states: unknown[] = [];
    for await (const ev of w) {
      seen.push(describeEv(ev));
      // The store already holds what the event says.
      states.push(store.view((r) => r.get(ev.table, ev.object.id)?.meta.version));
      if (seen.length === 4) break;
    }
    expect(seen).toEqual(['2 create nodes n1', '2 create tasks t1', '3 update nodes n1', '4 delete tasks t1']);
    expect(states).toEqual([3, undefined, 3, undefined]);
    expect(w.closed).toBe(true);
  });

  it('carries the new object, the old one for updates, and the last state for deletes', async () => {
    const { store } = setup();
    const w = store.watch();
    await store.update((tx) => tx.create(nodes, node('n1', 'h1')));
    await store.update((tx) => tx.update(nodes, { ...tx.get(nodes, 'n1')!, hostname: 'h2' }));
    await store.update((tx) => tx.delete(nodes, 'n1'));
    const [c, u, d] = w.drain();
    expect(c).toMatchObject({ kind: 'create', object: { hostname: 'h1', meta: { version: 2 } }, version: 2 });
    expect(c!.oldObject).toBeUndefined();
    expect(u).toMatchObject({ kind: 'update', object: { hostname: 'h2', meta: { version: 3 } }, oldObject: { hostname: 'h1', meta: { version: 2 } }, version: 3 });
    expect(d).toMatchObject({ kind: 'delete', object: { hostname: 'h2', meta: { version: 3 } }, version: 4 });
    expect(Object.isFrozen(u!.object) && Object.isFrozen(u!.oldObject)).toBe(true);
  });

  it('filters by table and by predicate; rejected transactions produce nothing', async () => {
    const { store } = setup();
    const onlyTasks = store.watch({ table: tasks });
    const running = store.watch<Task>({ table: [tasks], filter: (e) => e.object.state === 'running' });
    const byName = store.watch({ table: ['nodes'] });
    await store.update((tx) => {
      tx.create(nodes, node('n1', 'h1'));
      tx.create(tasks, { id: 't1', serviceId: 's', state: 'new' });
    });
    await store.update((tx) => tx.update(tasks, { ...tx.get(tasks, 't1')!, state: 'running' }));
    await expect(store.update((tx) => tx.create(nodes, node('n1', 'h1')))).rejects.toThrow();
    expect(onlyTasks.drain().map(describeEv)).toEqual(['2 create tasks t1', '3 update tasks t1']);
    expect(running.drain().map(describeEv)).toEqual(['3 update tasks t1']);
    expect(byName.drain().map(describeEv)).toEqual(['2 create nodes n1']);
  });

  it('a slow consumer is cut off with WATCH_OVERFLOW; others are not affected', async () => {
    const { store } = setup();
    const slow = store.watch({ bufferSize: 5 });
    const fast = store.watch({ bufferSize: 5 });
    const got: string[] = [];
    const consumer = (async () => {
      for await (const ev of fast) {
        got.push(ev.object.id);
        if (got.length === 8) return;
      }
    })();
    for (let i = 0; i < 8; i++) {
      await store.update((tx) => tx.create(tasks, { id: `t${i}`, serviceId: 's', state: 'new' }));
      await new Promise((r) => setImmediate(r));
    }
    await consumer;
    expect(got).toHaveLength(8);
    expect(slow.closed).toBe(true);
    let err: unknown;
    try {
      await slow.next();
    } catch (e) {
      err = e;
    }
    expect(isStoreError(err, 'WATCH_OVERFLOW')).toBe(true);
    expect((err as Error).message).toMatch(/more than 5 events behind.*viewAndWatch/);
    // The error is reported once; after it the iterator is done.
    expect(await slow.next()).toEqual({ value: undefined, done: true });
  });

  it('a consumer waiting in next() sees the overflow error', async () => {
    const { store } = setup();
    const w = store.watch({ bufferSize: 0 });
    const first = w.next();
    await store.update((tx) => {
      tx.create(tasks, { id: 'a', serviceId: 's', state: 'new' });
      tx.create(tasks, { id: 'b', serviceId: 's', state: 'new' });
    });
    expect((await first).value?.object.id).toBe('a');
    await expect(w.next()).rejects.toMatchObject({ code: 'WATCH_OVERFLOW' });
  });

  it('ends by close(), by abort signal, by breaking a loop, by store.close(), or with the filter\'s error', async () => {
    const { store } = setup();
    const a = store.watch();
    const pa = a.next();
    a.close();
    expect(await pa).toEqual({ value: undefined, done: true });

    const ac = new AbortController();
    const b = store.watch({ signal: ac.signal });
    const pb = b.next();
    ac.abort();
    expect(await pb).toEqual({ value: undefined, done: true });

    const c = store.watch();
    const pc = c.next();
    store.close();
    expect(await pc).toEqual({ value: undefined, done: true });

    const d = store.watch({ filter: () => { throw new Error('bad filter'); } });
    await store.update((tx) => tx.create(nodes, node('n1', 'h1')));
    await expect(d.next()).rejects.toThrow('bad filter');

    const e = store.watch();
    void e.next();
    await expect(e.next()).rejects.toThrow(/one consumer/);
  });
});

describe('viewAndWatch', () => {
  it('snapshot plus events always equals the current state, under concurrent writers', async () => {
    const { store } = setup('async');
    let rnd = 12345;
    const random = (n: number) => {
      rnd = (rnd * 1103515245 + 12345) % 2 ** 31;
      return rnd % n;
    };
    let stop = false;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const id = `t${random(30)}`;
        await store.update((tx) => {
          const t = tx.get(tasks, id);
          if (!t) tx.create(tasks, { id, serviceId: `s${w}`, state: 'new' });
          else if (random(4) === 0) tx.delete(tasks, t);
          else tx.update(tasks, { ...t, state: `st${i}`, serviceId: `s${w}` });
        }, { retries: 50 }).catch((e) => {
          // Racing creates and deletes of one id: the loser's outcome, not a failure.
          if (!isStoreError(e, 'EXISTS') && !isStoreError(e, 'NOT_FOUND')) throw e;
        });
      }
    };
    const writers = [0, 1, 2, 3].map(writer);

    const followers: Array<{ state: Map<string, StoreObject>; watch: Watch<Task> }> = [];
    for (let k = 0; k < 5; k++) {
      await new Promise((r) => setTimeout(r, 3 + random(5)));
      const { value, watch, version } = store.viewAndWatch((r) => new Map(r.list(tasks).map((t) => [t.id, t as StoreObject])), { table: tasks });
      expect(version).toBe(store.version);
      followers.push({ state: value, watch });
    }
    await new Promise((r) => setTimeout(r, 20));
    stop = true;
    await Promise.all(writers);

    const final = store.view((r) => r.list(tasks));
    expect(final.length).toBeGreaterThan(0);
    let seen = 0;
    for (const f of followers) {
      let last = 0;
      for (const ev of f.watch.drain()) {
        seen++;
        expect(ev.version).toBeGreaterThanOrEqual(last);
        last = ev.version;
        if (ev.kind === 'create') {
          expect(f.state.has(ev.object.id)).toBe(false);
          f.state.set(ev.object.id, ev.object);
        } else if (ev.kind === 'update') {
          expect(f.state.get(ev.object.id)).toBe(ev.oldObject);
          f.state.set(ev.object.id, ev.object);
        } else {
          expect(f.state.get(ev.object.id)).toBe(ev.object);
          f.state.delete(ev.object.id);
        }
      }
      expect([...f.state.values()].sort((x, y) => x.id.localeCompare(y.id)))
        .toEqual([...final].sort((x, y) => x.id.localeCompare(y.id)));
    }
    expect(seen).toBeGreaterThan(20);
  });
});
