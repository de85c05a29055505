// Node-to-node delivery of raft messages over gRPC.
//
// Each node keeps one long-lived client stream to every peer and pushes its messages as batches;
// replies travel on the peer's own stream back to us, so every connection carries data in one
// direction and in order. Raft tolerates loss, so the transport never retries a message: while
// a peer is unreachable its messages are dropped and the driver is told (onUnreachable), which
// makes the leader probe that peer again once it is back.

import * as grpc from '@grpc/grpc-js';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { constants as bufferConstants } from 'node:buffer';
import type { Logger } from 'pino';
import { MessageType, isLocalMessage, type Message, type NodeId } from '../core/types.js';
import { estimateSize, type DecodedBatch, type SnapshotChunk } from './codec.js';
import {
  INSTALL_SNAPSHOT_PATH,
  STREAM_PATH,
  deserializeSnapshotAck,
  deserializeStreamAck,
  raftTransportService,
  serializeBatch,
  serializeChunk,
  type OutgoingBatch,
  type RaftTransportHandlers,
} from './service.js';

export interface TransportCredentials {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /**
   * Name every peer certificate carries (checked like a hostname). Shoal certificates name node
   * IDs, not hosts, so by default only the chain is verified; use verifyPeer to check identity.
   */
  serverName?: string;
  /**
   * Identity check on top of the chain: gets the node ID we dialled (client side) or the sender
   * a stream claims to come from (server side) and the peer's certificate. Return an Error to
   * refuse the connection or stream.
   */
  verifyPeer?: (peer: NodeId, cert: PeerCertificate) => Error | undefined;
}

export interface TransportOptions {
  /** This node. */
  id: NodeId;
  /** 'host:port' to serve on; omit for client-only. Port 0 picks a free port. */
  listen?: string;
  /** Mutual TLS when given; insecure otherwise. */
  credentials?: TransportCredentials;
  /** Delivered messages (snapshots reassembled), in order per sending peer. */
  onMessage: (m: Message) => void;
  /** The connection to peer failed or broke, or messages to it were dropped. */
  onUnreachable?: (peer: NodeId) => void;
  /** Outcome of sending a snapshot to peer. */
  onSnapshotStatus?: (peer: NodeId, failed: boolean) => void;
  /** Payload bytes per InstallSnapshot chunk; default 1 MiB. */
  snapshotChunkBytes?: number;
  /** Messages held per peer while its stream is busy or connecting; default 4096. */
  maxQueuedMessages?: number;
  logger?: Logger | undefined;
}

const INITIAL_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2000;
const DEFAULT_CHUNK_BYTES = 1 << 20;
const DEFAULT_MAX_QUEUED = 4096;
/** A snapshot send that made no progress for this long is abandoned (and reported failed). */
const SNAPSHOT_STALL_MS = 30_000;
/** Split a turn's messages into several gRPC messages beyond this (estimated) size. */
const MAX_BATCH_BYTES = 4 << 20;
/** Single entries may be large (a store transaction); leave generous headroom over batches. */
const MAX_MESSAGE_BYTES = 64 << 20;
/** Placeholder SNI when no serverName is configured: an IP address is not a valid SNI. */
const DEFAULT_SNI = 'shoal-raft';

// Keepalive pings every second with a one-second timeout notice a dead peer (host gone, cable
// pulled: no RST ever arrives) within about two seconds. grpc-js servers accept pings this
// frequent. Its own reconnect backoff is aligned with ours so the two do not compound.
const COMMON_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 1000,
  'grpc.keepalive_timeout_ms': 1000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
};
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  ...COMMON_OPTIONS,
  'grpc.initial_reconnect_backoff_ms': INITIAL_BACKOFF_MS,
  'grpc.max_reconnect_backoff_ms': MAX_BACKOFF_MS,
  // Retries would buffer a copy of everything written to a stream; raft resends on its own.
  'grpc.enable_retries': 0,
  // One connection per peer client: a removed peer's channel shutdown cannot disturb another,
  // and a snapshot's client never shares a TCP connection with the message stream.
  'grpc.use_local_subchannel_pool': 1,
};

interface Peer {
  id: NodeId;
  addr: string;
  client: grpc.Client;
  stream: grpc.ClientWritableStream<OutgoingBatch> | null;
  streamOpenedAt: number;
  /** The stream's write buffer is full: hold messages until 'drain'. */
  blocked: boolean;
  queue: Message[];
  /** Messages dropped since the last onUnreachable report. */
  dropped: number;
  backoffMs: number;
  retryTimer: NodeJS.Timeout | null;
  snapshot: { client: grpc.Client; call: grpc.ClientWritableStream<SnapshotChunk> } | null;
}

