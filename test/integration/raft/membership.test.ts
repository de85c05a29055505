// RaftNodes with real disks and gRPC transports on loopback (in one process):
// a new member joins as a learner, catches up through a streamed snapshot, is
// promoted, takes over leadership, and an old member is removed; a restarted
// member comes back with its state from disk.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfChangeType, StateType } from '../../../manager/raft/core/index.js';
import { RaftNode, type Peers, type StateMachine } from '../../../manager/raft/node/index.js';
import { GrpcTransport } from '../../../manager/raft/transport/index.js';
import { freePort } from '../../support/raftkv/cluster.js';
import { waitUntil } from '../../support/wait.js';

class ListMachine implements StateMachine {
  items: string[] = [];
  apply(_i: number, data: Uint8Array): unknown {
    this.items.push(Buffer.from(data).toString());
    return this.items.length;
  }
  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify(this.items));
  }
  restore(data: Uint8Array): void {
    this.items = data.byteLength ? JSON.parse(Buffer.from(data).toString()) : [];
  }
}

interface Member {
  id: number;
  addr: string;
  dir: string;
  sm: ListMachine;
  node: RaftNode;
  transport: GrpcTransport;
}


describe('raft-ts membership over real disks and gRPC', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'raft-members-'));
  const members = new Map<number, Member>();

  async function launch(id: number, addr: string, bootstrap?: Peers, join?: Peers): Promise<Member> {
    const dir = path.join(base, `n${id}`);
    const sm = new ListMachine();
    const node = RaftNode.open({ id, dataDir: dir, stateMachine: sm, advertiseAddr: addr, bootstrap, join, tickMs: 20, snapshotEntries: 50, compactionMargin: 5 });
    const transport = new GrpcTransport({
      id, listen: addr, onMessage: (m) => node.step(m),
      onUnreachable: (p) => node.reportUnreachable(p), onSnapshotStatus: (p, f) => node.reportSnapshot(p, f),
    });
    await transport.start();
    node.start(transport);
    const m = { id, addr, dir, sm, node, transport };
    members.set(id, m);
    return m;
  }

  async function shutdown(id: number): Promise<void> {
    const m = members.get(id)!;
    m.node.stop();
    await m.transport.stop();
    members.delete(id);
  }

  const leader = () => [...members.values()].find((m) => m.node.isLeader());

  afterAll(async () => {
    for (const id of [...members.keys()]) await shutdown(id);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('adds a learner, promotes it, moves leadership to it, removes a member, and restarts from disk', async () => {
    const addrs: Peers = {};
    for (const id of [1, 2, 3]) addrs[id] = `127.0.0.1:${await freePort()}`;
    for (const id of [1, 2, 3]) await launch(id, addrs[id]!, addrs);
    await waitUntil('a leader', () => leader() !== undefined);

    for (let i = 0; i < 200; i++) await leader()!.node.propose(Buffer.from(`a${i}`));
    expect(leader()!.sm.items).toHaveLength(200);

    // A new member: empty disk, no bootstrap; it learns the cluster from a snapshot.
    const addr4 = `127.0.0.1:${await freePort()}`;
    const m4 = await launch(4, addr4, undefined, addrs);
    const cs1 = await leader()!.node.changeMembership(ConfChangeType.AddLearner, 4, addr4);
    expect(cs1).toEqual({ voters: [1, 2, 3], learners: [4] });
    await waitUntil('the learner to catch up', () => m4.sm.items.length === 200);
    expect(m4.sm.items).toEqual(leader()!.sm.items);
    expect(m4.node.status().peers).toMatchObject({ 1: addrs[1], 2: addrs[2], 3: addrs[3], 4: addr4 });

    const cs2 = await leader()!.node.changeMembership(ConfChangeType.AddVoter, 4);
    expect(cs2).toEqual({ voters: [1, 2, 3, 4], learners: [] });

    await leader()!.node.transferLeadership(4);
    await waitUntil('node 4 to lead', () => m4.node.isLeader());

    const cs3 = await m4.node.changeMembership(ConfChangeType.RemoveNode, 1);
    expect(cs3).toEqual({ voters: [2, 3, 4], learners: [] });
    await shutdown(1);

    for (let i = 0; i < 100; i++) await leader()!.node.propose(Buffer.from(`b${i}`));
    await waitUntil('members to converge', () => [2, 3, 4].every((id) => members.get(id)!.sm.items.length === 300));
    for (const id of [2, 3]) expect(members.get(id)!.sm.items).toEqual(m4.sm.items);

    // Restart member 2 from its disk: same state, back in the cluster.
    const before = [...members.get(2)!.sm.items];
    await shutdown(2);
    await leader()!.node.propose(Buffer.from('while-2-was-down'));
    const m2 = await launch(2, addrs[2]!);
    expect(m2.sm.items.slice(0, before.length)).toEqual(before.slice(0, m2.sm.items.length));
    await waitUntil('member 2 to catch up', () => m2.sm.items.length === 301);
    expect(m2.sm.items).toEqual(leader()!.sm.items);
    expect(m2.node.status().config).toEqual({ voters: [2, 3, 4], learners: [] });
    expect(m2.node.status().state === StateType.Follower || m2.node.isLeader()).toBe(true);
  }, 90_000);
});
