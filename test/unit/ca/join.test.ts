import { beforeAll, describe, expect, it } from 'vitest';
import {
  CaError,
  RootCA,
  checkPinnedCa,
  formatJoinToken,
  newTokenSecret,
  parseJoinToken,
  tokenMatches,
} from '../../../manager/ca/index.js';

function caErr(fn: () => unknown): CaError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CaError) return e;
    throw e;
  }
  throw new Error('expected a CaError, nothing was thrown');
}

const SHAPE = /a join token looks like SHTKN-1-<50 base36 characters: CA digest>-<25 base36 characters: secret>/;
const D50 = '0'.repeat(20) + 'abcdefghij0123456789abcdefghij'; // 50 base36 chars, value < 2^256
const S25 = 'abcdefghijklmnopqrstuvwxy';

describe('join tokens', () => {
  it.each([
    ['all zero digest', '0'.repeat(64)],
    ['all ones digest', 'f'.repeat(64)],
    ['a real-looking digest', '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'],
  ])('round-trips %s', (_name, digest) => {
    const secret = newTokenSecret();
    const token = formatJoinToken(digest, secret);
    expect(token).toMatch(/^SHTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
    expect(parseJoinToken(token)).toEqual({ version: 1, caDigestHex: digest, secret });
  });

  it('accepts an upper-case hex digest when formatting, and whitespace around a pasted token', () => {
    const d = 'AB'.repeat(32);
    const token = formatJoinToken(d, S25);
    expect(parseJoinToken(`  ${token}\n`).caDigestHex).toBe(d.toLowerCase());
  });

  it('makes 25-character base36 secrets that differ', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const s = newTokenSecret();
      expect(s).toMatch(/^[0-9a-z]{25}$/);
      seen.add(s);
    }
    expect(seen.size).toBe(200);
  });

  it.each([
    ['empty', '', /it is empty/],
    ['only spaces', '   ', /it is empty/],
    ['a wrong prefix', `SHTOKEN-1-${D50}-${S25}`, /must start with "SHTKN-"/],
    ['a lower-case prefix', `shtkn-1-${D50}-${S25}`, /must start with "SHTKN-"/],
    ['a Docker Swarm token', `SWMTKN-1-${D50}-${S25}`, /Docker Swarm token, not a shoal one/],
    ['a wrong version', `SHTKN-2-${D50}-${S25}`, /version "2" is not supported \(this shoal reads version 1\)/],
    ['a missing version', `SHTKN--${D50}-${S25}`, /version "" is not supported/],
    ['missing the secret', `SHTKN-1-${D50}`, /it has 3 dash-separated parts, expected 4/],
    ['only the prefix', 'SHTKN', /it has 1 dash-separated parts, expected 4/],
    ['an extra part', `SHTKN-1-${D50}-${S25}-x`, /it has 5 dash-separated parts, expected 4/],
    ['a short digest', `SHTKN-1-${D50.slice(1)}-${S25}`, /CA digest part has 49 characters, expected 50/],
    ['a hex digest instead of base36', `SHTKN-1-${'a'.repeat(64)}-${S25}`, /CA digest part has 64 characters, expected 50/],
    ['bad characters in the digest', `SHTKN-1-${D50.slice(0, 49)}_-${S25}`, /CA digest part has characters other than 0-9 and lower-case a-z/],
    ['an upper-case digest', `SHTKN-1-${D50.toUpperCase()}-${S25}`, /CA digest part has characters other than/],
    ['a digest over 256 bits', `SHTKN-1-${'z'.repeat(50)}-${S25}`, /larger than a sha256 can be/],
    ['a short secret', `SHTKN-1-${D50}-${S25.slice(1)}`, /secret part has 24 characters, expected 25/],
    ['bad characters in the secret', `SHTKN-1-${D50}-${S25.slice(0, 24)}!`, /secret part has characters other than/],
  ])('refuses %s with a message saying what is wrong', (_name, token, msg) => {
    const e = caErr(() => parseJoinToken(token));
    expect(e.code).toBe('INVALID_TOKEN');
    expect(e.message).toMatch(/^invalid join token: /);
    expect(e.message).toMatch(msg);
    expect(e.message).toMatch(SHAPE);
  });

  it('never repeats the secret in an error message', () => {
    const secret = 'secretsecretsecretsecret!';
    const e = caErr(() => parseJoinToken(`SHTKN-1-${D50}-${secret}`));
    expect(e.message).not.toContain('secretsecret');
  });

  it.each([
    ['a short digest', () => formatJoinToken('ab', S25), /64 hex characters/],
    ['a short secret', () => formatJoinToken('0'.repeat(64), 'abc'), /25 characters/],
    ['an upper-case secret', () => formatJoinToken('0'.repeat(64), S25.toUpperCase()), /25 characters of \[0-9a-z\]/],
  ])('formatJoinToken refuses %s', (_name, fn, msg) => {
    const e = caErr(fn);
    expect(e.code).toBe('INVALID_TOKEN');
    expect(e.message).toMatch(msg);
  });

  it('tokenMatches compares exactly, and an empty expected token matches nothing', () => {
    const t = formatJoinToken('1'.repeat(64), S25);
    expect(tokenMatches(t, t)).toBe(true);
    expect(tokenMatches(`${t.slice(0, -1)}z`, t)).toBe(false);
    expect(tokenMatches(`${t}x`, t)).toBe(false);
    expect(tokenMatches(t.slice(0, 10), t)).toBe(false);
    expect(tokenMatches('', '')).toBe(false);
    expect(tokenMatches('x', '')).toBe(false);
  });
});

describe('checkPinnedCa', () => {
  let ca: RootCA;
  let other: RootCA;
  beforeAll(() => {
    ca = RootCA.create({ clusterId: 'pin-a' });
    other = RootCA.create({ clusterId: 'pin-b' });
  });

  it('passes when the offered CA is the one the token names', () => {
    const { caDigestHex } = parseJoinToken(formatJoinToken(ca.digest, newTokenSecret()));
    expect(() => checkPinnedCa(ca.certPem, caDigestHex)).not.toThrow();
    expect(() => checkPinnedCa(ca.certPem, caDigestHex.toUpperCase())).not.toThrow();
  });

  it('refuses another CA with CA_MISMATCH and says what it means', () => {
    const e = caErr(() => checkPinnedCa(other.certPem, ca.digest));
    expect(e.code).toBe('CA_MISMATCH');
    expect(e.message).toBe(
      `the manager's CA certificate (sha256 ${other.digest}) does not match the token's digest (${ca.digest}): ` +
        'the token is for a different cluster, or someone is intercepting the connection',
    );
  });

  it.each([
    ['no certificate', () => checkPinnedCa('', '0'.repeat(64)), 'CERT_INVALID'],
    ['two certificates', () => checkPinnedCa(ca.certPem + other.certPem, '0'.repeat(64)), 'CERT_INVALID'],
    ['a malformed digest', () => checkPinnedCa(ca.certPem, 'abc'), 'INVALID_TOKEN'],
  ])('refuses %s', (_name, fn, code) => {
    expect(caErr(fn).code).toBe(code);
  });
});
