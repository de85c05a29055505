// Options of the cluster port's gRPC server.
//
// Keepalive pings from the server: a node that vanishes without closing its
// connection (power loss, a cut link) leaves its heartbeat and session streams
// open on the leader, and nothing is ever written to a heartbeat stream from
// that side, so without a ping they would stay until the kernel gave up on the
// socket, which it never does for an idle one. A ping every 10 s answered
// within 5 s costs a few bytes per connection.
import type * as grpc from '@grpc/grpc-js';

export const SERVER_KEEPALIVE_MS = 10_000;
export const SERVER_KEEPALIVE_TIMEOUT_MS = 5_000;

export function clusterServerOptions(keepaliveMs = SERVER_KEEPALIVE_MS, keepaliveTimeoutMs = SERVER_KEEPALIVE_TIMEOUT_MS): grpc.ServerOptions {
  return {
    'grpc.keepalive_time_ms': keepaliveMs,
    'grpc.keepalive_timeout_ms': keepaliveTimeoutMs,
    // Clients (raft transport) ping too, also between calls: allow it.
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 500,
  } as grpc.ServerOptions;
}
