// A state machine that makes its snapshot off the event loop (snapshotAsync):
// the node goes on committing and applying while the snapshot is made, then
// writes it, compacts, and a restart comes back to the same state from it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RaftNode, type StateMachine, type Transport } from '../../../manager/raft/node/index.js';
import { waitUntil } from '../../support/wait.js';

class SlowSnapshotList implements StateMachine {
  items: string[] = [];
  /** Captures handed out by snapshotAsync, each released by the test. */
  readonly captures: Array<{ items: string[]; release: () => void }> = [];
  restoredFrom: string[] | undefined;

  apply(_i: number, data: Uint8Array): unknown {
    this.items.push(Buffer.from(data).toString());
    return this.items.length;
  }
  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify(this.items));
  }
  snapshotAsync(): Promise<Uint8Array> {
    const items = [...this.items];
    return new Promise((resolve) => {
      this.captures.push({ items, release: () => resolve(Buffer.from(JSON.stringify(items))) });
    });
  }
  restore(data: Uint8Array): void {
    this.items = data.byteLength ? JSON.parse(Buffer.from(data).toString()) : [];
    this.restoredFrom = [...this.items];
  }
}

/** Snapshots (made inline) of about 2,000 bytes once it holds anything. */
class PaddedList implements StateMachine {
  items: string[] = [];
  apply(_i: number, data: Uint8Array): unknown {
    return this.items.push(Buffer.from(data).toString());
  }
  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify({ items: this.items, pad: this.items.length ? 'x'.repeat(2_000) : '' }));
  }
  restore(data: Uint8Array): void {
    this.items = data.byteLength ? (JSON.parse(Buffer.from(data).toString()) as { items: string[] }).items : [];
  }
}

const noPeers: Transport = { send() {}, addPeer() {}, removePeer() {} };

function snapIndexes(dir: string): number[] {
  return fs.readdirSync(path.join(dir, 'snap')).filter((f) => f.endsWith('.snap')).map((f) => parseInt(f.slice(17, 33), 16));
}

describe('raft-ts snapshots made off the event loop', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'raft-asyncsnap-'));
  afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

  function open(dir: string, sm: SlowSnapshotList): RaftNode {
    const node = RaftNode.open({ id: 1, dataDir: dir, stateMachine: sm, advertiseAddr: '127.0.0.1:1', bootstrap: { 1: '127.0.0.1:1' }, tickMs: 10, snapshotEntries: 10, compactionMargin: 2 });
    node.start(noPeers);
    node.campaign();
    return node;
  }

  /** A leading node with 12 entries applied, its state machine asked for a snapshot it has not delivered. */
  async function snapshotAsked(name: string): Promise<{ dir: string; sm: SlowSnapshotList; node: RaftNode }> {
    const dir = path.join(base, name);
    const sm = new SlowSnapshotList();
    const node = open(dir, sm);
    await waitUntil('single node leads', () => node.isLeader(), 5_000);
    for (let i = 0; i < 12; i++) await node.propose(Buffer.from(`${name}-a${i}`));
    await waitUntil('a snapshot is asked for', () => sm.captures.length === 1, 5_000);
    return { dir, sm, node };
  }

  it('keeps committing while a snapshot is made, then writes it, and a restart recovers from it', async () => {
    const { dir, sm, node } = await snapshotAsked('n1');
    const captured = sm.captures[0]!.items;
    const applied = sm.items.length;
    expect(captured.length).toBeLessThanOrEqual(applied);

    // The snapshot is still being made: proposals go on committing and applying.
    for (let i = 0; i < 15; i++) await node.propose(Buffer.from(`b${i}`));
    expect(sm.items.length).toBe(applied + 15);
    expect(snapIndexes(dir).filter((i) => i > 1)).toEqual([]);
    // One snapshot at a time: no second capture while the first is out.
    expect(sm.captures.length).toBe(1);

    sm.captures[0]!.release();
    await waitUntil('the snapshot file is written', () => snapIndexes(dir).some((i) => i > 1), 5_000);
    const at = Math.max(...snapIndexes(dir));
    // The capture held exactly the entries applied up to the snapshot's index
    // (the bootstrap snapshot is index 1, and a new leader's empty entry takes one).
    expect(at).toBe(captured.length + 2);
    node.stop();

    const again = new SlowSnapshotList();
    const restarted = open(dir, again);
    try {
      expect(again.restoredFrom).toEqual(captured);
      await waitUntil('the log after the snapshot is applied again', () => again.items.length === sm.items.length, 5_000);
      expect(again.items).toEqual(sm.items);
    } finally {
      restarted.stop();
    }
  });

  it('a node stopped while its snapshot is being made starts again cleanly', async () => {
    const { dir, sm, node } = await snapshotAsked('n2');
    node.stop();
    sm.captures[0]!.release();
    await new Promise((r) => setImmediate(r));

    const again = new SlowSnapshotList();
    const restarted = open(dir, again);
    try {
      await waitUntil('everything committed is applied again', () => again.items.length === sm.items.length, 5_000);
      expect(again.items).toEqual(sm.items);
    } finally {
      restarted.stop();
    }
  });

  it('with snapshotLogRatio, a large state waits until the log since its last snapshot outweighs it', async () => {
    const dir = path.join(base, 'ratio');
    const sm = new PaddedList();
    const node = RaftNode.open({
      id: 1, dataDir: dir, stateMachine: sm, advertiseAddr: '127.0.0.1:1', bootstrap: { 1: '127.0.0.1:1' }, tickMs: 10,
      snapshotEntries: 5, compactionMargin: 2, snapshotLogRatio: 1,
    });
    node.start(noPeers);
    node.campaign();
    try {
      await waitUntil('single node leads', () => node.isLeader(), 5_000);
      const entry = (i: number) => Buffer.from(`e${i}`.padEnd(100, '.'));
      let i = 0;
      // The bootstrap snapshot is tiny: the first one comes after snapshotEntries.
      while (snapIndexes(dir).every((x) => x <= 1) && i < 100) await node.propose(entry(i++));
      expect(i).toBeLessThanOrEqual(6);
      const first = Math.max(...snapIndexes(dir));
      // A snapshot of 2,000+ bytes: the next waits for 2,000+ bytes of entries (20+ of 100 bytes),
      // not for snapshotEntries (5).
      let more = 0;
      while (Math.max(...snapIndexes(dir)) === first && more < 100) {
        await node.propose(entry(i++));
        more++;
      }
      expect(more).toBeGreaterThanOrEqual(20);
      expect(more).toBeLessThanOrEqual(35);
    } finally {
      node.stop();
    }
  });

  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    it(`refuses snapshotLogRatio ${bad} before touching the data dir`, () => {
      const dir = path.join(base, `bad-${String(bad)}`);
      expect(() => RaftNode.open({ id: 1, dataDir: dir, stateMachine: new PaddedList(), advertiseAddr: '127.0.0.1:1', bootstrap: { 1: '127.0.0.1:1' }, snapshotLogRatio: bad }))
        .toThrow(/snapshotLogRatio must be a number >= 0/);
      expect(fs.existsSync(dir)).toBe(false);
    });
  }
});
