// The core services scenario on the Docker runtime: a lab of 3 hosts (1
// manager that also runs tasks, 2 workers), each with its own dockerd (a lab
// sidecar, deploy/lab/docker.ts) and its own shoald started with --runtime
// docker, driven through the `shoal` CLI. What shoal says is checked against
// what each host's dockerd says, queried directly; at the end `down` must
// leave nothing of the engines behind.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCKERD_PROC, dockerPaths, hostDocker, shimSocket } from '../../../deploy/lab/docker.js';
import { mountsUnder } from '../../../deploy/lab/containerd.js';
import { procInfo } from '../../../deploy/lab/sys.js';
import { labRuntimePrerequisites, startServicesCluster, waitFor, type ServicesCluster } from './harness.js';
import { Scenario, allTotal, runningTotal } from './scenario.js';

const pre = labRuntimePrerequisites('docker services system tests', { runtime: 'docker' });


const readdirSafe = (p: string): string[] => {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
};

/** Live pids whose command line mentions dir (dockerd, its containerd, the shims name their paths). */
function pidsMentioning(dir: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent) || Number(ent) === process.pid) continue;
    const p = procInfo(Number(ent));
    if (p && !p.zombie && p.cmdline.some((a) => a.includes(dir))) out.push(Number(ent));
  }
  return out;
}

