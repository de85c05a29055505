// The cluster's root CA: creates itself, signs node CSRs into certificates that name the node
// and its role, and checks certificates presented to it. Certificates are built and parsed with
// node-forge; RSA key generation, signing and signature checks run in node:crypto.
import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { CaError } from './errors.js';
import {
  BACKDATE_MS,
  ceilSecond,
  certFromDer,
  derToPem,
  displaySerial,
  floorSecond,
  randomSerialHex,
  sha256Hex,
  signCert,
  signCsr,
  singlePemDer,
  subjectValues,
  utf8Attr,
} from './forgeutil.js';

export type NodeRole = 'manager' | 'worker';

/** The subject OU of each role, as in Swarm. Also added as a DNS SAN, so a client can pin "any manager". */
export const ROLE_OU: Readonly<Record<NodeRole, string>> = { manager: 'swarm-manager', worker: 'swarm-worker' };

/** TLS server name that matches every manager's certificate and no worker's. */
export const MANAGER_SERVER_NAME = ROLE_OU.manager;

export interface CertIdentity {
  nodeId: string;
  role: NodeRole;
  clusterId: string;
  notBefore: Date;
  notAfter: Date;
  /** Lower-case hex, no leading zero bytes. */
  serial: string;
}

const DEFAULT_CA_CN = 'shoal-ca';
const DEFAULT_CA_DAYS = 20 * 365;
const DAY_MS = 24 * 60 * 60 * 1000;
const MIN_RSA_BITS = 2048;
// A bound on what a CSR may make the CA verify; nobody needs more for a node key.
const MAX_RSA_BITS = 8192;
/** Node certificates whose signature was checked, kept by digest; a cluster has one per node (and renewals). */
const VERIFIED_CACHE_MAX = 4096;
// One DNS label: the node ID is also a dNSName SAN that TLS clients match as a server name.
const NODE_ID_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
// Printable ASCII, at most 64 (X.520's bound on O), no leading or trailing space.
const CLUSTER_ID_RE = /^[\x21-\x7e](?:[\x20-\x7e]{0,62}[\x21-\x7e])?$/;

export class RootCA {
  readonly certPem: string;
  /** PKCS#8 PEM; absent on a verify-only CA. */
  readonly keyPem?: string;
  /** sha256 of the CA certificate's DER, lower-case hex: what join tokens pin. */
  readonly digest: string;
  /** The O of the CA's subject (set by create()); issue() and verify() hold node certificates to it. */
  readonly clusterId?: string;
  /** Certificates already verified, by sha256 of their DER (see verify). */
  private readonly verified = new Map<string, { who: string; id: CertIdentity }>();
  readonly notBefore: Date;
  readonly notAfter: Date;

  private readonly x509: X509Certificate;
  private readonly forgeCert: forge.pki.Certificate;
  private readonly key?: KeyObject;
  private readonly ski: string;

  private constructor(der: Buffer, forgeCert: forge.pki.Certificate, x509: X509Certificate, key?: KeyObject) {
    this.certPem = derToPem(der, 'CERTIFICATE');
    this.digest = sha256Hex(der);
    this.x509 = x509;
    this.forgeCert = forgeCert;
    if (key) {
      this.key = key;
      this.keyPem = key.export({ type: 'pkcs8', format: 'pem' }) as string;
    }
    const orgs = subjectValues(forgeCert, 'O');
    if (orgs.length === 1) this.clusterId = orgs[0];
    this.notBefore = forgeCert.validity.notBefore;
    this.notAfter = forgeCert.validity.notAfter;
    // Node certificates name their issuer's key by this identifier (authorityKeyIdentifier).
    const skiExt = forgeCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
    this.ski = skiExt?.subjectKeyIdentifier
      ? forge.util.hexToBytes(skiExt.subjectKeyIdentifier)
      : forgeCert.generateSubjectKeyIdentifier().getBytes();
  }

  /** True when this CA holds its key and can issue. */
  get canSign(): boolean {
    return this.key !== undefined;
  }

