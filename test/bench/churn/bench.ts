// `npm run bench:churn`: does the control plane keep time while container
// starts and stops saturate the machine? The same lab twice in one run, once
// per shoald CPU priority (--nice 0, the kernel's default, then shoald's own
// default), each through the same cycles: `service create` of N replicas
// until containerd runs them all, then `service rm` until they are gone.
//
// Per shoald it reads the kernel's scheduler counters of every thread
// (/proc/<pid>/task/<tid>/schedstat: time on a CPU, time runnable but waiting
// for one) over the cycles, and counts in the logs what waiting costs: timers
// the leader ran late ("down detection paused"), slow raft log writes,
// election attempts (pre-candidacies, candidacies, leaders) and nodes marked
// down. At equal priority, each of tens of runnable threads gets a slice in
// turn; what shoald waits for a slice is what its heartbeats wait.
//
//   node dist/test/bench/churn/bench.js [--cycles 3] [--replicas 100] [--nice=0,-10] [--json]
import { readFileSync, readdirSync } from 'node:fs';
import { benchOptions, checkedOptions, intOption } from '../lib/args.js';
import { onCleanup } from '../lib/proc.js';
import { printJson, printTable } from '../lib/table.js';
import { BenchCluster, benchPrerequisites } from '../converge/cluster.js';
import { ControlDriver } from '../converge/control.js';
import { byService, diffLogs, logText, pollContainers, scanLogs, sleep, type LogCounts } from '../converge/observe.js';

const USAGE = `usage: node dist/test/bench/churn/bench.js [options]   (as root; one lab per priority)
  --cycles N      create + rm cycles per lab (default 3)
  --replicas N    containers per create, a multiple of 5 (default 100)
  --nice=LIST     shoald priorities to compare, comma-separated (default 0,-10: the kernel's default, shoald's)
  --json          also print the results as JSON
  -h, --help      this text`;

const opts = benchOptions(USAGE, { cycles: { type: 'string' }, replicas: { type: 'string' }, nice: { type: 'string' }, json: { type: 'boolean' } });
const { CYCLES, REPLICAS, NICES } = checkedOptions(USAGE, () => {
  const replicas = intOption('replicas', opts.replicas, 100, 5);
  if (replicas % 5 !== 0) throw new Error(`--replicas ${replicas}: expected a multiple of 5 (the lab has 5 hosts)`);
  const nices = (opts.nice ?? '0,-10').split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < -20 || n > 19) throw new Error(`--nice ${opts.nice}: expected integers from -20 to 19, comma-separated`);
    return n;
  });
  return { CYCLES: intOption('cycles', opts.cycles, 3), REPLICAS: replicas, NICES: nices };
});

