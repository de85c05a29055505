import { describe, expect, it } from 'vitest';
import { percentile, runLoad } from './load.js';
import { renderTable } from './table.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('runLoad', () => {
  it('keeps exactly N operations in flight', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const r = await runLoad(
      async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await sleep(2);
        inFlight--;
      },
      { concurrency: 8, ops: 200 },
    );
    expect(maxInFlight).toBe(8);
    expect(r.ops).toBe(200);
    expect(r.errors).toBe(0);
    expect(r.p50Ms).toBeGreaterThanOrEqual(1.5);
    expect(r.opsPerSec).toBeGreaterThan(0);
  });

  it('runs for a duration after an unmeasured warm-up', async () => {
    let calls = 0;
    const r = await runLoad(
      async () => {
        calls++;
        await sleep(5);
      },
      { concurrency: 2, durationSeconds: 0.2, warmupSeconds: 0.1 },
    );
    expect(r.seconds).toBeGreaterThanOrEqual(0.19);
    expect(r.seconds).toBeLessThan(0.5);
    expect(r.ops).toBeLessThan(calls);
    expect(r.ops).toBeGreaterThan(10);
  });

  it('counts errors and stops at maxErrors', async () => {
    let n = 0;
    const r = await runLoad(
      async () => {
        if (n++ % 2 === 1) throw new Error('boom');
      },
      { concurrency: 1, durationSeconds: 5, maxErrors: 3 },
    );
    expect(r.errors).toBe(3);
    expect(r.firstError).toBe('boom');
    expect(r.ops).toBe(3);
  });
});

describe('percentile and table', () => {
  it('uses nearest rank', () => {
    const a = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(a, 50)).toBe(50);
    expect(percentile(a, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('aligns columns', () => {
    const t = renderTable(['load', 'ops/s'], [['a', '1'], ['longer', '1,234']]);
    expect(t.split('\n')).toEqual(['load    ops/s', '------  -----', 'a           1', 'longer  1,234']);
  });
});
