// The lease that keeps new rootfs snapshots from collection: one for many
// creates, replaced every 5 minutes, deleted when its creates are done.
import { describe, expect, it } from 'vitest';
import { M } from '../../../worker/runtime/containerd/client.js';
import { CreateLease } from '../../../worker/runtime/containerd/createlease.js';

function fakeContainerd() {
  const calls: Array<{ m: string; id: string; expire?: string }> = [];
  let failNext = false;
  const client = {
    call: async (m: unknown, req: { id: string; labels?: Record<string, string> }) => {
      await Promise.resolve();
      if (m === M.leaseCreate && failNext) {
        failNext = false;
        throw Object.assign(new Error('14 UNAVAILABLE: containerd is down'), { code: 14 });
      }
      calls.push({ m: m === M.leaseCreate ? 'create' : m === M.leaseDelete ? 'delete' : '?', id: req.id, expire: req.labels?.['containerd.io/gc.expire'] });
      return {};
    },
  };
  return { client: client as never, calls, failOnce: () => (failNext = true) };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe('CreateLease', () => {
  it('serves every create within 5 minutes with one lease, which expires by itself 20 minutes after it was made', async () => {
    let now = 1_000_000;
    const f = fakeContainerd();
    const lease = new CreateLease(f.client, () => now);
    const used = await Promise.all(Array.from({ length: 10 }, () => lease.use(async (id) => id)));
    now += 4 * 60_000;
    used.push(await lease.use(async (id) => id));
    await settle();
    expect(new Set(used).size).toBe(1);
    expect(f.calls).toEqual([{ m: 'create', id: used[0], expire: new Date(1_000_000 + 20 * 60_000).toISOString() }]);
  });

  it('after 5 minutes a new lease; the old one is deleted once the create still under it is done', async () => {
    let now = 0;
    const f = fakeContainerd();
    const lease = new CreateLease(f.client, () => now);
    let finish!: () => void;
    const slow = lease.use((id) => new Promise<string>((r) => (finish = () => r(id))));
    await settle();
    now += 5 * 60_000;
    const next = await lease.use(async (id) => id);
    const first = f.calls[0]!.id;
    expect(next).not.toBe(first);
    await settle();
    expect(f.calls.map((c) => c.m)).toEqual(['create', 'create']); // the old one is still in use
    finish();
    expect(await slow).toBe(first);
    await settle();
    expect(f.calls.slice(2)).toEqual([{ m: 'delete', id: first, expire: undefined }]);
    // An idle lease is deleted as soon as it is replaced.
    now += 5 * 60_000;
    const third = await lease.use(async (id) => id);
    await settle();
    expect(f.calls.slice(3).map((c) => [c.m, c.id])).toEqual([['create', third], ['delete', next]]);
  });

  it('a lease containerd did not make fails the creates waiting on it, and the next create asks again', async () => {
    const f = fakeContainerd();
    const lease = new CreateLease(f.client, () => 0);
    f.failOnce();
    await expect(lease.use(async (id) => id)).rejects.toThrow(/UNAVAILABLE/);
    const id = await lease.use(async (x) => x);
    expect(f.calls).toEqual([{ m: 'create', id, expire: new Date(20 * 60_000).toISOString() }]);
  });
});
