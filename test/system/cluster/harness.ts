// A shoal cluster on lab hosts, for the cluster system tests: one lab host
// (network namespace) per node, one shoald per host (the lab's default daemon
// command, from dist/), and the `shoal` CLI run from the root namespace
// against each host's unix socket. Everything here waits by polling with a
// deadline; nothing sleeps a fixed time.
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, checkPrerequisites } from '../../../deploy/lab/lab.js';
import { containerdLabOptions } from '../../../deploy/lab/containerd.js';
import { prepareRuntimePrerequisites } from '../runtime/containerd-harness.js';
import { waitFor as sharedWaitFor } from '../../support/wait.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../../..');
export const SHOAL = path.join(repo, 'dist/cli/shoal/main.js');
export const SHOALD = path.join(repo, 'dist/cli/shoald/main.js');
export const PORT = 4377;

export const inCI = process.env.CI === 'true';

/**
 * What these tests need: the lab's (root, iproute2, nftables, util-linux) and
 * a build (the daemons run from dist/). `skip` says whether to skip: without
 * the prerequisites a suite skips with the printed reason, except under
 * CI=true, where it must fail instead (the suite's beforeAll throws).
 */
export function clusterPrerequisites(suite: string): { ok: boolean; skip: boolean; problems: string[] } {
  const pre = checkPrerequisites();
  const problems = [...pre.problems];
  if (problems.length === 0) problems.push(...prepareRuntimePrerequisites());
  for (const f of [SHOAL, SHOALD]) {
    if (!existsSync(f)) problems.push(`${path.relative(repo, f)} is missing: run \`npm run build\` first (the lab's daemons run from dist/)`);
  }
  const ok = problems.length === 0;
  if (!ok && !inCI) console.log(`skipping ${suite}: ${problems.join('; ')}`);
  return { ok, skip: !ok && !inCI, problems };
}

/** `shoal node ls --format json` / `node inspect`: the fields the tests read. */
export interface NodeView {
  ID: string;
  Version: { Index: number };
  Spec: { Labels: Record<string, string>; Role: 'manager' | 'worker'; Availability: string };
  Description: { Hostname: string };
  Status: { State: string; Message: string; Addr: string; Since: string };
  ManagerStatus?: { Leader: boolean; Reachability: string; Addr: string; RaftID: number };
  Certificate?: { NotAfter: string; Serial: string };
}

/** `shoal info --format json`. */
export interface InfoView {
  NodeID: string;
  LocalNodeState: string;
  ControlAvailable: boolean;
  ClusterID: string;
  Managers: string[];
  Error: string;
  CertificateExpiry: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export { sleep } from '../../support/wait.js';

/** Poll every 100 ms by default: each poll here may start a CLI process. */
export const waitFor = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000, intervalMs = 100): Promise<T> =>
  sharedWaitFor(what, fn, timeoutMs, intervalMs);

export class ClusterLab {
  readonly lab: Lab;
  readonly baseDir: string;
  private readonly logMarks = new Map<string, number>();

  constructor(name: string, hosts: number, subnet: string) {
    this.baseDir = mkdtempSync(`/tmp/shoal-cluster-${name}-`);
    // Every host has its own containerd, whatever the machine has: a node whose runtime cannot
    // be reached reports itself down (as in Swarm), and these tests want Ready nodes.
    this.lab = new Lab({ name, hosts, subnet, baseDir: this.baseDir, ...containerdLabOptions({ subnet }) });
  }

  get name(): string {
    return this.lab.name;
  }

  async up(): Promise<void> {
    await this.lab.up();
    // Each daemon answers on its socket once it listened: a lab host is usable then.
    await Promise.all(this.lab.hosts().map((h) => this.waitDaemon(h)));
  }

  /**
   * Best effort, for afterAll: never throws, says what it could not remove.
   * With keepLogs (a test failed), the daemons' logs are copied out first.
   */
  async down(opts: { keepLogs?: boolean } = {}): Promise<void> {
    if (opts.keepLogs) {
      const dir = mkdtempSync(`/tmp/shoal-cluster-logs-${this.name}-`);
      for (const h of this.lab.hosts()) {
        const f = this.lab.hostState(h).logFile;
        if (existsSync(f)) copyFileSync(f, path.join(dir, `${h}.log`));
      }
      console.log(`lab ${this.name}: a test failed; daemon logs kept in ${dir}`);
    }
    try {
      await this.lab.down({ purge: true, killStragglers: true });
    } catch (e) {
      console.error(`lab ${this.name}: down failed: ${(e as Error).message}`);
    }
    rmSync(this.baseDir, { recursive: true, force: true });
  }

