// A shoal cluster for the services system tests: lab hosts (network
// namespaces) each with its own containerd (a lab sidecar, deploy/lab/containerd.ts)
// and its own shoald pointed at it, the busybox test image preloaded into
// every host's containerd, swarm init on host1 and the others joined (managers
// first, then workers), every node Ready. Tests drive it with the `shoal` CLI
// against each host's socket, and look at what really runs through each
// host's containerd directly (containersOn), independent of shoal's reports.
// With runtime: 'docker', each host runs its own dockerd instead (a lab
// sidecar, deploy/lab/docker.ts), shoald runs with --runtime docker, busybox is
// loaded into every host's dockerd and containersOn asks that dockerd.
// Waits poll with deadlines; nothing sleeps a fixed time.
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Lab, checkPrerequisites } from '../../../deploy/lab/lab.js';
import { CONTAINERD_PROC, cleanupContainerd, containerdLabOptions, hostContainerd } from '../../../deploy/lab/containerd.js';
import { DOCKERD_PROC, cleanupDocker, dockerLabOptions, hostDocker, hostDockerRuntime, preloadDockerImageAll, waitDocker } from '../../../deploy/lab/docker.js';
import { BUSYBOX_IMAGE, busyboxTarball, preloadImageAll, waitContainerd } from '../../../deploy/lab/images.js';
import { AUTH_REGISTRY_PORT, pushImage, registryAddress } from '../../../deploy/lab/registry.js';
import { ContainerdRuntime } from '../../../worker/runtime/containerd/runtime.js';
import type { DockerRuntime } from '../../../worker/runtime/docker/runtime.js';
import type { ContainerState } from '../../../worker/runtime/runtime.js';
import { PORT, SHOAL, SHOALD, inCI, repo, summary, waitFor, type InfoView, type NodeView, type RunResult } from '../cluster/harness.js';
import { prepareRuntimePrerequisites } from '../runtime/containerd-harness.js';
import { prepareDockerPrerequisites } from '../runtime/docker-harness.js';

export { BUSYBOX_IMAGE, inCI, waitFor };
export type { InfoView, NodeView, RunResult };

/**
 * What lab hosts with containerd need: the lab's prerequisites (root,
 * iproute2, nftables, util-linux), the runtime packages (containerd, runc,
 * tini, busybox-static, docker-registry; apt-installed when missing) and,
 * with needBuild, the build (shoald, the CLI and the registry pusher run from
 * dist/); with runtime 'docker' also dockerd and docker-init (docker.io).
 * Without them a suite skips with the printed reason, except under CI=true,
 * where it must fail instead (its beforeAll throws).
 */
export function labRuntimePrerequisites(
  suite: string,
  opts: { needBuild?: boolean; runtime?: 'containerd' | 'docker' } = {},
): { ok: boolean; skip: boolean; problems: string[] } {
  const problems = [...checkPrerequisites().problems];
  if (problems.length === 0) problems.push(...(opts.runtime === 'docker' ? prepareDockerPrerequisites() : prepareRuntimePrerequisites()));
  if (opts.needBuild ?? true) {
    for (const f of [SHOAL, SHOALD, path.join(repo, 'dist/deploy/lab/registry-push.js')]) {
      if (!existsSync(f)) problems.push(`${path.relative(repo, f)} is missing: run \`npm run build\` first (the lab's daemons run from dist/)`);
    }
  }
  const ok = problems.length === 0;
  if (!ok && !inCI) console.log(`skipping ${suite}: ${problems.join('; ')}`);
  return { ok, skip: !ok && !inCI, problems };
}

