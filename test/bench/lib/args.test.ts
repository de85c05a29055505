// Bench options: what a bench does with good, unknown and malformed flags
// (a bench can bring up labs for minutes: a typo must stop it before that).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchOptions, intOption } from './args.js';
import { repoRoot } from './proc.js';

const FAILOVER = join(repoRoot(), 'dist', 'test', 'bench', 'raft', 'failover.js');

function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [FAILOVER, ...args], { timeout: 30_000 }, (e, out, err) => resolve({ code: e ? (e as { code?: number }).code ?? null : 0, out, err }));
  });
}

describe('bench options', () => {
  it('parses the flags a bench declares', () => {
    const o = benchOptions('usage', { reps: { type: 'string' }, json: { type: 'boolean' } }, ['--reps', '3', '--json']);
    expect(o).toMatchObject({ reps: '3', json: true });
  });

  it.each([
    { value: undefined, want: 5 },
    { value: '3', want: 3 },
    { value: '0', error: '--reps 0: expected a whole number, at least 1' },
    { value: '2.5', error: '--reps 2.5: expected a whole number, at least 1' },
    { value: 'x', error: '--reps x: expected a whole number, at least 1' },
  ])('intOption --reps $value', ({ value, want, error }) => {
    if (error) expect(() => intOption('reps', value, 5)).toThrow(error);
    else expect(intOption('reps', value, 5)).toBe(want);
  });

  it.each([
    { args: ['--help'], code: 0, out: /^usage: node dist\/test\/bench\/raft\/failover\.js/, err: /^$/ },
    { args: ['--trails', '10'], code: 2, out: /^$/, err: /Unknown option '--trails'[\s\S]*usage:/ },
    { args: ['--trials'], code: 2, out: /^$/, err: /--trials[\s\S]*argument missing[\s\S]*usage:/ },
    { args: ['--trials', '0'], code: 2, out: /^$/, err: /^--trials 0: expected a whole number, at least 1\nusage:[^]*this text\n$/ },
  ])('a bench run with $args: exit $code before any work', async ({ args, code, out, err }) => {
    const r = await run(args);
    expect(r.code).toBe(code);
    expect(r.out).toMatch(out);
    expect(r.err).toMatch(err);
  });
});
