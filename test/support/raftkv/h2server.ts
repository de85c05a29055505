// A minimal unary gRPC server on node:http2 for raftkv's client API. grpc-js's
// server costs tens of microseconds of CPU per call (interceptors, metadata
// objects); on a 2-core machine shared by three members and a load generator
// that CPU is what the benchmark would measure instead of raft. Wire format:
// gRPC over HTTP/2, so grpc-js clients (the tests) talk to it unchanged.
import * as http2 from 'node:http2';

export class RpcError extends Error {
  constructor(readonly code: number, message: string, readonly metadata: Record<string, string> = {}) {
    super(message);
  }
}

export type UnaryHandler = (body: Buffer) => Promise<Buffer> | Buffer;

export class H2GrpcServer {
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(private readonly handlers: Record<string, UnaryHandler>) {
    this.server = http2.createServer({ settings: { maxConcurrentStreams: 4096 } });
    this.server.on('session', (s) => {
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
      s.on('error', () => undefined);
    });
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
  }

  listen(addr: string): Promise<void> {
    const i = addr.lastIndexOf(':');
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(Number(addr.slice(i + 1)), addr.slice(0, i), () => resolve());
    });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const path = String(headers[':path']);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => undefined);
    stream.on('end', () => {
      const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const handler = this.handlers[path];
      if (!handler) return this.fail(stream, 12, `unknown method ${path}`);
      if (data.length < 5 || data[0] !== 0) return this.fail(stream, 13, 'malformed or compressed request');
      const body = data.subarray(5, 5 + data.readUInt32BE(1));
      let result: Promise<Buffer> | Buffer;
      try {
        result = handler(body);
      } catch (e) {
        return this.error(stream, e);
      }
      Promise.resolve(result).then((res) => this.reply(stream, res), (e) => this.error(stream, e));
    });
  }

  private reply(stream: http2.ServerHttp2Stream, res: Buffer): void {
    if (stream.destroyed) return;
    const frame = Buffer.allocUnsafe(5 + res.length);
    frame[0] = 0;
    frame.writeUInt32BE(res.length, 1);
    res.copy(frame, 5);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(frame);
  }

  private error(stream: http2.ServerHttp2Stream, e: unknown): void {
    if (e instanceof RpcError) this.fail(stream, e.code, e.message, e.metadata);
    else this.fail(stream, 13, e instanceof Error ? e.message : String(e));
  }

  /** A trailers-only response: the status in the headers. */
  private fail(stream: http2.ServerHttp2Stream, code: number, message: string, md: Record<string, string> = {}): void {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message), ...md }, { endStream: true });
  }

  close(): void {
    for (const s of this.sessions) s.destroy();
    this.server.close();
  }
}