describe.skipIf(pre.skip)('services on a 3-host lab with dockerd', () => {
  let c: ServicesCluster;
  let sc: Scenario;
  let failed = false;
  const timings: Record<string, number> = {};
  const labLog: string[] = [];
  let sleepCmd: string[];





  beforeAll(async () => {
    if (!pre.ok) throw new Error(`docker services system tests cannot run: ${pre.problems.join('; ')}`);
    const t0 = Date.now();
    c = await startServicesCluster({
      name: `dk${process.pid % 100000}`, subnet: '10.242.0.0/24', hosts: 3, managers: 1, runtime: 'docker', log: (l) => labLog.push(l),
    });
    timings.clusterUp = Date.now() - t0;
    sc = new Scenario(c);
    Object.assign(timings, c.timings);
    sleepCmd = ['sh', '-c', 'echo "hello from $(hostname)"; exec sleep 3600'];
  }, 300_000);

  afterAll(async () => {
    console.log(`docker services system test timings (ms): ${JSON.stringify(timings)}`);
    await c?.teardown({ keepLogs: failed });
  }, 120_000);

  const step = (name: string, fn: () => Promise<void>, timeoutMs = 180_000) => it(name, async () => {
    try {
      await fn();
    } catch (e) {
      failed = true;
      throw e;
    }
  }, timeoutMs);

  step('each host runs shoald on its own dockerd and containerd, all under its host dir', async () => {
    expect(c.runtimeKind).toBe('docker');
    for (const h of c.hosts) {
      const d = hostDocker(c.lab, h);
      expect(d.pid).not.toBeNull();
      const argv = procInfo(d.pid!)!.cmdline;
      expect(argv).toContain(`unix://${d.socket}`);
      expect(argv).toContain(d.cgroupParent);
      // dockerd's own containerd, serving from the host's exec root.
      const ctd = Number(readFileSync(d.paths.containerdPidFile, 'utf8').trim());
      expect(procInfo(ctd)?.cmdline).toEqual(expect.arrayContaining(['--config', d.paths.containerdConfig]));
      expect(readFileSync(d.paths.containerdConfig, 'utf8')).toContain(`address = "${d.paths.containerdSocket}"`);
      const shoald = procInfo(c.lab.hostState(h).pid!)!.cmdline;
      expect(shoald.join(' ')).toContain(`--runtime docker --docker-socket ${d.socket}`);
      // busybox was loaded into this host's engine.
      expect((await (await c.dockerRuntime(h)).ensureImage(c.image)).name).toBe(c.image);
    }
  });

  step('6 replicas: 2 containers on each host, checked in each host\'s dockerd', async () => {
    const t0 = Date.now();
    const out = await c.ok('host1', 'service', 'create', '--name', 'web', '--replicas', '6', '--init', c.image, ...sleepCmd);
    timings.create6 = Date.now() - t0;
    expect(out).toMatch(/converged/);
    const per = await sc.waitContainers('6 running containers of web', 'web', (p) => runningTotal(p) === 6);
    expect(Object.values(per).map((x) => x.running)).toEqual([2, 2, 2]);
    // shoal's view agrees with the engines'.
    const ts = (await sc.tasks('web')).filter((t) => t.DesiredState === 'running');
    expect(ts).toHaveLength(6);
    expect(ts.every((t) => t.Status.State === 'running')).toBe(true);
    const hosts = await sc.nodeNames();
    for (const t of ts) {
      const h = hosts[t.NodeID!]!;
      const mine = (await c.containersOn(h)).find((x) => x.id === t.ID);
      expect(mine?.state).toBe('running');
      expect(mine?.pid).toBeGreaterThan(0);
      // Each task's container lives in its own host's engine only.
      for (const other of c.hosts.filter((x) => x !== h)) expect((await c.containersOn(other)).some((x) => x.id === t.ID)).toBe(false);
    }
    expect(await c.ok('host1', 'service', 'ls')).toMatch(/web\s+replicated\s+6\/6/);
  });

  step('`service logs` shows the output of its tasks, each line once', async () => {
    const out = await waitFor('6 lines of output', async () => {
      const r = await c.ok('host1', 'service', 'logs', 'web');
      return (r.match(/hello from /g) ?? []).length >= 6 ? r : undefined;
    }, 30_000, 300);
    expect(out).toMatch(/^web\.\d\.\w+@host\d+\s+\| hello from \w+/m);
    expect(new Set(out.match(/^web\.\d\.\w+@host\d/gm)).size).toBe(6);
    // Only shoald copies each engine log into the task's: nothing twice.
    expect((await c.ok('host1', 'service', 'logs', 'web')).match(/hello from /g)).toHaveLength(6);
    const one = (await sc.tasks('web'))[0]!;
    expect(await c.ok('host1', 'service', 'logs', '--raw', one.ID)).toMatch(/hello from/);
  });

  step('scale 6 -> 12 -> 2: the engines follow, extra containers are removed', async () => {
    let t0 = Date.now();
    await c.ok('host1', 'service', 'scale', 'web=12');
    timings.scale6to12 = Date.now() - t0;
    const per = await sc.waitContainers('12 running', 'web', (p) => runningTotal(p) === 12);
    expect(Object.values(per).map((x) => x.running)).toEqual([4, 4, 4]);
    t0 = Date.now();
    await c.ok('host1', 'service', 'scale', 'web=2');
    await sc.waitContainers('2 left, the rest removed', 'web', (p) => runningTotal(p) === 2 && allTotal(p) === 2);
    timings.scale12to2 = Date.now() - t0;
    expect((await sc.tasks('web')).filter((t) => t.DesiredState === 'running')).toHaveLength(2);
    await waitFor('only slots 1-2 listed', async () => ((await sc.tasks('web')).every((t) => (t.Slot ?? 0) <= 2) ? true : undefined), 30_000, 300);
  });

  step('service update (start-first) replaces both tasks, the new env in their processes; rollback goes back', async () => {
    const before = await sc.envOf('web', 'MARK');
    expect(Object.values(before)).toEqual(['', '']);
    const out = await c.ok('host1', 'service', 'update', '--env-add', 'MARK=d2', '--update-order', 'start-first', '--update-monitor', '1s', 'web');
    expect(out).toMatch(/verify: Service converged\n$/);
    const after = await sc.waitEnv('web', 'MARK', 2, 'd2');
    expect(Object.keys(after).some((id) => id in before)).toBe(false);
    expect(await c.ok('host1', 'service', 'rollback', 'web')).toMatch(/verify: Service converged\n$/);
    await sc.waitEnv('web', 'MARK', 2, '');
    await sc.waitContainers('2 in all', 'web', (p) => runningTotal(p) === 2 && allTotal(p) === 2, 30_000);
  });

  step('a container exiting 1 restarts per policy and stops after max attempts', async () => {
    await sc.restartPolicyGivesUp();
  });

  step("SIGKILL the workers' shoalds (host3: dockerd too): their tasks run elsewhere; restarted, their stale containers are removed", async () => {
    await c.ok('host1', 'service', 'scale', 'web=6');
    const before = await sc.waitContainers('6 running, 2 per host', 'web', (p) => Object.values(p).every((x) => x.running === 2 && x.all === 2));
    expect(runningTotal(before)).toBe(6);
    const t0 = Date.now();
    // host2 loses only shoald (its engine keeps the containers); host3 loses shoald and dockerd
    // (with --live-restore the shims keep its containers running).
    const oldEngine = hostDocker(c.lab, 'host3').pid!;
    await c.killHost('host2');
    await c.killHost('host3', { engine: true });
    expect(c.lab.procPid('host2', DOCKERD_PROC)).not.toBeNull();
    expect(c.lab.procPid('host3', DOCKERD_PROC)).toBeNull();
    // All 6 run on host1 now, as its dockerd reports.
    await sc.waitContainers('6 running on host1', 'web', (p) => p.host1!.running === 6, 60_000, ['host1']);
    timings.workersDeadToTasksElsewhere = Date.now() - t0;
    // Meanwhile the victims' old containers still run: nothing but their agents may remove them.
    expect((await sc.containersOf('web', ['host2'])).host2!.running).toBe(2);
    await c.restartHost('host2');
    await c.restartHost('host3');
    expect(c.lab.procPid('host3', DOCKERD_PROC)).not.toBe(oldEngine);
    const t1 = Date.now();
    await sc.waitContainers('stale containers on host2 and host3 removed', 'web', (p) => p.host2!.all === 0 && p.host3!.all === 0, 60_000);
    timings.restartToStaleRemoved = Date.now() - t1;
    const per = await sc.containersOf('web');
    expect(per.host1).toEqual({ running: 6, all: 6 });
    expect((await sc.tasks('web')).filter((t) => t.DesiredState === 'running' && t.Status.State === 'running')).toHaveLength(6);
    await c.waitNodes('all nodes Ready again', 'host1', (ns) => ns.length === 3 && ns.every((n) => n.Status.State === 'ready'), 30_000);
  });

  step('`service rm` removes every container', async () => {
    const t0 = Date.now();
    await c.ok('host1', 'service', 'rm', 'web');
    await sc.waitContainers('no web container on any host', 'web', (p) => allTotal(p) === 0, 60_000);
    timings.rm = Date.now() - t0;
    expect((await c.allContainers())).toEqual({ host1: [], host2: [], host3: [] });
  });

  step('down leaves nothing of the engines: no processes, containers, mounts, shim sockets or cgroups', async () => {
    await c.ok('host1', 'service', 'create', '--name', 'last', '--replicas', '3', '--init', c.image, 'sleep', '3600');
    await sc.waitContainers('3 running', 'last', (p) => runningTotal(p) === 3);
    const shimSockets: string[] = [];
    for (const h of c.hosts) {
      const d = hostDocker(c.lab, h);
      const tasksDir = path.join(d.paths.tasks, c.lab.hostNetns(h));
      for (const id of readdirSafe(tasksDir)) shimSockets.push(shimSocket(d.paths.containerdSocket, c.lab.hostNetns(h), id));
    }
    expect(shimSockets).toHaveLength(3);
    // The shims serve where shimSocket() says (so down removes the right files).
    for (const s of shimSockets) expect(readdirSync(path.dirname(s))).toContain(path.basename(s));
    const hostDirs = c.hosts.map((h) => c.lab.hostState(h).hostDir);
    const cgroupParents = c.hosts.map((h) => hostDocker(c.lab, h).cgroupParent);
    expect(cgroupParents.filter((cg) => readdirSafe(`/sys/fs/cgroup/pids${cg}`).length > 0)).toHaveLength(3);
    // One engine dies first, so down also meets shims whose dockerd is gone.
    await c.lab.killDaemon('host2', DOCKERD_PROC);
    const t0 = Date.now();
    const logFrom = labLog.length;
    // No killStragglers: what the engines leave must be ended by down itself.
    await c.lab.down();
    timings.down = Date.now() - t0;
    expect(labLog.slice(logFrom).filter((l) => /warning/.test(l))).toEqual([]);
    expect(labLog.slice(logFrom).filter((l) => /removing container/.test(l))).toHaveLength(3);
    for (const dir of hostDirs) {
      expect(pidsMentioning(dockerPaths(dir).dir)).toEqual([]);
      expect(mountsUnder(dir)).toEqual([]);
    }
    for (const s of shimSockets) expect(readdirSync(path.dirname(s))).not.toContain(path.basename(s));
    for (const cg of cgroupParents) {
      for (const h of readdirSync('/sys/fs/cgroup')) expect(readdirSafe(path.join('/sys/fs/cgroup', h)), `${h}${cg}`).not.toContain(cg.slice(1));
    }
  });
});
