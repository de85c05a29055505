// `npm run bench:converge`: how fast shoal makes containers run, and how fast
// it recovers, against the runtime's own floor measured in the same run.
//
// Per repetition, a fresh lab (services harness): 5 hosts, 3 managers that also
// run tasks + 2 workers, each host with its own containerd and shoald, busybox
// preloaded. Then:
//   1. idle (once the bring-up's work has ended): each shoald's CPU over 5 s, memory of shoald and containerd per host (RSS, PSS);
//   2. the floor: the same busybox `sleep` containers with init, spread as
//      shoal spreads them (N/5 per host), created and started directly through
//      each host's containerd from this process, all hosts in parallel and all
//      of a host's containers at once (as shoald's agent runs them): 4 untimed
//      warm-up rounds (100 made, 90 stopped and removed, then the rest), 10;
//      then 50, +50 (to 100), -90 (stop + remove, to 10);
//   3. shoal's control API from this process in the same way (a warm client on
//      host1's local socket, the requests `service create/scale --detach`
//      send): the same 4 warm-up rounds (a service of 100, scaled to 10, removed), create 10; create 10 again through
//      the CLI (what its start adds); create 50, scale 50 -> 100, 100 -> 10;
//      "until" is judged from the hosts' containerds directly: listed (every
//      host in parallel, a round every ~250 ms) for which containers, and
//      timed by containerd's stamps on its start/exit/delete events;
//      memory again at 100 tasks (and the shims' and loggers' PSS);
//   4. SIGKILL host5's shoald and containerd (its shims, and so its containers,
//      live on): until the service's replicas run on the other 4 hosts; then
//      restart host5 until its stale containers are removed;
//   5. SIGKILL the leader's shoald: until `service scale` on another manager
//      succeeds; restart it.
// Each timed step, on either side, begins once the machine is quiet (its CPU at most 10 % busy
// over half a second): the last step's leftover work (containerd's garbage collection, late
// exits, log writers) would otherwise land on whichever step comes next.
// Throughout, elections ("became leader" lines in shoald's logs) and nodes
// seen not ready (ListNodes, every 250 ms) are counted: during create/scale
// any is spurious.
//
//   node dist/test/bench/converge/bench.js [--reps 3] [--quick] [--warmup 100] [--warmup-rounds 4] [--json] [--debug-logs] [--keep-logs] [--cpu-profile DIR] [--nice=N]
//
// --cpu-profile DIR: every shoald records a CPU profile, and each create/scale
// step gets its own file per host: DIR/rep<r>/<host>.<n>.cpuprofile (the step's
// n is printed; the others cover the time between steps).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { benchOptions, checkedOptions, intOption } from '../lib/args.js';
import { onCleanup } from '../lib/proc.js';
import { fmtRatio, printJson, printTable } from '../lib/table.js';
import type { NodeView, ServicesCluster } from '../../system/services/harness.js';
import { BenchCluster, benchPrerequisites } from './cluster.js';
import { breakdown, describe, readLines, type Breakdown } from './breakdown.js';
import { ControlDriver } from './control.js';
import { Floor, FLOOR_SERVICE, type FloorStep } from './floor.js';
import { clusterMem, cpuSeconds, cpuSince, cpuSnap, machineBusy, machineQuiet, type CpuUse, type HostMem } from './memory.js';
import { ContainerEvents } from './events.js';
import { NodeWatcher, byService, diffLogs, logEvents, matchingIds, pollContainers, scanLogs, sleep, type LogCounts, type LogEvent, type NotReady, type PollResult, type Spread } from './observe.js';

const USAGE = `usage: node dist/test/bench/converge/bench.js [options]   (as root; each repetition brings up its own lab)
  --reps N           repetitions; medians are printed (default 3, 1 with --quick)
  --quick            smaller steps (5/20/40/5 replicas) and 1 repetition: a smoke run
  --warmup N         containers each side makes, scales down to a tenth and removes per warm-up round (default: the scale-up size)
  --warmup-rounds R  warm-up rounds before the timed steps, each side (default 4; 1 was the rule before 2026-12-05)
  --json             also print the results as JSON
  --debug-logs       shoald at debug level; each step's milestones are printed
  --keep-logs        keep the labs' logs even when nothing failed
  --cpu-profile DIR  every shoald records CPU profiles, one file per step and host under DIR
  --nice=N           shoald's CPU priority (shoald --nice; default: shoald's own default)
  -h, --help         this text`;

const opts = benchOptions(USAGE, {
  reps: { type: 'string' }, quick: { type: 'boolean' }, warmup: { type: 'string' }, 'warmup-rounds': { type: 'string' }, json: { type: 'boolean' },
  'debug-logs': { type: 'boolean' }, 'keep-logs': { type: 'boolean' }, 'cpu-profile': { type: 'string' },
  nice: { type: 'string' },
});

const QUICK = !!opts.quick;
const DEBUG = !!opts['debug-logs'];
const PROFILE_DIR = opts['cpu-profile'] ?? '';
const REPS = checkedOptions(USAGE, () => intOption('reps', opts.reps, QUICK ? 1 : 3));
/** Replica counts: create small, create big, scale big -> up, scale up -> down (multiples of 5: N/5 per host). */
const N = QUICK ? { small: 5, big: 20, up: 40, down: 5 } : { small: 10, big: 50, up: 100, down: 10 };
const HOSTS = 5;
/** Containers each side makes per untimed warm-up round before its timed steps (a multiple of HOSTS). */
const WARMUP = Number(opts.warmup ?? N.up);
checkedOptions(USAGE, () => {
  if (!Number.isInteger(WARMUP / HOSTS) || WARMUP < HOSTS) throw new Error(`--warmup ${opts.warmup}: expected a multiple of ${HOSTS}, at least ${HOSTS}`);
});
/** What a warm-up round scales down to (a multiple of HOSTS, as the timed scale-down keeps a tenth). */
const WARMUP_KEEP = Math.max(HOSTS, Math.round(WARMUP / 10 / HOSTS) * HOSTS);
const WARMUP_ROUNDS = checkedOptions(USAGE, () => intOption('warmup-rounds', opts['warmup-rounds'], 4));
const VICTIM = 'host5';

