// Internal helpers: node-forge builds and parses the ASN.1, node:crypto does the RSA work
// (node-forge's pure-JS signing costs 40-130 ms per signature here; node:crypto under 1 ms).
import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { CaError, type CaErrorCode } from './errors.js';

// Present in node-forge 1.x but missing from @types/node-forge.
const pki = forge.pki as typeof forge.pki & {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
};

const SHA256_WITH_RSA = forge.pki.oids.sha256WithRSAEncryption!;

/** Refuse absurdly large inputs before any parser spends time on them (they may come off the wire). */
export const MAX_PEM_CHARS = 64 * 1024;

/** Backdating notBefore tolerates clocks that lag the CA's (swarmkit backdates by an hour too). */
export const BACKDATE_MS = 60 * 60 * 1000;

/**
 * Exactly one PEM block of `type`, as DER. More than one is refused rather than silently
 * using the first: which certificate a caller meant must never be a guess.
 */
export function singlePemDer(pem: string, type: string, what: string, code: CaErrorCode): Buffer {
  if (typeof pem !== 'string' || pem.length === 0) throw new CaError(code, `${what}: no PEM text given`);
  if (pem.length > MAX_PEM_CHARS) throw new CaError(code, `${what}: PEM text of ${pem.length} characters is too large`);
  // forge.pem.decode throws a bare "Invalid PEM formatted message." on text without any block.
  if (!pem.includes('-----BEGIN ')) throw new CaError(code, `${what}: expected exactly one "${type}" PEM block, found none`);
  let blocks: forge.pem.ObjectPEM[];
  try {
    blocks = forge.pem.decode(pem);
  } catch (e) {
    throw new CaError(code, `${what}: not valid PEM (${(e as Error).message})`);
  }
  const found = blocks.filter((b) => b.type === type);
  if (found.length !== 1 || blocks.length !== 1) {
    const types = blocks.map((b) => b.type).join(', ') || 'none';
    throw new CaError(code, `${what}: expected exactly one "${type}" PEM block, found ${blocks.length} (${types})`);
  }
  return Buffer.from(found[0]!.body, 'binary');
}

export function derToPem(der: Buffer, type: string): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\r\n');
  return `-----BEGIN ${type}-----\r\n${b64}-----END ${type}-----\r\n`;
}

export function sha256Hex(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

export function certFromDer(der: Buffer): forge.pki.Certificate {
  return forge.pki.certificateFromAsn1(forge.asn1.fromDer(der.toString('binary')));
}

/** Sign with sha256WithRSAEncryption through node:crypto and attach the result to the forge cert. */
export function signCert(cert: forge.pki.Certificate, key: KeyObject): Buffer {
  cert.signatureOid = SHA256_WITH_RSA;
  cert.siginfo.algorithmOid = SHA256_WITH_RSA;
  // Cached on the object so certificateToAsn1 emits exactly the bytes that were signed.
  cert.tbsCertificate = pki.getTBSCertificate(cert);
  const tbs = Buffer.from(forge.asn1.toDer(cert.tbsCertificate).getBytes(), 'binary');
  cert.signature = sign('sha256', tbs, key).toString('binary');
  return Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
}

export function signCsr(csr: forge.pki.CertificateSigningRequest, key: KeyObject): string {
  csr.signatureOid = SHA256_WITH_RSA;
  csr.siginfo.algorithmOid = SHA256_WITH_RSA;
  csr.certificationRequestInfo = pki.getCertificationRequestInfo(csr);
  const cri = Buffer.from(forge.asn1.toDer(csr.certificationRequestInfo).getBytes(), 'binary');
  csr.signature = sign('sha256', cri, key).toString('binary');
  return forge.pki.certificationRequestToPem(csr);
}

/**
 * A random positive 128-bit serial as the hex content of a minimal DER INTEGER: a leading
 * 00 only when the top bit is set (OpenSSL rejects non-minimal INTEGER padding).
 */
export function randomSerialHex(): string {
  return derIntegerHex(randomBytes(16));
}

function derIntegerHex(bytes: Buffer): string {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0 && bytes[i + 1]! < 0x80) i++;
  const hex = bytes.subarray(i).toString('hex');
  return bytes[i]! >= 0x80 ? `00${hex}` : hex;
}

/** The serial as CertIdentity reports it: lower-case hex without sign padding. */
export function displaySerial(derHex: string): string {
  return derHex.toLowerCase().replace(/^(00)+(?=..)/, '');
}

/** Certificates carry whole seconds; rounding down keeps the encoded time <= the intended one. */
export function floorSecond(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** Rounding up keeps a certificate valid for at least the time asked for. */
export function ceilSecond(ms: number): Date {
  return new Date(Math.ceil(ms / 1000) * 1000);
}

/** RDN values as UTF8String: RFC 5280's recommendation, and PrintableString cannot hold '_' or '@'. */
export function utf8Attr(shortName: 'CN' | 'O' | 'OU', value: string): forge.pki.CertificateField {
  return { shortName, value, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class };
}

/** All values of one subject attribute (several OUs would make the role ambiguous). */
export function subjectValues(cert: forge.pki.Certificate, shortName: string): string[] {
  return cert.subject.attributes.filter((a) => a.shortName === shortName).map((a) => String(a.value));
}
