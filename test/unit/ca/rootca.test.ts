import { X509Certificate, createHash, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import { CaError, RootCA, generateKeyAndCsr, identityOf, type CaErrorCode, type NodeRole } from '../../../manager/ca/index.js';

/** Runs fn and returns the CaError it throws (failing the test on anything else). */
function caErr(fn: () => unknown): CaError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CaError) return e;
    throw e;
  }
  throw new Error('expected a CaError, nothing was thrown');
}

function derOf(pem: string): Buffer {
  return Buffer.from(new X509Certificate(pem).raw);
}

function pemOf(der: Buffer): string {
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

const HOUR = 3_600_000;

// CA creation costs an RSA key generation: a few CAs shared by all tests.
let ca: RootCA;
let foreign: RootCA;
let twin: RootCA; // same cluster ID and name as `ca`, different key
let csrPem: string;
let keyPem: string;

beforeAll(() => {
  ca = RootCA.create({ clusterId: 'cluster-a' });
  foreign = RootCA.create({ clusterId: 'cluster-b' });
  twin = RootCA.create({ clusterId: 'cluster-a' });
  ({ csrPem, keyPem } = generateKeyAndCsr());
});

describe('RootCA.create', () => {
  it('makes a self-signed RSA CA certificate with the CA extensions', () => {
    const x = new X509Certificate(ca.certPem);
    expect(x.ca).toBe(true);
    expect(x.subject).toBe('O=cluster-a\nCN=shoal-ca');
    expect(x.issuer).toBe(x.subject);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const fc = forge.pki.certificateFromPem(ca.certPem);
    const ku = fc.getExtension('keyUsage') as { keyCertSign: boolean; cRLSign: boolean; critical: boolean };
    expect(ku).toMatchObject({ keyCertSign: true, cRLSign: true, critical: true });
    expect(fc.getExtension('subjectKeyIdentifier')).toBeTruthy();
    const years = (ca.notAfter.getTime() - Date.now()) / (365 * 24 * HOUR);
    expect(years).toBeGreaterThan(19.99);
    expect(years).toBeLessThan(20.01);
    expect(ca.clusterId).toBe('cluster-a');
    expect(ca.canSign).toBe(true);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('takes a common name and validity', () => {
    const c = RootCA.create({ clusterId: 'x', commonName: 'my-ca', validityDays: 1 });
    expect(new X509Certificate(c.certPem).subject).toContain('CN=my-ca');
    expect(c.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(24 * HOUR + 1000);
  });

  it.each([
    ['empty cluster ID', { clusterId: '' }],
    ['cluster ID too long', { clusterId: 'x'.repeat(65) }],
    ['control character', { clusterId: 'a\nb' }],
    ['zero validity', { clusterId: 'a', validityDays: 0 }],
  ])('refuses %s', (_name, opts) => {
    expect(caErr(() => RootCA.create(opts)).code).toBe('BAD_IDENTITY');
  });
});

describe('RootCA.fromPem', () => {
  it('round-trips certificate and key', () => {
    const again = RootCA.fromPem(ca.certPem, ca.keyPem);
    expect(again.certPem).toBe(ca.certPem);
    expect(again.digest).toBe(ca.digest);
    expect(again.clusterId).toBe('cluster-a');
    expect(again.canSign).toBe(true);
    // What the reloaded CA issues, the original trusts, and the other way round.
    const { certPem } = again.issue(csrPem, { nodeId: 'n1', role: 'worker', clusterId: 'cluster-a', validityMs: HOUR });
    expect(ca.verify(certPem).nodeId).toBe('n1');
    const other = ca.issue(csrPem, { nodeId: 'n2', role: 'manager', clusterId: 'cluster-a', validityMs: HOUR });
    expect(again.verify(other.certPem).nodeId).toBe('n2');
  });

  it('without a key verifies but cannot issue', () => {
    const vo = RootCA.fromPem(ca.certPem);
    expect(vo.canSign).toBe(false);
    expect(vo.keyPem).toBeUndefined();
    const { certPem } = ca.issue(csrPem, { nodeId: 'n3', role: 'worker', clusterId: 'cluster-a', validityMs: HOUR });
    expect(vo.verify(certPem).role).toBe('worker');
    const e = caErr(() => vo.issue(csrPem, { nodeId: 'n4', role: 'worker', clusterId: 'cluster-a', validityMs: HOUR }));
    expect(e.code).toBe('CA_NO_KEY');
    expect(e.message).toMatch(/verify-only/);
  });

  it('accepts surrounding text and CRLF line ends around the one PEM block', () => {
    const messy = `subject=whatever\n${ca.certPem.replace(/\r?\n/g, '\r\n')}\n`;
    expect(RootCA.fromPem(messy).digest).toBe(ca.digest);
  });

  it.each<[string, () => [string, string?], RegExp]>([
    ['garbage', () => ['hello'], /exactly one "CERTIFICATE"/],
    ['two certificates', () => [ca.certPem + foreign.certPem], /found 2/],
    ['a node certificate', () => [ca.issue(csrPem, { nodeId: 'n5', role: 'manager', clusterId: 'cluster-a', validityMs: HOUR }).certPem], /not a CA certificate/],
    ['another CA\'s key', () => [ca.certPem, foreign.keyPem], /does not belong/],
    ['an unparseable key', () => [ca.certPem, 'nope'], /cannot be parsed/],
    ['a non-RSA key', () => [ca.certPem, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string], /RSA only/],
  ])('refuses %s with BAD_CA', (_name, args, msg) => {
    const [c, k] = args();
    const e = caErr(() => RootCA.fromPem(c, k));
    expect(e.code).toBe('BAD_CA');
    expect(e.message).toMatch(msg);
  });
});

describe('digest', () => {
  it('is the sha256 of the certificate DER, 64 lower-case hex, stable and distinct per CA', () => {
    expect(ca.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(ca.digest).toBe(createHash('sha256').update(derOf(ca.certPem)).digest('hex'));
    expect(RootCA.fromPem(ca.certPem).digest).toBe(ca.digest);
    expect(foreign.digest).not.toBe(ca.digest);
    expect(twin.digest).not.toBe(ca.digest);
  });
});

describe('issue + verify', () => {
  it.each<[NodeRole, string]>([
    ['manager', 'swarm-manager'],
    ['worker', 'swarm-worker'],
  ])('a %s certificate names node, role and cluster', (role, ou) => {
    const nodeId = `node${role}0123456789abcdefghijk`;
    const { certPem, identity } = ca.issue(csrPem, { nodeId, role, clusterId: 'cluster-a', validityMs: 2 * HOUR });
    expect(identity).toMatchObject({ nodeId, role, clusterId: 'cluster-a' });
    expect(ca.verify(certPem)).toEqual(identity);
    expect(identityOf(certPem)).toEqual(identity);

    const x = new X509Certificate(certPem);
    expect(x.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(x.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    // The CSR asked for CN=shoal-node: the CA decides the subject.
    expect(x.subject).toBe(`O=cluster-a\nOU=${ou}\nCN=${nodeId}`);
    expect(x.subjectAltName).toBe(`DNS:${nodeId}, DNS:${ou}`);
    expect(x.ca).toBe(false);
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // serverAuth, clientAuth
    const fc = forge.pki.certificateFromPem(certPem);
    expect(fc.getExtension('keyUsage')).toMatchObject({ digitalSignature: true, keyEncipherment: true, keyCertSign: false });
    expect(fc.getExtension('basicConstraints')).toMatchObject({ cA: false, critical: true });
    expect(fc.getExtension('subjectKeyIdentifier')).toBeTruthy();
    const aki = fc.getExtension('authorityKeyIdentifier') as { value: string };
    const caSki = (forge.pki.certificateFromPem(ca.certPem).getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier: string }).subjectKeyIdentifier;
    expect(forge.util.bytesToHex(aki.value)).toContain(caSki);

    // Validity: backdated an hour for clock skew, at least the time asked for.
    expect(identity.notBefore.getTime()).toBeLessThanOrEqual(Date.now() - HOUR + 1000);
    expect(identity.notAfter.getTime()).toBeGreaterThanOrEqual(Date.now() + 2 * HOUR - 5000);
    expect(identity.serial).toMatch(/^[0-9a-f]{1,32}$/);
    expect(identity.serial).toBe(x.serialNumber.toLowerCase().replace(/^(00)+(?=..)/, ''));
  });

  it('uses the key of the CSR and a fresh random serial each time', () => {
    const who = { nodeId: 'same', role: 'worker', clusterId: 'cluster-a', validityMs: HOUR } as const;
    const a = ca.issue(csrPem, who);
    const b = ca.issue(csrPem, who);
    expect(a.identity.serial).not.toBe(b.identity.serial);
    expect(new X509Certificate(a.certPem).checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    expect(new X509Certificate(a.certPem).checkPrivateKey(createPrivateKey(ca.keyPem!))).toBe(false);
  });

  it('never outlives the CA', () => {
    const { identity } = ca.issue(csrPem, { nodeId: 'long', role: 'worker', clusterId: 'cluster-a', validityMs: 100 * 365 * 24 * HOUR });
    expect(identity.notAfter).toEqual(ca.notAfter);
  });

  it.each<[string, Partial<{ nodeId: string; role: NodeRole; clusterId: string; validityMs: number }>, RegExp]>([
    ['an empty node ID', { nodeId: '' }, /node ID "" must be/],
    ['a node ID with an underscore', { nodeId: 'a_b' }, /must be 1-63/],
    ['a node ID ending in a hyphen', { nodeId: 'ab-' }, /must be 1-63/],
    ['a 64-character node ID', { nodeId: 'a'.repeat(64) }, /must be 1-63/],
    ['a node ID that names a role', { nodeId: 'swarm-manager' }, /reserved/],
    ['a node ID that names a role in capitals', { nodeId: 'SWARM-Worker' }, /reserved/],
    ['another cluster', { clusterId: 'cluster-b' }, /not this CA's cluster/],
    ['an unknown role', { role: 'admin' as NodeRole }, /role must be/],
    ['zero validity', { validityMs: 0 }, /positive/],
    ['NaN validity', { validityMs: Number.NaN }, /positive/],
  ])('refuses %s with BAD_IDENTITY', (_name, over, msg) => {
    const e = caErr(() => ca.issue(csrPem, { nodeId: 'ok', role: 'worker', clusterId: 'cluster-a', validityMs: HOUR, ...over }));
    expect(e.code).toBe('BAD_IDENTITY');
    expect(e.message).toMatch(msg);
  });
});

/** A CSR for an RSA key of `bits`, built and signed by node-forge alone (an independent path). */
function forgeCsr(bits: number): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const priv = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }) as string) as forge.pki.rsa.PrivateKey;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.rsa.setPublicKey(priv.n, priv.e);
  csr.setSubject([{ name: 'commonName', value: 'i-want-to-be-a-manager' }]);
  csr.sign(priv, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

function tamperedCsr(): string {
  const der = Buffer.from(forge.pem.decode(csrPem)[0]!.body, 'binary');
  const at = der.indexOf('shoal-node');
  der[at] = 'S'.charCodeAt(0);
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
}

describe('CSR checks', () => {
  it('accepts a CSR made elsewhere (node-forge signing) and ignores its subject', () => {
    const { certPem } = ca.issue(forgeCsr(2048), { nodeId: 'ext', role: 'worker', clusterId: 'cluster-a', validityMs: HOUR });
    expect(ca.verify(certPem)).toMatchObject({ nodeId: 'ext', role: 'worker' });
    expect(new X509Certificate(certPem).subject).not.toContain('i-want-to-be-a-manager');
  });

  it.each<[string, () => string, RegExp]>([
    ['garbage', () => 'not a csr', /exactly one "CERTIFICATE REQUEST"/],
    ['a certificate instead of a CSR', () => ca.certPem, /exactly one "CERTIFICATE REQUEST"/],
    ['a 1024-bit key', () => forgeCsr(1024), /RSA-1024: keys must be 2048 to 8192 bits/],
    ['a tampered request', tamperedCsr, /signature does not verify/],
    ['a truncated body', () => csrPem.replace(/\n[^\n]+\n-----END/, '\n-----END'), /cannot be parsed|not valid PEM/],
    ['an oversized input', () => 'x'.repeat(70_000), /too large/],
  ])('refuses %s with BAD_CSR', (_name, csr, msg) => {
    const e = caErr(() => ca.issue(csr(), { nodeId: 'n', role: 'worker', clusterId: 'cluster-a', validityMs: HOUR }));
    expect(e.code).toBe('BAD_CSR');
    expect(e.message).toMatch(msg);
  });
});

describe('verify refuses', () => {
  let good: { certPem: string; identity: { notBefore: Date; notAfter: Date } };
  beforeAll(() => {
    good = ca.issue(csrPem, { nodeId: 'node-tamper1', role: 'worker', clusterId: 'cluster-a', validityMs: HOUR });
  });

  function tampered(): string {
    // Rename the node in place (CN and SAN), same length: still well-formed, no longer signed.
    const der = derOf(good.certPem);
    for (let at = der.indexOf('node-tamper1'); at >= 0; at = der.indexOf('node-tamper1', at + 1)) der.write('node-tamper2', at);
    return pemOf(der);
  }

  it.each<[string, () => { cert: string | Buffer; now?: Date }, CaErrorCode, RegExp]>([
    ['a certificate from another CA', () => ({ cert: foreign.issue(csrPem, { nodeId: 'f', role: 'manager', clusterId: 'cluster-b', validityMs: HOUR }).certPem }), 'CERT_UNTRUSTED', /issued by "O=cluster-b, CN=shoal-ca", not by this cluster's CA "O=cluster-a, CN=shoal-ca"/],
    ['a certificate from a CA with the same name and cluster ID', () => ({ cert: twin.issue(csrPem, { nodeId: 't', role: 'manager', clusterId: 'cluster-a', validityMs: HOUR }).certPem }), 'CERT_UNTRUSTED', /not by this cluster's CA|does not verify/],
    ['an expired and foreign certificate as untrusted', () => ({ cert: foreign.issue(csrPem, { nodeId: 'f', role: 'manager', clusterId: 'cluster-b', validityMs: HOUR }).certPem, now: new Date(Date.now() + 2 * HOUR) }), 'CERT_UNTRUSTED', /not by this cluster's CA/],
    ['an expired certificate', () => ({ cert: good.certPem, now: new Date(good.identity.notAfter.getTime() + 1000) }), 'CERT_EXPIRED', /"O=cluster-a, OU=swarm-worker, CN=node-tamper1" expired at/],
    ['a not-yet-valid certificate', () => ({ cert: good.certPem, now: new Date(good.identity.notBefore.getTime() - 1000) }), 'CERT_NOT_YET_VALID', /not valid before .*check the clocks/],
    ['a tampered certificate', () => ({ cert: tampered() }), 'CERT_UNTRUSTED', /signature does not verify with the CA's key: it was altered/],
    ['garbage', () => ({ cert: 'garbage' }), 'CERT_INVALID', /expected exactly one "CERTIFICATE" PEM block/],
    ['garbage DER', () => ({ cert: Buffer.from('3003020100', 'hex') }), 'CERT_INVALID', /cannot be parsed/],
    ['a chain where one certificate was expected', () => ({ cert: good.certPem + ca.certPem }), 'CERT_INVALID', /found 2/],
    ['the CA certificate itself', () => ({ cert: ca.certPem }), 'CERT_INVALID', /is a CA certificate/],
  ])('%s', (_name, input, code, msg) => {
    const { cert, now } = input();
    const e = caErr(() => ca.verify(cert, now));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(msg);
  });

  it('accepts DER as well as PEM, and the edges of validity', () => {
    const der = derOf(good.certPem);
    expect(ca.verify(der).nodeId).toBe('node-tamper1');
    expect(ca.verify(good.certPem, good.identity.notBefore).nodeId).toBe('node-tamper1');
    expect(ca.verify(good.certPem, good.identity.notAfter).nodeId).toBe('node-tamper1');
  });

  it('identityOf parses without trusting, and refuses non-node certificates', () => {
    expect(identityOf(tampered()).nodeId).toBe('node-tamper2');
    const e = caErr(() => identityOf(ca.certPem));
    expect(e.code).toBe('CERT_INVALID');
    expect(e.message).toMatch(/0 OU attributes, expected exactly one role/);
  });
});

describe('timings (printed)', () => {
  it('issue, verify and key+CSR generation are fast', () => {
    const who = { nodeId: 'bench', role: 'worker', clusterId: 'cluster-a', validityMs: HOUR } as const;
    for (let i = 0; i < 5; i++) ca.verify(ca.issue(csrPem, who).certPem); // warm-up
    const n = 50;
    let t = performance.now();
    const certs: string[] = [];
    for (let i = 0; i < n; i++) certs.push(ca.issue(csrPem, who).certPem);
    const issueMs = (performance.now() - t) / n;
    t = performance.now();
    for (const c of certs) ca.verify(c);
    const verifyMs = (performance.now() - t) / n;
    t = performance.now();
    for (let i = 0; i < 5; i++) generateKeyAndCsr();
    const csrMs = (performance.now() - t) / 5;
    console.log(`ca timings: issue() ${issueMs.toFixed(2)} ms, verify() ${verifyMs.toFixed(2)} ms, generateKeyAndCsr() ${csrMs.toFixed(1)} ms (means)`);
    // Loose bounds: two shared cores; node-forge's own signing would be 40-130 ms.
    expect(issueMs).toBeLessThan(40);
    expect(verifyMs).toBeLessThan(20);
  });
});
