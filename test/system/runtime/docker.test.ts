// The Docker Engine adapter against a real, private dockerd (Debian's
// docker.io 20.10 on a private containerd) with the busybox test image. Needs
// root, dockerd, containerd, runc, busybox-static, tini and docker-registry
// (installed with apt-get when missing): without them the suite skips, and
// fails under CI=true.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../../worker/runtime/docker/runtime.js';
import { ContainerExistsError, ImageNotFoundError, type ContainerSpec, type PullProgress } from '../../../worker/runtime/runtime.js';
import { buildBusyboxImage, writeImage } from '../../../deploy/images/busybox.js';
import { waitFor } from './containerd-harness.js';
import { PrivateDockerd, engineGet, prepareDockerPrerequisites } from './docker-harness.js';
import { LocalRegistry } from './registry-harness.js';
import { removeImageInUse } from './image-removal.js';

const inCI = process.env.CI === 'true';
const problems = prepareDockerPrerequisites();
if (problems.length && !inCI) console.log(`skipping Docker runtime system tests: ${problems.join('; ')}`);

const IMAGE = 'shoal.local/busybox:1';
/** The prefix of a line of the log format (`<UTC time, seconds> <stdout|stderr> `). */
const TAG = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (stdout|stderr) /;
/** A log's text without the time and stream of each line. */
const plain = (log: string): string => log.split('\n').map((l) => l.replace(TAG, '')).join('\n');
/** Given to dockerd as --insecure-registry; never contacted. */
const LAB_REGISTRY = '10.250.0.1:5000';

