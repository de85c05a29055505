// The proposer applies its own entries with the objects its transaction
// already decoded (read-your-writes), instead of decoding the same bytes
// again; members that decode must end in the same state.
import { describe, expect, it } from 'vitest';
import { defineTable, jsonCodec, Store, type StoreObject } from '../../../manager/store/index.js';
import { FakeRaft } from './helpers.js';

interface Item extends StoreObject {
  name: string;
  spec: { image: string; env: string[] };
}

function countingTable() {
  const json = jsonCodec<Item>();
  const counts = { decode: 0 };
  const table = defineTable<Item>({
    name: 'items',
    codec: { encode: json.encode, decode: (b) => (counts.decode++, json.decode(b)) },
    indexes: [{ name: 'name', unique: true, key: (i) => i.name }],
  });
  return { table, counts };
}

function pair(mode: 'sync' | 'async') {
  const a = countingTable();
  const b = countingTable();
  let t = 1_000;
  const clock = () => (t += 1000);
  const proposer = new Store({ tables: [a.table], clock });
  const follower = new Store({ tables: [b.table], clock });
  new FakeRaft(mode).attach(proposer, follower);
  return { proposer, follower, table: a.table, mine: a.counts, theirs: b.counts };
}

const item = (id: string, image: string): Item => ({ id, name: `n-${id}`, spec: { image, env: ['A=1'] } } as Item);

describe('the proposer reuses what its transaction decoded', () => {
  it('decodes each written object once (in the transaction); a follower decodes it once (in apply); both reach the same frozen state', async () => {
    const { proposer, follower, table, mine, theirs } = pair('sync');
    await proposer.update((tx) => {
      tx.create(table, item('i1', 'busybox:1'));
      tx.create(table, item('i2', 'busybox:2'));
    });
    expect(mine.decode).toBe(2);
    expect(theirs.decode).toBe(2);
    const cur = proposer.view((r) => r.get(table, 'i1'))!;
    await proposer.update((tx) => tx.update(table, { ...cur, spec: { ...cur.spec, image: 'busybox:3' } }));
    expect(mine.decode).toBe(3);
    expect(theirs.decode).toBe(3);
    for (const id of ['i1', 'i2']) {
      const p = proposer.view((r) => r.get(table, id))!;
      expect(p).toEqual(follower.view((r) => r.get(table, id)));
      expect(Object.isFrozen(p) && Object.isFrozen(p.spec) && Object.isFrozen(p.meta)).toBe(true);
    }
    expect(proposer.view((r) => r.get(table, 'i1'))).toMatchObject({ spec: { image: 'busybox:3' }, meta: { version: 3, createdAt: 2000, updatedAt: 3000 } });
    expect(proposer.view((r) => r.find(table, 'name', 'n-i2')).map((i) => i.id)).toEqual(['i2']);
  });

  it('two transactions in flight on one object: each entry applies with its own bytes (the later one, stale, is refused)', async () => {
    const { proposer, follower, table } = pair('async');
    await proposer.update((tx) => tx.create(table, item('i1', 'v0')));
    const cur = proposer.view((r) => r.get(table, 'i1'))!;
    const first = proposer.update((tx) => tx.update(table, { ...cur, spec: { ...cur.spec, image: 'v1' } }));
    const second = proposer.update((tx) => tx.update(table, { ...cur, spec: { ...cur.spec, image: 'v2' } }));
    await first;
    await expect(second).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(proposer.view((r) => r.get(table, 'i1'))!.spec.image).toBe('v1');
    expect(proposer.view((r) => r.get(table, 'i1'))).toEqual(follower.view((r) => r.get(table, 'i1')));
  });
});