  static create(opts: { clusterId: string; commonName?: string; validityDays?: number; key?: KeyObject }): RootCA {
    checkClusterId(opts.clusterId);
    const cn = opts.commonName ?? DEFAULT_CA_CN;
    if (!CLUSTER_ID_RE.test(cn)) throw new CaError('BAD_IDENTITY', `CA common name ${JSON.stringify(cn)} must be 1-64 printable ASCII characters`);
    const days = opts.validityDays ?? DEFAULT_CA_DAYS;
    if (!(Number.isFinite(days) && days > 0)) throw new CaError('BAD_IDENTITY', `CA validityDays must be a positive number, got ${days}`);

    const privateKey = opts.key ?? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const now = Date.now();
    const cert = forge.pki.createCertificate();
    cert.publicKey = forgePublicKey(privateKey);
    cert.serialNumber = randomSerialHex();
    cert.validity.notBefore = floorSecond(now - BACKDATE_MS);
    cert.validity.notAfter = ceilSecond(now + days * DAY_MS);
    const subject = [utf8Attr('O', opts.clusterId), utf8Attr('CN', cn)];
    cert.setSubject(subject);
    cert.setIssuer(subject);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    const der = signCert(cert, privateKey);
    return new RootCA(der, cert, new X509Certificate(der), privateKey);
  }

  /** Load a CA; without `keyPem` it can verify but not issue (what nodes other than managers hold). */
  static fromPem(certPem: string, keyPem?: string): RootCA {
    const der = singlePemDer(certPem, 'CERTIFICATE', 'CA certificate', 'BAD_CA');
    let x509: X509Certificate;
    let cert: forge.pki.Certificate;
    try {
      x509 = new X509Certificate(der);
    } catch (e) {
      throw new CaError('BAD_CA', `CA certificate cannot be parsed: ${(e as Error).message}`);
    }
    try {
      cert = certFromDer(der);
    } catch (e) {
      throw new CaError('BAD_CA', `CA certificate cannot be read by node-forge (the CA key must be RSA): ${(e as Error).message}`);
    }
    if (!x509.ca) throw new CaError('BAD_CA', `"${oneLine(x509.subject)}" is not a CA certificate (basicConstraints CA is not set)`);
    const ku = cert.getExtension('keyUsage') as { keyCertSign?: boolean } | undefined;
    if (ku && !ku.keyCertSign) throw new CaError('BAD_CA', `CA certificate "${oneLine(x509.subject)}" may not sign certificates (keyUsage lacks keyCertSign)`);
    if (x509.checkIssued(x509) && !x509.verify(x509.publicKey)) {
      throw new CaError('BAD_CA', `CA certificate "${oneLine(x509.subject)}" is self-issued but its signature does not verify: it was altered`);
    }
    let key: KeyObject | undefined;
    if (keyPem !== undefined) {
      try {
        key = createPrivateKey(keyPem);
      } catch (e) {
        throw new CaError('BAD_CA', `CA private key cannot be parsed: ${(e as Error).message}`);
      }
      if (key.asymmetricKeyType !== 'rsa') throw new CaError('BAD_CA', `CA private key is ${key.asymmetricKeyType}, shoal's CA signs with RSA only`);
      if (!x509.checkPrivateKey(key)) throw new CaError('BAD_CA', `CA private key does not belong to the CA certificate "${oneLine(x509.subject)}"`);
    }
    return new RootCA(der, cert, x509, key);
  }