export interface ServicesClusterOptions {
  /** Lab name: 1-16 of [a-z0-9], starting with a letter (tests use a letter + their pid). */
  name: string;
  /** Default 5. */
  hosts?: number;
  /** host1..hostM are managers, the rest workers; default 3. */
  managers?: number;
  /** The lab network, e.g. 10.233.0.0/24; give each suite its own. */
  subnet: string;
  /** Also run docker-registry on host1 (<ip>:5000) with busybox pushed as busybox:1; shoald gets --insecure-registry for it. */
  registry?: boolean;
  /** With registry (containerd only): its storage also behind the lab's login at <ip>:5001 (deploy/lab/registry.ts). */
  authRegistry?: boolean;
  /**
   * What runs the tasks on every host: its own containerd (default) or its
   * own dockerd (shoald --runtime docker; deploy/lab/docker.ts).
   */
  runtime?: 'containerd' | 'docker';
  /** Extra shoald flags (appended to the lab's template), e.g. ['--log-level', 'debug']. */
  daemonArgs?: string[];
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** A container as the host's containerd (or dockerd) reports it (not shoal). */
export interface HostContainer {
  id: string;
  state: ContainerState;
  labels: Record<string, string>;
  image: string;
  pid: number;
  exitCode?: number;
}

export interface StartTimings {
  /** Lab up: namespaces, containerds or dockerds (serving), shoalds answering on their sockets. */
  labUpMs: number;
  /** Busybox loaded into every host's containerd (or dockerd). */
  preloadMs: number;
  /** swarm init, joins, until every node is Ready. */
  swarmMs: number;
}

export class ServicesCluster {
  readonly lab: Lab;
  readonly baseDir: string;
  readonly hosts: string[];
  readonly managers: string[];
  readonly workers: string[];
  /** The preloaded image, shoal.local/busybox:1. */
  readonly image = BUSYBOX_IMAGE;
  /** Its OCI tarball (cached in /var/lib/shoal-images). */
  imageTar = '';
  /** With registry: the registry's host:port and busybox there (<ip>:5000/busybox:1). */
  registry?: string;
  registryImage?: string;
  /** With authRegistry: busybox:1 from the registry that wants the lab's login (<ip>:5001/busybox:1). */
  authRegistryImage?: string;
  readonly timings: StartTimings = { labUpMs: 0, preloadMs: 0, swarmMs: 0 };
  private readonly runtimes = new Map<string, ContainerdRuntime>();
  private readonly dockerRuntimes = new Map<string, DockerRuntime>();
  /** What runs the tasks on every host. */
  readonly runtimeKind: 'containerd' | 'docker';

  constructor(readonly opts: ServicesClusterOptions) {
    const n = opts.hosts ?? 5;
    const m = opts.managers ?? 3;
    if (m < 1 || m > n) throw new Error(`managers must be 1..${n}, got ${m}`);
    this.baseDir = mkdtempSync(`/tmp/shoal-services-${opts.name}-`);
    this.runtimeKind = opts.runtime ?? 'containerd';
    if (opts.authRegistry && (!opts.registry || opts.runtime === 'docker')) throw new Error('authRegistry needs registry, and hosts with containerd');
    const labOpts = { subnet: opts.subnet, registryHost: opts.registry ? 'host1' : undefined, authRegistry: opts.authRegistry };
    const c = this.runtimeKind === 'docker' ? dockerLabOptions(labOpts) : containerdLabOptions(labOpts);
    const daemonCmd = [c.daemonCmd, ...(opts.daemonArgs ?? []).map(quote)].join(' ');
    this.lab = new Lab({ name: opts.name, hosts: n, subnet: opts.subnet, baseDir: this.baseDir, daemonCmd, sidecars: c.sidecars, log: opts.log });
    this.hosts = this.lab.hosts();
    this.managers = this.hosts.slice(0, m);
    this.workers = this.hosts.slice(m);
  }

  get name(): string {
    return this.lab.name;
  }

  ip(host: string): string {
    return this.lab.hostIp(host);
  }

  /** host's cluster address, <ip>:4377. */
  addr(host: string): string {
    return `${this.ip(host)}:${PORT}`;
  }

  // ---- the shoal CLI ----

  /** `shoal --socket <host's socket> ...args` from the root namespace (60 s, then SIGKILL: code 137). */
  shoal(host: string, ...args: string[]): Promise<RunResult> {
    return this.run(host, args);
  }

