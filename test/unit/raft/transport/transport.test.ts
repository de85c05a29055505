import { randomBytes } from 'node:crypto';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EntryType, MessageType, emptyMessage, type Message } from '../../../../manager/raft/core/types.js';
import { GrpcTransport } from '../../../../manager/raft/transport/index.js';
import { TestCA, heartbeat, startNode, waitFor, type Node } from './helpers.js';

const nodes: Node[] = [];
async function node(...args: Parameters<typeof startNode>): Promise<Node> {
  const n = await startNode(...args);
  nodes.push(n);
  return n;
}
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.t.stop()));
});

function connect(all: Node[]): void {
  for (const a of all) for (const b of all) if (a !== b) a.t.addPeer(b.id, b.addr);
}

function commits(ms: Message[], from: number): number[] {
  return ms.filter((m) => m.from === from).map((m) => m.commit);
}

describe('GrpcTransport', () => {
  it('delivers messages between two nodes in order', async () => {
    const a = await node(1);
    const b = await node(2);
    connect([a, b]);
    // Several sends per turn and across turns: batching must keep the order.
    for (let turn = 0; turn < 10; turn++) {
      for (let i = 0; i < 100; i++) a.t.send([heartbeat(1, 2, turn * 100 + i)]);
      await new Promise((r) => setImmediate(r));
    }
    b.t.send([{ ...emptyMessage(MessageType.HeartbeatResp, 1, 2), term: 1 }]);
    await waitFor('1000 heartbeats at b', () => b.got.length >= 1000);
    await waitFor('reply at a', () => a.got.length >= 1);
    expect(commits(b.got, 1)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(b.got.every((m) => m.to === 2 && m.type === MessageType.Heartbeat && m.term === 1)).toBe(true);
    expect(a.got[0]!.type).toBe(MessageType.HeartbeatResp);
    expect(a.unreachable).toEqual([]);
  });

  it('carries entries with payloads', async () => {
    const a = await node(1);
    const b = await node(2);
    connect([a, b]);
    const data = randomBytes(100_000);
    const app: Message = {
      ...emptyMessage(MessageType.App, 2, 1), term: 3, logTerm: 3, index: 2 ** 33, commit: 2 ** 33,
      entries: [{ term: 3, index: 2 ** 33 + 1, type: EntryType.Normal, data }],
    };
    a.t.send([app]);
    await waitFor('append at b', () => b.got.length === 1);
    const got = b.got[0]!;
    expect(got.index).toBe(2 ** 33);
    expect(got.entries[0]!.index).toBe(2 ** 33 + 1);
    expect(Buffer.compare(got.entries[0]!.data, data)).toBe(0);
  });

  it('keeps order and loses nothing under back-pressure', async () => {
    const a = await node(1);
    const b = await node(2);
    connect([a, b]);
    // 25 MiB in 100 turns outruns HTTP/2 flow control, so the stream's buffer fills and the
    // transport waits for 'drain' with messages held in its queue.
    const data = randomBytes(256 * 1024);
    for (let i = 0; i < 100; i++) {
      a.t.send([{
        ...emptyMessage(MessageType.App, 2, 1), term: 1, index: i,
        entries: [{ term: 1, index: i + 1, type: EntryType.Normal, data }],
      }]);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor('all appends', () => b.got.length === 100, 30_000);
    expect(b.got.map((m) => m.index)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(Buffer.compare(b.got[99]!.entries[0]!.data, data)).toBe(0);
    expect(a.unreachable).toEqual([]);
  });

  it('delivers among three nodes, in order per sender', async () => {
    const ns = [await node(1), await node(2), await node(3)];
    connect(ns);
    const N = 300;
    for (let i = 0; i < N; i++) {
      for (const from of ns) {
        // One send() carrying messages for both other peers: grouped per peer.
        from.t.send(ns.filter((to) => to !== from).map((to) => heartbeat(from.id, to.id, i)));
      }
    }
    await waitFor('all messages', () => ns.every((n) => n.got.length === 2 * N));
    const seq = Array.from({ length: N }, (_, i) => i);
    for (const to of ns) {
      for (const from of ns) {
        if (from !== to) expect(commits(to.got, from.id)).toEqual(seq);
      }
    }
  });

  it('sends a 5 MiB snapshot in chunks and reassembles it exactly', async () => {
    const a = await node(1, { snapshotChunkBytes: 1 << 20 });
    const b = await node(2);
    connect([a, b]);
    const data = randomBytes(5 * 1024 * 1024 + 123);
    const snap: Message = {
      ...emptyMessage(MessageType.Snap, 2, 1), term: 4,
      snapshot: { metadata: { index: 2 ** 34, term: 4, confState: { voters: [1, 2, 3], learners: [] } }, data },
    };
    a.t.send([snap, heartbeat(1, 2, 9)]);
    await waitFor('snapshot status', () => a.snapStatus.length === 1);
    expect(a.snapStatus).toEqual([[2, false]]);
    await waitFor('snapshot and heartbeat at b', () => b.got.length === 2);
    const got = b.got.find((m) => m.type === MessageType.Snap)!;
    expect(got.from).toBe(1);
    expect(got.term).toBe(4);
    expect(got.snapshot!.metadata).toEqual(snap.snapshot!.metadata);
    expect(got.snapshot!.data.byteLength).toBe(data.byteLength);
    expect(Buffer.compare(got.snapshot!.data, data)).toBe(0);
  });

  it('reports a failed snapshot when the peer is down', async () => {
    const a = await node(1);
    a.t.addPeer(2, '127.0.0.1:1'); // nothing listens there
    const snap: Message = {
      ...emptyMessage(MessageType.Snap, 2, 1),
      snapshot: { metadata: { index: 5, term: 1, confState: { voters: [1, 2], learners: [] } }, data: randomBytes(1000) },
    };
    a.t.send([snap]);
    await waitFor('snapshot failure', () => a.snapStatus.length === 1);
    expect(a.snapStatus).toEqual([[2, true]]);
  });

  it('reports an unreachable peer and reconnects when it is back', async () => {
    const a = await node(1);
    let b = await node(2);
    const addr = b.addr;
    connect([a, b]);
    a.t.send([heartbeat(1, 2, 1)]);
    await waitFor('first heartbeat', () => b.got.length === 1);

    await b.t.stop();
    await waitFor('unreachable report', () => a.unreachable.includes(2));
    // While down, sends are dropped and reported, not buffered without bound.
    a.t.send([heartbeat(1, 2, 2)]);

    b = await node(2, {}, addr); // same address, fresh process state
    // Raft keeps sending (heartbeats); the transport reconnects within its backoff.
    let commit = 100;
    await waitFor('delivery after restart', () => {
      a.t.send([heartbeat(1, 2, commit++)]);
      return b.got.length > 0;
    });
    expect(b.got[0]!.commit).toBeGreaterThanOrEqual(100);
    // Once the stream is up again, nothing is lost or reordered.
    const n = b.got.length;
    for (let i = 0; i < 50; i++) a.t.send([heartbeat(1, 2, 10_000 + i)]);
    await waitFor('burst after reconnect', () => b.got.length >= n + 50);
    expect(commits(b.got.slice(-50), 1)).toEqual(Array.from({ length: 50 }, (_, i) => 10_000 + i));
  });

  it('notices a silent peer through keepalive', async () => {
    const a = await node(1);
    const b = await node(2);
    // A TCP relay that can go silent: no FIN, no RST, like a host that vanished.
    const sockets: Socket[] = [];
    const relay: Server = createServer((c) => {
      const port = Number(b.addr.slice(b.addr.lastIndexOf(':') + 1));
      const u = tcpConnect(port, '127.0.0.1');
      c.pipe(u);
      u.pipe(c);
      c.on('error', () => {});
      u.on('error', () => {});
      sockets.push(c, u);
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    try {
      const { port } = relay.address() as { port: number };
      a.t.addPeer(2, `127.0.0.1:${port}`);
      a.t.send([heartbeat(1, 2, 1)]);
      await waitFor('delivery through the relay', () => b.got.length === 1);
      for (const s of sockets) {
        s.unpipe();
        s.pause();
      }
      const silentAt = Date.now();
      await waitFor('unreachable report', () => a.unreachable.includes(2), 6000);
      // keepalive: ping after 1 s, give up 1 s later (plus scheduling slack on a busy machine).
      expect(Date.now() - silentAt).toBeLessThan(4000);
    } finally {
      for (const s of sockets) s.destroy();
      relay.close();
    }
  });

  it('refuses a stream meant for another node', async () => {
    const a = await node(1);
    const b = await node(2);
    a.t.addPeer(3, b.addr); // wrong address for node 3: b is node 2
    a.t.send([heartbeat(1, 3, 1)]);
    await waitFor('unreachable report', () => a.unreachable.includes(3));
    expect(b.got).toEqual([]);
  });

  it('drops local-only message types from peers', async () => {
    const a = await node(1);
    const b = await node(2);
    connect([a, b]);
    a.t.send([emptyMessage(MessageType.Hup, 2, 1), heartbeat(1, 2, 1)]);
    await waitFor('heartbeat', () => b.got.length === 1);
    expect(b.got[0]!.type).toBe(MessageType.Heartbeat);
  });

  it('removes and re-adds peers', async () => {
    const a = await node(1);
    const b = await node(2);
    connect([a, b]);
    a.t.send([heartbeat(1, 2, 1)]);
    await waitFor('first', () => b.got.length === 1);
    a.t.removePeer(2);
    a.t.send([heartbeat(1, 2, 2)]); // unknown peer: dropped silently
    a.t.addPeer(2, b.addr);
    a.t.addPeer(2, b.addr); // idempotent
    a.t.send([heartbeat(1, 2, 3)]);
    await waitFor('after re-add', () => b.got.length === 2);
    expect(commits(b.got, 1)).toEqual([1, 3]);
  });

  it('works as a client-only transport', async () => {
    const b = await node(2);
    const got: Message[] = [];
    const c = new GrpcTransport({ id: 1, onMessage: (m) => got.push(m) });
    try {
      expect(await c.start()).toBe('');
      c.addPeer(2, b.addr);
      c.send([heartbeat(1, 2, 7)]);
      await waitFor('delivery', () => b.got.length === 1);
    } finally {
      await c.stop();
    }
  });

  describe('mutual TLS', () => {
    let ca: TestCA;
    let other: TestCA;
    beforeAll(() => {
      ca = new TestCA('shoal test root');
      other = new TestCA('some other root');
    });
    const tls = (id: number, issuer?: TestCA) => ({ ca: ca.cert, ...(issuer ?? ca).issue(id) });

    it('delivers between nodes with certificates of the cluster CA', async () => {
      const a = await node(1, { credentials: tls(1) });
      const b = await node(2, { credentials: tls(2) });
      connect([a, b]);
      a.t.send([heartbeat(1, 2, 1)]);
      b.t.send([heartbeat(2, 1, 2)]);
      await waitFor('both directions', () => a.got.length === 1 && b.got.length === 1);
      const snap: Message = {
        ...emptyMessage(MessageType.Snap, 2, 1),
        snapshot: { metadata: { index: 9, term: 1, confState: { voters: [1, 2], learners: [] } }, data: randomBytes(300_000) },
      };
      a.t.send([snap]);
      await waitFor('snapshot over TLS', () => a.snapStatus.length === 1);
      expect(a.snapStatus).toEqual([[2, false]]);
    });

    it('refuses a client whose certificate comes from another CA', async () => {
      const b = await node(2, { credentials: tls(2) });
      // Trusts the right CA (so it would accept b), but presents a foreign certificate.
      const c = await node(3, { credentials: tls(3, other) });
      c.t.addPeer(2, b.addr);
      c.t.send([heartbeat(3, 2, 1)]);
      await waitFor('unreachable report', () => c.unreachable.includes(2));
      c.t.send([heartbeat(3, 2, 2)]);
      await waitFor('second failure', () => c.unreachable.filter((p) => p === 2).length >= 2);
      expect(b.got).toEqual([]);
    });

    it('checks a shared serverName when one is configured', async () => {
      const shared = { ca: ca.cert, ...ca.issue(0, 'managers') };
      const a = await node(1, { credentials: { ...shared, serverName: 'managers' } });
      const b = await node(2, { credentials: { ...shared, serverName: 'managers' } });
      const c = await node(3, { credentials: { ...shared, serverName: 'workers' } });
      connect([a, b]);
      a.t.send([heartbeat(1, 2, 1)]);
      await waitFor('delivery', () => b.got.length === 1);
      c.t.addPeer(2, b.addr);
      c.t.send([heartbeat(3, 2, 1)]);
      await waitFor('name mismatch refused', () => c.unreachable.includes(2));
      expect(commits(b.got, 3)).toEqual([]);
    });

    it('checks node identity with verifyPeer on both sides', async () => {
      const verifyPeer = (peer: number, cert: { subject: { CN?: string | string[] } }) =>
        cert.subject.CN === String(peer) ? undefined : new Error(`certificate names ${String(cert.subject.CN)}`);
      const a = await node(1, { credentials: { ...tls(1), verifyPeer } });
      const b = await node(2, { credentials: { ...tls(2), verifyPeer } });
      // Holds a valid cluster certificate for node 3 but claims to be node 1.
      const impostor = await node(1, { credentials: tls(3) });
      connect([a, b]);
      a.t.send([heartbeat(1, 2, 1)]);
      await waitFor('genuine delivery', () => b.got.length === 1);
      impostor.t.addPeer(2, b.addr);
      impostor.t.send([heartbeat(1, 2, 99)]);
      await waitFor('impostor refused', () => impostor.unreachable.includes(2));
      expect(commits(b.got, 1)).toEqual([1]);
      // Client side: dialling node 1's address as if it were node 3 fails the identity check.
      b.t.addPeer(3, a.addr);
      b.t.send([heartbeat(2, 3, 5)]);
      await waitFor('wrong server refused', () => b.unreachable.includes(3));
      expect(a.got).toEqual([]);
    });
  });
});
