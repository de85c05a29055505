// Proposal batching: many entries proposed together cost one Ready (one fsync)
// and one append per follower, within the per-message size limit.
import { describe, expect, it } from 'vitest';
import { MessageType, entrySize } from '../../../../manager/raft/core/index.js';
import { Network, bytes } from './harness.js';

function payloads(n: number, size: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => new Uint8Array(size).fill(i & 0xff));
}

describe('batching', () => {
  it.each([1, 5, 64])('proposeBatch of %i entries: one Ready, one append per follower carrying all of them', (n) => {
    const net = Network.create(3);
    const lead = net.elect(1);
    const last = lead.lastIndex();
    const datas = payloads(n, 16);
    const { index, term } = lead.raw.proposeBatch(datas);
    expect(index).toBe(last + n);
    expect(term).toBe(lead.term());

    expect(lead.raw.hasReady()).toBe(true);
    const rd = lead.raw.ready();
    expect(rd.entries.map((e) => e.index)).toEqual(Array.from({ length: n }, (_, i) => last + 1 + i));
    expect(rd.entries.map((e) => e.data)).toEqual(datas);
    expect(rd.mustSync).toBe(true);
    const apps = rd.messages.filter((m) => m.type === MessageType.App);
    expect(apps.map((m) => m.to).sort()).toEqual([2, 3]);
    for (const m of apps) {
      expect(m.index).toBe(last);
      expect(m.entries.map((e) => e.index)).toEqual(rd.entries.map((e) => e.index));
    }
    net.outbox.push(...lead.handle(rd));
    expect(lead.raw.hasReady()).toBe(false); // nothing left for a second Ready

    net.flush();
    expect(lead.commit()).toBe(index);
    for (const id of [2, 3]) {
      expect(net.node(id).commit()).toBe(index);
      // Each follower also took them in as one batch: one append, one ack.
      expect(net.deliveredWhere((m) => m.type === MessageType.App && m.to === id && m.entries.length > 0 && m.index === last)).toHaveLength(1);
    }
  });

  it.each([
    { maxSizePerMsg: 1, perMsg: 1 },
    { maxSizePerMsg: 300, perMsg: 2 }, // 124 bytes per entry: 248 fits, 372 does not
    { maxSizePerMsg: 1000, perMsg: 8 },
    { maxSizePerMsg: 1 << 20, perMsg: 10 },
  ])('maxSizePerMsg=$maxSizePerMsg splits a batch of 10 into appends of $perMsg', ({ maxSizePerMsg, perMsg }) => {
    const n = 10;
    const net = Network.create(3, { maxSizePerMsg });
    const lead = net.elect(1);
    const datas = payloads(n, 100);
    expect(entrySize({ term: 0, index: 0, type: 0, data: datas[0]! })).toBe(124);
    const { index } = lead.raw.proposeBatch(datas);
    const first = net.collect(1).filter((m) => m.type === MessageType.App);
    expect(first).toHaveLength(2);
    for (const m of first) expect(m.entries).toHaveLength(perMsg);

    net.flush();
    for (const id of [2, 3]) {
      const apps = net.deliveredWhere((m) => m.type === MessageType.App && m.to === id && m.entries.length > 0 && m.entries[0]!.index > 1);
      expect(apps).toHaveLength(Math.ceil(n / perMsg));
      for (const m of apps) {
        expect(m.entries.length).toBeLessThanOrEqual(perMsg);
        const bytesInMsg = m.entries.reduce((s, e) => s + entrySize(e), 0);
        // Over the limit only when a single entry is bigger than the limit by itself.
        if (m.entries.length > 1) expect(bytesInMsg).toBeLessThanOrEqual(maxSizePerMsg);
      }
      expect(net.node(id).log().slice(1).map((e) => e.data)).toEqual(datas);
      expect(net.node(id).commit()).toBe(index);
    }
  });

  it('a batch proposed on a follower is refused, not half-forwarded', () => {
    const net = Network.create(3);
    net.elect(1);
    const f = net.node(2);
    const before = f.lastIndex();
    expect(() => f.raw.proposeBatch([bytes('a'), bytes('b')])).toThrow(expect.objectContaining({ code: 'NOT_LEADER' }));
    expect(f.raw.hasReady()).toBe(false);
    expect(f.lastIndex()).toBe(before);
  });
});