  /** Like shoal() with a timeout of your choice. */
  run(host: string, args: string[], timeoutMs = 60_000, env?: NodeJS.ProcessEnv): Promise<RunResult> {
    const t0 = Date.now();
    return new Promise((resolve) => {
      execFile(process.execPath, [SHOAL, '--socket', this.lab.hostState(host).socket, ...args],
        { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 16 << 20, env: env ? { ...process.env, ...env } : process.env },
        (err, stdout, stderr) => {
          const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string }) | null;
          const code = !e ? 0 : typeof e.code === 'number' ? e.code : e.signal ? 137 : 1;
          resolve({ code, stdout, stderr, ms: Date.now() - t0 });
        });
    });
  }

  /** shoal() that must succeed; returns stdout. */
  async ok(host: string, ...args: string[]): Promise<string> {
    const r = await this.shoal(host, ...args);
    if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} on ${host} failed (code ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /** shoal() that must fail; returns stderr. */
  async refused(host: string, ...args: string[]): Promise<string> {
    const r = await this.shoal(host, ...args);
    if (r.code === 0) throw new Error(`shoal ${args.join(' ')} on ${host} succeeded but should have been refused: ${r.stdout.trim()}`);
    return r.stderr;
  }

  /** ok() parsed as JSON (pass `--format json` where the command needs it). */
  async json<T = unknown>(host: string, ...args: string[]): Promise<T> {
    const out = await this.ok(host, ...args);
    try {
      return JSON.parse(out) as T;
    } catch {
      throw new Error(`shoal ${args.join(' ')} on ${host} did not print JSON: ${out.slice(0, 500)}`);
    }
  }

  nodes(host: string): Promise<NodeView[]> {
    return this.json<NodeView[]>(host, 'node', 'ls', '--format', 'json');
  }

  info(host: string): Promise<InfoView> {
    return this.json<InfoView>(host, 'info', '--format', 'json');
  }

  /** Poll `node ls` on host until check accepts it. */
  async waitNodes(what: string, host: string, check: (ns: NodeView[]) => boolean, timeoutMs = 30_000): Promise<NodeView[]> {
    let last: NodeView[] = [];
    try {
      return await waitFor(what, async () => {
        last = await this.nodes(host);
        return check(last) ? last : undefined;
      }, timeoutMs, 200);
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen: ${summary(last) || 'nothing'}`);
    }
  }

  /** shoald on host answers on its socket. */
  waitDaemon(host: string, timeoutMs = 30_000): Promise<true> {
    return waitFor(`shoald on ${host} to answer on its socket`, async () => ((await this.run(host, ['info', '--format', 'json'], 5_000)).code === 0 ? true : undefined), timeoutMs, 100);
  }

  // ---- the hosts' containerds, directly ----

  /** Where host's containerd serves and the namespace its shoald uses. */
  containerd(host: string): { socket: string; namespace: string; pid: number | null } {
    const c = hostContainerd(this.lab, host);
    return { socket: c.socket, namespace: c.namespace, pid: c.pid };
  }

  /** A ContainerdRuntime on host's containerd, in its shoald's namespace (kept open until teardown). */
  runtime(host: string): ContainerdRuntime {
    let rt = this.runtimes.get(host);
    if (!rt) {
      const c = hostContainerd(this.lab, host);
      rt = new ContainerdRuntime({ socket: c.socket, namespace: c.namespace, callTimeoutMs: 15_000, stateDir: path.join(this.lab.hostState(host).hostDir, 'test-runtime') });
      this.runtimes.set(host, rt);
    }
    return rt;
  }

  // ---- the hosts' dockerds, directly (runtime: 'docker') ----

  /** Where host's dockerd serves, and its pid while it runs. */
  docker(host: string): { socket: string; pid: number | null } {
    const d = hostDocker(this.lab, host);
    return { socket: d.socket, pid: d.pid };
  }

  /**
   * A DockerRuntime on host's dockerd that only looks (it never copies
   * container output: the host's shoald does), kept until teardown.
   */
  async dockerRuntime(host: string): Promise<DockerRuntime> {
    let rt = this.dockerRuntimes.get(host);
    if (!rt) {
      rt = await hostDockerRuntime(this.lab, host, { observe: true, stateDir: path.join(this.lab.hostState(host).hostDir, 'test-runtime') });
      this.dockerRuntimes.set(host, rt);
    }
    return rt;
  }

  /** The containers in host's containerd (shoal's namespace there), or with runtime docker its dockerd (shoal's label), straight from it. */
  async containersOn(host: string): Promise<HostContainer[]> {
    const list = this.runtimeKind === 'docker' ? await (await this.dockerRuntime(host)).list() : await this.runtime(host).list();
    return list
      .map((c) => ({ id: c.id, state: c.state, labels: c.labels, image: c.image, pid: c.pid, ...(c.exitCode !== undefined ? { exitCode: c.exitCode } : {}) }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** containersOn for every host: host -> containers. */
  async allContainers(): Promise<Record<string, HostContainer[]>> {
    const all = await Promise.all(this.hosts.map((h) => this.containersOn(h)));
    return Object.fromEntries(this.hosts.map((h, i) => [h, all[i]!]));
  }

  /** Running containers per host (containerd's view): host -> count. */
  async runningPerHost(): Promise<Record<string, number>> {
    const all = await this.allContainers();
    return Object.fromEntries(Object.entries(all).map(([h, cs]) => [h, cs.filter((c) => c.state === 'running').length]));
  }

  // ---- failures ----

  /**
   * SIGKILLs host's shoald and then its containerd (by the lab's pids). Their
   * shims, and so the containers, go on running, as after a crash of both
   * daemons; with containers: true they are killed too (the host lost power).
   */
  async killHost(host: string, opts: { containers?: boolean; engine?: boolean } = {}): Promise<void> {
    if (this.runtimeKind === 'docker') return this.killDockerHost(host, opts);
    this.runtimes.get(host)?.close();
    this.runtimes.delete(host);
    await this.lab.killDaemon(host);
    await this.lab.killDaemon(host, CONTAINERD_PROC);
    if (opts.containers) await cleanupContainerd(this.lab.hostState(host).hostDir);
  }

  /**
   * SIGKILLs host's container runtime alone, shoald lives on: its containerd (the shims keep the
   * containers running), or with runtime docker its dockerd (whose containerd dies with it; with
   * --live-restore the containers run on).
   */
  async killRuntime(host: string): Promise<void> {
    if (this.runtimeKind === 'docker') {
      await this.lab.killDaemon(host, DOCKERD_PROC);
      return;
    }
    this.runtimes.get(host)?.close();
    this.runtimes.delete(host);
    await this.lab.killDaemon(host, CONTAINERD_PROC);
  }

  /** Starts host's containerd (or with runtime docker its dockerd) again, until it answers. */
  async startRuntime(host: string): Promise<void> {
    if (this.runtimeKind === 'docker') {
      await this.lab.startDaemon(host, DOCKERD_PROC);
      await waitDocker(this.lab, host);
      return;
    }
    await this.lab.startDaemon(host, CONTAINERD_PROC);
    await waitContainerd(this.lab, host);
  }

  /**
   * With runtime docker: SIGKILLs host's shoald, and with engine: true then its
   * dockerd (whose containerd dies with it; with --live-restore the shims keep
   * the containers running). With containers: true, dockerd and the containers
   * too (the host lost power).
   */
  private async killDockerHost(host: string, opts: { containers?: boolean; engine?: boolean }): Promise<void> {
    await this.lab.killDaemon(host);
    if (opts.engine || opts.containers) await this.lab.killDaemon(host, DOCKERD_PROC);
    if (opts.containers) {
      const d = hostDocker(this.lab, host);
      await cleanupDocker(this.lab.hostState(host).hostDir, { cgroupParent: d.cgroupParent });
    }
  }

  /**
   * Kills whatever of the two runs, then starts containerd (until it answers) and shoald (until it answers).
   * With runtime docker: kills shoald (and with engine: true dockerd), then starts dockerd unless it runs, waits
   * until it answers, and starts shoald.
   */
  async restartHost(host: string, opts: { engine?: boolean } = {}): Promise<void> {
    if (this.runtimeKind === 'docker') {
      await this.killDockerHost(host, opts);
      await this.lab.startDaemon(host, DOCKERD_PROC);
      await waitDocker(this.lab, host);
      await this.lab.startDaemon(host);
      await this.waitDaemon(host);
      return;
    }
    await this.killHost(host);
    await this.lab.startDaemon(host, CONTAINERD_PROC);
    await waitContainerd(this.lab, host);
    await this.lab.startDaemon(host);
    await this.waitDaemon(host);
  }

  // ---- bring-up and teardown ----

  async start(): Promise<void> {
    let t0 = Date.now();
    await this.lab.up();
    await Promise.all(this.hosts.map((h) => this.waitDaemon(h)));
    this.timings.labUpMs = Date.now() - t0;

    t0 = Date.now();
    this.imageTar = busyboxTarball();
    if (this.runtimeKind === 'docker') await preloadDockerImageAll(this.lab, this.imageTar);
    else await preloadImageAll(this.lab, this.imageTar);
    if (this.opts.registry) {
      this.registry = registryAddress(this.lab, 'host1');
      this.registryImage = await pushImage(this.lab, this.imageTar, 'busybox:1', { host: 'host1' });
      if (this.opts.authRegistry) {
        const addr = `${this.lab.hostIp('host1')}:${AUTH_REGISTRY_PORT}`;
        // Up once it asks for the login (from inside host1: only the lab network reaches it).
        const probe = `fetch('http://${addr}/v2/').then((r) => process.exit(r.status === 401 ? 0 : 1), () => process.exit(1))`;
        await waitFor(`the registry at ${addr} asking for a login`, async () => (await this.lab.exec('host1', [process.execPath, '-e', probe])).code === 0 || undefined, 30_000, 200);
        this.authRegistryImage = `${addr}/busybox:1`;
      }
    }
    this.timings.preloadMs = Date.now() - t0;

    t0 = Date.now();
    const [first, ...otherManagers] = this.managers;
    const init = await this.info(first!);
    if (init.LocalNodeState !== 'active') await this.ok(first!, 'swarm', 'init', '--advertise-addr', this.addr(first!));
    const managerToken = (await this.ok(first!, 'swarm', 'join-token', '-q', 'manager')).trim();
    const workerToken = (await this.ok(first!, 'swarm', 'join-token', '-q', 'worker')).trim();
    // Managers one at a time (raft adds one member at a time), then the workers together.
    for (const h of otherManagers) await this.ok(h, 'swarm', 'join', '--token', managerToken, this.addr(first!));
    await Promise.all(this.workers.map((h) => this.ok(h, 'swarm', 'join', '--token', workerToken, this.addr(first!))));
    await this.waitNodes(`all ${this.hosts.length} nodes Ready`, first!, (ns) => ns.length === this.hosts.length && ns.every((n) => n.Status.State === 'ready'), 60_000);
    this.timings.swarmMs = Date.now() - t0;
  }

  /**
   * down --purge --kill-stragglers and the temp dir; best effort (never
   * throws). With keepLogs (a test failed, or the caller asked) the daemons'
   * and containerds' logs are copied out first; `why` says which in the line
   * that names the folder.
   */
  async teardown(opts: { keepLogs?: boolean; why?: string } = {}): Promise<void> {
    for (const rt of this.runtimes.values()) rt.close();
    this.runtimes.clear();
    for (const rt of this.dockerRuntimes.values()) rt.close();
    this.dockerRuntimes.clear();
    if (opts.keepLogs && this.lab.exists()) {
      const dir = mkdtempSync(`/tmp/shoal-services-logs-${this.name}-`);
      for (const h of this.hosts) {
        const hostDir = this.lab.hostState(h).hostDir;
        for (const f of ['daemon.log', 'containerd.log', 'dockerd.log', 'registry.log']) {
          if (existsSync(path.join(hostDir, f))) copyFileSync(path.join(hostDir, f), path.join(dir, `${h}-${f}`));
        }
      }
      console.log(`lab ${this.name}: ${opts.why ?? 'a test failed'}; logs kept in ${dir}`);
    }
    try {
      await this.lab.down({ purge: true, killStragglers: true });
    } catch (e) {
      console.error(`lab ${this.name}: down failed: ${(e as Error).message}`);
    }
    rmSync(this.baseDir, { recursive: true, force: true });
  }
}

/** A word for a lab template: quoted when it needs it. */
function quote(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/**
 * Brings up a lab with a containerd (or with runtime docker, a dockerd) per host, preloads busybox into every
 * host, inits the swarm on host1 and joins the rest (host1..hostM managers),
 * and waits until every node is Ready. On a failure it tears the lab down
 * (keeping the logs) before rethrowing.
 */
export async function startServicesCluster(opts: ServicesClusterOptions): Promise<ServicesCluster> {
  const c = new ServicesCluster(opts);
  try {
    await c.start();
  } catch (e) {
    await c.teardown({ keepLogs: true });
    throw e;
  }
  return c;
}