  /**
   * Sign a node's CSR. Only the CSR's public key is used: the subject is decided here
   * (CN=<nodeId>, OU=swarm-manager|swarm-worker, O=<clusterId>), whatever the CSR asked for.
   * The certificate never outlives the CA (notAfter is clamped to the CA's).
   */
  issue(
    csrPem: string,
    who: { nodeId: string; role: NodeRole; clusterId: string; validityMs: number },
  ): { certPem: string; identity: CertIdentity } {
    if (!this.key) throw new CaError('CA_NO_KEY', 'this CA was loaded without its private key (verify-only) and cannot issue certificates');
    checkNodeId(who.nodeId);
    checkClusterId(who.clusterId);
    if (who.role !== 'manager' && who.role !== 'worker') {
      throw new CaError('BAD_IDENTITY', `role must be "manager" or "worker", got ${JSON.stringify(who.role)}`);
    }
    if (this.clusterId !== undefined && who.clusterId !== this.clusterId) {
      throw new CaError('BAD_IDENTITY', `cluster ID "${who.clusterId}" is not this CA's cluster ("${this.clusterId}")`);
    }
    if (!(Number.isFinite(who.validityMs) && who.validityMs > 0)) {
      throw new CaError('BAD_IDENTITY', `validityMs must be a positive number, got ${who.validityMs}`);
    }
    const csr = parseCsr(csrPem);

    const now = Date.now();
    let notAfter = ceilSecond(now + who.validityMs);
    if (notAfter > this.notAfter) notAfter = this.notAfter;
    if (notAfter.getTime() <= now) {
      throw new CaError('CERT_EXPIRED', `the cluster CA certificate expired at ${this.notAfter.toISOString()}: it cannot issue certificates until the CA is rotated`);
    }
    const notBefore = floorSecond(Math.max(now - BACKDATE_MS, this.notBefore.getTime()));
    const ou = ROLE_OU[who.role];

    const cert = forge.pki.createCertificate();
    cert.publicKey = csr.publicKey!;
    cert.serialNumber = randomSerialHex();
    cert.validity.notBefore = notBefore;
    cert.validity.notAfter = notAfter;
    cert.setSubject([utf8Attr('O', who.clusterId), utf8Attr('OU', ou), utf8Attr('CN', who.nodeId)]);
    cert.setIssuer(this.forgeCert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      // type 2 = dNSName. The node ID lets a peer be pinned by ID, the role name lets it be pinned by role.
      { name: 'subjectAltName', altNames: [{ type: 2, value: who.nodeId }, { type: 2, value: ou }] },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.ski },
    ]);
    const der = signCert(cert, this.key);
    return {
      certPem: derToPem(der, 'CERTIFICATE'),
      identity: {
        nodeId: who.nodeId,
        role: who.role,
        clusterId: who.clusterId,
        notBefore,
        notAfter,
        serial: displaySerial(cert.serialNumber),
      },
    };
  }

  /**
   * Check that a node certificate (PEM, or DER as TLS hands it over) was signed by this CA and is
   * valid at `now`, and return whom it names. Trust is checked before validity, so a foreign
   * certificate is reported as untrusted even when it has also expired.
   */
  verify(cert: string | Buffer, now: Date = new Date()): CertIdentity {
    const der = typeof cert === 'string' ? singlePemDer(cert, 'CERTIFICATE', 'node certificate', 'CERT_INVALID') : cert;
    // Every RPC of a TLS caller presents the same certificate: its signature and contents are
    // checked once (they cannot change under the same bytes); validity is checked every time.
    const key = createHash('sha256').update(der).digest('base64');
    const known = this.verified.get(key);
    if (known) {
      this.checkValidity(known.who, known.id, now);
      return known.id;
    }
    const checked = this.verifyOnce(der);
    this.checkValidity(checked.who, checked.id, now);
    if (this.verified.size >= VERIFIED_CACHE_MAX) this.verified.clear();
    this.verified.set(key, checked);
    return checked.id;
  }

  /** Trust and contents of a node certificate: everything that does not depend on the time. */
  private verifyOnce(der: Buffer): { who: string; id: CertIdentity } {
    let x: X509Certificate;
    try {
      x = new X509Certificate(der);
    } catch (e) {
      throw new CaError('CERT_INVALID', `node certificate cannot be parsed: ${(e as Error).message}`);
    }
    const who = oneLine(x.subject);
    // checkIssued compares the issuer name and the key identifiers; verify checks the signature.
    if (!x.checkIssued(this.x509)) {
      throw new CaError(
        'CERT_UNTRUSTED',
        `certificate "${who}" was issued by "${oneLine(x.issuer)}", not by this cluster's CA "${oneLine(this.x509.subject)}" (sha256 ${this.digest})`,
      );
    }
    if (!x.verify(this.x509.publicKey)) {
      throw new CaError(
        'CERT_UNTRUSTED',
        `certificate "${who}" names this cluster's CA as issuer but its signature does not verify with the CA's key: it was altered after signing, or forged`,
      );
    }
    let fc: forge.pki.Certificate;
    try {
      fc = certFromDer(Buffer.from(x.raw));
    } catch (e) {
      throw new CaError('CERT_INVALID', `certificate "${who}" cannot be read: ${(e as Error).message}`);
    }
    if (x.ca) throw new CaError('CERT_INVALID', `certificate "${who}" is a CA certificate, not a node certificate`);
    const id = identityFromCert(fc);
    if (this.clusterId !== undefined && id.clusterId !== this.clusterId) {
      throw new CaError('CERT_INVALID', `certificate "${who}" is for cluster "${id.clusterId}", this CA's cluster is "${this.clusterId}"`);
    }
    return { who, id };
  }

  private checkValidity(who: string, id: CertIdentity, now: Date): void {
    const t = now.getTime();
    const { notBefore, notAfter } = id;
    if (t < notBefore.getTime()) {
      throw new CaError('CERT_NOT_YET_VALID', `certificate "${who}" is not valid before ${notBefore.toISOString()} (now ${now.toISOString()}): check the clocks`);
    }
    if (t > notAfter.getTime()) {
      throw new CaError('CERT_EXPIRED', `certificate "${who}" expired at ${notAfter.toISOString()} (now ${now.toISOString()})`);
    }
    if (t > this.notAfter.getTime()) {
      throw new CaError('CERT_EXPIRED', `the cluster CA certificate expired at ${this.notAfter.toISOString()} (now ${now.toISOString()})`);
    }
    if (t < this.notBefore.getTime()) {
      throw new CaError('CERT_NOT_YET_VALID', `the cluster CA certificate is not valid before ${this.notBefore.toISOString()} (now ${now.toISOString()}): check the clocks`);
    }
  }
}