  ip(host: string): string {
    return this.lab.hostIp(host);
  }

  addr(host: string): string {
    return `${this.ip(host)}:${PORT}`;
  }

  /** Run `shoal --socket <host's socket> ...args` from the root namespace. A timeout kills it (code 137). */
  shoal(host: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
    const t0 = Date.now();
    return new Promise((resolve) => {
      execFile(process.execPath, [SHOAL, '--socket', this.lab.hostState(host).socket, ...args],
        { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 16 << 20 },
        (err, stdout, stderr) => {
          const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string; killed?: boolean }) | null;
          const code = !e ? 0 : typeof e.code === 'number' ? e.code : e.signal ? 128 + 9 : 1;
          resolve({ code, stdout, stderr, ms: Date.now() - t0 });
        });
    });
  }

  /** Like shoal(), but a failure throws with the CLI's stderr. */
  async ok(host: string, args: string[], timeoutMs = 30_000): Promise<string> {
    const r = await this.shoal(host, args, timeoutMs);
    if (r.code !== 0) throw new Error(`shoal ${args.join(' ')} on ${host} failed (code ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /** The CLI must fail; returns its error output. */
  async refused(host: string, args: string[], timeoutMs = 30_000): Promise<string> {
    const r = await this.shoal(host, args, timeoutMs);
    if (r.code === 0) throw new Error(`shoal ${args.join(' ')} on ${host} succeeded but should have been refused: ${r.stdout.trim()}`);
    return r.stderr;
  }

  async nodes(host: string, timeoutMs = 15_000): Promise<NodeView[]> {
    return JSON.parse(await this.ok(host, ['node', 'ls', '--format', 'json'], timeoutMs)) as NodeView[];
  }

  async info(host: string): Promise<InfoView> {
    return JSON.parse(await this.ok(host, ['info', '--format', 'json'])) as InfoView;
  }

  async inspect(host: string, ref: string): Promise<NodeView> {
    return (JSON.parse(await this.ok(host, ['node', 'inspect', ref])) as NodeView[])[0]!;
  }

  async waitDaemon(host: string): Promise<void> {
    await waitFor(`shoald on ${host} to answer on its socket`, async () => ((await this.shoal(host, ['info', '--format', 'json'], 5000)).code === 0 ? true : undefined), 20_000, 100);
  }

  async joinToken(host: string, role: 'worker' | 'manager'): Promise<string> {
    return (await this.ok(host, ['swarm', 'join-token', '-q', role])).trim();
  }

  /** Poll `node ls` on `host` until `check` accepts the list; returns it. */
  waitNodes(what: string, host: string | (() => string), check: (ns: NodeView[]) => boolean, timeoutMs = 20_000): Promise<NodeView[]> {
    return waitFor(what, async () => {
      const ns = await this.nodes(typeof host === 'string' ? host : host(), 10_000);
      return check(ns) ? ns : undefined;
    }, timeoutMs, 100);
  }

  // ---- the daemon's log ----

  /** Remember where `host`'s daemon log ends now; logSince() reads from there. */
  markLog(host: string): void {
    const f = this.lab.hostState(host).logFile;
    this.logMarks.set(host, existsSync(f) ? statSync(f).size : 0);
  }

  logSince(host: string): string {
    const f = this.lab.hostState(host).logFile;
    if (!existsSync(f)) return '';
    return readFileSync(f).subarray(this.logMarks.get(host) ?? 0).toString('utf8');
  }

  log(host: string): string {
    const f = this.lab.hostState(host).logFile;
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }
}

// ---- reading node lists ----

export function byHost(ns: NodeView[], host: string): NodeView {
  const n = ns.find((x) => x.Description.Hostname === host);
  if (!n) throw new Error(`no node with hostname ${host} in ${ns.map((x) => x.Description.Hostname).join(', ')}`);
  return n;
}

export function leaders(ns: NodeView[]): string[] {
  return ns.filter((n) => n.ManagerStatus?.Leader).map((n) => n.Description.Hostname);
}

export function managerHosts(ns: NodeView[]): string[] {
  return ns.filter((n) => n.ManagerStatus).map((n) => n.Description.Hostname).sort();
}

/** "host1 ready Leader, host2 ready reachable, ..." for failure messages and logs. */
export function summary(ns: NodeView[]): string {
  return ns.map((n) => `${n.Description.Hostname} ${n.Status.State}${n.ManagerStatus ? ` ${n.ManagerStatus.Leader ? 'Leader' : n.ManagerStatus.Reachability}` : ''}`).join(', ');
}
