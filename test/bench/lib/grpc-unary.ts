// Unary gRPC calls with pre-encoded protobuf bodies, for load generators.
//
// Two interchangeable transports, one HTTP/2 connection each:
//  - 'h2': gRPC's wire format spoken directly over node:http2 (a 5-byte
//    length prefix per message, status in the trailers). Measured here at
//    ~0.2 ms of client CPU per call, against ~0.5 ms for grpc-js: on a
//    2-core machine that also hosts the servers, the client's CPU is taken
//    from the servers, so the lighter client is the default.
//  - 'grpc-js': @grpc/grpc-js's Client.makeUnaryRequest with pass-through
//    (de)serializers, for comparison.
// Both resolve with the reply message bytes (undecoded) on grpc-status 0 and
// reject with a GrpcCallError otherwise.

import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';

export type TransportKind = 'h2' | 'grpc-js';
export const TRANSPORTS: readonly TransportKind[] = ['h2', 'grpc-js'];

export interface UnaryTransport {
  /** path: "/package.Service/Method"; body: the encoded request message. */
  call(path: string, body: Buffer): Promise<Buffer>;
  close(): void;
}

export interface TransportOptions {
  /** Per-call deadline in ms, enforced by the server (grpc-timeout) and the client. */
  timeoutMs?: number;
}

export class GrpcCallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`gRPC status ${code}${details ? ': ' + details : ''}`);
  }
}

export function makeUnaryTransport(kind: TransportKind, endpoint: string, opts: TransportOptions = {}): UnaryTransport {
  switch (kind) {
    case 'h2':
      return new H2UnaryTransport(endpoint, opts);
    case 'grpc-js':
      return new GrpcJsUnaryTransport(endpoint, opts);
    default:
      throw new Error(`unknown transport ${String(kind)}`);
  }
}

// ---- node:http2 --------------------------------------------------------------------

const { NGHTTP2_CANCEL } = http2.constants;

/** grpc-timeout header value: at most 8 digits and a unit. */
function grpcTimeout(ms: number): string {
  return ms < 1e8 ? `${Math.max(1, Math.ceil(ms))}m` : `${Math.ceil(ms / 1000)}S`;
}

export class H2UnaryTransport implements UnaryTransport {
  private readonly session: http2.ClientHttp2Session;
  private readonly headers: http2.OutgoingHttpHeaders;
  private readonly timeoutMs: number;
  private failure: Error | undefined;

  constructor(endpoint: string, opts: TransportOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.session = http2.connect(`http://${endpoint}`, { settings: { enablePush: false } });
    this.session.on('error', (err) => (this.failure = err));
    this.session.on('close', () => (this.failure ??= new Error(`connection to ${endpoint} closed`)));
    this.headers = {
      ':method': 'POST',
      ':authority': endpoint,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': grpcTimeout(this.timeoutMs),
    };
  }

  call(path: string, body: Buffer): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Buffer>((resolve, reject) => {
      const stream = this.session.request({ ...this.headers, ':path': path });
      const frame = Buffer.allocUnsafe(5 + body.length);
      frame[0] = 0; // not compressed
      frame.writeUInt32BE(body.length, 1);
      body.copy(frame, 5);
      stream.end(frame);

      let status: string | undefined;
      let details = '';
      let first: Buffer | undefined;
      let rest: Buffer[] | undefined;
      const timer = setTimeout(() => stream.close(NGHTTP2_CANCEL), this.timeoutMs + 1000);

      stream.on('response', (h) => {
        // A "trailers-only" reply (errors) carries grpc-status in the headers.
        if (h['grpc-status'] !== undefined) {
          status = String(h['grpc-status']);
          details = String(h['grpc-message'] ?? '');
        } else if (h[':status'] !== 200) {
          status = '2'; // UNKNOWN
          details = `HTTP ${String(h[':status'])}`;
        }
      });
      stream.on('data', (chunk: Buffer) => {
        if (first === undefined) first = chunk;
        else (rest ??= []).push(chunk);
      });
      stream.on('trailers', (t) => {
        status = String(t['grpc-status'] ?? status ?? '2');
        details = String(t['grpc-message'] ?? details);
      });
      let streamError: Error | undefined;
      stream.on('error', (err) => (streamError = err)); // reported on 'close'
      stream.on('close', () => {
        clearTimeout(timer);
        if (status === '0') {
          const data = rest ? Buffer.concat([first!, ...rest]) : first;
          if (data === undefined || data.length < 5) return resolve(Buffer.alloc(0));
          if (data[0] !== 0) return reject(new Error('compressed gRPC reply not supported'));
          return resolve(data.subarray(5, 5 + data.readUInt32BE(1)));
        }
        if (status === undefined) {
          const why = streamError?.message ?? this.failure?.message ?? `stream reset, code ${stream.rstCode}`;
          return reject(new GrpcCallError(14, why)); // UNAVAILABLE
        }
        let msg = details;
        try {
          msg = decodeURIComponent(details);
        } catch {
          /* keep raw */
        }
        reject(new GrpcCallError(Number(status), msg));
      });
    });
  }

  close(): void {
    this.session.close();
  }
}

// ---- @grpc/grpc-js -------------------------------------------------------------------

const passThrough = (b: Buffer): Buffer => b;

export class GrpcJsUnaryTransport implements UnaryTransport {
  private readonly client: grpc.Client;
  private readonly timeoutMs: number;

  constructor(endpoint: string, opts: TransportOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    // One channel (one HTTP/2 connection); library retries off: an error is an error.
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0 });
  }

  call(path: string, body: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        path,
        passThrough,
        passThrough,
        body,
        { deadline: Date.now() + this.timeoutMs },
        (err, reply) => (err ? reject(new GrpcCallError(err.code, err.details)) : resolve(reply!)),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