const log = (line: string): void => void process.stderr.write(`[churn ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

/** Scheduler counters of a process, summed over its threads (ms); the main thread's apart. */
interface Sched {
  cpuMs: number;
  waitMs: number;
  mainCpuMs: number;
  mainWaitMs: number;
}

function schedOf(pid: number): Sched {
  const out: Sched = { cpuMs: 0, waitMs: 0, mainCpuMs: 0, mainWaitMs: 0 };
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      out.cpuMs += run! / 1e6;
      out.waitMs += wait! / 1e6;
      if (Number(tid) === pid) {
        out.mainCpuMs = run! / 1e6;
        out.mainWaitMs = wait! / 1e6;
      }
    } catch {
      // the thread ended
    }
  }
  return out;
}

const minus = (a: Sched, b: Sched): Sched => ({
  cpuMs: a.cpuMs - b.cpuMs, waitMs: a.waitMs - b.waitMs, mainCpuMs: a.mainCpuMs - b.mainCpuMs, mainWaitMs: a.mainWaitMs - b.mainWaitMs,
});

/** Log lines of a cost of waiting, beyond what scanLogs counts. */
function lateAndSlow(files: string[]): { late: number; maxLateMs: number; slowWrites: number; maxWriteMs: number } {
  const out = { late: 0, maxLateMs: 0, slowWrites: 0, maxWriteMs: 0 };
  for (const f of files) {
    const text = logText(f);
    for (const line of text.split('\n')) {
      if (line.includes('did not run on time')) {
        out.late++;
        out.maxLateMs = Math.max(out.maxLateMs, Number(/"lateMs":(\d+)/.exec(line)?.[1] ?? 0));
      } else if (line.includes('writing the log to disk was slow')) {
        out.slowWrites++;
        out.maxWriteMs = Math.max(out.maxWriteMs, Number(/"ms":(\d+)/.exec(line)?.[1] ?? 0));
      }
    }
  }
  return out;
}

interface Result {
  nice: number;
  wallMs: number;
  /** Per host over the cycles. */
  hosts: Record<string, Sched & { role: string }>;
  logs: LogCounts;
  late: number;
  maxLateMs: number;
  slowWrites: number;
  maxWriteMs: number;
}

let current: BenchCluster | undefined;
let failed = false;
onCleanup(() => current?.teardown({ keepLogs: failed, why: 'the bench failed' }) ?? Promise.resolve());

async function runLab(nice: number, index: number): Promise<Result> {
  const c = new BenchCluster({ name: `ch${process.pid % 10000}n${index}`, hosts: 5, managers: 3, subnet: `10.246.${index % 250}.0/24`, daemonArgs: ['--nice', String(nice)] });
  current = c;
  await c.start();
  const files = c.hosts.map((h) => c.lab.hostState(h).logFile);
  const leader = (await c.nodes('host1')).find((n) => n.ManagerStatus?.Leader)?.Description.Hostname ?? '?';
  const role = (h: string) => (h === leader ? 'leader' : c.managers.includes(h) ? 'manager' : 'worker');
  const control = new ControlDriver(c.lab.hostState('host1').socket);
  await sleep(1_000);
  const logs0 = scanLogs(files);
  const before = Object.fromEntries(c.hosts.map((h) => [h, schedOf(c.lab.hostState(h).pid!)]));
  const t0 = performance.now();
  for (let k = 1; k <= CYCLES; k++) {
    const name = `churn${k}`;
    await control.create(name, REPLICAS, c.image, ['sleep', '3600']);
    await pollContainers(c, c.hosts, byService(name), (n) => n.running === REPLICAS, { t0: performance.now(), timeoutMs: 180_000, what: `${REPLICAS} running` });
    await c.ok('host1', 'service', 'rm', name);
    await pollContainers(c, c.hosts, byService(name), (n) => n.all === 0, { t0: performance.now(), timeoutMs: 180_000, what: `${name} gone` });
    log(`  nice ${nice}: cycle ${k}/${CYCLES} done`);
  }
  const wallMs = performance.now() - t0;
  const hosts = Object.fromEntries(c.hosts.map((h) => [h, { ...minus(schedOf(c.lab.hostState(h).pid!), before[h]!), role: role(h) }]));
  control.close();
  await sleep(500); // the last lines reach the log files
  const result: Result = { nice, wallMs, hosts, logs: diffLogs(logs0, scanLogs(files)), ...lateAndSlow(files) };
  await c.teardown({ keepLogs: false, why: '' });
  current = undefined;
  return result;
}

async function main(): Promise<void> {
  const missing = benchPrerequisites();
  if (missing.length) throw new Error(`cannot run: ${missing.join('; ')}`);
  log(`${NICES.length} lab(s), shoald at nice ${NICES.join(', then ')}; ${CYCLES} cycle(s) of create ${REPLICAS} + rm each`);
  const results: Result[] = [];
  for (const [i, n] of NICES.entries()) {
    log(`lab ${i + 1}/${NICES.length}: shoald --nice ${n}`);
    results.push(await runLab(n, i));
  }
  const f = (ms: number) => (ms / 1000).toFixed(2);
  console.log(`\nchurn bench: 5 lab hosts (3 managers that run tasks + 2 workers); ${CYCLES} cycle(s) of \`service create\` ${REPLICAS} replicas until running, then \`service rm\` until gone.`);
  console.log('Per shoald, over the cycles: CPU time, and time runnable but waiting for a CPU (the kernel\'s schedstat), all threads and the main (event loop) thread.\n');
  const rows: string[][] = [];
  for (const r of results) {
    for (const [h, s] of Object.entries(r.hosts)) {
      rows.push([String(r.nice), `${h} (${s.role})`, f(s.cpuMs), f(s.waitMs), f(s.mainCpuMs), f(s.mainWaitMs), s.mainCpuMs > 0 ? (s.mainWaitMs / s.mainCpuMs).toFixed(2) : '-']);
    }
  }
  printTable(['nice', 'host', 'CPU s', 'waited s', 'main CPU s', 'main waited s', 'main waited per CPU s'], rows);
  console.log('');
  printTable(['nice', 'cycles wall s', 'leader timers late > period/2 (max ms)', 'slow raft writes >= 100 ms (max ms)', 'pre-candidacies', 'candidacies', 'new leaders', 'nodes marked down'],
    results.map((r) => [String(r.nice), f(r.wallMs), `${r.late} (${r.maxLateMs})`, `${r.slowWrites} (${r.maxWriteMs})`, String(r.logs.preCandidates), String(r.logs.candidates), String(r.logs.leaders), String(r.logs.markedDown)]));
  if (opts.json) printJson(results);
}

main().catch(async (e) => {
  failed = true;
  process.stderr.write(`churn bench failed: ${(e as Error).stack ?? e}\n`);
  await current?.teardown({ keepLogs: true, why: 'the bench failed' });
  process.exit(1);
});
