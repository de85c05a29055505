// The chaos soak: a seeded schedule of faults (shoalds, container runtimes and
// whole hosts SIGKILLed, links cut, the leader killed) lands on a 5-host lab while
// a replicated service is scaled up and down and a global service runs. Then
// everything is repaired and the cluster must settle where a user expects it:
//   - every manager holds the same spec, and its replica count is the last one
//     a `service scale` acknowledged (or one whose answer was lost), its env
//     the last one a rolling `service update` was acknowledged for (or lost);
//   - each host's containerd (or dockerd), asked directly, runs exactly the tasks shoal says
//     run, each on the node shoal put it on: one per slot, one global task per
//     node, no stopped or foreign container left behind; every web process
//     runs with the spec's env (read in /proc, not from shoal); and every task
//     shoal stopped says how it ended.
// SHOAL_CHAOS_SEED picks the schedule (default a fixed one, what CI runs;
// `random` for a new one each run, printed so that it replays);
// SHOAL_CHAOS_ROUNDS sets its length (default 12); SHOAL_CHAOS_RUNTIME=docker
// runs the hosts on dockerd instead of containerd (not in CI).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labRuntimePrerequisites, startServicesCluster, waitFor, type ServicesCluster } from './harness.js';
import { Scenario, allTotal, runningTotal, type TaskJson } from './scenario.js';
import { chaosSchedule, describeFault, type Fault } from './chaos.js';

const RUNTIME = chosenRuntime(process.env.SHOAL_CHAOS_RUNTIME);
const pre = labRuntimePrerequisites('chaos soak', { runtime: RUNTIME });
const DEFAULT_SEED = 20261205;
const SEED = chosenSeed(process.env.SHOAL_CHAOS_SEED);
const ROUNDS = Number(process.env.SHOAL_CHAOS_ROUNDS ?? 12);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`SHOAL_CHAOS_ROUNDS=${process.env.SHOAL_CHAOS_ROUNDS}: expected a positive integer`);

function chosenRuntime(text: string | undefined): 'containerd' | 'docker' {
  if (text === undefined || text === '' || text === 'containerd') return 'containerd';
  if (text === 'docker') return 'docker';
  throw new Error(`SHOAL_CHAOS_RUNTIME=${text}: expected containerd or docker`);
}

function chosenSeed(text: string | undefined): number {
  if (text === undefined || text === '') return DEFAULT_SEED;
  if (text === 'random') return Math.floor(Math.random() * 2 ** 31);
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`SHOAL_CHAOS_SEED=${text}: expected a non-negative integer or "random"`);
  return n;
}

interface SpecJson {
  Mode: { Replicated?: { Replicas: number } };
  TaskTemplate: { ContainerSpec: { Env?: string[] } };
}