const log = (line: string): void => void process.stderr.write(`[converge ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** The steps, in table order; `floor`: has a containerd-direct floor. */
const STEP = {
  createSmall: `create ${N.small} until running`,
  createSmallCli: `create ${N.small} through the CLI until running`,
  createBig: `create ${N.big} until running`,
  scaleUp: `scale ${N.big} -> ${N.up} until running`,
  scaleDownStopped: `scale ${N.up} -> ${N.down} until ${N.up - N.down} stopped`,
  scaleDown: `scale ${N.up} -> ${N.down} until ${N.up - N.down} gone`,
  workerDown: 'SIGKILL worker: node Down',
  workerTasks: 'SIGKILL worker: its tasks running elsewhere',
  workerStale: 'worker restarted: stale containers removed',
  leader: 'SIGKILL leader: new leader answers, scale succeeds',
  leaderRunning: 'SIGKILL leader: scaled replicas running on the live hosts',
} as const;
type StepKey = keyof typeof STEP;

interface Rep {
  rep: number;
  /** Load average before the lab and after the repetition; busy: the machine's CPU use (%) in the 2 s before the lab came up. */
  load: { start: string; end: string; busy: number };
  swarmUpMs: number;
  floor: Partial<Record<StepKey, number>>;
  floorApi: Partial<Record<StepKey, number>>;
  shoal: Partial<Record<StepKey, number>>;
  /** When the step's request (API call, or CLI command) returned (ms from the step's start). */
  callMs: Partial<Record<StepKey, number>>;
  /** Leader-kill: how many `service scale` attempts it took, and who leads after. */
  leaderKill?: { killed: string; askedOn: string; attempts: number; failures: string[]; newLeader: string };
  workerKill?: { victimHad: number; restartMs: number };
  logs: { createScale: LogCounts; workerKill?: LogCounts; leaderKill?: LogCounts };
  falseDowns: NotReady[];
  nodePolls: { ok: number; failed: number };
  memIdle: Record<string, HostMem>;
  mem100?: Record<string, HostMem>;
  /** CPU (% of one core) of the bench process and the containerds while polling at `up` tasks, vs not polling. */
  pollCost?: { benchPct: number; containerdPct: number; idleContainerdPct: number; roundMs: number };
  /** A trivial CLI command (`info`), median of 3 at idle: what starting the CLI costs. */
  cliBaselineMs: number;
  /** The create/scale steps' windows (epoch ms), and the raft/down lines logged in them when any election or down happened. */
  windows: { key: StepKey; from: number; to: number }[];
  anomalies: (LogEvent & { window: string; hostOfNode?: string })[];
  /** Steps whose time came from polling because some container had no containerd event (expected: none). */
  timedByPolling: string[];
  /** Idle (swarm ready, no tasks): each shoald's CPU, % of one core, over 5 s. */
  idleCpuPct: Record<string, number>;
  /** CPU seconds used during each create/scale step, by the floor's run and by shoal's. */
  cpu: Partial<Record<StepKey, { floor?: CpuUse; shoal?: CpuUse }>>;
  /** How long each side waited for the machine to be quiet before the step (ms), and whether it got there. */
  settle: Partial<Record<StepKey, { floor?: Settled; shoal?: Settled }>>;
  /** With --debug-logs: shoald's own milestones per step. */
  breakdown: Partial<Record<StepKey, Breakdown>>;
  error?: string;
}

interface Settled {
  ms: number;
  busyPct: number;
  quiet: boolean;
}

/** A timed step starts once the machine's CPU is at most this busy over one window (idle shoalds use ~5 % of the 2 cores). */
const QUIET = { busyPct: 10, windowMs: 500, timeoutMs: 30_000 };

// ---- the lab, torn down once (normal end, failure, or Ctrl-C) -------------------------------------

let current: { c: ServicesCluster; down?: Promise<void>; failed: boolean; keepLogs?: boolean } | undefined;
function teardown(): Promise<void> {
  const cur = current;
  if (!cur) return Promise.resolve();
  const why = cur.failed ? 'the bench failed' : cur.keepLogs ? 'an election or a node down during a step' : 'asked by --keep-logs';
  cur.down ??= cur.c.teardown({ keepLogs: cur.failed || !!cur.keepLogs || !!opts['keep-logs'], why });
  return cur.down;
}
onCleanup(teardown);

/** "; last start per host: host1 1.42, ..." from a step's events (where a slow step's time went). */
function perHostNote(p: PollResult): string {
  if (!Object.keys(p.perHostMs ?? {}).length) return '';
  const fmt = (v: Spread): string => [v.first, v.median, v.last].map((x) => (x / 1000).toFixed(2)).join('/');
  const spread = Object.entries(p.spread ?? {}).filter(([, v]) => v).map(([k, v]) => `${k}s ${fmt(v!)}`).join(', ');
  const gap = (name: string, g: Spread | undefined) => (g ? `${name} ${fmt(g)}` : '');
  const gaps = [gap('exit -> task delete', p.gaps?.exitToTaskDelete), gap('task delete -> container delete', p.gaps?.taskDeleteToDelete)].filter(Boolean).join(', ');
  const byHost = (ms: Record<string, number>): string => Object.keys(ms).sort().map((h) => `${h} ${(ms[h]! / 1000).toFixed(2)}`).join(', ');
  const exits = p.exitPerHostMs ? `; last exit per host (s): ${byHost(p.exitPerHostMs)}` : '';
  return `; last event per host (s): ${byHost(p.perHostMs!)}${exits}${spread ? `; first/median/last (s): ${spread}` : ''}` +
    `${gaps ? `; per container, shortest/median/longest (s): ${gaps}` : ''}`;
}

/** Which containers lacked an event, for the line that says a step was timed by polling. */
function noEventNote(p: PollResult): string {
  const n = p.noEvent;
  return n ? ` (${n.ids.length} of ${n.of} without one: ${n.ids.slice(0, 3).join(', ')}${n.ids.length > 3 ? ', ...' : ''})` : '';
}

const cliOk = async (c: ServicesCluster, host: string, ...args: string[]): Promise<string> => c.ok(host, ...args);

async function repetition(i: number, watcher: NodeWatcher): Promise<Rep> {
  const r: Rep = {
    rep: i + 1, load: { start: loadavg(), end: '', busy: await machineBusy(2_000) }, swarmUpMs: 0, floor: {}, floorApi: {}, shoal: {}, callMs: {},
    logs: { createScale: scanLogs([]) }, falseDowns: [], nodePolls: { ok: 0, failed: 0 }, memIdle: {}, cliBaselineMs: NaN, breakdown: {}, settle: {}, cpu: {}, idleCpuPct: {}, windows: [], anomalies: [], timedByPolling: [],
  };
  const name = `cv${process.pid % 10000}r${i}`;
  log(`repetition ${i + 1}/${REPS}: lab ${name} up (load ${r.load.start}; CPU ${r.load.busy.toFixed(0)} % busy before it)`);
  const c = new BenchCluster({
    name, hosts: HOSTS, managers: 3, subnet: `10.247.${i % 250}.0/24`,
    daemonArgs: [
      ...(DEBUG ? ['--log-level', 'debug'] : []),
      ...(PROFILE_DIR ? ['--cpu-profile', path.join(path.resolve(PROFILE_DIR), `rep${i + 1}`, '{host}')] : []),
      ...(opts.nice !== undefined ? ['--nice', opts.nice] : []),
    ],
  });
  let profiles = 0;
  /** Every shoald writes the profile recorded since the last mark (see shoald --cpu-profile). */
  const profileMark = async (): Promise<number> => {
    if (!PROFILE_DIR) return 0;
    for (const h of c.hosts) {
      const pid = c.lab.hostState(h).pid;
      if (pid) process.kill(pid, 'SIGUSR2');
    }
    profiles++;
    await sleep(300); // the daemons write them (a few MB each) before the step loads the machine
    return profiles;
  };
  // Registered before it comes up: Ctrl-C during the bring-up tears it down too.
  current = { c, failed: false };
  const sock = (h: string) => c.lab.hostState(h).socket;
  const logFiles = () => c.hosts.map((h) => c.lab.hostState(h).logFile);
  const explain = (key: StepKey, wall0: number) => {
    if (!DEBUG) return;
    const files = Object.fromEntries(c.hosts.map((h) => [h, c.lab.hostState(h).logFile]));
    r.breakdown[key] = breakdown(readLines(files, wall0 - 50, Date.now()), wall0);
    log(`    ${describe(r.breakdown[key]!)}`);
  };
  const all = c.hosts;
  /** Before a timed step, on either side: wait for the last step's work to end (not a fixed pause). */
  const settle = async (key: StepKey, side: 'floor' | 'shoal'): Promise<void> => {
    const s = await machineQuiet(QUIET.busyPct, QUIET.windowMs, QUIET.timeoutMs);
    (r.settle[key] ??= {})[side] = s;
    if (!s.quiet) log(`  ${side} ${STEP[key]}: the machine stayed ${s.busyPct.toFixed(0)} % busy for ${(s.ms / 1000).toFixed(1)} s before it; starting anyway`);
  };
  const timeout = (n: number) => 60_000 + n * 1_500;
  const events = new ContainerEvents(c, all);
  try {
    await c.start();
    await events.open();
    r.swarmUpMs = c.timings.swarmMs;
    log(`  lab up ${c.timings.labUpMs} ms, preload ${c.timings.preloadMs} ms, swarm ${c.timings.swarmMs} ms`);
    watcher.use(sock('host1'));
    // Idle means after the bring-up's own work (containerd's and shoald's start, the image preload) has ended.
    await machineQuiet(QUIET.busyPct, QUIET.windowMs, QUIET.timeoutMs);
    const idle0 = cpuSnap(c);
    await sleep(5_000);
    const idle = cpuSince(c, idle0);
    r.idleCpuPct = Object.fromEntries(Object.entries(idle.shoaldByHost).map(([h, s]) => [h, (100 * s) / idle.wall]));
    r.memIdle = clusterMem(c);
    const base: number[] = [];
    for (let k = 0; k < 3; k++) base.push((await c.run('host1', ['info', '--format', 'json'], 30_000)).ms);
    r.cliBaselineMs = median(base);

    // ---- the floor ----
    const floor = new Floor(c, String(i), events);
    const floorGone = () => pollContainers(c, all, byService(FLOOR_SERVICE), (n) => n.all === 0, { t0: performance.now(), timeoutMs: 120_000, what: 'floor containers gone' });
    const floorCpu = async <T>(key: StepKey, f: () => Promise<T>): Promise<T> => {
      const a = cpuSnap(c);
      const v = await f();
      (r.cpu[key] ??= {}).floor = cpuSince(c, a);
      return v;
    };
    // Untimed rounds first, for each side, each of WARMUP containers made, scaled down to a tenth,
    // then removed: the timed steps should find shoal's code compiled as in a shoald that has been
    // up a while. The floor's calls are made by one process (this one), shoal's by five fresh
    // shoalds, each compiling its code anew, and V8 keeps optimizing for many rounds: on a lab,
    // the shoalds' CPU per cycle of 10 -> 100 -> 10 fell from 3.2 CPU-s in the first to 2.1 in
    // the tenth, ~1 CPU-s of it idle (test/bench/README.md).
    for (let w = 1; w <= WARMUP_ROUNDS; w++) {
      log(`  floor: warm-up ${w}/${WARMUP_ROUNDS}: ${WARMUP}, -${WARMUP - WARMUP_KEEP}, rm`);
      await floor.add(WARMUP / HOSTS, timeout(WARMUP));
      await floor.remove((WARMUP - WARMUP_KEEP) / HOSTS, timeout(WARMUP));
      await floor.clear();
      await floorGone();
    }
    log(`  floor: ${N.small}`);
    const floorStep = async (key: StepKey, run: () => Promise<FloorStep>): Promise<FloorStep> => {
      await settle(key, 'floor');
      const v = await floorCpu(key, run);
      if (v.exact === false) r.timedByPolling.push(`floor ${STEP[key]}${noEventNote(v)}`);
      log(`  floor ${STEP[key]}: ${(v.ms / 1000).toFixed(2)} s${perHostNote(v)}`);
      return v;
    };
    let f = await floorStep('createSmall', () => floor.add(N.small / HOSTS, timeout(N.small)));
    r.floor.createSmall = f.ms;
    r.floorApi.createSmall = f.apiMs;
    await floor.clear();
    await floorGone();
    log(`  floor: ${N.big}, +${N.up - N.big}, -${N.up - N.down}`);
    f = await floorStep('createBig', () => floor.add(N.big / HOSTS, timeout(N.big)));
    r.floor.createBig = f.ms;
    r.floorApi.createBig = f.apiMs;
    f = await floorStep('scaleUp', () => floor.add((N.up - N.big) / HOSTS, timeout(N.up)));
    r.floor.scaleUp = f.ms;
    r.floorApi.scaleUp = f.apiMs;
    f = await floorStep('scaleDown', () => floor.remove((N.up - N.down) / HOSTS, timeout(N.up)));
    r.floor.scaleDown = f.ms;
    r.floor.scaleDownStopped = f.stoppedMs;
    r.floorApi.scaleDown = f.apiMs;
    await floor.clear();
    await floorGone();

    // ---- shoal: create and scale ----
    const logs0 = scanLogs(logFiles());
    const phase0 = Date.now();
    // Requests go from this process through a warm client, as the floor's containerd calls do;
    // one step goes through the CLI instead, to show what starting it adds.
    const control = new ControlDriver(sock('host1'));
    const step = async (key: StepKey, request: () => Promise<unknown>, done: (n: { running: number; all: number }) => boolean, what: string, svc: string, n: number) => {
      await profileMark();
      await settle(key, 'shoal');
      const before = await matchingIds(c, all, byService(svc));
      watcher.open(key);
      const wall0 = Date.now();
      const cpu0 = cpuSnap(c);
      const t0 = performance.now();
      const req = request().then(() => {
        r.callMs[key] = performance.now() - t0;
      });
      req.catch(() => undefined);
      const p = await pollContainers(c, all, byService(svc), done, {
        t0, timeoutMs: timeout(n), what,
        onRound: (x, ms) => {
          if (key === 'scaleDown' && r.shoal.scaleDownStopped === undefined && x.running <= N.down) r.shoal.scaleDownStopped = ms;
        },
        exact: { events, kind: key === 'scaleDown' ? 'delete' : 'start', before, sinceWall: wall0 },
      });
      if (key === 'scaleDown' && p.exact) r.shoal.scaleDownStopped = p.exitedMs;
      if (!p.exact) r.timedByPolling.push(`shoal ${STEP[key]}${noEventNote(p)}`);
      await req;
      (r.cpu[key] ??= {}).shoal = cpuSince(c, cpu0);
      r.windows.push({ key, from: wall0, to: Date.now() });
      r.shoal[key] = p.ms;
      watcher.close();
      log(`  ${STEP[key]}: ${(p.ms / 1000).toFixed(2)} s (the request returned after ${((r.callMs[key] ?? NaN) / 1000).toFixed(2)} s)${perHostNote(p)}`);
      const mark = await profileMark();
      if (mark) log(`    cpu profiles of this step: ${path.join(path.resolve(PROFILE_DIR), `rep${i + 1}`)}/<host>.${mark}.cpuprofile`);
      explain(key, wall0);
    };
    const svcSmall = `web${N.small}`;
    const sleepArgs = ['sleep', '3600'];
    /** Untimed: `service rm`, until containerd no longer lists its containers. */
    const removeService = async (name: string): Promise<void> => {
      await cliOk(c, 'host1', 'service', 'rm', name);
      await pollContainers(c, all, byService(name), (n) => n.all === 0, { t0: performance.now(), timeoutMs: 120_000, what: `${name} gone` });
    };
    for (let w = 1; w <= WARMUP_ROUNDS; w++) {
      const svc = `warmup${w}`;
      log(`  shoal: warm-up ${w}/${WARMUP_ROUNDS}: ${WARMUP}, -${WARMUP - WARMUP_KEEP}, rm`);
      await control.create(svc, WARMUP, c.image, sleepArgs);
      await pollContainers(c, all, byService(svc), (n) => n.running === WARMUP, { t0: performance.now(), timeoutMs: timeout(WARMUP), what: `warm-up ${WARMUP} running` });
      await control.scale(svc, WARMUP_KEEP);
      await pollContainers(c, all, byService(svc), (n) => n.all === WARMUP_KEEP, { t0: performance.now(), timeoutMs: timeout(WARMUP), what: `warm-up down to ${WARMUP_KEEP}` });
      await removeService(svc);
    }
    await step('createSmall', () => control.create(svcSmall, N.small, c.image, sleepArgs), (n) => n.running === N.small, `${N.small} running`, svcSmall, N.small);
    await removeService(svcSmall);
    const svcCli = `cli${N.small}`;
    r.floor.createSmallCli = r.floor.createSmall;
    await step('createSmallCli', () => cliOk(c, 'host1', 'service', 'create', '--detach', '--name', svcCli, '--replicas', String(N.small), '--init', c.image, ...sleepArgs),
      (n) => n.running === N.small, `${N.small} running`, svcCli, N.small);
    await removeService(svcCli);
    await step('createBig', () => control.create('web', N.big, c.image, sleepArgs), (n) => n.running === N.big, `${N.big} running`, 'web', N.big);
    await step('scaleUp', () => control.scale('web', N.up), (n) => n.running === N.up, `${N.up} running`, 'web', N.up);
    await machineQuiet(QUIET.busyPct, QUIET.windowMs, QUIET.timeoutMs); // memory at rest, not mid-start
    r.mem100 = clusterMem(c);
    r.pollCost = await pollCost(c);
    await step('scaleDown', () => control.scale('web', N.down), (n) => n.all === N.down && n.running === N.down,
      `${N.up - N.down} containers gone`, 'web', N.up);
    control.close();
    r.logs.createScale = diffLogs(logs0, scanLogs(logFiles()));
    const cs = r.logs.createScale;
    if (cs.leaders + cs.candidates + cs.preCandidates + cs.markedDown > 0) {
      // Spurious: keep the evidence (the lines, placed in their step; the logs themselves at teardown).
      const ids = Object.fromEntries((await c.nodes('host1').catch(() => [] as NodeView[])).map((n) => [n.ID, n.Description.Hostname]));
      const files = Object.fromEntries(c.hosts.map((h) => [h, c.lab.hostState(h).logFile]));
      for (const e of logEvents(files, phase0, Date.now())) {
        const w = r.windows.find((x) => e.time >= x.from && e.time <= x.to);
        const at = w ? `${STEP[w.key]} +${((e.time - w.from) / 1000).toFixed(2)} s` : 'between steps';
        r.anomalies.push({ ...e, window: at, ...(e.node ? { hostOfNode: ids[e.node] ?? '?' } : {}) });
      }
      if (current) current.keepLogs = true;
      log(`  spurious during create/scale: ${r.anomalies.map((a) => `${a.host} ${a.msg}${a.hostOfNode ? ` [${a.hostOfNode}]` : ''} @ ${a.window}`).join('; ')}`);
    }
    await sleep(2_000);

    // ---- SIGKILL a worker (shoald + containerd) ----
    const others = all.filter((h) => h !== VICTIM);
    const before = await pollContainers(c, all, byService('web'), () => true, { t0: performance.now(), timeoutMs: 10_000, what: 'a count' });
    const victimHad = before.last.perHost[VICTIM]?.running ?? 0;
    log(`  SIGKILL ${VICTIM} (shoald + containerd; it runs ${victimHad} of web's ${N.down})`);
    const logs1 = scanLogs(logFiles());
    watcher.open('workerKill', [VICTIM]);
    let wall0 = Date.now();
    let t0 = performance.now();
    await c.killHost(VICTIM);
    const moved = await pollContainers(c, others, byService('web'), (n) => n.running === N.down, { t0, timeoutMs: 120_000, what: `${N.down} web running on ${others.join(', ')}` });
    r.shoal.workerTasks = moved.ms;
    // Down is what moves the tasks: it has been seen by now, or will be within a poll or two.
    const deadline = performance.now() + 20_000;
    while (!watcher.firstDown.has(VICTIM) && performance.now() < deadline) await sleep(50);
    r.shoal.workerDown = watcher.firstDown.get(VICTIM) ?? NaN;
    log(`  ${STEP.workerDown}: ${((r.shoal.workerDown ?? NaN) / 1000).toFixed(2)} s; ${STEP.workerTasks}: ${(moved.ms / 1000).toFixed(2)} s`);
    explain('workerTasks', wall0);
    t0 = performance.now();
    await c.restartHost(VICTIM);
    const restartMs = performance.now() - t0;
    const stale = await pollContainers(c, [VICTIM], byService('web'), (n) => n.all === 0, { t0, timeoutMs: 120_000, what: `stale containers on ${VICTIM} removed` });
    r.shoal.workerStale = stale.ms;
    r.workerKill = { victimHad, restartMs };
    log(`  ${STEP.workerStale}: ${(stale.ms / 1000).toFixed(2)} s after the restart began (containerd + shoald up after ${(restartMs / 1000).toFixed(2)} s)`);
    await c.waitNodes(`${VICTIM} ready again`, 'host1', (ns) => ns.every((n) => n.Status.State === 'ready'), 60_000);
    watcher.close();
    r.logs.workerKill = diffLogs(logs1, scanLogs(logFiles()));
    await sleep(2_000);

    // ---- SIGKILL the leader's shoald ----
    const ls = await c.nodes('host1');
    const killed = ls.find((n) => n.ManagerStatus?.Leader)?.Description.Hostname;
    if (!killed) throw new Error(`no leader in node ls: ${JSON.stringify(ls.map((n) => [n.Description.Hostname, n.ManagerStatus]))}`);
    const askedOn = c.managers.find((h) => h !== killed)!;
    watcher.use(sock(askedOn));
    const target = N.down + 2;
    log(`  SIGKILL the leader's shoald (${killed}); scale web=${target} on ${askedOn}`);
    const logs2 = scanLogs(logFiles());
    watcher.open('leaderKill', [killed]);
    wall0 = Date.now();
    t0 = performance.now();
    await c.lab.killDaemon(killed);
    let attempts = 0;
    const failures: string[] = [];
    for (;;) {
      attempts++;
      const res = await c.run(askedOn, ['service', 'scale', '--detach', `web=${target}`], 5_000);
      if (res.code === 0) break;
      const why = (res.stderr.trim() || res.stdout.trim()).split('\n')[0] ?? '';
      failures.push(`${((performance.now() - t0) / 1000).toFixed(2)} s: ${res.code === 137 ? 'no answer within 5 s' : why}`);
      if (performance.now() - t0 > 120_000) throw new Error(`no scale succeeded within 120 s after killing the leader: ${failures.slice(-3).join('; ')}`);
      await sleep(100);
    }
    r.shoal.leader = performance.now() - t0;
    // The killed node's containers run on without their shoald, and once its node is marked down
    // their tasks run elsewhere too: count the live hosts (as the services system test does).
    const live = all.filter((h) => h !== killed);
    const running = await pollContainers(c, live, byService('web'), (n) => n.running === target, { t0, timeoutMs: 120_000, what: `${target} web running on ${live.join(', ')}` });
    r.shoal.leaderRunning = running.ms;
    const after = await c.nodes(askedOn);
    const newLeader = after.find((n) => n.ManagerStatus?.Leader)?.Description.Hostname ?? '?';
    r.leaderKill = { killed, askedOn, attempts, failures, newLeader };
    log(`  ${STEP.leader}: ${(r.shoal.leader / 1000).toFixed(2)} s (${attempts} attempt(s); new leader ${newLeader}); replicas running after ${(running.ms / 1000).toFixed(2)} s`);
    explain('leaderRunning', wall0);
    await c.lab.startDaemon(killed);
    await c.waitDaemon(killed);
    await c.waitNodes('every node ready after the leader restarted', askedOn, (ns: NodeView[]) => ns.length === HOSTS && ns.every((n) => n.Status.State === 'ready'), 60_000);
    watcher.close();
    r.logs.leaderKill = diffLogs(logs2, scanLogs(logFiles()));
  } catch (e) {
    if (current) current.failed = true;
    throw e;
  } finally {
    events.close();
    r.falseDowns = [...watcher.seen];
    watcher.seen.length = 0;
    r.nodePolls = { ok: watcher.polls, failed: watcher.failures };
    watcher.polls = watcher.failures = 0;
    r.load.end = loadavg();
    log(`  tearing the lab down (load ${r.load.end})`);
    await teardown();
    current = undefined;
  }
  return r;
}

