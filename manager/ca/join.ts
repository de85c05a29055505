// Join tokens in Swarm's shape, and the pinning check a joining node makes with one.
//   SHTKN-1-<sha256 of the CA certificate, base36, 50 chars>-<128-bit secret, base36, 25 chars>
// The digest lets a node that trusts nothing yet recognise the right cluster's CA; the secret
// proves to the managers that the node was invited (and, by which token, as what role).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { CaError } from './errors.js';
import { singlePemDer, sha256Hex } from './forgeutil.js';

export const TOKEN_PREFIX = 'SHTKN';
export const TOKEN_VERSION = 1;
// ceil(256 / log2 36) and ceil(128 / log2 36): the widest a sha256 and a 128-bit secret get in base36.
export const TOKEN_DIGEST_CHARS = 50;
export const TOKEN_SECRET_CHARS = 25;

const SHAPE = `a join token looks like ${TOKEN_PREFIX}-${TOKEN_VERSION}-<${TOKEN_DIGEST_CHARS} base36 characters: CA digest>-<${TOKEN_SECRET_CHARS} base36 characters: secret>`;
const HEX64 = /^[0-9a-f]{64}$/;
const BASE36 = /^[0-9a-z]*$/;
const MAX_DIGEST = (1n << 256n) - 1n;

function invalid(what: string): CaError {
  return new CaError('INVALID_TOKEN', `invalid join token: ${what}; ${SHAPE}`);
}

export function formatJoinToken(caDigestHex: string, secret: string): string {
  const hex = caDigestHex.toLowerCase();
  if (!HEX64.test(hex)) throw new CaError('INVALID_TOKEN', `CA digest must be 64 hex characters (a sha256), got ${caDigestHex.length} characters`);
  if (secret.length !== TOKEN_SECRET_CHARS || !BASE36.test(secret)) {
    throw new CaError('INVALID_TOKEN', `token secret must be ${TOKEN_SECRET_CHARS} characters of [0-9a-z] (use newTokenSecret())`);
  }
  const digest36 = BigInt(`0x${hex}`).toString(36).padStart(TOKEN_DIGEST_CHARS, '0');
  return `${TOKEN_PREFIX}-${TOKEN_VERSION}-${digest36}-${secret}`;
}

/**
 * Parse a token, saying precisely what is wrong with a malformed one. Messages never repeat the
 * secret part, since they end up in logs. Surrounding whitespace (from a paste) is ignored.
 */
export function parseJoinToken(token: string): { version: 1; caDigestHex: string; secret: string } {
  if (typeof token !== 'string') throw invalid('not a string');
  const t = token.trim();
  if (t === '') throw invalid('it is empty');
  const parts = t.split('-');
  if (parts[0] !== TOKEN_PREFIX) {
    if (parts[0] === 'SWMTKN') throw invalid('this is a Docker Swarm token, not a shoal one');
    throw invalid(`it must start with "${TOKEN_PREFIX}-"`);
  }
  if (parts.length !== 4) throw invalid(`it has ${parts.length} dash-separated parts, expected 4`);
  const [, version, digest36, secret] = parts as [string, string, string, string];
  if (version !== String(TOKEN_VERSION)) {
    const shown = version.length > 8 ? `${version.slice(0, 8)}...` : version;
    throw invalid(`version "${shown}" is not supported (this shoal reads version ${TOKEN_VERSION})`);
  }
  if (digest36.length !== TOKEN_DIGEST_CHARS) throw invalid(`the CA digest part has ${digest36.length} characters, expected ${TOKEN_DIGEST_CHARS}`);
  if (!BASE36.test(digest36)) throw invalid('the CA digest part has characters other than 0-9 and lower-case a-z');
  const value = [...digest36].reduce((acc, c) => acc * 36n + BigInt(parseInt(c, 36)), 0n);
  if (value > MAX_DIGEST) throw invalid('the CA digest part is larger than a sha256 can be');
  if (secret.length !== TOKEN_SECRET_CHARS) throw invalid(`the secret part has ${secret.length} characters, expected ${TOKEN_SECRET_CHARS}`);
  if (!BASE36.test(secret)) throw invalid('the secret part has characters other than 0-9 and lower-case a-z');
  return { version: 1, caDigestHex: value.toString(16).padStart(64, '0'), secret };
}

/** 128 random bits in base36, fixed width. */
export function newTokenSecret(): string {
  return BigInt(`0x${randomBytes(16).toString('hex')}`).toString(36).padStart(TOKEN_SECRET_CHARS, '0');
}

/**
 * Constant-time token comparison. Hashing first makes both sides the same length, so neither
 * the content nor the length of `expected` leaks through timing. An empty `expected` (a
 * disabled token) matches nothing.
 */
export function tokenMatches(token: string, expected: string): boolean {
  if (typeof token !== 'string' || typeof expected !== 'string' || expected === '') return false;
  const a = createHash('sha256').update(token, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/**
 * For the joining node: the CA certificate a manager offered must be the one the token pins.
 * Only after this passes may the node trust that certificate as its root.
 */
export function checkPinnedCa(caCertPem: string, expectedDigestHex: string): void {
  const expected = expectedDigestHex.toLowerCase();
  if (!HEX64.test(expected)) throw new CaError('INVALID_TOKEN', `pinned CA digest must be 64 hex characters (a sha256), got ${expectedDigestHex.length} characters`);
  const der = singlePemDer(caCertPem, 'CERTIFICATE', "the manager's CA certificate", 'CERT_INVALID');
  const actual = sha256Hex(der);
  if (actual !== expected) {
    throw new CaError(
      'CA_MISMATCH',
      `the manager's CA certificate (sha256 ${actual}) does not match the token's digest (${expected}): the token is for a different cluster, or someone is intercepting the connection`,
    );
  }
}
