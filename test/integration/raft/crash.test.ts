// Three raftkv members as real OS processes with their WAL on disk. Clients
// write continuously while the leader is SIGKILLed and restarted, again and
// again. Afterwards every acknowledged write is on every member exactly once,
// in one order shared by all.
import { afterAll, describe, expect, it } from 'vitest';
import { KvClient } from '../../support/raftkv/client.js';
import { RaftKvCluster } from '../../support/raftkv/cluster.js';
import { waitFor } from '../../support/wait.js';


describe('raftkv on real processes: SIGKILL the leader repeatedly', () => {
  let cluster: RaftKvCluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('keeps every acknowledged write exactly once, in the same order on all members', async () => {
    // Small snapshot interval so restarts also recover from snapshots + WAL.
    cluster = await RaftKvCluster.create({ size: 3, snapshotEntries: 300, compactionMargin: 50 });
    const c = cluster;
    const admin = new KvClient(c.clientAddrs);
    await admin.findLeader();

    const acked: string[][] = [];
    let attempts = 0;
    let stop = false;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      const client = new KvClient(c.clientAddrs);
      const mine: string[] = [];
      acked.push(mine);
      let n = 0;
      while (!stop) {
        // A fresh key per attempt: a failed attempt may or may not have been
        // applied, but no key may ever be applied twice.
        const key = `w${w}-${n++}`;
        attempts++;
        try {
          await client.putOnce(Buffer.from(key), Buffer.alloc(64, w));
          mine.push(key);
        } catch {
          await client.findLeader().catch(() => undefined);
        }
      }
      client.close();
    });

    const total = () => acked.reduce((s, a) => s + a.length, 0);
    const kills: Array<{ killed: number; newLeaderMs: number }> = [];
    for (let round = 0; round < 4; round++) {
      const before = total();
      await waitFor('writes to progress', async () => (total() >= before + 150 ? true : undefined));
      const lead = await admin.findLeader();
      const victim = c.members.find((m) => m.clientAddr === lead)!;
      const t0 = Date.now();
      await c.kill(victim.id);
      const after = total();
      await waitFor('a write acknowledged by a new leader', async () => (total() > after + 10 ? true : undefined));
      kills.push({ killed: victim.id, newLeaderMs: Date.now() - t0 });
      await c.start(victim.id);
    }
    stop = true;
    await Promise.all(writers);

    // Let every member apply everything committed.
    const lead = await admin.findLeader();
    const target = (await admin.status(lead)).commit;
    const dumps = await waitFor('all members to apply the whole log', async () => {
      const ds = await Promise.all(c.members.map((m) => admin.dump(m.clientAddr)));
      return ds.every((d) => d.applied >= target) ? ds : undefined;
    });
    admin.close();

    const ackedAll = acked.flat();
    expect(kills).toHaveLength(4);
    expect(ackedAll.length).toBeGreaterThan(600);
    // One order on all members (compare the common prefix: a member may trail by in-flight no-ops).
    const orders = dumps.map((d) => d.order);
    const shortest = Math.min(...orders.map((o) => o.length));
    for (const o of orders) expect(o.slice(0, shortest)).toEqual(orders[0]!.slice(0, shortest));
    for (const o of orders) {
      // Nothing applied twice.
      expect(new Set(o).size).toBe(o.length);
      // Every acknowledged write present.
      const present = new Set(o);
      const missing = ackedAll.filter((k) => !present.has(k));
      expect(missing).toEqual([]);
      // Each writer's acknowledged writes in the order it made them.
      for (const mine of acked) {
        const positions = mine.map((k) => o.indexOf(k));
        expect([...positions].sort((a, b) => a - b)).toEqual(positions);
      }
    }
    console.log(`crash test: ${attempts} attempts, ${ackedAll.length} acknowledged, leader kills: ${kills.map((k) => `n${k.killed} -> next write after ${k.newLeaderMs} ms`).join(', ')}`);
  }, 180_000);
});
