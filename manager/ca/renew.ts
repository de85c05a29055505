// When a node should ask for a new certificate. Renewing at a random point past the middle of
// the validity (Swarm randomises too) keeps a cluster whose nodes joined together from
// sending all its CSRs to the CA in the same instant, while leaving half the lifetime to retry.
import type { CertIdentity } from './rootca.js';

export interface RenewPolicy {
  /** Renew once this fraction of the validity or less remains. Default 0.5. */
  remaining?: number;
  /** Plus a random delay of up to this fraction of the validity. Default 0.1. */
  jitter?: number;
}

/**
 * The instant to renew a certificate valid from `issuedAt` (when the node received it) to
 * `identity.notAfter`: between 50% and 60% of the way through by default. May be in the past
 * (then renew now); a certificate with no time left gets `issuedAt`.
 */
export function renewAt(identity: CertIdentity, issuedAt: Date, rand: () => number = Math.random, policy: RenewPolicy = {}): Date {
  const remaining = policy.remaining ?? 0.5;
  const jitter = policy.jitter ?? 0.1;
  if (!(remaining > 0 && remaining <= 1) || !(jitter >= 0 && jitter <= remaining)) {
    throw new RangeError(`renew policy needs 0 < remaining <= 1 and 0 <= jitter <= remaining, got ${remaining}, ${jitter}`);
  }
  const start = issuedAt.getTime();
  const span = identity.notAfter.getTime() - start;
  if (!(span > 0)) return new Date(start);
  const r = Math.min(1, Math.max(0, rand()));
  const elapsed = 1 - remaining + jitter * r;
  return new Date(start + Math.floor(span * elapsed));
}