/** What the ~100 ms containerd polling costs, measured at `up` tasks: 3 s without, 3 s with. */
async function pollCost(c: ServicesCluster): Promise<Rep['pollCost']> {
  const ctds = c.hosts.map((h) => c.containerd(h).pid);
  const ctdCpu = () => ctds.reduce<number>((n, p) => n + cpuSeconds(p), 0);
  const self = () => process.cpuUsage();
  let a = ctdCpu();
  let t = performance.now();
  await sleep(3_000);
  const idleContainerdPct = ((ctdCpu() - a) / ((performance.now() - t) / 1000)) * 100;
  a = ctdCpu();
  const s0 = self();
  t = performance.now();
  const p = await pollContainers(c, c.hosts, byService('web'), () => performance.now() - t > 3_000, { t0: t, timeoutMs: 10_000, what: '3 s of polling' });
  const secs = (performance.now() - t) / 1000;
  const s1 = process.cpuUsage(s0);
  return {
    benchPct: ((s1.user + s1.system) / 1e6 / secs) * 100,
    containerdPct: ((ctdCpu() - a) / secs) * 100,
    idleContainerdPct,
    roundMs: (secs * 1000) / p.rounds,
  };
}

// ---- the tables ---------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const sec = (ms: number): string => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '-');
const mib = (kib: number): string => (Number.isFinite(kib) ? (kib / 1024).toFixed(1) : '-');