/** The node side of joining: a fresh RSA-2048 key and a CSR for it (its subject is a placeholder the CA replaces). */
export function generateKeyAndCsr(key?: KeyObject): { keyPem: string; csrPem: string } {
  // A key made ahead of time (off the event loop, see KeyPool) saves ~200 ms on the join path.
  const privateKey = key ?? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forgePublicKey(privateKey);
  csr.setSubject([utf8Attr('CN', 'shoal-node')]);
  const csrPem = signCsr(csr, privateKey);
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, csrPem };
}

/** Whom a certificate names (PEM or DER). Parses only: it proves nothing; use RootCA.verify for trust. */
export function identityOf(cert: string | Buffer): CertIdentity {
  const der = typeof cert === 'string' ? singlePemDer(cert, 'CERTIFICATE', 'node certificate', 'CERT_INVALID') : cert;
  let fc: forge.pki.Certificate;
  try {
    fc = certFromDer(der);
  } catch (e) {
    throw new CaError('CERT_INVALID', `node certificate cannot be parsed: ${(e as Error).message}`);
  }
  return identityFromCert(fc);
}

function identityFromCert(fc: forge.pki.Certificate): CertIdentity {
  const one = (shortName: string, what: string): string => {
    const v = subjectValues(fc, shortName);
    if (v.length !== 1 || v[0] === '') {
      throw new CaError('CERT_INVALID', `certificate subject has ${v.length} ${shortName} attributes, expected exactly one ${what}: not a shoal node certificate`);
    }
    return v[0]!;
  };
  const nodeId = one('CN', 'node ID');
  const ou = one('OU', 'role');
  const clusterId = one('O', 'cluster ID');
  const role = (Object.keys(ROLE_OU) as NodeRole[]).find((r) => ROLE_OU[r] === ou);
  if (!role) throw new CaError('CERT_INVALID', `certificate OU "${ou}" is not a shoal role (swarm-manager or swarm-worker)`);
  return {
    nodeId,
    role,
    clusterId,
    notBefore: fc.validity.notBefore,
    notAfter: fc.validity.notAfter,
    serial: displaySerial(fc.serialNumber),
  };
}

function parseCsr(csrPem: string): forge.pki.CertificateSigningRequest {
  const der = singlePemDer(csrPem, 'CERTIFICATE REQUEST', 'CSR', 'BAD_CSR');
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromAsn1(forge.asn1.fromDer(der.toString('binary')));
  } catch (e) {
    throw new CaError('BAD_CSR', `CSR cannot be parsed (shoal accepts RSA keys only): ${(e as Error).message}`);
  }
  const bits = (csr.publicKey as forge.pki.rsa.PublicKey | null)?.n?.bitLength() ?? 0;
  if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
    throw new CaError('BAD_CSR', `CSR key is RSA-${bits}: keys must be ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
  }
  let ok: boolean;
  try {
    ok = csr.verify();
  } catch (e) {
    throw new CaError('BAD_CSR', `CSR signature cannot be checked: ${(e as Error).message}`);
  }
  if (!ok) throw new CaError('BAD_CSR', 'CSR signature does not verify: the request was altered, or not signed by the key it carries');
  return csr;
}

function checkNodeId(nodeId: string): void {
  if (typeof nodeId !== 'string' || !NODE_ID_RE.test(nodeId)) {
    throw new CaError('BAD_IDENTITY', `node ID ${JSON.stringify(nodeId)} must be 1-63 letters, digits or inner hyphens (it becomes a DNS name in the certificate)`);
  }
  // The role names are SANs too: a node named after one could pass as any member of that role.
  if (Object.values(ROLE_OU).includes(nodeId.toLowerCase())) {
    throw new CaError('BAD_IDENTITY', `node ID "${nodeId}" is reserved (it names a role)`);
  }
}

function checkClusterId(clusterId: string): void {
  if (typeof clusterId !== 'string' || !CLUSTER_ID_RE.test(clusterId)) {
    throw new CaError('BAD_IDENTITY', `cluster ID ${JSON.stringify(clusterId)} must be 1-64 printable ASCII characters`);
  }
}

function forgePublicKey(privateKey: KeyObject): forge.pki.PublicKey {
  return forge.pki.publicKeyFromPem(createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string);
}

/** X509Certificate prints names one attribute per line. */
function oneLine(name: string): string {
  return name.trim().split('\n').join(', ');
}
