// Where a .cpuprofile (shoald --cpu-profile, node --cpu-prof) spent its time:
// self time by function and by package or source file, busiest first.
//   node dist/test/bench/lib/profile-top.js FILE... [--top 25]
// Several files are summed (e.g. one step's profile of every host).
import { readFileSync } from 'node:fs';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** node_modules/<pkg> or the repo-relative file (from dist/), else the URL as is. */
function ownerOf(url: string): string {
  if (!url) return '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const d = /\/dist\/(.+)$/.exec(url);
  if (d) return d[1]!;
  return url.replace(/^file:\/\//, '');
}

function selfTimes(profiles: CpuProfile[]): { byFunction: Map<string, number>; byOwner: Map<string, number>; totalMs: number } {
  const byFunction = new Map<string, number>();
  const byOwner = new Map<string, number>();
  let total = 0;
  for (const p of profiles) {
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    p.samples.forEach((id, i) => {
      const n = nodes.get(id)!;
      const ms = (p.timeDeltas[i] ?? 0) / 1000;
      if (n.callFrame.functionName === '(idle)') return;
      total += ms;
      const owner = ownerOf(n.callFrame.url);
      const file = /node_modules\/(.+)$/.exec(n.callFrame.url)?.[1] ?? owner;
      const fn = `${n.callFrame.functionName || '(anonymous)'} ${file}:${n.callFrame.lineNumber + 1}`;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
      byOwner.set(owner, (byOwner.get(owner) ?? 0) + ms);
    });
  }
  return { byFunction, byOwner, totalMs: total };
}

function main(): void {
  const args = process.argv.slice(2);
  const ti = args.indexOf('--top');
  const top = ti >= 0 ? Number(args.splice(ti, 2)[1]) : 25;
  if (!args.length) {
    process.stderr.write('usage: profile-top FILE... [--top N]\n');
    process.exit(2);
  }
  const { byFunction, byOwner, totalMs } = selfTimes(args.map((f) => JSON.parse(readFileSync(f, 'utf8')) as CpuProfile));
  const show = (title: string, m: Map<string, number>) => {
    console.log(`\n${title}`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${v.toFixed(0).padStart(7)} ms ${((100 * v) / totalMs).toFixed(1).padStart(5)} %  ${k}`);
    }
  };
  console.log(`${args.length} profile(s), ${totalMs.toFixed(0)} ms busy (idle excluded)`);
  show('self time by package / file', byOwner);
  show('self time by function', byFunction);
}

main();