const SWARM: Partial<Record<StepKey, string>> = QUICK ? {} : {
  createSmall: '1.98 s', createBig: '11.3 s (floor ~10.2 s)', scaleUp: '10.7 s', scaleDown: '8.6 s',
  workerDown: '14.1 s', workerTasks: '21.1 s', leader: '14.7 s (10.5-16.2)',
};

/** Target text and test: ratio is the median of per-repetition shoal/floor; limitMs: an absolute target. */
const TARGET: Partial<Record<StepKey, { text: string; met: (ms: number, ratio: number) => boolean; limitMs?: number }>> = {
  createSmall: { text: '<= 1.10x floor', met: (_, q) => q <= 1.1 },
  createBig: { text: '<= 1.10x floor', met: (_, q) => q <= 1.1 },
  scaleUp: { text: '<= 1.10x floor', met: (_, q) => q <= 1.1 },
  scaleDown: { text: '<= 3 s and 1.10x floor', met: (ms, q) => ms <= 3_000 && q <= 1.1, limitMs: 3_000 },
  workerTasks: { text: '<= 7 s', met: (ms) => ms <= 7_000 },
  leader: { text: '<= 3 s', met: (ms) => ms <= 3_000 },
};

function report(reps: Rep[], failed: Rep[], startLoad: string, startBusy: number): void {
  const ok = reps;
  const rows: string[][] = [];
  for (const key of Object.keys(STEP) as StepKey[]) {
    const xs = ok.map((r) => r.shoal[key] ?? NaN).filter(Number.isFinite);
    const fs = ok.map((r) => r.floor[key] ?? NaN).filter(Number.isFinite);
    const ratios = ok.map((r) => (r.shoal[key] ?? NaN) / (r.floor[key] ?? NaN)).filter(Number.isFinite);
    const m = median(xs);
    const q = median(ratios);
    const t = TARGET[key];
    rows.push([
      STEP[key],
      fs.length ? sec(median(fs)) : '-',
      xs.length ? `${sec(m)} (${(Math.min(...xs) / 1000).toFixed(2)}-${(Math.max(...xs) / 1000).toFixed(2)})` : '-',
      ratios.length ? `${fmtRatio(q, 1)}${ratios.length > 1 ? ` (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})` : ''}` : '-',
      SWARM[key] ?? '',
      t?.text ?? '',
      t && xs.length ? (t.met(m, fs.length ? q : 0) ? 'yes' : 'no') : '',
    ]);
  }
  const sum = (f: (r: Rep) => number) => ok.reduce((n, r) => n + f(r), 0);
  const falseIn = (r: Rep, w: (s: string) => boolean) => r.falseDowns.filter((d) => w(d.window)).length;
  const createScale = (w: string) => ['createSmall', 'createSmallCli', 'createBig', 'scaleUp', 'scaleDown'].includes(w);
  const elections = sum((r) => r.logs.createScale.leaders);
  const attempts = sum((r) => r.logs.createScale.preCandidates + r.logs.createScale.candidates);
  const downs = sum((r) => falseIn(r, createScale) + r.logs.createScale.markedDown);
  rows.push(['elections during create/scale (all reps)', '', `${elections} (${attempts} pre-/candidacies)`, '', '', '0', elections === 0 ? 'yes' : 'no']);
  rows.push(['nodes seen not ready during create/scale', '', `${sum((r) => falseIn(r, createScale))} seen, ${sum((r) => r.logs.createScale.markedDown)} marked down`, '', '', '0', downs === 0 ? 'yes' : 'no']);
  const lk = ok.filter((r) => r.logs.leaderKill);
  rows.push(['elections per leader kill', '', lk.map((r) => `${r.logs.leaderKill!.leaders} (term +${r.logs.leaderKill!.maxTerm})`).join(', ') || '-', '', '', '1', lk.length && lk.every((r) => r.logs.leaderKill!.leaders === 1) ? 'yes' : 'no']);
  const otherDowns = sum((r) => falseIn(r, (w) => w === 'workerKill' || w === 'leaderKill'));
  rows.push(['other nodes seen not ready during the kills', '', String(otherDowns), '', '', '0', otherDowns === 0 ? 'yes' : 'no']);

  console.log(`\nconverge bench: ${HOSTS} lab hosts (3 managers that run tasks + 2 workers), a containerd and a shoald each, busybox \`sleep 3600\` with --init;`);
  console.log(`${ok.length} repetition(s)${failed.length ? ` (+${failed.length} failed)` : ''}, a fresh lab each; medians (min-max). Machine before the run: load average ${startLoad}, CPU ${startBusy.toFixed(0)} % busy;`);
  console.log(`CPU busy in the 2 s before each repetition's lab: ${ok.map((r) => `${r.load.busy.toFixed(0)} %`).join(', ')}; load average before/after each: ${ok.map((r) => `${r.load.start} / ${r.load.end}`).join('; ')}`);
  console.log('(the load average climbs to 50+ during a repetition from the bench\'s own container starts and stops, and decays slowly: CPU busy is the better sign of others\' work).');
  if (DEBUG) console.log('(--debug-logs: shoald logged at debug level, which costs time itself; use these runs for the breakdown, not the figures)');
  printTable(['step', { header: 'floor (containerd direct)', align: 'right' }, { header: `shoal median (min-max of ${ok.length})`, align: 'right' },
    { header: 'shoal/floor (min-max)', align: 'right' }, { header: 'Swarm (brief)', align: 'right' }, { header: 'target', align: 'right' }, { header: 'met?', align: 'right' }], rows);
  for (const key of Object.keys(TARGET) as StepKey[]) {
    const lim = TARGET[key]!.limitMs;
    const f = median(ok.map((r) => r.floor[key] ?? NaN));
    if (lim !== undefined && f > lim) console.log(`note: ${STEP[key]}: containerd alone (the floor) takes ${sec(f)}, more than the ${sec(lim)} target: no orchestrator on top of it can meet it here.`);
  }
  console.log('"until running"/"gone": judged from the hosts\' containerds directly: which containers count from listing them (all hosts in parallel, a round');
  console.log('every ~250 ms), when from containerd\'s own stamps on its events (the last /tasks/start of the new ones, the last /containers/delete, or');
  console.log('/tasks/exit for "stopped", of the ones gone), so times run from the request to that event, not to the round that noticed.');
  const polled = ok.flatMap((r) => r.timedByPolling.map((s) => `rep ${r.rep} ${s}`));
  console.log(polled.length ? `Timed by the poll round instead (some container had no event): ${polled.join('; ')}.` : 'Every step was timed by the events.');
  console.log('Requests go as the floor\'s do: from this process through a warm client, here on host1\'s local socket');
  console.log('(the CLI\'s channel), the requests `service create/scale --detach` send. "through the CLI" starts the CLI instead (Node.js starts in ~0.07 s here,');
  console.log('the CLI answers `info` in ~0.1 s), against the same floor. shoal/floor is the median of each repetition\'s ratio. Floor: create+start');
  console.log('(or stop+remove) through containerd directly, N/5 per host, hosts in parallel, all of a host\'s containers at once (as shoald\'s agent).');
  console.log(`Each side first runs ${WARMUP_ROUNDS} untimed warm-up round(s) of ${WARMUP} containers made, scaled down to ${WARMUP_KEEP}, then removed (the floor's calls are made by this one process, shoal's by five fresh shoalds that keep optimizing their code for many rounds).`);
  const called = (k: StepKey) => median(ok.map((r) => r.callMs[k] ?? NaN));
  console.log(`The request returned after (median): ${(['createSmall', 'createSmallCli', 'createBig', 'scaleUp', 'scaleDown'] as StepKey[]).map((k) => `${STEP[k].split(' until')[0]} ${sec(called(k))}`).join(', ')}.`);
  console.log(`A trivial CLI command (\`shoal info\`) takes ${sec(median(ok.map((r) => r.cliBaselineMs)))} (median, idle cluster): the CLI's own start and one RPC.`);
  const waited = (k: StepKey, side: 'floor' | 'shoal') => median(ok.map((r) => r.settle[k]?.[side]?.ms ?? NaN));
  const loud = ok.flatMap((r) => Object.entries(r.settle).flatMap(([k, v]) => (['floor', 'shoal'] as const).filter((sd) => v?.[sd] && !v[sd]!.quiet).map((sd) => `rep ${r.rep} ${sd} ${STEP[k as StepKey]}`)));
  console.log(`Each timed step began once the machine was quiet (CPU <= ${QUIET.busyPct} % busy over ${QUIET.windowMs} ms); waited (median, floor/shoal): ` +
    `${(['createSmall', 'createBig', 'scaleUp', 'scaleDown'] as StepKey[]).map((k) => `${STEP[k].split(' until')[0]} ${sec(waited(k, 'floor'))}/${sec(waited(k, 'shoal'))}`).join(', ')}` +
    `${loud.length ? `; never quiet within ${QUIET.timeoutMs / 1000} s: ${loud.join(', ')}` : ''}.`);
  const api = (k: StepKey) => median(ok.map((r) => r.floorApi[k] ?? NaN));
  console.log(`Floor: every containerd call returned after (median): ${(['createSmall', 'createBig', 'scaleUp', 'scaleDown'] as StepKey[]).map((k) => `${STEP[k].split(' until')[0]} ${sec(api(k))}`).join(', ')}.`);
  const pc = ok.map((r) => r.pollCost).filter((x) => x !== undefined);
  if (pc.length) {
    console.log(`Polling cost at ${N.up} tasks (median): a round takes ${median(pc.map((p) => p.roundMs)).toFixed(0)} ms; bench process ${median(pc.map((p) => p.benchPct)).toFixed(0)} % of a core, ` +
      `the 5 containerds ${median(pc.map((p) => p.containerdPct)).toFixed(0)} % while polled vs ${median(pc.map((p) => p.idleContainerdPct)).toFixed(0)} % not polled (same for floor and shoal).`);
  }
  for (const r of ok) {
    if (r.leaderKill) {
      const l = r.leaderKill;
      console.log(`rep ${r.rep}: killed leader ${l.killed}, asked ${l.askedOn}, ${l.attempts} attempt(s), new leader ${l.newLeader}${l.failures.length ? `; failed attempts: ${l.failures.join(' | ')}` : ''}`);
    }
    if (r.workerKill) console.log(`rep ${r.rep}: ${VICTIM} ran ${r.workerKill.victimHad} task(s) when killed; its restart (containerd + shoald answering) took ${sec(r.workerKill.restartMs)}`);
    for (const d of r.falseDowns) console.log(`rep ${r.rep}: ${d.host} seen ${d.state} during ${d.window} at ${sec(d.atMs)}${d.message ? ` (${d.message})` : ''}`);
    const lc = (n: string, x?: LogCounts) => x ? `${n}: ${x.leaders} leader(s), ${x.preCandidates} pre-candidacies, ${x.candidates} candidacies, ${x.markedDown} marked down` : '';
    console.log(`rep ${r.rep} logs: ${[lc('create/scale', r.logs.createScale), lc('worker kill', r.logs.workerKill), lc('leader kill', r.logs.leaderKill)].filter(Boolean).join('; ')}; ListNodes polls ${r.nodePolls.ok} ok, ${r.nodePolls.failed} failed`);
  }
  for (const r of ok) {
    for (const a of r.anomalies) console.log(`rep ${r.rep} spurious: ${new Date(a.time).toISOString().slice(11, 23)} ${a.host}: ${a.msg}${a.hostOfNode ? ` [node ${a.hostOfNode}]` : ''} (${a.window})`);
    for (const [k, b] of Object.entries(r.breakdown)) console.log(`rep ${r.rep} ${STEP[k as StepKey]} (shoald debug lines, s after the step began): ${describe(b!)}`);
  }
  for (const r of failed) console.log(`rep ${r.rep} FAILED: ${r.error}`);
  cpuReport(ok);
  memoryReport(ok);
}