// The schedule's own timing (how long a fault holds, the gap before the next): not a wait for a condition.
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(pre.skip)(`chaos soak (${RUNTIME}, seed ${SEED}, ${ROUNDS} rounds)`, () => {
  let c: ServicesCluster;
  let sc: Scenario;
  let failed = false;
  const log = (line: string) => console.log(`[chaos ${RUNTIME} seed ${SEED}] ${line}`);

  beforeAll(async () => {
    if (!pre.ok) throw new Error(`chaos soak cannot run: ${pre.problems.join('; ')}`);
    c = await startServicesCluster({ name: `ch${process.pid % 100000}`, subnet: '10.243.0.0/24', runtime: RUNTIME });
    sc = new Scenario(c);
  }, 300_000);

  afterAll(async () => {
    await c?.teardown({ keepLogs: failed, why: failed ? `chaos seed ${SEED} failed` : undefined });
  }, 120_000);

  it('settles after the faults: one spec everywhere, the last acknowledged scale, and the runtimes run exactly what shoal says', async () => {
    try {
      await soak();
    } catch (e) {
      failed = true;
      throw new Error(`chaos seed ${SEED} (replay: SHOAL_CHAOS_SEED=${SEED} SHOAL_CHAOS_ROUNDS=${ROUNDS} SHOAL_CHAOS_RUNTIME=${RUNTIME}): ${(e as Error).message}`);
    }
  }, 600_000 + ROUNDS * 30_000);

  async function soak(): Promise<void> {
    // Updates carry on past tasks the faults fail, as the restarts replace those with the new template.
    await c.ok('host1', 'service', 'create', '--detach', '--name', 'web', '--replicas', '6', '--env', 'MARK=r0', '--update-parallelism', '2',
      '--update-delay', '0s', '--update-failure-action', 'continue', '--init', c.image, 'sleep', '3600');
    await c.ok('host1', 'service', 'create', '--detach', '--name', 'everywhere', '--mode', 'global', '--init', c.image, 'sleep', '3600');
    await sc.waitContainers('web runs 6 before the faults', 'web', (p) => runningTotal(p) === 6, 60_000);

    // What the final replica count may be: the last acknowledged scale, or any whose answer was lost
    // (it may have been committed, even after later ones were acknowledged).
    let acked = 6;
    const unknown = new Set<number>();
    let ackedMark = 'r0';
    const unknownMarks = new Set<string>();
    const down = new Set<string>(); // hosts whose shoald is not running
    const drained = new Set<string>(); // nodes that may be drained (asked, and not yet surely active again)
    /** A command on a manager that answers (the first of the live ones from `k` on); its result. */
    const onLive = (k: number, args: string[]) => {
      const live = c.managers.filter((h) => !down.has(h));
      const on = live[k % live.length]!;
      return c.run(on, args, 15_000).then((res) => ({ ...res, on }));
    };
    const runtimeDown = new Set<string>(); // hosts whose container runtime is not running
    const daemonName = RUNTIME === 'docker' ? 'dockerd' : 'containerd';

    const apply = async (f: Fault): Promise<Fault> => {
      switch (f.kind) {
        case 'none':
          return f;
        case 'shoald':
          await c.lab.killDaemon(f.host);
          down.add(f.host);
          return f;
        case 'host':
          await c.killHost(f.host, { engine: true });
          down.add(f.host);
          runtimeDown.add(f.host);
          return f;
        case 'runtime':
          await c.killRuntime(f.host);
          runtimeDown.add(f.host);
          return f;
        case 'partition':
          await c.lab.partition(f.a, f.b);
          return f;
        case 'drain':
          drained.add(f.host);
          await onLive(0, ['node', 'update', '--availability', 'drain', f.host]);
          return f;
        case 'leader': {
          const leader = await sc.agreedLeader(20_000).catch(() => undefined);
          if (!leader) return { kind: 'none' };
          await c.lab.killDaemon(leader);
          down.add(leader);
          return { kind: 'shoald', host: leader };
        }
      }
    };
    const repair = async (f: Fault): Promise<void> => {
      switch (f.kind) {
        case 'none':
        case 'leader':
          return;
        case 'partition':
          await c.lab.heal(f.a, f.b);
          return;
        case 'drain':
          // Should this fail (the managers mid-election), the end makes it active.
          if ((await onLive(1, ['node', 'update', '--availability', 'active', f.host])).code === 0) drained.delete(f.host);
          return;
        case 'runtime':
          await c.startRuntime(f.host);
          runtimeDown.delete(f.host);
          return;
        case 'shoald':
        case 'host':
          if (runtimeDown.has(f.host)) {
            await c.startRuntime(f.host);
            runtimeDown.delete(f.host);
          }
          await c.lab.startDaemon(f.host);
          await c.waitDaemon(f.host);
          down.delete(f.host);
          return;
      }
    };

    const rounds = chaosSchedule({ seed: SEED, rounds: ROUNDS, hosts: c.hosts, managers: c.managers });
    let lingering: Fault | undefined;
    for (const [i, r] of rounds.entries()) {
      const f = await apply(r.fault);
      const asked: string[] = [];
      const said = (res: { code: number; stderr: string }) => (res.code === 0 ? 'acknowledged' : `failed (${(res.stderr.trim().split('\n').pop() ?? '').slice(0, 160)})`);
      for (const [k, n] of r.scales.entries()) {
        const res = await onLive(r.askOn[k]!, ['service', 'scale', '--detach', `web=${n}`]);
        if (res.code === 0) acked = n;
        else unknown.add(n);
        asked.push(`web=${n} on ${res.on}: ${said(res)}`);
      }
      if (r.updateOn !== undefined) {
        const mark = `r${i + 1}`;
        const res = await onLive(r.updateOn, ['service', 'update', '--detach', '--env-add', `MARK=${mark}`, 'web']);
        if (res.code === 0) ackedMark = mark;
        else unknownMarks.add(mark);
        asked.push(`update MARK=${mark} on ${res.on}: ${said(res)}`);
      }
      log(`round ${i + 1}/${rounds.length}: ${describeFault(f, daemonName)} for ${r.holdMs} ms${r.linger ? ' (left for the next round)' : ''}; ${asked.join('; ') || 'nothing asked'}`);
      await pause(r.holdMs);
      if (!r.linger) await repair(f);
      if (lingering) await repair(lingering);
      lingering = r.linger ? f : undefined;
      await pause(r.pauseMs);
    }

    // ---- repair everything, then the cluster must settle ----
    if (lingering) await repair(lingering);
    await c.lab.heal();
    for (const h of c.hosts) {
      if (runtimeDown.has(h)) await repair({ kind: 'runtime', host: h });
      if (down.has(h)) await repair({ kind: 'shoald', host: h });
    }
    log(`faults over: the last acknowledged scale was web=${acked}${unknown.size ? `; answers lost for web=${[...unknown].join(', ')}` : ''}` +
      `; the last acknowledged update MARK=${ackedMark}${unknownMarks.size ? `; answers lost for MARK=${[...unknownMarks].join(', ')}` : ''}`);
    for (const h of drained) {
      await waitFor(`${h} active again`, async () => ((await c.run('host1', ['node', 'update', '--availability', 'active', h], 15_000)).code === 0 ? true : undefined), 60_000, 500);
    }
    await c.waitNodes('5 nodes Ready and active under one leader', 'host1', (ns) => ns.length === 5 && ns.every((n) => n.Status.State === 'ready' && n.Spec.Availability === 'active')
      && ns.filter((n) => n.ManagerStatus?.Leader).length === 1, 90_000);

    // One spec on every manager.
    const specs = await waitFor('every manager to hold the same spec of web', async () => {
      const seen = await Promise.all(c.managers.map(async (h) => {
        const r = await c.run(h, ['service', 'inspect', 'web'], 10_000);
        if (r.code !== 0) return undefined;
        const s = (JSON.parse(r.stdout) as Array<{ Version: { Index: number }; Spec: SpecJson }>)[0]!;
        const mark = (s.Spec.TaskTemplate.ContainerSpec.Env ?? []).find((e) => e.startsWith('MARK='))?.slice('MARK='.length);
        return { version: s.Version.Index, replicas: s.Spec.Mode.Replicated?.Replicas, mark };
      }));
      return seen.every((s) => s && s.version === seen[0]!.version && s.replicas === seen[0]!.replicas) ? seen[0]! : undefined;
    }, 60_000, 300);
    const replicas = specs.replicas!;
    expect([acked, ...unknown]).toContain(replicas);
    expect([ackedMark, ...unknownMarks]).toContain(specs.mark);

    // The runtime on each host runs exactly what shoal says: web's slots once each, one global task per node.
    const nodes = await c.nodes('host1');
    const hostOf = new Map(nodes.map((n) => [n.ID, n.Description.Hostname]));
    await sc.waitContainers(`web settles at ${replicas}, none twice, none stopped`, 'web', (p) => runningTotal(p) === replicas && allTotal(p) === replicas, 180_000);
    await sc.waitContainers('one global task per host, none stopped', 'everywhere', (p) => Object.values(p).every((x) => x.running === 1 && x.all === 1), 120_000);
    const agreed = await waitFor(`shoal to report what ${daemonName} runs`, async () => {
      const [web, glob, all] = await Promise.all([sc.tasks('web'), sc.tasks('everywhere'), c.allContainers()]);
      const wanted = [...web, ...glob].filter((t) => t.DesiredState === 'running');
      const running = Object.entries(all).flatMap(([h, cs]) => cs.map((x) => ({ ...x, host: h })));
      const same = wanted.length === running.length && wanted.every((t) => t.Status.State === 'running' && running.some((x) => x.id === t.ID && x.state === 'running' && hostOf.get(t.NodeID ?? '') === x.host));
      return same ? { web: web.filter((t) => t.DesiredState === 'running'), glob: glob.filter((t) => t.DesiredState === 'running'), running } : undefined;
    }, 60_000, 300).catch(async (e: Error) => {
      const all = await c.allContainers();
      throw new Error(`${e.message}; ${daemonName}: ${JSON.stringify(Object.fromEntries(Object.entries(all).map(([h, cs]) => [h, cs.map((x) => `${x.labels['shoal.service.name']}:${x.id.slice(0, 8)}:${x.state}`)])))}`);
    });
    expect(agreed.web).toHaveLength(replicas);
    expect(new Set(agreed.web.map((t: TaskJson) => t.Slot)).size).toBe(replicas);
    expect(new Set(agreed.glob.map((t: TaskJson) => hostOf.get(t.NodeID ?? ''))).size).toBe(c.hosts.length);
    // Every web process runs the spec's template: the rolling updates reached every slot.
    await sc.waitEnv('web', 'MARK', replicas, specs.mark!, 60_000);
    // Nothing else: every container on the hosts belongs to one of those tasks.
    expect(agreed.running.every((x) => x.labels['shoal.service.name'] === 'web' || x.labels['shoal.service.name'] === 'everywhere')).toBe(true);
    // No task left half-way: each one shoal stopped (or replaced) reports an end, as `service ps` shows it.
    const ENDS = new Set(['complete', 'shutdown', 'failed', 'rejected', 'orphaned']);
    let byState: Record<string, number> = {};
    await waitFor('every task not wanted running to have ended', async () => {
      const ended = [...(await sc.tasks('web')), ...(await sc.tasks('everywhere'))].filter((t) => t.DesiredState !== 'running');
      byState = {};
      for (const t of ended) byState[`${t.DesiredState}/${t.Status.State}`] = (byState[`${t.DesiredState}/${t.Status.State}`] ?? 0) + 1;
      return ended.every((t) => ENDS.has(t.Status.State)) ? true : undefined;
    }, 60_000, 500).catch((e: Error) => {
      throw new Error(`${e.message}; desired/current: ${JSON.stringify(byState)}`);
    });
    log(`tasks not wanted running, desired/current: ${JSON.stringify(byState)}`);
    log(`settled: web ${replicas} running with MARK=${specs.mark} (version ${specs.version}), everywhere ${agreed.glob.length}`);
  }
});