export class GrpcTransport {
  private readonly id: NodeId;
  private readonly opts: TransportOptions;
  private readonly log: Logger | undefined;
  private readonly chunkBytes: number;
  private readonly maxQueued: number;
  private readonly peers = new Map<NodeId, Peer>();
  /** Peers with queued messages, flushed together once per event-loop turn. */
  private readonly dirty = new Set<Peer>();
  private flushScheduled = false;
  private server: grpc.Server | null = null;
  private stopped = false;

  constructor(opts: TransportOptions) {
    this.id = opts.id;
    this.opts = opts;
    this.log = opts.logger?.child({ component: 'raft-transport', node: opts.id });
    this.chunkBytes = opts.snapshotChunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.maxQueued = opts.maxQueuedMessages ?? DEFAULT_MAX_QUEUED;
    if (!(this.chunkBytes > 0)) throw new RangeError('snapshotChunkBytes must be positive');
  }

  /** Starts serving (when `listen` was given); resolves with the bound 'host:port'. */
  async start(): Promise<string> {
    if (this.opts.listen === undefined) return '';
    if (this.server) throw new Error('transport already started');
    const server = new grpc.Server(COMMON_OPTIONS);
    server.addService(raftTransportService, this.handlers());
    const c = this.opts.credentials;
    const creds = c
      ? grpc.ServerCredentials.createSsl(c.ca, [{ cert_chain: c.cert, private_key: c.key }], true)
      : grpc.ServerCredentials.createInsecure();
    const listen = this.opts.listen;
    // A member restarting on its old port may find it still held for a moment
    // (its previous server closing, or a process that just died): retry briefly.
    let port = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        port = await new Promise<number>((resolve, reject) => {
          server.bindAsync(listen, creds, (err, p) => (err ? reject(err) : resolve(p)));
        });
        break;
      } catch (e) {
        if (attempt >= 50 || !/EADDRINUSE/.test(String((e as Error).message))) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    this.server = server;
    const host = listen.slice(0, listen.lastIndexOf(':'));
    const addr = `${host}:${port}`;
    this.log?.info({ addr, tls: !!c }, 'raft transport listening');
    return addr;
  }

  /**
   * Serve the raft service on a server the caller owns (one port for all of a
   * daemon's services) instead of a server of our own. The caller's server
   * credentials apply; verifyPeer still checks every inbound stream.
   */
  attach(server: grpc.Server): void {
    server.addService(raftTransportService, this.handlers());
  }

  /**
   * New client credentials (a renewed certificate): reconnect every peer with
   * them. Inbound streams are unaffected (the server's credentials are the
   * owner's business).
   */
  updateCredentials(c: TransportCredentials): void {
    this.opts.credentials = { ...this.opts.credentials, ...c };
    for (const [id, peer] of [...this.peers]) {
      this.closePeer(peer);
      this.peers.delete(id);
      this.addPeer(id, peer.addr);
    }
  }

