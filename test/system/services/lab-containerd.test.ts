// Lab hosts with their own containerd (a lab sidecar): each containerd runs in
// its host's network namespace but the machine's mount namespace, takes a
// preloaded image, runs busybox containers through ContainerdRuntime on its
// socket independently of the other host's (same container id, different
// containerd namespaces), keeps them across its own restart, and `down`
// leaves nothing: no containers, shims, mounts, runc state or cgroups. The
// daemon is the lab's stand-in (no build needed). Needs root and the runtime
// packages (apt-installed when missing); skips without them, fails under CI=true.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../../deploy/lab/lab.js';
import { CONTAINERD_PROC, containerdLabOptions, hostContainerd, mountsUnder, shimPids } from '../../../deploy/lab/containerd.js';
import { BUSYBOX_IMAGE, busyboxTarball, preloadImage, waitContainerd } from '../../../deploy/lab/images.js';
import { procInfo } from '../../../deploy/lab/sys.js';
import { ContainerdRuntime } from '../../../worker/runtime/containerd/runtime.js';
import { labRuntimePrerequisites, waitFor } from './harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const standin = path.resolve(here, '../lab/standin-daemon.mjs');
const pre = labRuntimePrerequisites('lab containerd tests', { needBuild: false });
const HOSTS = ['host1', 'host2'];

const dead = (pid: number): boolean => {
  const p = procInfo(pid);
  return !p || p.zombie;
};

/** Pids whose command line mentions dir (shims name their containerd's socket, loggers their files). */
function pidsMentioning(dir: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent) || Number(ent) === process.pid) continue;
    const p = procInfo(Number(ent));
    if (p && !p.zombie && p.cmdline.some((a) => a.includes(dir))) out.push(Number(ent));
  }
  return out;
}