function cpuReport(reps: Rep[]): void {
  const keys = (['createSmall', 'createBig', 'scaleUp', 'scaleDown'] as StepKey[]).filter((k) => reps.some((r) => r.cpu[k]));
  if (!keys.length) return;
  const m = (k: StepKey, side: 'floor' | 'shoal', f: (u: CpuUse) => number) => median(reps.map((r) => (r.cpu[k]?.[side] ? f(r.cpu[k]![side]!) : NaN)));
  const cs = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
  const rows = keys.map((k) => [
    STEP[k].split(' until')[0]!,
    cs(m(k, 'floor', (u) => u.wall)), cs(m(k, 'floor', (u) => u.machine)), cs(m(k, 'floor', (u) => u.containerd)), cs(m(k, 'floor', (u) => u.bench)),
    cs(m(k, 'shoal', (u) => u.wall)), cs(m(k, 'shoal', (u) => u.machine)), cs(m(k, 'shoal', (u) => u.shoald)), cs(m(k, 'shoal', (u) => u.shoaldMain)), cs(m(k, 'shoal', (u) => u.containerd)), cs(m(k, 'shoal', (u) => u.bench)),
  ]);
  console.log(`\nCPU seconds during each step (medians; the machine has 2 cores, so busy CPU-s <= 2 x wall s): machine = all processes and the kernel`);
  console.log('(runc, shims, loggers, mounts and cgroups included); bench = this process (the containerd poller; the floor\'s containerd client too);');
  console.log('main thread = the shoalds\' JavaScript threads (the rest of shoalds is V8\'s helper threads, garbage collection and compiling, and the libuv pool).');
  printTable(['step', { header: 'floor wall', align: 'right' }, { header: 'machine', align: 'right' }, { header: 'containerds', align: 'right' }, { header: 'bench', align: 'right' },
    { header: 'shoal wall', align: 'right' }, { header: 'machine', align: 'right' }, { header: 'shoalds', align: 'right' }, { header: 'main thread', align: 'right' }, { header: 'containerds', align: 'right' }, { header: 'bench', align: 'right' }], rows);
  // Who in shoald: the workers' shoalds run only the agent; host1 leads (swarm init there; no election during these steps unless counted above); host2/3 follow.
  const per = (k: StepKey, hosts: string[]) => median(reps.map((r) => hosts.reduce((n, h) => n + (r.cpu[k]?.shoal?.shoaldByHost[h] ?? NaN), 0)));
  const tasks: Partial<Record<StepKey, number>> = { createSmall: N.small, createBig: N.big, scaleUp: N.up - N.big, scaleDown: N.up - N.down };
  console.log('shoald CPU by host (s, medians): ' + keys.map((k) => {
    const n = tasks[k]!;
    const agentMs = (per(k, ['host4', 'host5']) / ((2 * n) / HOSTS)) * 1000;
    return `${STEP[k].split(' until')[0]}: leader host1 ${cs(per(k, ['host1']))}, followers host2+3 ${cs(per(k, ['host2', 'host3']))}, workers host4+5 ${cs(per(k, ['host4', 'host5']))} (agent only: ${agentMs.toFixed(0)} ms per task)`;
  }).join('; ') + '.');
  const idle = (h: string) => median(reps.map((r) => r.idleCpuPct[h] ?? NaN));
  console.log(`shoald CPU at idle (swarm ready, no tasks; % of one core, medians): ${Object.keys(reps[0]?.idleCpuPct ?? {}).map((h) => `${h} ${idle(h).toFixed(1)}`).join(', ')}` +
    ` (together ${Object.keys(reps[0]?.idleCpuPct ?? {}).reduce((n, h) => n + idle(h), 0).toFixed(1)} %: on saturated cores, time taken from container starts in every step).`);
}

