// Who is calling: the identity in the caller's client certificate, checked
// against the cluster's CA and its list of removed nodes. The role in the
// certificate decides what the caller may do.
import * as grpc from '@grpc/grpc-js';
import { CaError, type CertIdentity, type NodeRole, type RootCA } from '../ca/index.js';

export class CallError extends Error {
  constructor(readonly code: grpc.status, message: string, readonly metadata?: grpc.Metadata) {
    super(message);
  }
}

type AuthCall = { getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null };

/** The verified identity of a TLS caller, or undefined when it sent no certificate. */
export function peerIdentity(call: AuthCall, ca: RootCA, removed: ReadonlySet<string>): CertIdentity | undefined {
  const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
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
