// How long 3 raft-ts voters take to elect a new leader after theirs dies, in
// simulated time: each node ticks at its own phase, messages take 1..D ms,
// pre-vote and check-quorum on, shoald's timing (100 ms ticks, elections after
// 10, heartbeats every 3). The tail is split votes: both survivors time out
// within a message delay of each other and stand together. They used to wait
// another randomized 1-2 s; a candidate that meets a rival in its term now
// retries after 0.2-1.2 s (raft core README), which took the elections over
// 3 s at 1-50 ms delays from 15 in 2,000 to 0. Finer ticks with the same
// timeouts (50 ms x 20) do not help: they split as often, since what decides
// is the delay against the 1 s spread of the timeouts, not the tick.
//
//   npm run build && node dist/test/bench/raft/failover.js [--trials 2000] [--seed 1]
import { StateType, type Message } from '../../../manager/raft/core/index.js';
import { DEFAULT_HEARTBEAT_TICK } from '../../../manager/cluster/manager.js';
import { TestNode, bootstrapStorage } from '../../unit/raft/core/harness.js';
import { mulberry32 } from '../../support/random.js';
import { benchOptions, checkedOptions, intOption } from '../lib/args.js';
import { printTable } from '../lib/table.js';

const USAGE = `usage: node dist/test/bench/raft/failover.js [options]   (simulated: no processes, no network)
  --trials N  leader deaths per timing and delay setting (default 2000)
  --seed N    random seed; the same seed gives the same figures (default 1)
  -h, --help  this text`;
const opts = benchOptions(USAGE, { trials: { type: 'string' }, seed: { type: 'string' } });
const { TRIALS, SEED } = checkedOptions(USAGE, () => ({ TRIALS: intOption('trials', opts.trials, 2000), SEED: intOption('seed', opts.seed, 1, 0) }));

interface Timing {
  tickMs: number;
  electionTick: number;
  heartbeatTick: number;
}

/** One failover: ms from the leader's death until a survivor leads, and how many terms that took. */
function failover(t: Timing, maxDelayMs: number, rnd: () => number): { ms: number; terms: number } {
  const nodes = [1, 2, 3].map((id) => new TestNode(id, bootstrapStorage([1, 2, 3]), {
    electionTick: t.electionTick, heartbeatTick: t.heartbeatTick, preVote: true, checkQuorum: true, random: rnd,
  }));
  type Ev = { at: number; node: number; msg?: Message };
  const queue: Ev[] = nodes.map((_, i) => ({ at: rnd() * t.tickMs, node: i }));
  const dead = new Set<number>();
  let killAt = 5_000;
  let termAtKill = -1;
  while (queue.length) {
    queue.sort((a, b) => a.at - b.at);
    const ev = queue.shift()!;
    if (termAtKill < 0 && ev.at >= killAt) {
      const l = nodes.findIndex((n) => n.state() === StateType.Leader);
      if (l < 0) killAt += 500;
      else {
        dead.add(l);
        termAtKill = nodes[l]!.term();
      }
    }
    if (dead.has(ev.node) || (ev.msg && dead.has(ev.msg.from - 1))) continue;
    const n = nodes[ev.node]!;
    if (ev.msg) n.raw.step(ev.msg);
    else {
      n.raw.tick();
      queue.push({ at: ev.at + t.tickMs, node: ev.node });
    }
    for (const m of n.drain()) queue.push({ at: ev.at + 1 + rnd() * (maxDelayMs - 1), node: m.to - 1, msg: m });
    if (termAtKill >= 0) {
      const l = nodes.findIndex((x, i) => !dead.has(i) && x.state() === StateType.Leader);
      if (l >= 0) return { ms: ev.at - killAt, terms: nodes[l]!.term() - termAtKill };
    }
    if (ev.at > 120_000) break;
  }
  return { ms: Number.POSITIVE_INFINITY, terms: 0 };
}

const settings: Array<[string, Timing]> = [
  ['100 ms x 10, heartbeat 3 (shoald)', { tickMs: 100, electionTick: 10, heartbeatTick: DEFAULT_HEARTBEAT_TICK }],
  ['50 ms x 20, heartbeat 6', { tickMs: 50, electionTick: 20, heartbeatTick: 6 }],
];
const rows: string[][] = [];
for (const maxDelay of [5, 20, 50]) {
  for (const [name, t] of settings) {
    const rnd = mulberry32(SEED);
    const rs = Array.from({ length: TRIALS }, () => failover(t, maxDelay, rnd));
    const ms = rs.map((r) => r.ms).sort((a, b) => a - b);
    const q = (p: number) => `${(ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]! / 1000).toFixed(2)} s`;
    rows.push([name, `1-${maxDelay} ms`, q(0.5), q(0.99), q(1), String(rs.filter((r) => r.ms > 3_000).length), String(rs.filter((r) => r.terms > 1).length)]);
  }
}
console.log(`\nraft failover, simulated: 3 voters, the leader dies; ${TRIALS} trials each (seed ${SEED}); until a survivor leads (a client adds its retry)`);
printTable(['ticks', 'message delay', 'median', 'p99', 'max', '> 3 s', 'split votes (terms > 1)'], rows);
