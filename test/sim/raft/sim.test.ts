// The simulator in the unit suite: a few seeds of each size, and proof that
// its checks catch a broken raft. The CI command runs 500 seeds of each size.
import { describe, expect, it } from 'vitest';
import { runSeed } from './sim.js';

describe('raft simulation', () => {
  it.each([3, 5])('passes 40 seeds with %i nodes, injecting every kind of fault', (nodes) => {
    const totals: Record<string, number> = {};
    for (let seed = 1; seed <= 40; seed++) {
      const r = runSeed(seed * 7919, { nodes });
      if (!r.ok) throw new Error(`seed ${seed * 7919} failed: ${r.error}\n${r.trace.slice(-60).join('\n')}`);
      for (const [k, v] of Object.entries(r.counts)) totals[k] = (totals[k] ?? 0) + v;
    }
    for (const fault of ['dropped', 'duplicated', 'delaySpikes', 'partitionsSymmetric', 'partitionsAsymmetric', 'crashes',
      'tornCrashes', 'restarts', 'addLearner', 'promote', 'removeNode', 'transfers', 'snapshotsSent', 'readsServed']) {
      expect(totals[fault], fault).toBeGreaterThan(0);
    }
    expect(totals.acked).toBeGreaterThan(1000);
  });

  it('a leader of an older term that wins late (its votes were delayed) lacks later commits without being a violation', () => {
    // Seed 814753 (5 nodes): n3 stands in term 2, n4 wins term 3 and commits; delayed votes of
    // term 2 then make n3 leader of term 2 after n4 crashed. Raft allows it: n3 cannot commit.
    const r = runSeed(814753, { nodes: 5, trace: true });
    expect(r.error).toBeUndefined();
    expect(r.trace.join('\n')).toMatch(/n3 Leader lead=3 term=2/);
    expect(r.trace.join('\n')).toMatch(/n4 Leader lead=4 term=3/);
  });

  it('is deterministic: one seed gives one history', () => {
    const a = runSeed(4242, { nodes: 5, trace: true });
    const b = runSeed(4242, { nodes: 5, trace: true });
    expect(a.trace.length).toBeGreaterThan(100);
    expect(b.trace).toEqual(a.trace);
  });

  const sabotages: Array<[string, RegExp, Parameters<typeof runSeed>[1]]> = [
    ['votes for candidates with stale logs', /leader completeness|state machine safety|lost/, {
      sabotage: (raw) => { raw.raft.raftLog.isUpToDate = () => true; },
    }],
    ['votes twice in a term', /election safety|leader completeness|state machine safety|log matching/, {
      sabotage: (raw) => {
        const r = raw.raft;
        const step = r.step.bind(r);
        r.step = (m) => { if (m.type === 12 /* Vote */ && m.term === r.term) r.vote = 0; step(m); };
      },
    }],
  ];
  it.each(sabotages)('catches a raft that %s', (_name, expected, opts) => {
    const failures: string[] = [];
    for (let seed = 1; seed <= 60 && failures.length === 0; seed++) {
      const r = runSeed(seed, { nodes: 3, ...opts });
      if (!r.ok) failures.push(r.error!);
    }
    expect(failures.length).toBe(1);
    expect(failures[0]).toMatch(expected);
  });
});
