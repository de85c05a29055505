// `npm run bench:cluster`: what a user waits for when forming and losing a
// cluster, on real lab hosts (network namespaces, one shoald each), through the
// real CLI. Per repetition: a fresh 5-host lab; `swarm init`; 2 manager joins;
// 2 worker joins; until all 5 are Ready; SIGKILL the leader's shoald until
// another manager answers `node ls` (and says who leads); SIGKILL a worker's
// shoald until it shows Down. Medians over --reps (default 5).
//   node dist/test/bench/cluster/bench.js [--reps N] [--json] [--help]
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { Lab } from '../../../deploy/lab/lab.js';
import { benchOptions, intOption } from '../lib/args.js';
import { onCleanup, repoRoot } from '../lib/proc.js';
import { printJson, printTable } from '../lib/table.js';
import { waitFor } from '../../support/wait.js';

const repo = repoRoot();
const CLI = path.join(repo, 'dist', 'cli', 'shoal', 'main.js');

const USAGE = `usage: node dist/test/bench/cluster/bench.js [options]   (as root; each repetition brings up its own 5-host lab)
  --reps N    repetitions; medians are printed (default 5)
  --json      also print every repetition's figures as JSON
  -h, --help  this text`;
const opts = benchOptions(USAGE, { reps: { type: 'string' }, json: { type: 'boolean' } });

function shoal(socket: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, '--socket', socket, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`shoal ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

interface NodeRow { ID: string; Description: { Hostname: string }; Status: { State: string }; ManagerStatus?: { Leader: boolean } }

async function nodes(socket: string, timeoutMs = 5000): Promise<NodeRow[]> {
  return JSON.parse(await shoal(socket, ['node', 'ls', '--format', 'json'], timeoutMs)) as NodeRow[];
}

async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await f();
  return { ms: performance.now() - t0, value };
}

const until = <T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => waitFor(what, f, timeoutMs, 20);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function repetition(i: number): Promise<Record<string, number>> {
  const lab = new Lab({ name: `bc${process.pid % 10000}r${i}`, hosts: 5, subnet: `10.233.${i}.0/24`, log: () => undefined });
  const r: Record<string, number> = {};
  let down: Promise<void> | undefined;
  const teardown = () => (down ??= lab.down({ purge: true, killStragglers: true }));
  // Ctrl-C, SIGTERM, or a reader gone (EPIPE) mid-repetition: the lab goes too.
  onCleanup(teardown);
  try {
    await lab.up();
    const sock = (h: string) => lab.hostState(h).socket;
    for (const h of lab.hosts()) await until(`${h} socket`, async () => (await shoal(sock(h), ['info'], 2000)) || undefined);
    const ip1 = lab.hostIp('host1');
    r.init = (await timed(() => shoal(sock('host1'), ['swarm', 'init', '--advertise-addr', `${ip1}:4377`]))).ms;
    const mt = (await shoal(sock('host1'), ['swarm', 'join-token', '-q', 'manager'])).trim();
    const wt = (await shoal(sock('host1'), ['swarm', 'join-token', '-q', 'worker'])).trim();
    const firstJoin = performance.now();
    r['join manager (host2)'] = (await timed(() => shoal(sock('host2'), ['swarm', 'join', '--token', mt, `${ip1}:4377`]))).ms;
    r['join manager (host3)'] = (await timed(() => shoal(sock('host3'), ['swarm', 'join', '--token', mt, `${ip1}:4377`]))).ms;
    r['join worker (host4)'] = (await timed(() => shoal(sock('host4'), ['swarm', 'join', '--token', wt, `${ip1}:4377`]))).ms;
    r['join worker (host5)'] = (await timed(() => shoal(sock('host5'), ['swarm', 'join', '--token', wt, `${ip1}:4377`]))).ms;
    await until('5 nodes Ready', async () => ((await nodes(sock('host1'))).filter((n) => n.Status.State === 'ready').length === 5 ? true : undefined));
    r['first join until 5 Ready'] = performance.now() - firstJoin;

    const ls = await nodes(sock('host1'));
    const leader = ls.find((n) => n.ManagerStatus?.Leader)!.Description.Hostname;
    const other = ['host1', 'host2', 'host3'].find((h) => h !== leader)!;
    const t0 = performance.now();
    await lab.killDaemon(leader);
    await until('a new leader answers node ls', async () => {
      const l = await nodes(sock(other), 3000);
      const lead = l.find((n) => n.ManagerStatus?.Leader);
      return lead && lead.Description.Hostname !== leader ? true : undefined;
    });
    r['SIGKILL leader -> new leader answers node ls'] = performance.now() - t0;

    const t1 = performance.now();
    await lab.killDaemon('host5');
    await until('host5 Down', async () => ((await nodes(sock(other), 3000)).find((n) => n.Description.Hostname === 'host5')?.Status.State === 'down' ? true : undefined));
    r['SIGKILL worker -> node Down'] = performance.now() - t1;
  } finally {
    await teardown();
  }
  return r;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:cluster needs root (network namespaces): run it as root, or with sudo');
  const reps = intOption('reps', opts.reps, 5);
  const runs: Record<string, number>[] = [];
  for (let i = 0; i < reps; i++) {
    process.stderr.write(`[cluster] repetition ${i + 1}/${reps}\n`);
    runs.push(await repetition(i));
  }
  const swarm: Record<string, string> = {
    init: '0.18 s', 'join manager (host2)': '0.61 s', 'join manager (host3)': '0.61 s', 'join worker (host4)': '0.14 s',
    'join worker (host5)': '0.14 s', 'first join until 5 Ready': '1.55 s', 'SIGKILL leader -> new leader answers node ls': '14.7 s',
    'SIGKILL worker -> node Down': '14.1 s',
  };
  const rows = Object.keys(runs[0]!).map((k) => {
    const xs = runs.map((r) => r[k]!);
    return [k, `${(median(xs) / 1000).toFixed(2)} s`, `${(Math.min(...xs) / 1000).toFixed(2)}-${(Math.max(...xs) / 1000).toFixed(2)} s`, swarm[k] ?? ''];
  });
  console.log(`\ncluster bench: 5 lab hosts (network namespaces), one shoald each, through the shoal CLI; medians of ${reps}`);
  printTable(['step', { header: 'shoal median', align: 'right' }, { header: 'range', align: 'right' }, { header: 'Docker Swarm (brief)', align: 'right' }], rows);
  console.log('Swarm figures: Engine 20.10.24 on this machine type, from ../shared/BRIEF.md (Swarm cannot run here side by side: no Docker Hub, no IPVS).');
  console.log('shoal CLI times include starting the Node.js CLI process (~0.2 s), as docker\'s include its CLI.');
  if (opts.json) printJson(runs);
}

main().catch((e) => {
  console.error(`bench:cluster: ${(e as Error).message}`);
  process.exit(1);
});