function memoryReport(reps: Rep[]): void {
  const hosts = Object.keys(reps[0]?.memIdle ?? {});
  if (!hosts.length) return;
  type Pick = (m: HostMem) => number;
  const med = (which: 'memIdle' | 'mem100', host: string, f: Pick) => median(reps.map((r) => (r[which]?.[host] ? f(r[which]![host]!) : NaN)));
  const total = (which: 'memIdle' | 'mem100', f: Pick) => median(reps.map((r) => (r[which] ? Object.values(r[which]!).reduce((n, m) => n + f(m), 0) : NaN)));
  const cols: [string, 'memIdle' | 'mem100', Pick][] = [
    ['shoald RSS idle', 'memIdle', (m) => m.shoald?.rssKiB ?? NaN],
    ['shoald PSS idle', 'memIdle', (m) => m.shoald?.pssKiB ?? NaN],
    ['containerd RSS idle', 'memIdle', (m) => m.containerd?.rssKiB ?? NaN],
    ['containerd PSS idle', 'memIdle', (m) => m.containerd?.pssKiB ?? NaN],
    [`shoald RSS @${N.up}`, 'mem100', (m) => m.shoald?.rssKiB ?? NaN],
    [`shoald PSS @${N.up}`, 'mem100', (m) => m.shoald?.pssKiB ?? NaN],
    [`containerd RSS @${N.up}`, 'mem100', (m) => m.containerd?.rssKiB ?? NaN],
    [`containerd PSS @${N.up}`, 'mem100', (m) => m.containerd?.pssKiB ?? NaN],
    [`shims PSS @${N.up}`, 'mem100', (m) => m.shims.pssKiB],
    [`loggers PSS @${N.up}`, 'mem100', (m) => m.loggers.pssKiB],
  ];
  const role = (h: string) => (['host1', 'host2', 'host3'].includes(h) ? 'manager' : 'worker');
  const rows = hosts.map((h) => [`${h} (${role(h)})`, ...cols.map(([, w, f]) => mib(med(w, h, f)))]);
  rows.push(['all 5', ...cols.map(([, w, f]) => mib(total(w, f)))]);
  console.log(`\nmemory (MiB, medians of ${reps.length}): idle = swarm ready, no tasks; @${N.up} = ${N.up} tasks running (${N.up / HOSTS} per host)`);
  printTable(['host', ...cols.map(([h]) => ({ header: h, align: 'right' as const }))], rows);
  const count = (f: (m: HostMem) => number) => median(reps.map((r) => (r.mem100 ? Object.values(r.mem100).reduce((n, m) => n + f(m), 0) : NaN)));
  const maxIdle = Math.max(...hosts.map((h) => med('memIdle', h, (m) => m.shoald?.rssKiB ?? NaN)));
  const pss100 = total('mem100', (m) => (m.shoald?.pssKiB ?? 0) + (m.containerd?.pssKiB ?? 0) + m.shims.pssKiB);
  console.log(`shims: ${count((m) => m.shims.count)} containerd-shim-runc-v2 processes; loggers: ${count((m) => m.loggers.count)} processes (shoal's binary:// log pipeline, sh + 2 mawk per container); ` +
    `containers' own processes (tini + sleep): ${mib(total('mem100', (m) => m.containers.pssKiB))} MiB PSS.`);
  console.log(`shoald idle RSS, largest host: ${mib(maxIdle)} MiB (target < 80 MiB: ${maxIdle < 80 * 1024 ? 'met' : 'NOT met'}; Swarm: dockerd 81-110 MiB RSS + containerd 37 MiB per node).`);
  console.log(`cluster of 5 at ${N.up} tasks, PSS of shoald + containerd + shims: ${mib(pss100)} MiB (+ loggers ${mib(total('mem100', (m) => m.loggers.pssKiB))} MiB)` +
    `${QUICK ? '' : '; Swarm ~710 MiB (dockerd 359, containerd 96, shims 253)'}.`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:converge needs root (network namespaces, containerd): run it as root, or with sudo');
  const problems = benchPrerequisites();
  if (problems.length) throw new Error(problems.join('; '));
  const startLoad = loadavg();
  const startBusy = await machineBusy(3_000);
  log(`${REPS} repetition(s)${QUICK ? ' (quick)' : ''}; sizes ${JSON.stringify(N)}; shoald --nice ${opts.nice ?? '(its default)'}; load average ${startLoad}; CPU ${startBusy.toFixed(0)} % busy`);
  const watcher = new NodeWatcher(250);
  watcher.start();
  const reps: Rep[] = [];
  const failed: Rep[] = [];
  try {
    for (let i = 0; i < REPS; i++) {
      try {
        reps.push(await repetition(i, watcher));
      } catch (e) {
        const msg = (e as Error).message;
        log(`repetition ${i + 1} failed: ${msg}`);
        failed.push({ rep: i + 1, error: msg } as Rep);
      }
    }
  } finally {
    await watcher.stop();
  }
  if (reps.length === 0) throw new Error(`every repetition failed: ${failed.map((f) => f.error).join(' | ')}`);
  report(reps, failed, startLoad, startBusy);
  if (opts.json) printJson({ sizes: N, reps, failed });
}

main().then(() => process.exit(0), async (e) => {
  console.error(`bench:converge: ${(e as Error).message}`);
  await teardown();
  process.exit(1);
});
