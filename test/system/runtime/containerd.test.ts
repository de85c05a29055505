// The containerd adapter against a real, private containerd (1.6 + runc) with
// the busybox test image. Needs root, containerd, runc, busybox-static and
// tini (installed with apt-get when missing): without them the suite skips,
// and fails under CI=true.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ContainerdRuntime } from '../../../worker/runtime/containerd/runtime.js';
import { ContainerNotFoundError, ImageNotFoundError, shortLayerId, type ContainerSpec, type PullProgress } from '../../../worker/runtime/runtime.js';
import { buildBusyboxImage, writeImage } from '../../../deploy/images/busybox.js';
import { RegistryPuller } from '../../../worker/runtime/registry.js';
import { RegistryAuthFile } from '../../../worker/runtime/registryauth.js';
import { ContainerdClient, M } from '../../../worker/runtime/containerd/client.js';
import { containerd } from '../../../proto/gen/containerd.js';
import { sha256 } from '../../../worker/runtime/oci.js';
import { PrivateContainerd, prepareRuntimePrerequisites, waitFor } from './containerd-harness.js';
import { LocalRegistry } from './registry-harness.js';
import { removeImageInUse } from './image-removal.js';

const inCI = process.env.CI === 'true';
const problems = prepareRuntimePrerequisites();
if (problems.length && !inCI) console.log(`skipping containerd runtime system tests: ${problems.join('; ')}`);

const IMAGE = 'shoal.local/busybox:1';
const ev = containerd.services.events.v1;

/** The logger writes `<UTC time, seconds> <stdout|stderr> <text>` per line: check that, and give the lines. */
const LOG_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (stdout|stderr) (.*)$/;
function logLines(path: string): { stream: string; text: string }[] {
  const raw = readFileSync(path, 'utf8');
  if (raw && !raw.endsWith('\n')) throw new Error(`${path}: partial last line`);
  return raw.split('\n').slice(0, -1).map((l) => {
    const m = LOG_LINE.exec(l);
    if (!m) throw new Error(`${path}: not a log line: ${JSON.stringify(l)}`);
    // The logger stamps lines as they come: within the test's minutes, in UTC.
    if (Math.abs(Date.parse(m[1]!) - Date.now()) > 300_000) throw new Error(`${path}: time ${m[1]} is off`);
    return { stream: m[2]!, text: m[3]! };
  });
}
/** The log's text without the stamps, one line each (stdout and stderr interleaved as they came). */
const logText = (path: string): string => logLines(path).map((l) => `${l.text}\n`).join('');

