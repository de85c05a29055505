// Who is calling: the identity in the caller's client certificate, checked
// against the cluster's CA and its list of removed nodes. The role in the
// certificate decides what the caller may do.
import * as grpc from '@grpc/grpc-js';
import { TLSSocket } from 'node:tls';
import { CaError, type CertIdentity, type NodeRole, type RootCA } from '../ca/index.js';
import { RELAYED_NODE_META, RELAYED_PEER_META, RELAYED_ROLE_META } from '../../proto/client.js';

export class CallError extends Error {
  constructor(readonly code: grpc.status, message: string, readonly metadata?: grpc.Metadata) {
    super(message);
  }
}

/**
 * The status a handler's error goes back as, on every kind of call: a
 * CallError's own; a gRPC error's own (a call this one made to another node
 * failed: relayed as it came); anything else INTERNAL with its message. Other
 * errors with a `code` (raft's, the store's, Node's: strings) are not statuses.
 */
export function statusOf(e: unknown): Partial<grpc.StatusObject> {
  if (e instanceof CallError) return { code: e.code, details: e.message, metadata: e.metadata };
  const s = e as Partial<grpc.ServiceError> | null | undefined;
  if (typeof s?.code === 'number' && grpc.status[s.code] !== undefined) {
    return { code: s.code, details: typeof s.details === 'string' ? s.details : (s.message ?? ''), metadata: s.metadata };
  }
  return { code: grpc.status.INTERNAL, details: e instanceof Error ? e.message : String(e) };
}

type AuthCall = { getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null };

/** Each connection's client certificate (DER; undefined: none), read once per HTTP/2 session. */
const certOfSession = new WeakMap<object, Buffer | undefined>();

/**
 * The client certificate of a call, read once per connection. getAuthContext()
 * calls TLSSocket.getPeerCertificate() on every call, which builds a large
 * object from the certificate: ~0.3 ms per call on this machine type, most of
 * the leader's cost of an agent heartbeat. A connection cannot change its
 * peer (Node's HTTP/2 server disables TLS renegotiation, and TLS 1.3 has none),
 * so the session (grpc-js: call -> BaseServerInterceptingCall -> HTTP/2
 * stream -> session) keys the cache; where grpc-js does not look like that,
 * getAuthContext() answers as before.
 */
export function peerCertificate(call: AuthCall): Buffer | undefined {
  const session = (call as { call?: { stream?: { session?: { socket?: unknown } } } }).call?.stream?.session;
  const socket = session?.socket;
  if (!session || !(socket instanceof TLSSocket)) return call.getAuthContext()?.sslPeerCertificate?.raw;
  // As getAuthContext(): a certificate counts only once the TLS layer verified it.
  if (!socket.authorized) return undefined;
  if (certOfSession.has(session)) return certOfSession.get(session);
  const raw = socket.getPeerCertificate().raw;
  const der = raw && raw.length > 0 ? raw : undefined;
  certOfSession.set(session, der);
  return der;
}

/** The verified identity of a TLS caller, or undefined when it sent no certificate. */
export function peerIdentity(call: AuthCall, ca: RootCA, removed: ReadonlySet<string>): CertIdentity | undefined {
  const raw = peerCertificate(call);
  if (!raw || raw.length === 0) return undefined;
  let id: CertIdentity;
  try {
    id = ca.verify(raw);
  } catch (e) {
    const msg = e instanceof CaError ? e.message : String(e);
    throw new CallError(grpc.status.UNAUTHENTICATED, `client certificate refused: ${msg}`);
  }
  if (removed.has(id.nodeId)) {
    throw new CallError(grpc.status.PERMISSION_DENIED, `node ${id.nodeId} was removed from the cluster; its certificate is no longer accepted`);
  }
  return id;
}

/** Require a certificate of one of `roles`. */
export function requireRole(id: CertIdentity | undefined, roles: NodeRole[], what: string): CertIdentity {
  // The TLS layer hands over only certificates that verified against the cluster CA: an expired
  // or foreign one arrives as no certificate at all, so say so.
  if (!id) throw new CallError(grpc.status.UNAUTHENTICATED, `${what} needs a cluster client certificate (none was presented, or it did not verify: expired, or not issued by this cluster's CA)`);
  if (!roles.includes(id.role)) {
    throw new CallError(grpc.status.PERMISSION_DENIED, `${what} is not allowed for a ${id.role} certificate (node ${id.nodeId}); it needs: ${roles.join(' or ')}`);
  }
  return id;
}

/**
 * The node a manager relays a dispatcher call for (the x-shoal-relayed-*
 * metadata; see proto/client.ts), or undefined for a call of the caller's own.
 * Only a manager's certificate may vouch for another node; the node must not
 * have been removed. `via` is the caller's own, verified identity.
 */
export function relayedIdentity(md: grpc.Metadata, via: CertIdentity, removed: ReadonlySet<string>): { id: CertIdentity; peer: string } | undefined {
  const nodeId = md.get(RELAYED_NODE_META)[0];
  if (typeof nodeId !== 'string' || !nodeId) return undefined;
  if (via.role !== 'manager') {
    throw new CallError(grpc.status.PERMISSION_DENIED, `only a manager may relay another node's calls (node ${via.nodeId} has a ${via.role} certificate)`);
  }
  const role = md.get(RELAYED_ROLE_META)[0];
  if (role !== 'manager' && role !== 'worker') throw new CallError(grpc.status.INVALID_ARGUMENT, `relayed call for node ${nodeId} without a valid role (${String(role)})`);
  if (removed.has(nodeId)) {
    throw new CallError(grpc.status.PERMISSION_DENIED, `node ${nodeId} was removed from the cluster; its certificate is no longer accepted`);
  }
  const peer = md.get(RELAYED_PEER_META)[0];
  return { id: { ...via, nodeId, role }, peer: typeof peer === 'string' ? peer : '' };
}
