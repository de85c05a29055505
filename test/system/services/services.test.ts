// Services on real containers, as a user meets them: a lab of 5 hosts (3
// managers that also run tasks, 2 workers), each with its own containerd and
// shoald, driven through the `shoal` CLI. What shoal says is checked against
// what each host's containerd says, queried directly.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAB_REGISTRY_PASSWORD, LAB_REGISTRY_USER } from '../../../deploy/lab/registry.js';
import { labRuntimePrerequisites, startServicesCluster, waitFor, type ServicesCluster } from './harness.js';
import { Scenario, allTotal, runningTotal } from './scenario.js';
import { tempDir } from '../../support/tempdir.js';

const pre = labRuntimePrerequisites('services system tests');

describe.skipIf(pre.skip)('services on a 5-host lab with containerd', () => {
  let c: ServicesCluster;
  let sc: Scenario;
  let failed = false;
  const timings: Record<string, number> = {};
  let sleepCmd: string[];

  beforeAll(async () => {
    if (!pre.ok) throw new Error(`services system tests cannot run: ${pre.problems.join('; ')}`);
    c = await startServicesCluster({ name: `sv${process.pid % 100000}`, subnet: '10.241.0.0/24', registry: true, authRegistry: true });
    sc = new Scenario(c);
    // GREETING and MARK come from an --env-file, MARK overridden by --env (the output says which won).
    sleepCmd = ['sh', '-c', 'echo "$GREETING from $(hostname) by $MARK"; exec sleep 3600'];
  }, 300_000);

  afterAll(async () => {
    console.log(`services system test timings (ms): ${JSON.stringify(timings)}`);
    await c?.teardown({ keepLogs: failed });
  }, 120_000);

  /**
   * The worker running the most of web's tasks. After the fault steps, where they landed depends on
   * timing (after the power loss the managers may be Ready before the workers), and nothing
   * rebalances placed tasks; when no worker runs any, a rolling update places the new ones on the
   * least loaded nodes, the workers.
   */
  const busiestWorker = async () => {
    const busiest = async () => {
      const per = await sc.containersOf('web', c.workers);
      const w = c.workers.reduce((a, b) => (per[b]!.running > per[a]!.running ? b : a));
      return { w, n: per[w]!.running };
    };
    let b = await busiest();
    if (b.n === 0) {
      await c.ok('host1', 'service', 'update', '--detach', '--env-add', 'MARK=spread', 'web');
      await sc.waitEnv('web', 'MARK', 16, 'spread', 120_000);
      b = await busiest();
    }
    return b.w;
  };

  /** web's running containers on every host, from the runtimes: id -> MARK in its process's environment. */
  const marks = () => sc.envOf('web', 'MARK');

  const step = (name: string, fn: () => Promise<void>, timeoutMs = 180_000) => it(name, async () => {
    try {
      await fn();
    } catch (e) {
      failed = true;
      throw e;
    }
  }, timeoutMs);

  step('6 replicas over 2 workers and 3 managers: 6 containers, spread evenly, checked on each host', async () => {
    const t0 = Date.now();
    const envFile = path.join(tempDir('shoal-env-'), 'web.env');
    writeFileSync(envFile, '# web\nGREETING=hello\nMARK=file\n');
    const out = await c.ok('host1', 'service', 'create', '--name', 'web', '--replicas', '6', '--init', '--env-file', envFile, '--env', 'MARK=flag', c.image, ...sleepCmd);
    timings.create6 = Date.now() - t0;
    expect(out).toMatch(/converged/);
    const per = await sc.waitContainers('6 running containers of web', 'web', (p) => runningTotal(p) === 6);
    const counts = Object.values(per).map((x) => x.running);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    expect(counts.every((n) => n >= 1)).toBe(true);
    // shoal's view agrees with containerd's.
    const ts = (await sc.tasks('web')).filter((t) => t.DesiredState === 'running');
    expect(ts).toHaveLength(6);
    expect(ts.every((t) => t.Status.State === 'running')).toBe(true);
    const hosts = await sc.nodeNames();
    const all = await c.allContainers();
    for (const t of ts) {
      const h = hosts[t.NodeID!]!;
      expect(all[h]!.find((x) => x.id === t.ID)?.state).toBe('running');
    }
    const ls = await c.ok('host2', 'service', 'ls');
    expect(ls).toMatch(/web\s+replicated\s+6\/6/);
  });

  step('`image load` puts an OCI tarball into a host\'s runtime', async () => {
    const load = await c.shoal('host2', 'image', 'load', c.imageTar);
    expect(load.code, load.stderr).toBe(0);
    expect(load.stdout).toMatch(/Loaded image: shoal.local\/busybox:1/);
    // Its layer's progress, a line per status off a terminal (preloaded: there already).
    expect(load.stderr).toMatch(/^[0-9a-f]{12}: (Load complete|Already exists)$/m);
    const quiet = await c.shoal('host2', 'image', 'load', '-q', c.imageTar);
    expect(quiet.stdout).toMatch(/Loaded image: shoal.local\/busybox:1/);
    expect(quiet.stderr).toBe('');
    // A file that is not an OCI layout: refused by shoald with what is wrong, over the same stream.
    const notTar = path.join(tempDir('shoal-notar-'), 'notes.tar');
    writeFileSync(notTar, 'not a tarball\n');
    const bad = await c.shoal('host2', 'image', 'load', notTar);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(new RegExp(`cannot load ${notTar.replace(/\./g, '\\.')}: not a tar file \\(.*\\): give an OCI image layout tarball`));
    const r = await c.shoal('host2', 'image', 'load', '/nonexistent.tar');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no such file: \/nonexistent.tar/);
  });

  step('`service logs` shows the output of its tasks', async () => {
    const out = await waitFor('6 lines of output', async () => {
      const r = await c.ok('host3', 'service', 'logs', 'web');
      return (r.match(/hello from /g) ?? []).length >= 6 ? r : undefined;
    }, 30_000, 300);
    expect(out).toMatch(/^web\.\d\.\w+@host\d+\s+\| hello from \w+ by flag$/m);
    const one = (await sc.tasks('web'))[0]!;
    expect(await c.ok('host1', 'service', 'logs', '--raw', one.ID)).toMatch(/hello from/);
  });

  step('scale 6 -> 20 -> 3: containerd on the hosts follows', async () => {
    let t0 = Date.now();
    await c.ok('host1', 'service', 'scale', 'web=20');
    timings.scale6to20 = Date.now() - t0;
    const per = await sc.waitContainers('20 running', 'web', (p) => runningTotal(p) === 20);
    expect(Object.values(per).every((x) => x.running === 4)).toBe(true);
    t0 = Date.now();
    await c.ok('host2', 'service', 'scale', 'web=3');
    await sc.waitContainers('3 left, the rest removed', 'web', (p) => runningTotal(p) === 3 && allTotal(p) === 3);
    timings.scale20to3 = Date.now() - t0;
    expect((await sc.tasks('web')).filter((t) => t.DesiredState === 'running')).toHaveLength(3);
    // As in Swarm, the dropped slots keep no history: `service ps` lists slots 1-3 only once their tasks ended.
    await waitFor('only slots 1-3 listed', async () => ((await sc.tasks('web')).every((t) => (t.Slot ?? 0) <= 3) ? true : undefined), 30_000, 300);
  });

  step('service update replaces the tasks one at a time (containerd follows, the new env in their processes); a failing update pauses; rollback goes back', async () => {
    const before = await marks();
    expect(Object.values(before)).toEqual(['flag', 'flag', 'flag']);
    // Bad input changes nothing: a flag that does not parse.
    const inspect = async () => (await sc.json<Array<{ Version: { Index: number }; UpdateStatus?: unknown }>>('host1', 'service', 'inspect', 'web'))[0]!;
    const version = (await inspect()).Version.Index;
    const badFlag = await c.run('host1', ['service', 'update', '--limit-memory', '10x', 'web']);
    expect(badFlag.code).toBe(1);
    expect(badFlag.stderr).toMatch(/invalid --limit-memory "10x": use a number of bytes/);
    expect((await inspect()).Version.Index).toBe(version);
    expect((await inspect()).UpdateStatus).toBeUndefined();
    const t0 = Date.now();
    const out = await c.ok('host1', 'service', 'update', '--env-add', 'MARK=v2', '--update-parallelism', '1', '--update-monitor', '1s', 'web');
    timings.update3 = Date.now() - t0;
    expect(out).toMatch(/^web\noverall progress: 0 out of 3 tasks/);
    expect(out).toMatch(/verify: Service converged\n$/);
    const after = await waitFor('3 new containers, the old ones gone', async () => {
      const m = await marks();
      return Object.keys(m).length === 3 && Object.keys(m).every((id) => !(id in before)) ? m : undefined;
    }, 30_000, 300);
    expect(Object.values(after)).toEqual(['v2', 'v2', 'v2']);
    const ts = (await sc.tasks('web')).filter((t) => t.DesiredState === 'running');
    expect(ts.map((t) => t.ID).sort()).toEqual(Object.keys(after).sort());
    // The replaced tasks stay in their slots' history.
    expect((await sc.tasks('web')).filter((t) => Object.keys(before).includes(t.ID)).map((t) => t.DesiredState)).toEqual(['shutdown', 'shutdown', 'shutdown']);

    // A command that exits 3: the first new task fails, the update pauses, two tasks of v2 run on.
    const bad = await c.run('host1', ['service', 'update', '--args', "sh -c 'exit 3'", '--update-monitor', '1s', 'web'], 60_000);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/update paused: task \w+ failed: task: non-zero exit \(3\); see `shoal service ps web`, then fix the spec and update again or go back with `shoal service rollback web`/);
    const paused = await sc.json<Array<{ UpdateStatus?: { State: string; Message: string } }>>('host2', 'service', 'inspect', 'web');
    expect(paused[0]!.UpdateStatus?.State).toBe('paused');
    const kept = await marks();
    expect(Object.values(kept).filter((m) => m === 'v2').length).toBeGreaterThanOrEqual(2);

    // Back to the spec before the failed update: every task runs `sleep` with MARK=v2 again.
    const rb = await c.ok('host3', 'service', 'rollback', 'web');
    expect(rb).toMatch(/^web\nrollback: manually requested rollback\n/);
    expect(rb).toMatch(/verify: Service converged\n$/);
    const back = await sc.waitEnv('web', 'MARK', 3, 'v2');
    expect(Object.keys(back).sort()).toEqual((await sc.tasks('web')).filter((t) => t.DesiredState === 'running').map((t) => t.ID).sort());
    const rolled = await sc.json<Array<{ UpdateStatus?: { State: string } }>>('host1', 'service', 'inspect', 'web');
    expect(rolled[0]!.UpdateStatus?.State).toBe('rollback_completed');
  });

  step('an unsatisfiable constraint and an oversized reservation stay pending with their reasons', async () => {
    await c.ok('host1', 'service', 'create', '--detach', '--name', 'mars', '--constraint', 'node.labels.zone==mars', c.image, 'sleep', '60');
    await c.ok('host1', 'service', 'create', '--detach', '--name', 'huge', '--reserve-memory', '100T', c.image, 'sleep', '60');
    const mars = await waitFor('mars reason', async () => (await sc.tasks('mars')).find((t) => /no node satisfies node.labels.zone==mars: 5 nodes checked/.test(t.Status.Message ?? '')), 20_000, 200);
    expect(mars.Status.State).toBe('pending');
    const huge = await waitFor('huge reason', async () => (await sc.tasks('huge')).find((t) => /insufficient resources on 5 nodes/.test(t.Status.Message ?? '')), 20_000, 200);
    expect(huge.Status.State).toBe('pending');
    const ps = await c.ok('host1', 'service', 'ps', '--no-trunc', 'mars');
    expect(ps).toMatch(/no node satisfies node.labels.zone==mars/);
    // Waiting for convergence says why it cannot happen, and fails.
    const r = await c.shoal('host1', 'service', 'scale', 'mars=2');
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/no node satisfies node.labels.zone==mars/);
    // A node that gets the label takes the task.
    await c.ok('host1', 'node', 'update', '--label-add', 'zone=mars', 'host4');
    await sc.waitContainers('mars runs on host4', 'mars', (p) => p.host4!.running === 2);
    await c.ok('host1', 'service', 'rm', 'mars', 'huge');
    await sc.waitContainers('mars gone', 'mars', (p) => allTotal(p) === 0);
  });

  step('a container exiting 1 restarts per policy and stops after max attempts', async () => {
    await sc.restartPolicyGivesUp();
  });

  step('pull from the local registry; a missing image is rejected with a clear error', async () => {
    await c.ok('host1', 'service', 'create', '--name', 'pulled', '--replicas', '2', '--init', c.registryImage!, 'sleep', '3600');
    await sc.waitContainers('2 pulled containers running', 'pulled', (p) => runningTotal(p) === 2);
    // `image ls` on a host that ran one shows the pulled image beside the preloaded one, as containerd has them.
    const puller = (await sc.tasks('pulled')).find((t) => t.Status.State === 'running')!;
    const host = (await c.nodes('host1')).find((n) => n.ID === puller.NodeID)!.Description.Hostname;
    const listed = JSON.parse(await c.ok(host, 'image', 'ls', '--format', 'json')) as Array<{ Name: string; Digest: string; Size: number }>;
    const inContainerd = await c.runtime(host).listImages();
    expect(listed).toEqual(inContainerd.map((i) => ({ Name: i.name, Digest: i.digest, Size: i.size })));
    expect(listed.every((i) => i.Size > 0)).toBe(true);
    expect(listed.map((i) => i.Name)).toEqual(expect.arrayContaining([c.image, c.registryImage!]));
    expect((await c.ok(host, 'image', 'ls', '-q')).trim().split('\n')).toEqual(listed.map((i) => i.Name));
    expect(await c.ok(host, 'image', 'ls')).toMatch(/^NAME\s+DIGEST\s+SIZE\n/);
    const r = await c.shoal('host1', 'service', 'create', '--name', 'ghost', `${c.registry}/nope:1`, 'sleep', '1');
    expect(r.code).not.toBe(0);
    const t = await waitFor('rejected', async () => (await sc.tasks('ghost')).find((x) => x.Status.State === 'rejected'), 30_000, 300);
    expect(t.Status.Err).toMatch(/nope:1.*not found|not found.*nope/i);
    // `image rm` refuses while the task's container runs from it, and says how to go on.
    const inUse = await c.shoal(host, 'image', 'rm', c.registryImage!);
    expect(inUse.code).not.toBe(0);
    expect(inUse.stderr).toMatch(/in use by 1 container\(s\) on this node .*--force/);
    await c.ok('host1', 'service', 'rm', 'pulled', 'ghost');
    await sc.waitContainers(`pulled's container gone from ${host}`, 'pulled', (p) => p[host]!.all === 0, 60_000, [host]);
    expect(await c.ok(host, 'image', 'rm', c.registryImage!)).toBe(`Untagged: ${c.registryImage!}\n`);
    expect((await c.runtime(host).listImages()).map((i) => i.name)).toEqual(listed.map((i) => i.Name).filter((n) => n !== c.registryImage));
    // Several names: each is tried, each failure said, and the command fails.
    const gone = await c.shoal(host, 'image', 'rm', c.registryImage!, 'Bad//Ref');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`image ${c.registryImage!} not found`);
    expect(gone.stderr).toMatch(/invalid image reference "Bad\/\/Ref"/);
  });

  step('a registry that wants a login: refused saying how to log in; --with-registry-auth carries the login to the nodes and is never shown', async () => {
    const image = c.authRegistryImage!;
    const registry = image.slice(0, image.indexOf('/'));
    const rejection = async (name: string) =>
      (await waitFor(`a rejected task of ${name}`, async () => (await sc.tasks(name)).find((x) => x.Status.State === 'rejected'), 30_000, 300)).Status.Err;
    /** A Docker client config (what `docker login` writes) with this password for the registry; its directory. */
    const login = (password: string) => {
      const dir = tempDir('shoal-login-');
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ auths: { [registry]: { auth: Buffer.from(`${LAB_REGISTRY_USER}:${password}`).toString('base64') } } }));
      return { DOCKER_CONFIG: dir };
    };
    const create = (name: string, replicas: number, env?: NodeJS.ProcessEnv, ...flags: string[]) =>
      c.run('host1', ['service', 'create', '--name', name, '--replicas', String(replicas), '--init', ...flags, image, 'sleep', '3600'], 60_000, env);

    // No node has a login for it.
    expect((await create('private', 1, undefined, '--detach')).code).toBe(0);
    expect(await rejection('private')).toMatch(new RegExp(`${registry.replace(/\./g, '\\.')} wants a username and password: log this node in`));
    await c.ok('host1', 'service', 'rm', 'private');
    // Without a login of its own, the flag says so before anything is made.
    const none = await create('private', 1, { DOCKER_CONFIG: tempDir('shoal-nologin-') }, '--with-registry-auth');
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/--with-registry-auth: no credentials for .* does not exist; log in first/);
    expect((await c.ok('host1', 'service', 'ls', '-q', '--filter', 'name=private')).trim()).toBe('');
    // A wrong password: the refusal says whose credentials were refused.
    expect((await create('private', 1, login('wrong'), '--detach', '--with-registry-auth')).code).toBe(0);
    expect(await rejection('private')).toMatch(/refused .*\(with the username and password the service carries/);
    // `service update --with-registry-auth` with the right login mends it: the slot's next task pulls and runs.
    const mended = await c.run('host1', ['service', 'update', '--detach', '--with-registry-auth', 'private'], 60_000, login(LAB_REGISTRY_PASSWORD));
    expect(mended.code, mended.stderr).toBe(0);
    await sc.waitContainers('the private task running once it has the right login', 'private', (p) => runningTotal(p) === 1, 60_000);
    await c.ok('host1', 'service', 'rm', 'private');
    await sc.waitContainers('private gone', 'private', (p) => allTotal(p) === 0, 60_000);

    const right = login(LAB_REGISTRY_PASSWORD);
    expect((await create('private', 2, right, '--with-registry-auth')).code).toBe(0);
    await sc.waitContainers('2 private containers running', 'private', (p) => runningTotal(p) === 2);
    // Never answered with: not by inspect, not with the tasks.
    for (const text of [await c.ok('host1', 'service', 'inspect', 'private'), await c.ok('host2', 'service', 'ps', 'private', '--format', 'json'), await c.ok('host1', 'service', 'ls', '--format', 'json')]) {
      expect(text).not.toContain(LAB_REGISTRY_PASSWORD);
      expect(text).not.toMatch(/registryAuth|PullOptions/i);
    }
    // A scale sends the spec as read (without the login) and keeps it: the new tasks' nodes pull with it too.
    await c.ok('host1', 'service', 'scale', 'private=5');
    await sc.waitContainers('5 private containers running, one per host', 'private', (p) => Object.values(p).every((x) => x.running === 1));
    await c.ok('host1', 'service', 'rm', 'private');
    await sc.waitContainers('private gone', 'private', (p) => allTotal(p) === 0, 60_000);
  });

  step('a global service follows a node draining and a node joining', async () => {
    await c.ok('host1', 'service', 'create', '--name', 'agent', '--mode', 'global', '--init', c.image, 'sleep', '3600');
    await sc.waitContainers('one per host', 'agent', (p) => Object.values(p).every((x) => x.running === 1));
    // The listings narrow with docker's --filter keys.
    const svcIds = JSON.parse(await c.ok('host1', 'service', 'ls', '--format', 'json')) as Array<{ ID: string; Spec: { Name: string } }>;
    const idOf = (name: string) => svcIds.find((x) => x.Spec.Name === name)!.ID;
    expect((await c.ok('host2', 'service', 'ls', '-q', '--filter', 'mode=global')).trim()).toBe(idOf('agent'));
    expect((await c.ok('host2', 'service', 'ls', '-q', '--filter', 'name=we', '--filter', 'mode=replicated')).trim()).toBe(idOf('web'));
    const managersListed = JSON.parse(await c.ok('host1', 'node', 'ls', '--filter', 'role=manager', '--format', 'json')) as Array<{ Description: { Hostname: string } }>;
    expect(managersListed.map((n) => n.Description.Hostname).sort()).toEqual(c.managers);
    const onHost4 = JSON.parse(await c.ok('host1', 'service', 'ps', 'agent', '--filter', 'node=host4', '--filter', 'desired-state=running', '--format', 'json')) as Array<{ NodeID: string }>;
    expect(onHost4).toHaveLength(1);
    expect(onHost4[0]!.NodeID).toBe((await c.nodes('host1')).find((n) => n.Description.Hostname === 'host4')!.ID);
    const bad = await c.shoal('host1', 'node', 'ls', '--filter', 'role=leader');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('invalid --filter "role=leader": role is one of manager, worker');
    await c.ok('host1', 'node', 'update', '--availability', 'drain', 'host4');
    await sc.waitContainers('none on host4', 'agent', (p) => p.host4!.all === 0 && runningTotal(p) === 4);
    // web's tasks left host4 too.
    await sc.waitContainers('web off host4', 'web', (p) => p.host4!.all === 0 && runningTotal(p) === 3);
    await c.ok('host1', 'node', 'update', '--availability', 'active', 'host4');
    await sc.waitContainers('back on host4', 'agent', (p) => p.host4!.running === 1);
    // host5 leaves the swarm and joins again as a new node: the service follows.
    await c.ok('host5', 'swarm', 'leave');
    await c.waitNodes('host5 down', 'host1', (ns) => ns.some((n) => n.Description.Hostname === 'host5' && n.Status.State === 'down'), 30_000);
    const old = (await c.nodes('host1')).find((n) => n.Description.Hostname === 'host5')!;
    await c.ok('host1', 'node', 'rm', old.ID);
    const token = (await c.ok('host1', 'swarm', 'join-token', '-q', 'worker')).trim();
    await c.ok('host5', 'swarm', 'join', '--token', token, c.addr('host1'));
    await sc.waitContainers('agent on the new host5', 'agent', (p) => p.host5!.running === 1, 60_000);
    const fresh = (await c.nodes('host1')).find((n) => n.Description.Hostname === 'host5')!;
    expect(fresh.ID).not.toBe(old.ID);

    // A rolling update of a global service: two nodes at a time, each node's task replaced by one
    // with the new env, still one per node.
    const oldIds = Object.keys(await sc.envOf('agent', 'MARK'));
    expect(oldIds).toHaveLength(5);
    const out = await c.ok('host1', 'service', 'update', '--env-add', 'MARK=g2', '--update-parallelism', '2', '--update-monitor', '500ms', 'agent');
    expect(out).toMatch(/verify: Service converged\n$/);
    const marked = await sc.waitEnv('agent', 'MARK', 5, 'g2');
    expect(Object.keys(marked).filter((id) => oldIds.includes(id))).toEqual([]);
    await sc.waitContainers('one new task per host, the old ones gone', 'agent', (p) => Object.values(p).every((x) => x.running === 1 && x.all === 1));
    await c.ok('host1', 'service', 'rm', 'agent');
  });

  step("SIGKILL a worker's shoald and containerd: its tasks run elsewhere; restarted, its stale containers are removed", async () => {
    await c.ok('host1', 'service', 'scale', 'web=10');
    await sc.waitContainers('10 running', 'web', (p) => runningTotal(p) === 10);
    const victim = 'host5';
    const before = (await sc.containersOf('web'))[victim]!.running;
    expect(before).toBeGreaterThan(0);
    const t0 = Date.now();
    await c.killHost(victim);
    // 10 running on the other hosts, as their containerds report.
    await waitFor('tasks running elsewhere', async () => {
      const all = await Promise.all(c.hosts.filter((h) => h !== victim).map((h) => c.containersOn(h)));
      return all.flat().filter((x) => x.labels['shoal.service.name'] === 'web' && x.state === 'running').length === 10 || undefined;
    }, 60_000, 100);
    timings.workerDeadToTasksElsewhere = Date.now() - t0;
    // Logs still come from the live nodes; the dead one's tasks are named as unreachable.
    const logs = await c.shoal('host2', 'service', 'logs', 'web');
    expect(logs.code).toBe(0);
    expect(logs.stdout).toMatch(/hello from/);
    expect(logs.stderr).toMatch(new RegExp(`warning: .*on ${victim}: the node is not connected`));
    await c.restartHost(victim);
    // Its tasks live elsewhere now: the agent finds them unassigned and removes them.
    await sc.waitContainers('stale containers on the victim removed', 'web', (p) => p[victim]!.all === 0, 60_000);
    const per = await sc.containersOf('web');
    expect(runningTotal(per)).toBe(10);
    expect(allTotal(per)).toBe(10);
  });

  step("a worker's containerd alone dies: its node goes down with the reason and its tasks run elsewhere; containerd back: Ready, stale containers removed", async () => {
    const victim = 'host4';
    const nodeOf = async () => (await c.nodes('host1')).find((n) => n.Description.Hostname === victim)!;
    expect((await sc.containersOf('web'))[victim]!.running).toBeGreaterThan(0);
    await c.killRuntime(victim);
    const down = await waitFor('the node reported down for its runtime', async () => {
      const n = await nodeOf();
      return n.Status.State === 'down' ? n : undefined;
    }, 30_000, 200);
    expect(down.Status.Message).toMatch(/^container runtime unavailable \(containerd at .*containerd\.sock\): .*UNAVAILABLE/);
    const others = c.hosts.filter((h) => h !== victim);
    await sc.waitContainers('10 running on the other hosts', 'web', (p) => runningTotal(p) === 10, 60_000, others);
    await c.startRuntime(victim);
    await waitFor('the node Ready again', async () => ((await nodeOf()).Status.State === 'ready' ? true : undefined), 30_000, 200);
    await sc.waitContainers('stale containers on the victim removed', 'web', (p) => p[victim]!.all === 0, 60_000);
    const per = await sc.containersOf('web');
    expect(runningTotal(per)).toBe(10);
    expect(allTotal(per)).toBe(10);
  });

  step('SIGKILL the leader while scaling: the service converges', async () => {
    const leader = await sc.agreedLeader();
    const other = c.managers.find((h) => h !== leader)!;
    // Workers reconnect to the new leader without restarting anything: same containers, same pids.
    const before = new Map((await Promise.all(c.workers.map((h) => c.containersOn(h)))).flat().filter((x) => x.state === 'running').map((x) => [x.id, x.pid]));
    expect(before.size).toBeGreaterThan(0);
    await c.ok(other, 'service', 'scale', '--detach', 'web=16');
    const t0 = Date.now();
    await c.lab.killDaemon(leader);
    await waitFor('a new leader answers', async () => ((await c.shoal(other, 'service', 'ls')).code === 0 ? true : undefined), 60_000, 100);
    timings.leaderKilledToNewLeader = Date.now() - t0;
    // The old leader's node goes down too (its agent died with it): its tasks move, so count the others.
    await sc.waitContainers('16 running on the live hosts', 'web', (p) => Object.entries(p).filter(([h]) => h !== leader).reduce((n, [, x]) => n + x.running, 0) === 16, 90_000);
    await c.lab.startDaemon(leader);
    await c.waitDaemon(leader);
    const ts = (await sc.tasks('web', other)).filter((t) => t.DesiredState === 'running');
    expect(ts).toHaveLength(16);
    expect(new Set(ts.map((t) => t.Slot)).size).toBe(16);
    await sc.waitContainers('still 16, none twice', 'web', (p) => runningTotal(p) === 16 && allTotal(p) === 16, 30_000);
    const after = new Map((await Promise.all(c.workers.map((h) => c.containersOn(h)))).flat().map((x) => [x.id, x.pid]));
    for (const [id, pid] of before) expect(after.get(id)).toBe(pid);
  });

  step('SIGKILL the leader during a rolling update: the new leader carries it on to the end', async () => {
    const leader = await sc.agreedLeader();
    const other = c.managers.find((h) => h !== leader)!;
    await c.ok(other, 'service', 'update', '--detach', '--env-add', 'MARK=v3', '--update-parallelism', '4', '--update-delay', '1s', '--update-monitor', '1s', 'web');
    await waitFor('4 tasks updated', async () => (Object.values(await marks()).filter((m) => m === 'v3').length >= 4 ? true : undefined), 60_000, 100);
    await c.lab.killDaemon(leader);
    const done = await waitFor('the update completed under the new leader', async () => {
      const r = await c.shoal(other, 'service', 'inspect', 'web');
      if (r.code !== 0) return undefined;
      const st = (JSON.parse(r.stdout) as Array<{ UpdateStatus?: { State: string; Message: string } }>)[0]!.UpdateStatus;
      return st?.State === 'completed' ? st : undefined;
    }, 120_000, 300);
    expect(done.Message).toBe('update completed');
    await c.lab.startDaemon(leader);
    await c.waitDaemon(leader);
    // Every slot runs the new env once: the old leader's host lost its tasks while it was down, and its stale containers go.
    const m = await waitFor('16 running with MARK=v3, no other', async () => {
      const x = await marks();
      return Object.keys(x).length === 16 && Object.values(x).every((v) => v === 'v3') ? x : undefined;
    }, 60_000, 300);
    expect(Object.keys(m).sort()).toEqual((await sc.tasks('web', other)).filter((t) => t.DesiredState === 'running').map((t) => t.ID).sort());
    await sc.waitContainers('16 in all, none twice', 'web', (p) => runningTotal(p) === 16 && allTotal(p) === 16, 30_000);
  });

  step('every shoald SIGKILLed at once (containerds live on): the cluster comes back with what it acknowledged, and the same containers run, none restarted, none twice', async () => {
    // What runs before: each container with its pid, on every host (managers run tasks too).
    await sc.waitContainers('16 running, none twice', 'web', (p) => runningTotal(p) === 16 && allTotal(p) === 16, 30_000);
    const pids = async () => new Map((await Promise.all(c.hosts.map((h) => c.containersOn(h)))).flat()
      .filter((x) => x.labels['shoal.service.name'] === 'web').map((x) => [x.id, x.pid]));
    const before = await pids();
    expect(before.size).toBe(16);
    // The last thing acknowledged before the crash: a service created with --detach (committed, not yet run).
    await c.ok('host2', 'service', 'create', '--detach', '--name', 'acked', '--replicas', '2', '--init', c.image, 'sleep', '3600');
    await Promise.all(c.hosts.map((h) => c.lab.killDaemon(h)));
    const t0 = Date.now();
    for (const h of c.hosts) await c.lab.startDaemon(h);
    await Promise.all(c.hosts.map((h) => c.waitDaemon(h)));
    await c.waitNodes('5 nodes Ready under a leader', 'host3', (ns) => ns.length === 5 && ns.every((n) => n.Status.State === 'ready') && ns.some((n) => n.ManagerStatus?.Leader), 60_000);
    timings.wholeClusterRestartToReady = Date.now() - t0;
    await sc.waitContainers('acked runs its 2', 'acked', (p) => runningTotal(p) === 2 && allTotal(p) === 2, 60_000);
    // web: the same 16 containers, each with the pid it had (an agent that had restarted one, or a
    // node marked down whose tasks moved, would show a new id or pid).
    const ts = (await sc.tasks('web', 'host3')).filter((t) => t.DesiredState === 'running');
    expect(ts).toHaveLength(16);
    expect(ts.every((t) => t.Status.State === 'running')).toBe(true);
    expect(new Set(ts.map((t) => t.ID))).toEqual(new Set(before.keys()));
    expect(await pids()).toEqual(before);
    // The managers learn a task runs from its agent's report, which may trail containerd by up to a
    // second (reports are batched while tasks start): wait for it rather than read once.
    const ls = await waitFor('service ls to count acked\'s 2 running', async () => {
      const out = await c.ok('host1', 'service', 'ls');
      return /acked\s+replicated\s+2\/2/.test(out) ? out : undefined;
    }, 15_000, 200);
    expect(ls).toMatch(/web\s+replicated\s+16\/16/);
    expect(ls).toMatch(/acked\s+replicated\s+2\/2/);
  });

  step('the whole cluster loses power (every shoald, containerd and container killed): it comes back with every service, and runs each task once', async () => {
    const before = new Set((await sc.tasks('web')).filter((t) => t.DesiredState === 'running').map((t) => t.ID));
    expect(before.size).toBe(16);
    await Promise.all(c.hosts.map((h) => c.killHost(h, { containers: true })));
    const t0 = Date.now();
    await Promise.all(c.hosts.map((h) => c.restartHost(h)));
    await c.waitNodes('5 nodes Ready under a leader', 'host1', (ns) => ns.length === 5 && ns.every((n) => n.Status.State === 'ready') && ns.some((n) => n.ManagerStatus?.Leader), 60_000);
    // The containers died with the power: their tasks are replaced, each slot run once.
    await sc.waitContainers('16 web running, none twice', 'web', (p) => runningTotal(p) === 16 && allTotal(p) === 16, 90_000);
    await sc.waitContainers('acked runs its 2', 'acked', (p) => runningTotal(p) === 2 && allTotal(p) === 2, 60_000);
    timings.powerLossToConverged = Date.now() - t0;
    const ts = (await sc.tasks('web', 'host2')).filter((t) => t.DesiredState === 'running');
    expect(ts).toHaveLength(16);
    expect(new Set(ts.map((t) => t.Slot)).size).toBe(16);
    expect(ts.some((t) => before.has(t.ID))).toBe(false);
    // What containerd runs is exactly what shoal says runs.
    const running = new Set((await Promise.all(c.hosts.map((h) => c.containersOn(h)))).flat()
      .filter((x) => x.labels['shoal.service.name'] === 'web' && x.state === 'running').map((x) => x.id));
    expect(running).toEqual(new Set(ts.map((t) => t.ID)));
  });

  step('the leader\'s host is cut off from every other host: the majority elects a leader and runs its tasks; healed, the old leader follows, its stale containers go, and a write it could not commit is nowhere', async () => {
    const leader = await sc.agreedLeader();
    const rest = c.hosts.filter((h) => h !== leader);
    const asker = c.managers.find((h) => h !== leader)!;
    expect((await sc.containersOf('web'))[leader]!.running).toBeGreaterThan(0);
    for (const h of rest) await c.lab.partition(leader, h);
    const t0 = Date.now();
    // Both in one wait: a new leader counts a manager reachable while it has heard from it since it
    // won, and the partition is put in place one host pair at a time: a message of the old leader
    // can still reach the new one just after its election.
    const ns = await c.waitNodes('a new leader on the majority side, the old one unreachable', asker,
      (ns) => ns.some((n) => n.ManagerStatus?.Leader && n.Description.Hostname !== leader)
        && ns.find((n) => n.Description.Hostname === leader)?.ManagerStatus?.Reachability !== 'reachable', 30_000);
    timings.partitionToNewLeader = Date.now() - t0;
    expect(ns.find((n) => n.Description.Hostname === leader)?.ManagerStatus?.Reachability).toBe('unreachable');
    // Its node is down to the majority: its tasks run on the other 4 hosts.
    await sc.waitContainers('16 web running on the majority side', 'web', (p) => runningTotal(p) === 16, 60_000, rest);
    timings.partitionToTasksElsewhere = Date.now() - t0;
    // The cut-off manager cannot commit: a write there fails, and says why.
    const lost = await c.shoal(leader, 'service', 'create', '--detach', '--name', 'lost', c.image, 'sleep', '60');
    expect(lost.code).not.toBe(0);
    expect(lost.stderr).toMatch(/could not reach a leader.*the cluster may have lost quorum/);
    await c.lab.heal();
    await c.waitNodes('healed: 5 Ready, 3 reachable managers, one leader', asker, (ns) => ns.length === 5 && ns.every((n) => n.Status.State === 'ready')
      && ns.filter((n) => n.ManagerStatus?.Reachability === 'reachable').length === 3 && ns.filter((n) => n.ManagerStatus?.Leader).length === 1, 60_000);
    await sc.waitContainers('the old leader\'s stale web containers removed', 'web', (p) => p[leader]!.all === 0 && runningTotal(p) === 16 && allTotal(p) === 16, 60_000);
    // The write that never committed did not come back with the old leader.
    for (const h of c.managers) expect(await c.ok(h, 'service', 'ls')).not.toMatch(/\blost\b/);
    await sc.waitContainers('no container of it anywhere', 'lost', (p) => allTotal(p) === 0, 5_000);
  });

  step('`service ls` on the leader\'s own socket while it is cut off for a moment: it steps down under the read, and the read is answered through the new leader once the links are back', async () => {
    const leader = await sc.agreedLeader();
    const asker = c.managers.find((h) => h !== leader)!;
    for (const h of c.managers.filter((x) => x !== leader)) await c.lab.partition(leader, h);
    // Asked while it still leads: it cannot confirm the read with a quorum, and steps down under it.
    const read = c.shoal(leader, 'service', 'ls');
    await c.waitNodes('a new leader among the other managers', asker, (ns) => ns.some((n) => n.ManagerStatus?.Leader && n.Description.Hostname !== leader), 30_000);
    await c.lab.heal();
    const r = await read;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/web\s+replicated\s+\d+\/16/);
    await c.waitNodes('one leader, 3 reachable managers', asker, (ns) => ns.filter((n) => n.ManagerStatus?.Leader).length === 1
      && ns.filter((n) => n.ManagerStatus?.Reachability === 'reachable').length === 3 && ns.every((n) => n.Status.State === 'ready'), 60_000);
  });

  step('the link between the leader and one follower drops: no election (the cut follower cannot win one), writes go on, and the cut follower\'s CLI works through the other manager; healed, one leader still', async () => {
    const leader = await sc.agreedLeader();
    const cut = c.managers.find((h) => h !== leader)!;
    const candidacies = () => c.managers.reduce((n, h) => n + (readFileSync(c.lab.hostState(h).logFile, 'utf8').match(/became candidate at term/g) ?? []).length, 0);
    const before = candidacies();
    await c.lab.partition(leader, cut);
    // Longer than many election timeouts (1-2 s): the cut follower tries, and the other follower,
    // still hearing from the leader, refuses its pre-votes.
    const t0 = Date.now();
    while (Date.now() - t0 < 6_000) {
      await c.ok(leader, 'service', 'scale', '--detach', `acked=${2 + ((Date.now() - t0) > 3_000 ? 1 : 0)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(candidacies()).toBe(before);
    expect((await c.nodes(leader)).find((n) => n.ManagerStatus?.Leader)?.Description.Hostname).toBe(leader);
    // The cut follower's own CLI still works: the other manager relays its calls to the leader,
    // a read and a write alike (the write had reached no server before, so it goes once).
    const ls = await c.shoal(cut, 'service', 'ls');
    expect(ls.stderr).toBe('');
    expect(ls.stdout).toMatch(/acked\s+replicated\s+\d+\/3/);
    const scaled = await c.shoal(cut, 'service', 'scale', '--detach', 'acked=4');
    expect(scaled.stderr).toBe('');
    expect(scaled.code).toBe(0);
    await c.lab.heal();
    await c.waitNodes('healed: 5 Ready, one leader, the same', leader, (ns) => ns.length === 5 && ns.every((n) => n.Status.State === 'ready')
      && ns.filter((n) => n.ManagerStatus?.Leader).map((n) => n.Description.Hostname).join() === leader, 60_000);
    await sc.waitContainers('acked at its last scale', 'acked', (p) => runningTotal(p) === 4 && allTotal(p) === 4, 60_000);
    expect(candidacies()).toBe(before);
  });

  step('a worker cut off from every manager: down, its tasks run elsewhere, its own run on meanwhile; healed, only one of each runs', async () => {
    const worker = await busiestWorker();
    const mine = (await c.containersOn(worker)).filter((x) => x.labels['shoal.service.name'] === 'web' && x.state === 'running');
    expect(mine.length).toBeGreaterThan(0);
    for (const m of c.managers) await c.lab.partition(worker, m);
    const others = c.hosts.filter((h) => h !== worker);
    await sc.waitContainers('16 web running on the other hosts', 'web', (p) => runningTotal(p) === 16, 60_000, others);
    // Cut off, it does not stop what it runs: the containers were not asked to stop by anyone it can hear.
    const still = (await c.containersOn(worker)).filter((x) => x.state === 'running').map((x) => x.id);
    for (const x of mine) expect(still).toContain(x.id);
    await c.lab.heal();
    await c.waitNodes('healed: 5 Ready', 'host1', (ns) => ns.length === 5 && ns.every((n) => n.Status.State === 'ready'), 60_000);
    await sc.waitContainers('its stale web containers removed', 'web', (p) => p[worker]!.all === 0 && runningTotal(p) === 16 && allTotal(p) === 16, 60_000);
  });

  step('the link between a worker and the leader drops: another manager relays its calls, so it stays Ready, keeps its containers, takes a new task and reports it; the leader dies meanwhile: the worker follows the new one; healed, all as before', async () => {
    const leader = await sc.agreedLeader();
    const worker = await busiestWorker();
    const workerId = (await c.nodes(leader)).find((n) => n.Description.Hostname === worker)!.ID;
    const running = async () => new Map((await c.containersOn(worker))
      .filter((x) => x.labels['shoal.service.name'] === 'web' && x.state === 'running').map((x) => [x.id, x.pid]));
    const before = await running();
    expect(before.size).toBeGreaterThan(0);
    await c.lab.partition(worker, leader);
    // Well past the 3 s in which a silent node is marked down, it stays Ready.
    const t0 = Date.now();
    while (Date.now() - t0 < 6_000) {
      expect((await c.nodes(leader)).find((n) => n.ID === workerId)!.Status.State).toBe('ready');
      await new Promise((r) => setTimeout(r, 250));
    }
    // The operator can see why: its status names the manager it is reached through.
    const relayedNote = /^reached through manager host\d: no direct connection to the leader$/;
    const noted = (await c.nodes(leader)).find((n) => n.ID === workerId)!;
    expect(noted.Status.Message).toMatch(relayedNote);
    expect(await c.ok(leader, 'node', 'inspect', '--pretty', worker)).toMatch(/Message:\s+reached through manager host\d: no direct connection to the leader/);
    // A new task reaches it through the relay and its state comes back: a global service (one task
    // a node, so one surely on it), created the way that waits until every task runs.
    await c.ok(leader, 'service', 'create', '--name', 'everywhere', '--mode', 'global', '--init', c.image, 'sleep', '3600');
    await sc.waitContainers('one everywhere, the cut worker included', 'everywhere', (p) => Object.values(p).every((x) => x.running === 1 && x.all === 1), 30_000);
    const after = await running();
    for (const [id, pid] of before) expect(after.get(id)).toBe(pid);
    // Its tasks' logs come through the relay too.
    const one = (await sc.tasks('web', leader)).find((t) => t.NodeID === workerId && t.DesiredState === 'running')!;
    expect(await c.ok(leader, 'service', 'logs', '--raw', one.ID)).toMatch(/hello from/);
    // The leader dies while the worker is relayed: it finds the new leader (its link to it is fine)
    // and keeps its containers; only the dead leader's node goes down.
    const other = c.managers.find((h) => h !== leader)!;
    const mineBefore = await running();
    await c.lab.killDaemon(leader);
    await c.waitNodes('a new leader; the worker Ready', other, (ns) => ns.some((n) => n.ManagerStatus?.Leader && n.Description.Hostname !== leader)
      && ns.find((n) => n.ID === workerId)!.Status.State === 'ready', 30_000);
    await sc.waitContainers('16 running on the live hosts', 'web', (p) => Object.entries(p).filter(([h]) => h !== leader).reduce((n, [, x]) => n + x.running, 0) === 16, 60_000);
    // Straight to the new leader: nothing relayed, nothing noted.
    await c.waitNodes('the worker no longer noted as relayed', other, (ns) => (ns.find((n) => n.ID === workerId)!.Status.Message ?? '') === '', 10_000);
    expect((await c.nodes(other)).find((n) => n.ID === workerId)!.Status.State).toBe('ready');
    const mineAfter = await running();
    for (const [id, pid] of mineBefore) expect(mineAfter.get(id)).toBe(pid);
    await c.lab.startDaemon(leader);
    await c.waitDaemon(leader);
    await c.lab.heal();
    await c.ok(other, 'service', 'rm', 'everywhere');
    await sc.waitContainers('16 web, none twice', 'web', (p) => runningTotal(p) === 16 && allTotal(p) === 16, 60_000);
    await sc.waitContainers('everywhere gone', 'everywhere', (p) => allTotal(p) === 0, 30_000);
    await c.waitNodes('all 5 Ready', other, (ns) => ns.length === 5 && ns.every((n) => n.Status.State === 'ready'), 30_000);
  });
});