describe.skipIf(pre.skip)('lab hosts with their own containerd', () => {
  const logs: string[] = [];
  let base = '';
  let lab: Lab;
  const rts: Record<string, ContainerdRuntime> = {};
  const rt = (h: string): ContainerdRuntime => rts[h]!;
  // shoald's convention (cli/shoald/daemon.ts), which the lab's cleanup knows.
  const cgroupParent = (h: string): string => `/shoal/${hostContainerd(lab, h).namespace}`;

  beforeAll(async () => {
    if (!pre.ok) throw new Error(`prerequisites missing: ${pre.problems.join('; ')}`);
    base = mkdtempSync('/tmp/shoal-lab-containerd-');
    lab = new Lab({
      name: `k${process.pid}`,
      hosts: HOSTS.length,
      subnet: '10.233.40.0/24',
      baseDir: base,
      ...containerdLabOptions({ daemonCmd: `{node} ${standin} --listen {ip}:4377` }),
      log: (l) => logs.push(l),
    });
    await lab.up();
    for (const h of HOSTS) {
      const c = hostContainerd(lab, h);
      rts[h] = new ContainerdRuntime({ socket: c.socket, namespace: c.namespace, cgroupParent: cgroupParent(h), stateDir: path.join(lab.hostState(h).hostDir, 'rt') });
    }
  }, 120_000);

  afterAll(async () => {
    for (const r of Object.values(rts)) r.close();
    if (lab?.exists()) await lab.down({ purge: true, killStragglers: true }).catch((e: Error) => console.error(`down: ${e.message}`));
    if (base) rmSync(base, { recursive: true, force: true });
  }, 60_000);

  it('runs one containerd per host: in the host netns, in our mount namespace, serving its own socket and config', async () => {
    const pids = HOSTS.map((h) => hostContainerd(lab, h).pid);
    expect(pids.every((p) => typeof p === 'number')).toBe(true);
    expect(new Set(pids).size).toBe(HOSTS.length);
    const status = lab.status();
    expect(status.procNames).toEqual([CONTAINERD_PROC, 'daemon']);
    for (const [i, h] of HOSTS.entries()) {
      const c = hostContainerd(lab, h);
      const pid = pids[i]!;
      expect(procInfo(pid)!.cmdline).toEqual(['containerd', '--config', c.paths.config]);
      expect(readlinkSync(`/proc/${pid}/ns/net`)).toBe(`net:[${statSync(`/run/netns/${lab.hostNetns(h)}`).ino}]`);
      expect(readlinkSync(`/proc/${pid}/ns/mnt`)).toBe(readlinkSync('/proc/self/ns/mnt'));
      const config = readFileSync(c.paths.config, 'utf8');
      expect(config).toContain(`root = "${c.paths.root}"`);
      expect(config).toContain(`state = "${c.paths.state}"`);
      expect(config).toContain(`address = "${c.socket}"`);
      expect(config).toMatch(/disabled_plugins = \[[^\]]*"io\.containerd\.grpc\.v1\.cri"/);
      expect(c.namespace).toBe(`${lab.name}-${h}`);
      expect(await waitContainerd(lab, h)).toMatch(/^1\.\d+/);
      // The daemon got the containerd flags of its own host.
      const daemonArgv = procInfo(lab.hostState(h).pid!)!.cmdline;
      expect(daemonArgv.join(' ')).toContain(`--containerd-socket ${c.socket} --containerd-namespace ${c.namespace}`);
      expect(status.hosts[i]!.procs[CONTAINERD_PROC]).toEqual({ pid, alive: true });
    }
  });

  it('preloads busybox into each host and runs the same container id on both, independently', async () => {
    const tar = busyboxTarball();
    const loaded = await Promise.all(HOSTS.map((h) => preloadImage(lab, h, tar)));
    for (const l of loaded) expect(l.map((i) => i.name)).toEqual([BUSYBOX_IMAGE]);
    expect(loaded[0]![0]!.digest).toBe(loaded[1]![0]!.digest);
    // Each host's image is in its own namespace only.
    const other = new ContainerdRuntime({ socket: hostContainerd(lab, 'host1').socket, namespace: hostContainerd(lab, 'host2').namespace });
    try {
      expect(await other.listImages()).toEqual([]);
    } finally {
      other.close();
    }

    for (const h of HOSTS) {
      await rt(h).create({
        id: 'smoke',
        image: BUSYBOX_IMAGE,
        args: ['sh', '-c', 'echo "hello from $WHO"; exec sleep 1000'],
        env: [`WHO=${h}`],
        init: true,
        logPath: path.join(lab.hostState(h).hostDir, 'smoke.log'),
        labels: { 'test.host': h },
      });
      await rt(h).start('smoke');
    }
    for (const h of HOSTS) {
      await waitFor(`the container on ${h} to log`, () => (readFileSync(path.join(lab.hostState(h).hostDir, 'smoke.log'), 'utf8').includes(`hello from ${h}`) ? true : undefined), 20_000);
      const list = await rt(h).list();
      expect(list.map((c) => [c.id, c.state, c.labels['test.host']])).toEqual([['smoke', 'running', h]]);
      // runc put it under the host's own cgroup parent.
      expect(readFileSync(`/proc/${list[0]!.pid}/cgroup`, 'utf8')).toContain(`${cgroupParent(h)}/smoke`);
    }
    const [p1, p2] = await Promise.all(HOSTS.map(async (h) => (await rt(h).inspect('smoke'))!.pid));
    expect(p1).not.toBe(p2);

    // Stopping host1's container leaves host2's alone.
    expect(await rt('host1').stop('smoke', { graceMs: 2_000 })).toBe(143);
    expect((await rt('host1').inspect('smoke'))!.state).toBe('exited');
    expect(await rt('host2').inspect('smoke')).toMatchObject({ state: 'running', pid: p2 });
    await rt('host1').start('smoke');
    expect((await rt('host1').inspect('smoke'))!.state).toBe('running');

    // A containerd restart keeps the host's containers (their shims live on).
    const before = (await rt('host2').inspect('smoke'))!.pid;
    const oldPid = hostContainerd(lab, 'host2').pid!;
    await lab.restartDaemon('host2', CONTAINERD_PROC);
    expect(hostContainerd(lab, 'host2').pid).not.toBe(oldPid);
    await waitContainerd(lab, 'host2');
    expect(await waitFor('host2 to list its container again', async () => (await rt('host2').inspect('smoke').catch(() => undefined)) ?? undefined, 20_000))
      .toMatchObject({ state: 'running', pid: before });
  });

  it('down kills the daemons before the containerds and leaves no container, shim, mount, runc state or cgroup', async () => {
    const containerPids = await Promise.all(HOSTS.map(async (h) => (await rt(h).inspect('smoke'))!.pid));
    const shims = HOSTS.flatMap((h) => shimPids(hostContainerd(lab, h).socket));
    const daemons = HOSTS.map((h) => lab.hostState(h).pid!);
    const containerds = HOSTS.map((h) => hostContainerd(lab, h).pid!);
    const namespaces = HOSTS.map((h) => hostContainerd(lab, h).namespace);
    const parents = HOSTS.map(cgroupParent);
    expect(containerPids.every((p) => p > 0)).toBe(true);
    expect(shims.length).toBeGreaterThanOrEqual(HOSTS.length);
    expect(mountsUnder(lab.labDir).length).toBeGreaterThanOrEqual(HOSTS.length); // the containers' rootfs
    for (const p of parents) expect(existsSync(`/sys/fs/cgroup/memory${p}/smoke`)).toBe(true);
    // One host's container is removed before down (as shoald removes its tasks' containers):
    // runc leaves its parent cgroup behind, with nothing left that names it.
    const tidy = HOSTS[HOSTS.length - 1]!;
    await rt(tidy).remove('smoke');
    expect(existsSync(`/sys/fs/cgroup/memory${cgroupParent(tidy)}/smoke`)).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/memory${cgroupParent(tidy)}`)).toBe(true);
    for (const r of Object.values(rts)) r.close();

    logs.length = 0;
    await lab.down({ purge: true }); // no --kill-stragglers: the containerd cleanup alone must do

    const lastDaemonKill = Math.max(...HOSTS.map((h) => logs.findIndex((l) => l.startsWith(`killing daemon on ${h}`))));
    const firstContainerdKill = Math.min(...HOSTS.map((h) => logs.findIndex((l) => l.startsWith(`killing containerd on ${h}`))));
    expect(lastDaemonKill).toBeGreaterThanOrEqual(0);
    expect(firstContainerdKill).toBeGreaterThan(lastDaemonKill);
    expect(logs.filter((l) => l.includes('processes still in'))).toEqual([]);

    for (const pid of [...containerPids, ...shims, ...daemons, ...containerds]) expect(dead(pid), `pid ${pid}`).toBe(true);
    expect(pidsMentioning(lab.labDir)).toEqual([]);
    expect(mountsUnder(lab.labDir)).toEqual([]);
    expect(existsSync(lab.labDir)).toBe(false);
    for (const ns of namespaces) expect(existsSync(`/run/containerd/runc/${ns}`)).toBe(false);
    for (const p of parents) expect(existsSync(`/sys/fs/cgroup/memory${p}`)).toBe(false);
    const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(netns).not.toContain(`${lab.name}-`);
  });
});
