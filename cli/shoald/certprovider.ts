// A grpc-js certificate provider fed from memory: renewing the node's
// certificate swaps what the TLS server presents without restarting it.
import type { experimental } from '@grpc/grpc-js';

type CaListener = experimental.CaCertificateUpdateListener;
type IdListener = experimental.IdentityCertificateUpdateListener;

export class MemoryCertProvider implements experimental.CertificateProvider {
  private ca: Buffer;
  private cert: Buffer;
  private key: Buffer;
  private readonly caListeners = new Set<CaListener>();
  private readonly idListeners = new Set<IdListener>();

  constructor(ca: string, cert: string, key: string) {
    this.ca = Buffer.from(ca);
    this.cert = Buffer.from(cert);
    this.key = Buffer.from(key);
  }

  update(ca: string, cert: string, key: string): void {
    this.ca = Buffer.from(ca);
    this.cert = Buffer.from(cert);
    this.key = Buffer.from(key);
    for (const l of this.caListeners) l({ caCertificate: this.ca });
    for (const l of this.idListeners) l({ certificate: this.cert, privateKey: this.key });
  }

  // The first update is delivered on a later tick: grpc-js registers the
  // server's watcher only after adding these listeners, and an update that
  // arrives before it would be lost (the server then drops every connection).
  addCaCertificateListener(l: CaListener): void {
    this.caListeners.add(l);
    queueMicrotask(() => {
      if (this.caListeners.has(l)) l({ caCertificate: this.ca });
    });
  }

  removeCaCertificateListener(l: CaListener): void {
    this.caListeners.delete(l);
  }

  addIdentityCertificateListener(l: IdListener): void {
    this.idListeners.add(l);
    queueMicrotask(() => {
      if (this.idListeners.has(l)) l({ certificate: this.cert, privateKey: this.key });
    });
  }

  removeIdentityCertificateListener(l: IdListener): void {
    this.idListeners.delete(l);
  }
}
