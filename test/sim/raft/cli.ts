// npm run sim:raft -- --seeds N [--nodes 3|5] [--seed S] [--trace] [--fault-ms MS]
// Runs seeded simulations; prints fault totals; a failing seed prints its
// trace and the command that replays it.
import { runSeed, type FaultCounts } from './sim.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seeds = Number(arg('seeds') ?? 100);
const nodes = Number(arg('nodes') ?? 3);
const firstSeed = Number(arg('seed') ?? 1);
const faultMs = Number(arg('fault-ms') ?? 10_000);
const trace = process.argv.includes('--trace');
if (!Number.isInteger(seeds) || seeds < 1) throw new Error('--seeds must be a positive integer');
if (nodes !== 3 && nodes !== 5) throw new Error('--nodes must be 3 or 5');

const totals: Partial<FaultCounts> = {};
let failed = 0;
let maxHeal = 0;
const started = Date.now();
for (let s = firstSeed; s < firstSeed + seeds; s++) {
  const r = runSeed(s, { nodes, faultMs, trace });
  for (const [k, v] of Object.entries(r.counts)) totals[k as keyof FaultCounts] = (totals[k as keyof FaultCounts] ?? 0) + v;
  maxHeal = Math.max(maxHeal, r.healMs);
  if (trace) for (const l of r.trace) console.log(l);
  if (!r.ok) {
    failed++;
    console.log(`\nseed ${s} FAILED: ${r.error}`);
    if (!trace) for (const l of r.trace) console.log(l);
    console.log(`replay: npm run sim:raft -- --seeds 1 --seed ${s} --nodes ${nodes} --fault-ms ${faultMs} --trace`);
    if (failed >= 3) break;
  }
}
const secs = (Date.now() - started) / 1000;
console.log(`\nraft simulation: ${seeds} seeds, ${nodes} nodes, ${faultMs} ms of faults each, ${secs.toFixed(1)} s`);
console.log('faults and events injected (totals):');
for (const [k, v] of Object.entries(totals)) console.log(`  ${k.padEnd(22)} ${v}`);
console.log(`  ${'max heal-to-commit ms'.padEnd(22)} ${maxHeal}`);
console.log(`${seeds - failed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