describe.skipIf(problems.length > 0 && !inCI)('containerd runtime (private containerd)', () => {
  let dir: string;
  let daemon: PrivateContainerd;
  let rt: ContainerdRuntime;
  const cgroupParent = `/shoal-test-${process.pid}`;
  // runc keeps its state under /run/containerd/runc/<namespace> whatever containerd's --state:
  // a namespace of our own keeps clear of any other containerd on this machine.
  const namespace = `shoal-test-${process.pid}`;
  const created: string[] = [];

  const spec = (id: string, extra: Partial<ContainerSpec>): ContainerSpec => {
    created.push(id);
    return { id, image: IMAGE, logPath: join(dir, 'logs', `${id}.log`), ...extra };
  };

  beforeAll(async () => {
    if (problems.length) throw new Error(`prerequisites missing: ${problems.join('; ')}`);
    dir = mkdtempSync(join(tmpdir(), 'shoal-rt-'));
    daemon = new PrivateContainerd(dir);
    await daemon.start();
    rt = new ContainerdRuntime({ socket: daemon.socket, namespace, cgroupParent, stateDir: join(dir, 'rt-state') });
  }, 120_000);

  afterAll(async () => {
    if (rt) {
      for (const id of created) await rt.remove(id).catch(() => undefined);
      rt.close();
    }
    await daemon?.destroy();
    // The parent cgroups runc made, and runc's state dir of our namespace.
    for (const h of readdirSync('/sys/fs/cgroup')) {
      try {
        rmdirSync(`/sys/fs/cgroup/${h}${cgroupParent}`);
      } catch {
        // not there or not a hierarchy
      }
    }
    try {
      rmdirSync(`/run/containerd/runc/${namespace}`);
    } catch {
      // never made
    }
  }, 60_000);

  it('answers and loads the busybox OCI tarball (idempotently)', async () => {
    expect(await rt.ping()).toMatch(/\d+\.\d+/);
    const img = buildBusyboxImage({ name: IMAGE });
    const tarPath = join(dir, 'busybox.tar');
    writeImage(img, tarPath);
    const steps: PullProgress[] = [];
    const loaded = await rt.loadImage(tarPath, undefined, { onProgress: (p) => steps.push(p) });
    expect(loaded).toEqual([{ name: IMAGE, digest: img.manifest.digest }]);
    // `image load`'s display: each layer loaded with its byte counts (or found there already).
    for (const l of img.layers) {
      const mine = steps.filter((p) => p.id === shortLayerId(l.digest));
      const last = mine.at(-1);
      if (last?.status === 'Already exists') continue;
      expect(mine[0]).toEqual({ id: shortLayerId(l.digest), status: 'Loading layer', current: 0, total: l.size });
      expect(last).toEqual({ id: shortLayerId(l.digest), status: 'Load complete', current: l.size, total: l.size });
    }
    const again: PullProgress[] = [];
    expect(await rt.loadImage(tarPath, undefined, { onProgress: (p) => again.push(p) })).toEqual(loaded);
    expect(again).toEqual(img.layers.map((l) => ({ id: shortLayerId(l.digest), status: 'Already exists' })));
    expect(await rt.ensureImage(IMAGE)).toEqual({ name: IMAGE, digest: img.manifest.digest });
    const listed = await rt.listImages();
    // Its size: config and layers as stored.
    expect(listed).toContainEqual({ name: IMAGE, digest: img.manifest.digest, size: img.config.size + img.layers.reduce((n, l) => n + l.size, 0) });
    expect(listed.map((i) => i.name)).toEqual([...listed.map((i) => i.name)].sort((a, b) => a.localeCompare(b)));
  });

  it('garbage collection keeps the loaded image (labels) and drops what nothing references', async () => {
    const img = await rt.images.find(IMAGE);
    const orphan = Buffer.from(`orphan ${process.pid}`);
    const orphanDesc = { mediaType: 'application/octet-stream', digest: sha256(orphan), size: orphan.length };
    await rt.client.call(M.leaseCreate, { id: 'gc-probe' });
    await rt.images.writeBlob(orphanDesc, (async function* () { yield orphan; })(), 'gc-probe');
    expect(await rt.images.hasBlob(orphanDesc.digest)).toBe(true);
    // Deleting a lease with sync runs a collection before it answers.
    await rt.client.call(M.leaseDelete, { id: 'gc-probe', sync: true });
    expect(await rt.images.hasBlob(orphanDesc.digest)).toBe(false);
    for (const d of [img.manifestDigest, img.configDigest, ...img.manifest.layers.map((l) => l.digest)]) expect(await rt.images.hasBlob(d)).toBe(true);
    expect(await rt.images.hasSnapshot(img.chain[img.chain.length - 1]!)).toBe(true);
  });

  it('runs a container that echoes and exits 0; its output is in the log file', async () => {
    const s = spec('echo-1', { command: ['sh', '-c', 'echo hello from shoal; echo to stderr >&2'] });
    const t0 = performance.now();
    await rt.create(s);
    const tCreated = performance.now();
    const pid = await rt.start('echo-1');
    const tStarted = performance.now();
    console.log(`container start: create ${(tCreated - t0).toFixed(0)} ms + start ${(tStarted - tCreated).toFixed(0)} ms`);
    expect(pid).toBeGreaterThan(0);
    expect(await rt.wait('echo-1')).toBe(0);
    // The logger (a child of the shim) appends as the output comes; the tail may land just after the exit.
    const log = await waitFor('both lines in the log', () => (logLines(s.logPath).length >= 2 ? logLines(s.logPath) : undefined));
    expect(log.sort((a, b) => a.stream.localeCompare(b.stream))).toEqual([
      { stream: 'stderr', text: 'to stderr' },
      { stream: 'stdout', text: 'hello from shoal' },
    ]);
    const info = await rt.inspect('echo-1');
    expect(info).toMatchObject({ state: 'exited', exitCode: 0, image: IMAGE });
  });

  it('start latency: create, start, exit and remove of `true`, three times in a row', async () => {
    const rows: number[][] = [];
    for (let i = 0; i < 3; i++) {
      const id = `lat-${i}`;
      const t0 = performance.now();
      await rt.create(spec(id, { command: ['true'] }));
      const t1 = performance.now();
      await rt.start(id);
      const t2 = performance.now();
      expect(await rt.wait(id)).toBe(0);
      const t3 = performance.now();
      await rt.remove(id);
      rows.push([t1 - t0, t2 - t1, t3 - t2, performance.now() - t3]);
    }
    const median = (k: number): string => rows.map((r) => r[k]!).sort((a, b) => a - b)[1]!.toFixed(0);
    console.log(`container latency (median of 3, ms): create ${median(0)}, start ${median(1)}, run to exit ${median(2)}, remove ${median(3)}`);
  });

  it('reports exit codes, user, env, read-only rootfs', async () => {
    const s = spec('user-1', {
      command: ['sh', '-c', 'id -u; id -g; echo "FOO=$FOO"; hostname; touch /x 2>/dev/null || echo read-only; exit 3'],
      user: 'nobody',
      env: ['FOO=bar'],
      hostname: 'web-1',
      readOnlyRootfs: true,
    });
    await rt.create(s);
    await rt.start('user-1');
    expect(await rt.wait('user-1')).toBe(3);
    const want = '65534\n65534\nFOO=bar\nweb-1\nread-only\n';
    expect(await waitFor('the log', () => (logText(s.logPath).length >= want.length ? logText(s.logPath) : undefined))).toBe(want);
  });

  it('runs sleep 1000: listed running with its labels and limits, re-adopted by a new client, stopped after the grace period', async () => {
    const s = spec('sleep-1', {
      command: ['sleep', '1000'],
      labels: { 'com.shoal.task.id': 'task-1', 'com.shoal.service.name': 'web' },
      resources: { memoryLimitBytes: 64 * 1024 * 1024, cpuLimitNano: 500_000_000 },
      stopGraceMs: 300,
    });
    await rt.create(s);
    const pid = await rt.start('sleep-1');
    const listed = (await rt.list()).find((c) => c.id === 'sleep-1');
    expect(listed).toMatchObject({ state: 'running', pid, labels: { 'com.shoal.task.id': 'task-1', 'com.shoal.service.name': 'web' }, image: IMAGE, stopGraceMs: 300 });

    const cg = `/sys/fs/cgroup/memory${cgroupParent}/sleep-1`;
    expect(readFileSync(`${cg}/memory.limit_in_bytes`, 'utf8').trim()).toBe(String(64 * 1024 * 1024));
    expect(readFileSync(`${cg}/cgroup.procs`, 'utf8')).toContain(String(pid));
    expect(readFileSync(`/sys/fs/cgroup/cpu${cgroupParent}/sleep-1/cpu.cfs_quota_us`, 'utf8').trim()).toBe('50000');

    // An agent restarted: a new client finds the container and takes over.
    const rt2 = new ContainerdRuntime({ socket: daemon.socket, namespace, cgroupParent, stateDir: join(dir, 'rt-state') });
    try {
      const again = (await rt2.list()).find((c) => c.id === 'sleep-1');
      expect(again).toMatchObject({ state: 'running', pid });
      const waited = rt2.wait('sleep-1');
      // sleep is PID 1 and ignores SIGTERM: stop must escalate to SIGKILL after the grace period.
      const t0 = performance.now();
      expect(await rt2.stop('sleep-1')).toBe(137);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
      expect(await waited).toBe(137);
    } finally {
      rt2.close();
    }
    await rt.remove('sleep-1');
    expect((await rt.list()).find((c) => c.id === 'sleep-1')).toBeUndefined();
    await waitFor('the cgroup to go', () => {
      try {
        readFileSync(`${cg}/memory.limit_in_bytes`);
        return undefined;
      } catch {
        return true;
      }
    });
  });

  it('stops gracefully with init: tini forwards SIGTERM to sleep', async () => {
    await rt.create(spec('init-1', { command: ['sleep', '1000'], init: true, stopGraceMs: 20_000 }));
    await rt.start('init-1');
    const t0 = performance.now();
    expect(await rt.stop('init-1')).toBe(143);
    expect(performance.now() - t0).toBeLessThan(10_000);
    await rt.remove('init-1');
    await rt.remove('init-1'); // idempotent
  });

  it('keeps a running container through a containerd restart; a pending wait() carries on', async () => {
    await rt.create(spec('survive-1', { command: ['sleep', '1000'], init: true }));
    const pid = await rt.start('survive-1');
    let exited: number | undefined;
    const waiting = rt.wait('survive-1').then((c) => (exited = c));
    // start() returns once runc let the process go; its exec may still be under way (an empty cmdline).
    const cmdline = () => readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    await waitFor('the process exec\'d', () => (cmdline().includes('sleep') ? true : undefined), 5_000, 10);
    await daemon.whileStopped(() => expect(cmdline()).toContain('sleep'));
    const info = await waitFor('the container listed again', async () => (await rt.list()).find((c) => c.id === 'survive-1'));
    expect(info).toMatchObject({ state: 'running', pid });
    expect(exited).toBeUndefined();
    expect(await rt.stop('survive-1')).toBe(143);
    expect(await waiting).toBe(143);
    await rt.remove('survive-1');
  });

  it('a container that exits while containerd is down: the pending wait() gets its exit code once containerd is back', async () => {
    await rt.create(spec('gap-1', { command: ['sleep', '1000'] }));
    const pid = await rt.start('gap-1');
    const waiting = rt.wait('gap-1');
    await daemon.whileStopped(async () => {
      // The shim lives on and reaps the process; containerd misses the exit event.
      process.kill(pid, 'SIGKILL');
      await waitFor('the process to go', () => (existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8') ? undefined : true));
    });
    expect(await waiting).toBe(137);
    await rt.remove('gap-1');
  });

  it('waits on many containers through one event stream: no Wait and no look-up per container it started', async () => {
    const paths: string[] = [];
    const spy = vi.spyOn(rt.client, 'call').mockImplementation(function (this: unknown, m, req, o) {
      paths.push((m as { path: string }).path);
      return ContainerdClient.prototype.call.call(rt.client, m as never, req as never, o);
    });
    try {
      const ids = ['many-1', 'many-2', 'many-3', 'many-4'];
      for (const [i, id] of ids.entries()) await rt.create(spec(id, { command: ['sh', '-c', `sleep 0.${i + 2}; exit ${i + 1}`] }));
      await Promise.all(ids.map((id) => rt.start(id)));
      const generation = rt.exitStreamGeneration;
      expect(await Promise.all(ids.map((id) => rt.wait(id)))).toEqual([1, 2, 3, 4]);
      // Exited before the wait: the recorded exit answers.
      expect(await rt.wait('many-1')).toBe(1);
      expect(rt.exitStreamGeneration).toBe(generation);
      expect(paths.filter((p) => p.endsWith('/Wait') || p.endsWith('Tasks/Get'))).toEqual([]);
    } finally {
      spy.mockRestore();
    }
    // A client that did not start it (a restarted agent) looks the exited task up.
    const rt3 = new ContainerdRuntime({ socket: daemon.socket, namespace, cgroupParent, stateDir: join(dir, 'rt-state') });
    try {
      expect(await rt3.wait('many-2')).toBe(2);
    } finally {
      rt3.close();
    }
    for (const id of ['many-1', 'many-2', 'many-3', 'many-4']) await rt.remove(id);
    await expect(rt.wait('many-1')).rejects.toBeInstanceOf(ContainerNotFoundError);
  });

  it('joins a given network namespace', async () => {
    const ns = `shoal-rt-${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      execFileSync('ip', ['-n', ns, 'link', 'add', 'rtprobe0', 'type', 'veth', 'peer', 'name', 'rtprobe1']);
      const s = spec('netns-1', { command: ['cat', '/proc/net/dev'], netnsPath: `/run/netns/${ns}` });
      await rt.create(s);
      await rt.start('netns-1');
      expect(await rt.wait('netns-1')).toBe(0);
      const log = await waitFor('the log', () => (logText(s.logPath).includes('lo:') ? logText(s.logPath) : undefined));
      expect(log).toContain('rtprobe0:');
      await rt.remove('netns-1');
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }
  });

  it('names the image when it is missing', async () => {
    const err = await rt.create(spec('missing-1', { image: 'shoal.local/nope:7', command: ['true'] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageNotFoundError);
    expect((err as Error).message).toContain('shoal.local/nope:7');
    await expect(rt.ensureImage('shoal.local/nope:7')).rejects.toThrow(/shoal\.local\/nope:7/);
    expect(await rt.inspect('missing-1')).toBeUndefined();
  });

  it('pulls from a registry (docker-registry on 127.0.0.1) and runs the pulled image', async () => {
    const registry = new LocalRegistry(join(dir, 'registry'));
    const puller = new RegistryPuller();
    const rtp = new ContainerdRuntime({ socket: daemon.socket, namespace, cgroupParent, stateDir: join(dir, 'rt-state'), puller });
    try {
      await registry.start();
      // Another name and content than the loaded image, so nothing is found locally.
      const img = buildBusyboxImage({ name: 'x', applets: ['sh', 'echo', 'cat'] });
      await registry.push('shoal/bb', '2', img);
      const ref = `${registry.host}/shoal/bb:2`;
      expect(await rtp.ensureImage(ref)).toEqual({ name: ref, digest: img.manifest.digest });
      const s = spec('pulled-1', { image: ref, command: ['sh', '-c', 'cat /etc/passwd | echo pulled'] });
      await rtp.create(s);
      await rtp.start('pulled-1');
      expect(await rtp.wait('pulled-1')).toBe(0);
      expect(await waitFor('the log', () => logText(s.logPath) || undefined)).toBe('pulled\n');
      const err = await rtp.ensureImage(`${registry.host}/shoal/bb:3`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageNotFoundError);
      expect((err as Error).message).toContain(`${registry.host}/shoal/bb:3`);
    } finally {
      rtp.close();
      await registry.stop();
    }
  });

  it('pulls from a registry that wants a password: refused without credentials (saying how to log the node in), pulled with a Docker config file\'s', async () => {
    const auth = { username: 'shoal', password: 'p4ss:word' }; // a ':' in the password survives the auth encoding
    const registry = new LocalRegistry(join(dir, 'registry-auth'), auth);
    const configFile = join(dir, 'docker-config.json');
    const hint = `log this node in: an "auths" entry for the registry in ${configFile}`;
    const file = new RegistryAuthFile(configFile);
    const rtp = new ContainerdRuntime({
      socket: daemon.socket, namespace, cgroupParent, stateDir: join(dir, 'rt-state'),
      puller: new RegistryPuller({ credentials: (d) => file.credentials(d), credentialsHint: hint }),
    });
    try {
      await registry.start();
      const img = buildBusyboxImage({ name: 'x', applets: ['sh', 'echo'] });
      await registry.push('shoal/private', '1', img);
      const ref = `${registry.host}/shoal/private:1`;
      // No config file yet: refused, with the way to give credentials.
      const refused = await rtp.ensureImage(ref).catch((e: unknown) => e);
      expect((refused as Error).message).toContain(`${registry.host} wants a username and password: ${hint}`);
      // A wrong password: refused, and not blamed on missing credentials.
      writeFileSync(configFile, JSON.stringify({ auths: { [`http://${registry.host}`]: { username: 'shoal', password: 'wrong' } } }));
      const wrong = await rtp.ensureImage(ref).catch((e: unknown) => e);
      expect(wrong).toBeInstanceOf(ImageNotFoundError);
      expect((wrong as Error).message).toMatch(/refused manifest 1 \(401\).*with the username and password this node has for it/);
      // `docker login`'s form; the same runtime reads the file again as it changed.
      writeFileSync(configFile, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${auth.username}:${auth.password}`).toString('base64') } } }));
      expect(await rtp.ensureImage(ref)).toEqual({ name: ref, digest: img.manifest.digest });
      const s = spec('private-1', { image: ref, command: ['sh', '-c', 'echo private'] });
      await rtp.create(s);
      await rtp.start('private-1');
      expect(await rtp.wait('private-1')).toBe(0);
      expect(await waitFor('the log', () => logText(s.logPath) || undefined)).toBe('private\n');
      // A pull with credentials of its own (a service's --with-registry-auth) uses them instead of the node's.
      const ref2 = `${registry.host}/shoal/private:2`;
      await registry.push('shoal/private', '2', buildBusyboxImage({ name: 'x', applets: ['sh', 'echo', 'true'] }));
      const theirs = await rtp.ensureImage(ref2, { credentials: { ...auth, password: 'wrong' } }).catch((e: unknown) => e);
      expect(theirs).toBeInstanceOf(ImageNotFoundError);
      expect((theirs as Error).message).toMatch(/refused manifest 2 \(401\).*with the username and password the service carries/);
      writeFileSync(configFile, JSON.stringify({ auths: { [registry.host]: { username: 'shoal', password: 'wrong' } } }));
      expect((await rtp.ensureImage(ref2, { credentials: auth })).name).toBe(ref2);
    } finally {
      rtp.close();
      await registry.stop();
    }
  });

  it('refuses a second container with the same id', async () => {
    await rt.create(spec('dup-1', { command: ['true'] }));
    await expect(rt.create(spec('dup-1', { command: ['true'] }))).rejects.toThrow(/already exists/);
    await rt.remove('dup-1');
    expect(await rt.inspect('dup-1')).toBeUndefined();
  });

  it('ten containers created at once look their image up once and share one lease (then run), and no container lookups precede their start', async () => {
    const fresh = new ContainerdRuntime({ socket: daemon.socket, namespace, cgroupParent, stateDir: join(dir, 'rt-state') });
    const calls = new Map<unknown, number>();
    const real = fresh.client.call.bind(fresh.client);
    fresh.client.call = ((m: unknown, ...rest: unknown[]) => {
      calls.set(m, (calls.get(m) ?? 0) + 1);
      return (real as (...a: unknown[]) => unknown)(m, ...rest);
    }) as typeof fresh.client.call;
    try {
      const ids = Array.from({ length: 10 }, (_, i) => `burst-${i}`);
      await Promise.all(ids.map(async (id) => {
        await fresh.ensureImage(IMAGE);
        await fresh.create(spec(id, { command: ['true'] }));
        await fresh.start(id);
      }));
      expect(calls.get(M.imageGet)).toBe(1);
      expect(calls.get(M.containerGet) ?? 0).toBe(0);
      expect(calls.get(M.taskStart)).toBe(10);
      // One lease keeps the ten new rootfs snapshots from collection, not one each.
      expect(calls.get(M.leaseCreate)).toBe(1);
      expect(calls.get(M.leaseDelete) ?? 0).toBe(0);
      for (const id of ids) expect(await fresh.wait(id)).toBe(0);
      for (const id of ids) await fresh.remove(id);
    } finally {
      fresh.close();
    }
  });

  it('a container removed behind the back of the runtime that just created it: start says it is gone', async () => {
    await rt.create(spec('gone-1', { command: ['true'] }));
    const other = new ContainerdRuntime({ socket: daemon.socket, namespace, cgroupParent, stateDir: join(dir, 'rt-state') });
    try {
      await other.remove('gone-1');
    } finally {
      other.close();
    }
    await expect(rt.start('gone-1')).rejects.toBeInstanceOf(ContainerNotFoundError);
  });

  it('stop + remove of a container this client started makes no look-ups (4 calls per container, not 8) and leaves no task, container or rootfs snapshot', async () => {
    const ids = ['stoprm-1', 'stoprm-2'];
    for (const id of ids) {
      await rt.create(spec(id, { command: ['sleep', '1000'], init: true }));
      await rt.start(id);
    }
    const paths: string[] = [];
    const spy = vi.spyOn(rt.client, 'call').mockImplementation(function (this: unknown, m, req, o) {
      paths.push((m as { path: string }).path.split('.').pop()!);
      return ContainerdClient.prototype.call.call(rt.client, m as never, req as never, o);
    });
    try {
      await Promise.all(ids.map(async (id) => {
        expect(await rt.stop(id)).toBe(143);
        await rt.remove(id);
      }));
    } finally {
      spy.mockRestore();
    }
    // Per container: the stop's kill, then three deletes.
    expect(paths.sort()).toEqual(['Containers/Delete', 'Snapshots/Remove', 'Tasks/Delete', 'Tasks/Kill'].flatMap((p) => [p, p]).sort());
    for (const id of ids) {
      expect(await rt.inspect(id)).toBeUndefined();
      expect(await rt.images.hasSnapshot(id)).toBe(false);
    }
  });

  it('stop of a container this client started that exited meanwhile gives its exit code; one removed meanwhile is not found', async () => {
    await rt.create(spec('exited-1', { command: ['sh', '-c', 'exit 3'] }));
    await rt.start('exited-1');
    expect(await rt.wait('exited-1')).toBe(3);
    expect(await rt.stop('exited-1')).toBe(3);
    await rt.remove('exited-1');
    expect(await rt.inspect('exited-1')).toBeUndefined();

    await rt.create(spec('removed-1', { command: ['sleep', '1000'] }));
    await rt.start('removed-1');
    const other = new ContainerdRuntime({ socket: daemon.socket, namespace, cgroupParent, stateDir: join(dir, 'rt-state') });
    try {
      await other.remove('removed-1');
    } finally {
      other.close();
    }
    await expect(rt.stop('removed-1')).rejects.toBeInstanceOf(ContainerNotFoundError);
  });

  it('our event messages decode containerd\'s own: /tasks/start, /tasks/exit and /containers/delete name the container, stamped in order', async () => {
    const seen: { topic: string; id: string; at: number }[] = [];
    const s = rt.client.stream(M.eventsSubscribe, { filters: ['/tasks/start', '/tasks/exit', '/containers/delete'].map((t) => `topic=="${t}",namespace=="${namespace}"`) });
    s.on('data', (env: containerd.services.events.v1.Envelope) => {
      const v = env.event!.value!;
      const id = env.topic === '/tasks/start' ? ev.TaskStart.decode(v).containerId : env.topic === '/tasks/exit' ? ev.TaskExit.decode(v).containerId : ev.ContainerDelete.decode(v).id;
      seen.push({ topic: env.topic, id, at: Number(env.timestamp!.seconds) * 1000 + env.timestamp!.nanos! / 1e6 });
    });
    s.on('error', () => undefined);
    try {
      // The subscription is live once an event of ours comes back through it.
      await waitFor('our probe event back through the subscription', async () => {
        await rt.client.call(M.eventsPublish, { topic: '/tasks/start', event: { typeUrl: 'containerd.events.TaskStart', value: ev.TaskStart.encode({ containerId: 'probe' }).finish() } });
        return seen.some((e) => e.id === 'probe') || undefined;
      }, 5_000, 100);
      const t0 = Date.now();
      await rt.create(spec('events-1', { command: ['true'] }));
      await rt.start('events-1');
      expect(await rt.wait('events-1')).toBe(0);
      await rt.remove('events-1');
      await waitFor('the /containers/delete event', () => seen.some((e) => e.topic === '/containers/delete' && e.id === 'events-1') || undefined, 5_000);
      const mine = seen.filter((e) => e.id === 'events-1');
      expect(mine.map((e) => e.topic)).toEqual(['/tasks/start', '/tasks/exit', '/containers/delete']);
      for (const e of mine) expect(Math.abs(e.at - t0)).toBeLessThan(10_000);
      expect(mine[0]!.at).toBeLessThanOrEqual(mine[1]!.at);
      expect(mine[1]!.at).toBeLessThanOrEqual(mine[2]!.at);
    } finally {
      s.cancel();
    }
  });

  it('a container started again by another client between stop and remove is still removed (the careful path)', async () => {
    await rt.create(spec('restarted-1', { command: ['sleep', '1000'] }));
    await rt.start('restarted-1');
    await rt.stop('restarted-1', { signal: 'SIGKILL' });
    const other = new ContainerdRuntime({ socket: daemon.socket, namespace, cgroupParent, stateDir: join(dir, 'rt-state') });
    try {
      await other.start('restarted-1');
      expect((await other.inspect('restarted-1'))?.state).toBe('running');
    } finally {
      other.close();
    }
    await rt.remove('restarted-1');
    expect(await rt.inspect('restarted-1')).toBeUndefined();
    expect(await rt.images.hasSnapshot('restarted-1')).toBe(false);
  });

  it('an image whose snapshots went away after it was last used is unpacked again by the next create', async () => {
    // An image of its own (a layer no other container uses), so its snapshots can be removed.
    const name = 'shoal.local/busybox-sh:1';
    const tarPath = join(dir, 'busybox-sh.tar');
    writeImage(buildBusyboxImage({ name, applets: ['sh'] }), tarPath);
    await rt.loadImage(tarPath);
    await rt.ensureImage(name); // now known to the runtime as present and unpacked
    const img = await rt.images.find(name);
    for (const key of [...img.chain].reverse()) await rt.client.call(M.snapshotRemove, { snapshotter: 'overlayfs', key });
    expect(await rt.images.hasSnapshot(img.chain[img.chain.length - 1]!)).toBe(false);
    await rt.create(spec('reunpack-1', { image: name, command: ['sh', '-c', 'exit 7'] }));
    expect(await rt.images.hasSnapshot(img.chain[img.chain.length - 1]!)).toBe(true);
    await rt.start('reunpack-1');
    expect(await rt.wait('reunpack-1')).toBe(7);
    await rt.remove('reunpack-1');
  });

  it('removes an image: refused while a container of ours was made from it, forced with the container running on; its content then goes', async () => {
    const built = await removeImageInUse(rt, dir, spec, IMAGE);

    // Once the container is gone too, a collection drops the image's blobs (a lease deleted with sync runs one).
    await rt.remove('rmimg-1');
    await rt.client.call(M.leaseCreate, { id: 'gc-after-rm' });
    await rt.client.call(M.leaseDelete, { id: 'gc-after-rm', sync: true });
    expect(await rt.images.hasBlob(built.manifest.digest)).toBe(false);
    expect(await rt.images.hasBlob((await rt.images.find(IMAGE)).manifestDigest)).toBe(true);
  });
});
