import { describe, expect, it } from 'vitest';
import { renewAt, type CertIdentity } from '../../../manager/ca/index.js';

const DAY = 24 * 3_600_000;
const issuedAt = new Date('2030-01-01T00:00:00Z');
const id = (validMs: number): CertIdentity => ({
  nodeId: 'n',
  role: 'worker',
  clusterId: 'c',
  notBefore: new Date(issuedAt.getTime() - 3_600_000),
  notAfter: new Date(issuedAt.getTime() + validMs),
  serial: '01',
});

describe('renewAt', () => {
  it.each([
    ['rand 0: at half the validity', () => 0, 0.5],
    ['rand 0.5', () => 0.5, 0.55],
    ['rand just under 1: at 60%', () => 0.999999, 0.6],
    ['rand out of range is clamped', () => 7, 0.6],
    ['negative rand is clamped', () => -1, 0.5],
  ])('%s', (_name, rand, fraction) => {
    const at = renewAt(id(90 * DAY), issuedAt, rand);
    expect((at.getTime() - issuedAt.getTime()) / (90 * DAY)).toBeCloseTo(fraction, 5);
  });

  it('stays within 50-60% of the validity with the default randomness', () => {
    for (let i = 0; i < 1000; i++) {
      const f = (renewAt(id(DAY), issuedAt).getTime() - issuedAt.getTime()) / DAY;
      expect(f).toBeGreaterThanOrEqual(0.5);
      expect(f).toBeLessThanOrEqual(0.6);
    }
  });

  it('takes another policy', () => {
    const at = renewAt(id(100 * DAY), issuedAt, () => 1, { remaining: 0.3, jitter: 0.05 });
    expect((at.getTime() - issuedAt.getTime()) / (100 * DAY)).toBeCloseTo(0.75, 5);
    expect(() => renewAt(id(DAY), issuedAt, () => 0, { remaining: 0 })).toThrow(RangeError);
    expect(() => renewAt(id(DAY), issuedAt, () => 0, { remaining: 0.1, jitter: 0.2 })).toThrow(RangeError);
  });

  it('says "now" for a certificate with no time left', () => {
    expect(renewAt(id(-DAY), issuedAt)).toEqual(issuedAt);
    expect(renewAt(id(0), issuedAt)).toEqual(issuedAt);
  });
});
