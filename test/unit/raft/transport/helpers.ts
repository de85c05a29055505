import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { GrpcTransport, type TransportOptions } from '../../../../manager/raft/transport/index.js';
import { emptyMessage, MessageType, type Message, type NodeId } from '../../../../manager/raft/core/types.js';
import { waitUntil } from '../../../support/wait.js';

/** Polls `cond` every 5 ms until it holds; fails with `what` after the deadline. */
export const waitFor = (what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> => waitUntil(what, cond, timeoutMs, 5);

export interface Node {
  id: NodeId;
  t: GrpcTransport;
  addr: string;
  got: Message[];
  unreachable: NodeId[];
  snapStatus: Array<[NodeId, boolean]>;
}

export async function startNode(id: NodeId, extra: Partial<TransportOptions> = {}, listen = '127.0.0.1:0'): Promise<Node> {
  const n: Node = { id, t: undefined as unknown as GrpcTransport, addr: '', got: [], unreachable: [], snapStatus: [] };
  n.t = new GrpcTransport({
    id,
    listen,
    onMessage: (m) => n.got.push(m),
    onUnreachable: (p) => n.unreachable.push(p),
    onSnapshotStatus: (p, failed) => n.snapStatus.push([p, failed]),
    ...extra,
  });
  n.addr = await n.t.start();
  return n;
}

export function heartbeat(from: NodeId, to: NodeId, commit: number): Message {
  return { ...emptyMessage(MessageType.Heartbeat, to, from), term: 1, commit };
}

// ---- throwaway PKI: RSA keys from node's crypto (fast), certificates from node-forge ----

export interface Pem {
  cert: Buffer;
  key: Buffer;
}

function newKeys(): { pub: forge.pki.PublicKey; priv: forge.pki.rsa.PrivateKey; keyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    pub: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
    priv: forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey,
    keyPem,
  };
}

let serial = 1;
function baseCert(pub: forge.pki.PublicKey, cn: string): forge.pki.Certificate {
  const c = forge.pki.createCertificate();
  c.publicKey = pub;
  c.serialNumber = (serial++).toString(16).padStart(2, '0');
  c.validity.notBefore = new Date(Date.now() - 60_000);
  c.validity.notAfter = new Date(Date.now() + 3_600_000);
  c.setSubject([{ name: 'commonName', value: cn }]);
  return c;
}

export class TestCA {
  readonly cert: Buffer;
  private readonly c: forge.pki.Certificate;
  private readonly priv: forge.pki.rsa.PrivateKey;

  constructor(name: string) {
    const k = newKeys();
    this.c = baseCert(k.pub, name);
    this.c.setIssuer(this.c.subject.attributes);
    this.c.setExtensions([
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true },
    ]);
    this.c.sign(k.priv, forge.md.sha256.create());
    this.priv = k.priv;
    this.cert = Buffer.from(forge.pki.certificateToPem(this.c));
  }

  private readonly issued = new Map<string, Pem>();

  /**
   * A node certificate naming the node ID (not a hostname), usable as client and server.
   * Cached per node: node-forge signs in pure JavaScript (~0.5 s per certificate here).
   */
  issue(nodeId: NodeId, cn = String(nodeId)): Pem {
    let pem = this.issued.get(cn);
    if (!pem) {
      pem = this.sign(cn);
      this.issued.set(cn, pem);
    }
    return pem;
  }

  private sign(cn: string): Pem {
    const k = newKeys();
    const c = baseCert(k.pub, cn);
    c.setIssuer(this.c.subject.attributes);
    c.setExtensions([
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    ]);
    c.sign(this.priv, forge.md.sha256.create());
    return { cert: Buffer.from(forge.pki.certificateToPem(c)), key: Buffer.from(k.keyPem) };
  }
}