  /** Idempotent; a changed address replaces the connection. */
  addPeer(id: NodeId, addr: string): void {
    if (this.stopped || id === this.id) return;
    const old = this.peers.get(id);
    if (old) {
      if (old.addr === addr) return;
      this.closePeer(old);
    }
    const peer: Peer = {
      id, addr, client: this.newClient(id, addr), stream: null, streamOpenedAt: 0, blocked: false,
      queue: [], dropped: 0, backoffMs: INITIAL_BACKOFF_MS, retryTimer: null, snapshot: null,
    };
    this.peers.set(id, peer);
    // Connect eagerly: the first message does not pay for the handshake, and an unreachable
    // peer is reported before anyone needs it.
    this.openStream(peer);
  }

  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.peers.delete(id);
    this.closePeer(peer);
  }

  /** Non-blocking: queues per peer and flushes once per event-loop turn. */
  send(messages: Message[]): void {
    if (this.stopped) return;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const peer = this.peers.get(m.to);
      if (!peer) {
        this.log?.debug({ to: m.to, type: m.type }, 'message to unknown peer dropped');
        continue;
      }
      if (m.type === MessageType.Snap) {
        this.sendSnapshot(peer, m);
        continue;
      }
      if (peer.queue.length >= this.maxQueued) {
        // Drop the newest: what is queued is a contiguous prefix the peer can still use.
        peer.dropped++;
      } else {
        peer.queue.push(m);
      }
      this.dirty.add(peer);
    }
    if (this.dirty.size > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      // setImmediate rather than a microtask: it coalesces the sends of every I/O callback in
      // this loop iteration (a leader handling several responses at once) and cannot split a
      // batch at an await in the driver. Loopback round trips measured the same either way.
      setImmediate(this.flush);
    }
  }

  /**
   * Write what is queued now instead of at the end of this loop turn: a leader
   * calls this before its own fsync so followers write in parallel with it.
   */
  flushNow(): void {
    if (this.stopped || this.dirty.size === 0) return;
    this.flush();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const peer of this.peers.values()) this.closePeer(peer);
    this.peers.clear();
    this.dirty.clear();
    const server = this.server;
    this.server = null;
    // Inbound streams are long-lived and would hold a graceful shutdown open forever.
    server?.forceShutdown();
  }

  // ---- sending ----

  private readonly flush = (): void => {
    this.flushScheduled = false;
    // Detach first: callbacks run during the flush (onUnreachable) may send again.
    const peers = [...this.dirty];
    this.dirty.clear();
    for (const peer of peers) this.flushPeer(peer);
  };

  private flushPeer(peer: Peer): void {
    const stream = peer.stream;
    if (!stream) {
      // Between a failure and the next attempt: what is queued would be stale by then.
      peer.dropped += peer.queue.length;
      peer.queue.length = 0;
    } else if (!peer.blocked && peer.queue.length > 0) {
      const queue = peer.queue;
      peer.queue = [];
      let start = 0;
      let bytes = 0;
      for (let i = 0; i < queue.length; i++) {
        bytes += estimateSize(queue[i]!);
        if (bytes >= MAX_BATCH_BYTES || i === queue.length - 1) {
          const messages = start === 0 && i === queue.length - 1 ? queue : queue.slice(start, i + 1);
          const ok = stream.write({ from: this.id, to: peer.id, messages });
          start = i + 1;
          bytes = 0;
          if (!ok) {
            // Keep the rest for when grpc-js has drained its buffer.
            peer.queue = queue.slice(start);
            peer.blocked = true;
            stream.once('drain', () => {
              if (peer.stream !== stream) return;
              peer.blocked = false;
              this.markDirty(peer);
            });
            break;
          }
        }
      }
    }
    if (peer.dropped > 0) {
      this.log?.debug({ peer: peer.id, dropped: peer.dropped }, 'messages dropped');
      peer.dropped = 0;
      this.reportUnreachable(peer.id);
    }
  }

  private markDirty(peer: Peer): void {
    if (this.stopped || this.peers.get(peer.id) !== peer) return;
    this.dirty.add(peer);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private openStream(peer: Peer): void {
    peer.blocked = false;
    peer.streamOpenedAt = Date.now();
    const stream = peer.client.makeClientStreamRequest<OutgoingBatch, Record<string, never>>(
      STREAM_PATH, serializeBatch, deserializeStreamAck, (err) => this.streamClosed(peer, stream, err),
    );
    peer.stream = stream;
    if (peer.queue.length > 0) this.markDirty(peer);
  }

  /** Any end of a stream counts as a failure: the peer never ends it while it is healthy. */
  private streamClosed(peer: Peer, stream: grpc.ClientWritableStream<OutgoingBatch>, err: grpc.ServiceError | null): void {
    if (peer.stream !== stream || this.stopped || this.peers.get(peer.id) !== peer) return;
    peer.stream = null;
    peer.blocked = false;
    // A stream that lived long was a working connection: start the backoff over.
    if (Date.now() - peer.streamOpenedAt > MAX_BACKOFF_MS) peer.backoffMs = INITIAL_BACKOFF_MS;
    // Equal jitter: spread reconnects of many nodes while keeping at least half the backoff.
    const delay = peer.backoffMs / 2 + Math.random() * (peer.backoffMs / 2);
    peer.backoffMs = Math.min(peer.backoffMs * 2, MAX_BACKOFF_MS);
    this.log?.debug({ peer: peer.id, addr: peer.addr, code: err?.code, err: err?.details, retryMs: Math.round(delay) }, 'raft stream closed');
    peer.retryTimer = setTimeout(() => {
      peer.retryTimer = null;
      if (!this.stopped && this.peers.get(peer.id) === peer) this.openStream(peer);
    }, delay);
    this.reportUnreachable(peer.id);
  }

  private closePeer(peer: Peer): void {
    if (peer.retryTimer) clearTimeout(peer.retryTimer);
    peer.retryTimer = null;
    const stream = peer.stream;
    peer.stream = null;
    stream?.cancel();
    peer.queue.length = 0;
    this.dirty.delete(peer);
    if (peer.snapshot) {
      peer.snapshot.call.cancel();
      peer.snapshot.client.close();
    }
    peer.client.close();
  }

  private sendSnapshot(peer: Peer, m: Message): void {
    const snap = m.snapshot;
    if (!snap) {
      this.log?.warn({ peer: peer.id }, 'Snap message without a snapshot');
      this.reportSnapshot(peer, true);
      return;
    }
    if (peer.snapshot) {
      // The core sends one snapshot at a time per follower and waits for its status.
      this.log?.debug({ peer: peer.id, index: snap.metadata.index }, 'snapshot already in flight; ignored');
      return;
    }
    // A client of its own, hence a connection of its own: megabytes of chunks must not queue
    // ahead of heartbeats on the message stream's TCP connection.
    const client = this.newClient(peer.id, peer.addr);
    const data = snap.data;
    const total = data.byteLength;
    const started = Date.now();
    let settled = false;
    // Keepalive cannot tell a live receiver that stopped reading (flow control holds the
    // sender forever) from a slow one; give up when no chunk has left for a long while, or
    // this peer could never be sent another snapshot.
    let progressAt = started;
    let offset = 0;
    const watchdog = setInterval(() => {
      if (Date.now() - progressAt > SNAPSHOT_STALL_MS) {
        this.log?.warn({ peer: peer.id, sent: offset, total }, 'snapshot send stalled; cancelling');
        call.cancel();
      }
    }, SNAPSHOT_STALL_MS / 4);
    watchdog.unref();
    const call = client.makeClientStreamRequest<SnapshotChunk, number>(
      INSTALL_SNAPSHOT_PATH, serializeChunk, deserializeSnapshotAck,
      (err, received) => {
        if (settled) return;
        settled = true;
        clearInterval(watchdog);
        client.close();
        if (peer.snapshot?.call === call) peer.snapshot = null;
        const failed = !!err || received !== total;
        if (failed) this.log?.warn({ peer: peer.id, code: err?.code, err: err?.details, received, total }, 'snapshot send failed');
        else this.log?.info({ peer: peer.id, index: snap.metadata.index, bytes: total, ms: Date.now() - started }, 'snapshot sent');
        this.reportSnapshot(peer, failed);
      },
    );
    peer.snapshot = { client, call };
    // The header is m itself: the codec puts only the snapshot's metadata on the wire.
    const header = m;
    const onWritten = (): void => { progressAt = Date.now(); };
    const pump = (): void => {
      for (;;) {
        const end = Math.min(offset + this.chunkBytes, total);
        // subarray: chunks are views, copied once by the encoder.
        const chunk: SnapshotChunk = offset === 0
          ? { header, totalSize: total, offset, data: data.subarray(offset, end) }
          : { totalSize: total, offset, data: data.subarray(offset, end) };
        const ok = call.write(chunk, onWritten);
        offset = end;
        if (offset >= total) {
          call.end();
          return;
        }
        if (!ok) {
          call.once('drain', pump);
          return;
        }
      }
    };
    pump();
  }

  private reportSnapshot(peer: Peer, failed: boolean): void {
    if (this.stopped) return;
    try {
      this.opts.onSnapshotStatus?.(peer.id, failed);
    } catch (e) {
      this.log?.error({ err: e }, 'onSnapshotStatus threw');
    }
  }

  private reportUnreachable(id: NodeId): void {
    if (this.stopped) return;
    try {
      this.opts.onUnreachable?.(id);
    } catch (e) {
      this.log?.error({ err: e }, 'onUnreachable threw');
    }
  }

  private newClient(id: NodeId, addr: string): grpc.Client {
    const c = this.opts.credentials;
    if (!c) return new grpc.Client(addr, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    const { serverName, verifyPeer } = c;
    const creds = grpc.credentials.createSsl(c.ca, c.key, c.cert, {
      // The chain is verified by TLS itself (rejectUnauthorized stays on); this replaces only
      // the hostname match, which cannot work for certificates that name node IDs.
      checkServerIdentity: (host, cert) => {
        if (serverName !== undefined) {
          const err = checkServerIdentity(host, cert);
          if (err) return err;
        }
        return verifyPeer?.(id, cert);
      },
    });
    return new grpc.Client(addr, creds, {
      ...CHANNEL_OPTIONS,
      // Also the SNI name: grpc-js would otherwise send the peer's IP address there.
      'grpc.ssl_target_name_override': serverName ?? DEFAULT_SNI,
    });
  }

  // ---- receiving ----

  private deliver(m: Message): void {
    // The transport is the trust boundary: messages only the local driver may step never come
    // from a peer.
    if (isLocalMessage(m.type)) {
      this.log?.warn({ from: m.from, type: m.type }, 'local message type from a peer dropped');
      return;
    }
    try {
      this.opts.onMessage(m);
    } catch (e) {
      this.log?.error({ err: e, from: m.from, type: m.type }, 'onMessage threw');
    }
  }

  /** Refusal reason for a stream claiming to come from `from` and be meant for `to`, if any. */
  private refuse(call: Pick<grpc.ServerReadableStream<unknown, unknown>, 'getAuthContext'>, from: NodeId, to: NodeId): grpc.ServiceError | null {
    if (to !== this.id) {
      return serviceError(grpc.status.FAILED_PRECONDITION, `this is node ${this.id}, not ${to}`);
    }
    const verify = this.opts.credentials?.verifyPeer;
    if (verify) {
      const cert = call.getAuthContext().sslPeerCertificate;
      const err = cert ? verify(from, cert) : new Error('no client certificate');
      if (err) return serviceError(grpc.status.PERMISSION_DENIED, `node ${from}: ${err.message}`);
    }
    return null;
  }

  private handlers(): RaftTransportHandlers {
    return {
      Stream: (call, callback) => {
        let checked = false;
        let done = false;
        call.on('data', (batch: DecodedBatch) => {
          if (done) return;
          if (!checked) {
            const err = this.refuse(call, batch.from, batch.to);
            if (err) {
              done = true;
              this.log?.warn({ from: batch.from, err: err.details }, 'raft stream refused');
              callback(err);
              return;
            }
            checked = true;
          }
          const ms = batch.messages;
          for (let i = 0; i < ms.length; i++) this.deliver(ms[i]!);
        });
        call.on('end', () => {
          if (done) return;
          done = true;
          callback(null, {});
        });
        // The client went away (cancel, connection loss): nothing to answer.
        call.on('error', () => { done = true; });
      },

      InstallSnapshot: (call, callback) => {
        let header: Message | undefined;
        let buf: Buffer | undefined;
        let total = 0;
        let received = 0;
        let done = false;
        const fail = (code: grpc.status, details: string): void => {
          done = true;
          buf = undefined;
          this.log?.warn({ from: header?.from, err: details }, 'snapshot refused');
          callback(serviceError(code, details));
        };
        call.on('data', (c: SnapshotChunk) => {
          if (done) return;
          if (!header) {
            const h = c.header;
            if (!h || h.type !== MessageType.Snap || !h.snapshot) {
              fail(grpc.status.INVALID_ARGUMENT, 'first chunk must carry a Snap header');
              return;
            }
            const err = this.refuse(call, h.from, h.to);
            if (err) {
              fail(err.code, err.details);
              return;
            }
            if (c.totalSize > bufferConstants.MAX_LENGTH) {
              fail(grpc.status.RESOURCE_EXHAUSTED, `snapshot of ${c.totalSize} bytes is too large`);
              return;
            }
            header = h;
            total = c.totalSize;
            // One allocation up front; chunks are copied straight into place.
            buf = Buffer.allocUnsafe(total);
          }
          if (c.offset !== received || received + c.data.byteLength > total) {
            fail(grpc.status.INVALID_ARGUMENT, `chunk at ${c.offset}+${c.data.byteLength}, expected offset ${received} of ${total}`);
            return;
          }
          buf!.set(c.data, received);
          received += c.data.byteLength;
        });
        call.on('end', () => {
          if (done) return;
          if (!header || received !== total) {
            fail(grpc.status.DATA_LOSS, `snapshot incomplete: ${received} of ${total} bytes`);
            return;
          }
          done = true;
          header.snapshot = { metadata: header.snapshot!.metadata, data: buf! };
          this.log?.info({ from: header.from, index: header.snapshot.metadata.index, bytes: total }, 'snapshot received');
          this.deliver(header);
          callback(null, received);
        });
        call.on('error', () => {
          done = true;
          buf = undefined;
        });
      },
    };
  }
}

function serviceError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}