describe.skipIf(problems.length > 0 && !inCI)('Docker runtime (private dockerd)', () => {
  let dir: string;
  let daemon: PrivateDockerd;
  let rt: DockerRuntime;
  const namespace = `shoal-docker-test-${process.pid}`;
  const cgroupParent = `/shoal-docker-test-${process.pid}`;
  const created = new Set<string>();
  const runtimes: DockerRuntime[] = [];

  const newRuntime = (extra: Partial<ConstructorParameters<typeof DockerRuntime>[0]> = {}): DockerRuntime => {
    const r = new DockerRuntime({ socket: daemon.socket, stateDir: join(dir, 'rt-state'), labelNamespace: 'shoal-test', ...extra });
    runtimes.push(r);
    return r;
  };
  const spec = (id: string, extra: Partial<ContainerSpec>): ContainerSpec => {
    created.add(id);
    return { id, image: IMAGE, logPath: join(dir, 'logs', `${id}.log`), ...extra };
  };
  const readLog = (s: ContainerSpec): string => (existsSync(s.logPath) ? readFileSync(s.logPath, 'utf8') : '');
  const logWith = (s: ContainerSpec, needle: string): Promise<string> => waitFor(`"${needle.trim()}" in ${s.id}'s log`, () => (readLog(s).includes(needle) ? readLog(s) : undefined), 10_000);

  beforeAll(async () => {
    if (problems.length) throw new Error(`prerequisites missing: ${problems.join('; ')}`);
    dir = mkdtempSync(join(tmpdir(), 'shoal-dk-'));
    daemon = new PrivateDockerd(join(dir, 'engine'), { namespace, cgroupParent, insecureRegistries: [LAB_REGISTRY] });
    const t0 = performance.now();
    await daemon.start();
    console.log(`private containerd + dockerd up in ${(performance.now() - t0).toFixed(0)} ms`);
    rt = newRuntime();
  }, 60_000);

  afterAll(async () => {
    if (daemon) {
      const cleaner = new DockerRuntime({ socket: daemon.socket, stateDir: join(dir, 'rt-state'), labelNamespace: 'shoal-test' });
      for (const id of created) await cleaner.remove(id).catch(() => undefined);
      for (const r of [...runtimes, cleaner]) r.close();
      await daemon.destroy();
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('answers with its version and loads the busybox OCI tarball (idempotently)', async () => {
    expect(await rt.ping()).toMatch(/^\d+\.\d+/);
    const img = buildBusyboxImage({ name: IMAGE });
    const tarPath = join(dir, 'busybox.tar');
    writeImage(img, tarPath);
    const steps: PullProgress[] = [];
    const loaded = await rt.loadImage(tarPath, undefined, { onProgress: (p) => steps.push(p) });
    expect(loaded).toEqual([{ name: IMAGE, digest: img.manifest.digest }]);
    // The engine's own steps for `image load`'s display: its layers loaded, with byte counts.
    expect(steps.some((p) => p.status === 'Loading layer' && (p.total ?? 0) > 0), JSON.stringify(steps)).toBe(true);
    expect(await rt.loadImage(tarPath)).toEqual(loaded);
    expect(await rt.ensureImage(IMAGE)).toEqual({ name: IMAGE, digest: img.manifest.digest });
    // Listed under its name with the manifest digest (the engine keeps none for a loaded image), in name order.
    const listed = await rt.listImages();
    // The engine's size is the unpacked one: busybox-static's binary at least.
    expect(listed).toContainEqual({ name: IMAGE, digest: img.manifest.digest, size: expect.any(Number) });
    expect(listed.find((i) => i.name === IMAGE)!.size).toBeGreaterThan(statSync('/usr/bin/busybox').size);
    expect(listed.map((i) => i.name)).toEqual([...listed.map((i) => i.name)].sort((a, b) => a.localeCompare(b)));
    // The engine's image ID is the config digest: the image went in unchanged.
    const inEngine = JSON.parse((await engineGet(daemon.socket, `/images/${IMAGE}/json`)).body) as { Id: string };
    expect(inEngine.Id).toBe(img.config.digest);
  });

  it('refuses a tarball whose layer does not match its digest, and loads nothing', async () => {
    const img = buildBusyboxImage({ name: 'shoal.local/corrupt:1', applets: ['sh'] });
    const tar = Buffer.from(img.tarball);
    // Flip a byte inside the layer blob (same size, other digest).
    const layer = img.layers[0]!.data;
    const at = tar.indexOf(layer.subarray(0, 64));
    expect(at).toBeGreaterThan(0);
    tar[at + 100] ^= 0xff;
    const tarPath = join(dir, 'corrupt.tar');
    writeFileSync(tarPath, tar);
    await expect(rt.loadImage(tarPath)).rejects.toThrow(/does not match its digest/);
    expect((await engineGet(daemon.socket, '/images/shoal.local/corrupt:1/json')).status).toBe(404);
  });

  it('runs a container with init: listed running with its labels, output in the log file, stopped by SIGTERM through init', async () => {
    const s = spec('hello-1', {
      command: ['sh', '-c', 'echo hello; echo err >&2; sleep 30'],
      init: true,
      labels: { 'com.shoal.task.id': 'task-1', 'com.shoal.service.name': 'web' },
      stopGraceMs: 20_000,
    });
    const t0 = performance.now();
    await rt.create(s);
    const t1 = performance.now();
    const pid = await rt.start('hello-1');
    console.log(`container create ${(t1 - t0).toFixed(0)} ms + start ${(performance.now() - t1).toFixed(0)} ms`);
    expect(pid).toBeGreaterThan(0);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('docker-init');

    const listed = (await rt.list()).find((c) => c.id === 'hello-1');
    expect(listed).toMatchObject({
      state: 'running',
      pid,
      image: IMAGE,
      labels: { 'com.shoal.task.id': 'task-1', 'com.shoal.service.name': 'web' },
      logPath: s.logPath,
      stopSignal: 'SIGTERM',
      stopGraceMs: 20_000,
    });
    expect(Object.keys(listed!.labels).some((k) => k.startsWith('shoal.runtime.'))).toBe(false);
    expect(listed!.createdAt).toBeInstanceOf(Date);

    const log = await waitFor('both lines in the log', () => {
      const text = readLog(s);
      return text.includes(' hello\n') && text.includes(' err\n') ? text : undefined;
    });
    // One line per output line: time (the engine's, UTC), stream, text.
    const lines = log.trimEnd().split('\n');
    expect(lines.map((l) => l.slice(21)).sort()).toEqual(['stderr err', 'stdout hello']);
    for (const l of lines) {
      expect(l).toMatch(TAG);
      expect(Math.abs(Date.now() - Date.parse(l.slice(0, 20)))).toBeLessThan(60_000);
    }

    const waited = rt.wait('hello-1');
    const tStop = performance.now();
    expect(await rt.stop('hello-1')).toBe(143);
    expect(performance.now() - tStop).toBeLessThan(10_000);
    expect(await waited).toBe(143);
    const info = await rt.inspect('hello-1');
    expect(info).toMatchObject({ state: 'exited', exitCode: 143, pid: 0 });
    expect(info!.exitedAt).toBeInstanceOf(Date);
    expect(await rt.stop('hello-1')).toBe(143); // not running: just the exit code

    await rt.remove('hello-1');
    await rt.remove('hello-1'); // idempotent
    expect(await rt.inspect('hello-1')).toBeUndefined();
    expect((await rt.list()).find((c) => c.id === 'hello-1')).toBeUndefined();
    expect(readLog(s)).toBe(log); // the log file stays, the position file goes
    expect(existsSync(`${s.logPath}.pos`)).toBe(false);
  });

  it('honours exit code, user, env, workdir, hostname, read-only rootfs, tmpfs and the memory limit', async () => {
    const s = spec('opts-1', {
      command: ['sh', '-c'],
      args: [
        'id -u; id -g; echo "FOO=$FOO"; pwd; hostname; touch /x 2>/dev/null || echo read-only; ' +
          'touch /scratch/f && echo tmpfs-writable; stat -c %a /scratch; grep " /scratch " /proc/mounts | grep -o "size=[0-9a-z]*"; ' +
          'cat /sys/fs/cgroup/memory/memory.limit_in_bytes; grep -c ":memory:' + cgroupParent + '/" /proc/self/cgroup; exit 3',
      ],
      user: 'nobody',
      env: ['FOO=bar'],
      workdir: '/tmp',
      hostname: 'web-1',
      readOnlyRootfs: true,
      mounts: [{ type: 'tmpfs', target: '/scratch', sizeBytes: 1024 * 1024, mode: 0o1777 }],
      resources: { memoryLimitBytes: 64 * 1024 * 1024, cpuLimitNano: 500_000_000, pidsLimit: 50 },
    });
    await rt.create(s);
    await rt.start('opts-1');
    expect(await rt.wait('opts-1')).toBe(3);
    const want = ['65534', '65534', 'FOO=bar', '/tmp', 'web-1', 'read-only', 'tmpfs-writable', '1777', 'size=1024k', String(64 * 1024 * 1024), '1', ''].join('\n');
    const log = await waitFor('all 11 lines in the log', () => (readLog(s).split('\n').length >= 12 ? readLog(s) : undefined), 10_000);
    expect(plain(log)).toBe(want);
    expect(await rt.inspect('opts-1')).toMatchObject({ state: 'exited', exitCode: 3 });
    await rt.remove('opts-1');
  });

  it('an agent restart: a new DockerRuntime lists the same containers and copies the output made meanwhile, once; stop escalates to SIGKILL', async () => {
    const s = spec('restart-1', {
      // sleep as PID 1 without init ignores SIGTERM.
      command: ['sh', '-c', 'i=0; while [ $i -lt 30 ]; do echo line $i; i=$((i+1)); sleep 0.05; done; exec sleep 1000'],
      labels: { 'com.shoal.task.id': 'task-2' },
      resources: { memoryLimitBytes: 32 * 1024 * 1024 },
      stopGraceMs: 300,
    });
    await rt.create(s);
    const pid = await rt.start('restart-1');
    await logWith(s, 'line 2\n');
    rt.close(); // shoald goes away: nothing copies any more

    const fullId = (JSON.parse((await engineGet(daemon.socket, '/containers/restart-1/json')).body) as { Id: string }).Id;
    expect(readFileSync(`/sys/fs/cgroup/memory${cgroupParent}/${fullId}/memory.limit_in_bytes`, 'utf8').trim()).toBe(String(32 * 1024 * 1024));
    // The engine has all the output; the log file misses its end.
    await waitFor('the last line in the engine', async () => ((await engineGet(daemon.socket, '/containers/restart-1/logs?stdout=1')).body.includes('line 29') ? true : undefined), 10_000);
    expect(readLog(s)).not.toContain('line 29');

    rt = newRuntime();
    const again = (await rt.list()).find((c) => c.id === 'restart-1');
    expect(again).toMatchObject({ state: 'running', pid, labels: { 'com.shoal.task.id': 'task-2' }, stopGraceMs: 300 });
    const log = await logWith(s, 'line 29\n');
    expect(plain(log)).toBe(Array.from({ length: 30 }, (_, i) => `line ${i}\n`).join(''));

    const waited = rt.wait('restart-1');
    const t0 = performance.now();
    expect(await rt.stop('restart-1')).toBe(137);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(await waited).toBe(137);
    await rt.remove('restart-1');
  });

  it('logFormat raw: only the bytes the container wrote; a last line without newline stays so', async () => {
    const raw = newRuntime({ logFormat: 'raw' });
    const s = spec('raw-1', { command: ['sh', '-c', 'echo out; echo err >&2; printf partial'] });
    await raw.create(s);
    await raw.start('raw-1');
    expect(await raw.wait('raw-1')).toBe(0);
    const want = 'out\nerr\npartial';
    const log = await waitFor('the whole log', () => (readLog(s).length >= want.length ? readLog(s) : undefined), 10_000);
    // stdout and stderr reach the engine separately: their order may differ.
    expect(log.length).toBe(want.length);
    for (const piece of ['out\n', 'err\n', 'partial']) expect(log).toContain(piece);
    await raw.remove('raw-1');
  });

  it('a wait() can be aborted', async () => {
    await rt.create(spec('abort-1', { command: ['sleep', '1000'], init: true }));
    await rt.start('abort-1');
    const ac = new AbortController();
    const waiting = rt.wait('abort-1', ac.signal);
    ac.abort();
    await expect(waiting).rejects.toThrow(/abort/i);
    expect((await rt.inspect('abort-1'))?.state).toBe('running');
    await rt.remove('abort-1');
    expect(await rt.inspect('abort-1')).toBeUndefined();
  });

  it('names the image when it is missing, with the reason', async () => {
    const local = newRuntime({ pull: false });
    const err = await local.create(spec('missing-1', { image: 'shoal.local/nope:7', command: ['true'] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageNotFoundError);
    expect((err as Error).message).toMatch(/shoal\.local\/nope:7.*pulling is turned off/);
    expect(await rt.inspect('missing-1')).toBeUndefined();
    // Pulling from a registry that is not there: the engine's reason comes along.
    const unreachable = await rt.ensureImage('127.0.0.1:1/nope:7').catch((e: unknown) => e);
    expect(unreachable).toBeInstanceOf(ImageNotFoundError);
    expect((unreachable as Error).message).toMatch(/127\.0\.0\.1:1\/nope:7.*connection refused/);
  });

  it('pulls through the engine from a docker-registry on 127.0.0.1 and runs the pulled image', async () => {
    const registry = new LocalRegistry(join(dir, 'registry'));
    try {
      await registry.start();
      const img = buildBusyboxImage({ name: 'x', applets: ['sh', 'echo', 'cat'] });
      await registry.push('shoal/bb', '2', img);
      const ref = `${registry.host}/shoal/bb:2`;
      expect(await rt.ensureImage(ref)).toEqual({ name: ref, digest: img.manifest.digest });
      const s = spec('pulled-1', { image: ref, command: ['sh', '-c', 'cat /etc/passwd | echo pulled'] });
      await rt.create(s);
      await rt.start('pulled-1');
      expect(await rt.wait('pulled-1')).toBe(0);
      expect(plain(await logWith(s, 'pulled\n'))).toBe('pulled\n');
      const err = await rt.ensureImage(`${registry.host}/shoal/bb:3`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageNotFoundError);
      expect((err as Error).message).toMatch(/bb:3.*(not found|manifest unknown)/);
      await rt.remove('pulled-1');
    } finally {
      await registry.stop();
    }
  });

  it('pulls through the engine from a registry that wants a password, with the credentials it is given (X-Registry-Auth)', async () => {
    const auth = { username: 'shoal', password: 'p4ss:word' };
    const registry = new LocalRegistry(join(dir, 'registry-auth'), auth);
    let creds: { username: string; password: string } | undefined;
    const hint = 'log this node in: an "auths" entry for the registry';
    const r = newRuntime({ credentials: () => creds, credentialsHint: hint });
    try {
      await registry.start();
      const img = buildBusyboxImage({ name: 'x', applets: ['sh', 'echo'] });
      await registry.push('shoal/private', '1', img);
      const ref = `${registry.host}/shoal/private:1`;
      const refused = await r.ensureImage(ref).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ImageNotFoundError);
      expect((refused as Error).message).toContain(`(${hint})`);
      creds = auth;
      expect(await r.ensureImage(ref)).toEqual({ name: ref, digest: img.manifest.digest });
      const s = spec('private-1', { image: ref, command: ['sh', '-c', 'echo private'] });
      await r.create(s);
      await r.start('private-1');
      expect(await r.wait('private-1')).toBe(0);
      expect(plain(await logWith(s, 'private\n'))).toBe('private\n');
      await r.remove('private-1');
      // The tag moves: pullImage fetches it although the old image is present (ensureImage would not).
      // Applets of its own: a layer the engine does not have yet from an earlier test (it shows no steps for one it has).
      const v2 = buildBusyboxImage({ name: 'x', applets: ['sh', 'echo', 'cat', 'tr'] });
      await registry.push('shoal/private', '1', v2);
      expect(await r.ensureImage(ref)).toEqual({ name: ref, digest: img.manifest.digest });
      const steps: PullProgress[] = [];
      expect(await r.pullImage(ref, { onProgress: (p) => steps.push(p) })).toEqual({ name: ref, digest: v2.manifest.digest });
      // The engine's progress, per layer by its short digest, as `docker pull` shows it.
      const layer = v2.layers[0]!.digest.replace('sha256:', '').slice(0, 12);
      expect(steps.filter((p) => p.id === layer).map((p) => p.status)).toContain('Pull complete');
      expect(steps.some((p) => p.id === '' && p.status.startsWith('Digest: '))).toBe(true);
      // A pull with credentials of its own (a service's --with-registry-auth) uses them instead of the node's.
      const ref2 = `${registry.host}/shoal/private:2`;
      await registry.push('shoal/private', '2', v2);
      const theirs = await r.ensureImage(ref2, { credentials: { ...auth, password: 'wrong' } }).catch((e: unknown) => e);
      expect(theirs).toBeInstanceOf(ImageNotFoundError);
      expect((theirs as Error).message).toMatch(/with the username and password the service carries/);
      creds = { ...auth, password: 'wrong' };
      expect((await r.ensureImage(ref2, { credentials: auth })).name).toBe(ref2);
    } finally {
      await registry.stop();
    }
  });

  it('checks insecureRegistries against the engine without contacting them', async () => {
    const bad = '10.251.0.1:5000';
    const r = newRuntime({ insecureRegistries: [LAB_REGISTRY, bad] });
    const found = await r.checkRegistries();
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(`--insecure-registry ${bad}`);
    const t0 = performance.now();
    const err = await r.ensureImage(`${bad}/shoal/bb:1`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageNotFoundError);
    expect((err as Error).message).toContain(`--insecure-registry ${bad}`);
    expect(performance.now() - t0).toBeLessThan(2_000);
  });

  it('refuses a second container with the same id, and leaves other namespaces alone', async () => {
    await rt.create(spec('dup-1', { command: ['true'] }));
    const err = await rt.create(spec('dup-1', { command: ['true'] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainerExistsError);

    const other = newRuntime({ labelNamespace: 'someone-else' });
    await other.create({ id: 'theirs-1', image: IMAGE, command: ['true'], logPath: join(dir, 'logs', 'theirs-1.log') });
    try {
      expect((await rt.list()).map((c) => c.id)).not.toContain('theirs-1');
      expect(await rt.inspect('theirs-1')).toBeUndefined();
      await rt.remove('theirs-1'); // not ours: untouched
      expect(await other.inspect('theirs-1')).toMatchObject({ state: 'created' });
      // The engine's names are global: the id is taken for every namespace.
      await expect(rt.create(spec('theirs-1', { command: ['true'] }))).rejects.toBeInstanceOf(ContainerExistsError);
    } finally {
      await other.remove('theirs-1');
    }
    await rt.remove('dup-1');
    expect(await rt.inspect('dup-1')).toBeUndefined();
  });

  it('removes an image: refused while a container of ours was made from it, forced with the container running on', async () => {
    await removeImageInUse(rt, dir, spec, IMAGE);
    expect((await engineGet(daemon.socket, '/images/shoal.local/busybox-rm:1/json')).status).toBe(404);
    await rt.remove('rmimg-1');
  });
});
