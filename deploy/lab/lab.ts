// The multi-host lab: N "hosts" on one machine. Each host is a network
// namespace with an eth0 on a bridge that lives in the lab's own switch
// namespace, a UTS namespace carrying its name, a state dir and its daemon.
// Everything the lab makes is recorded in <baseDir>/<lab>/lab.json, and
// `down` removes exactly that. Mutations take a lock file, so CLI calls and
// library calls on the same lab may overlap safely.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { connect } from 'node:net';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BRIDGE,
  DEFAULT_BASE_DIR,
  DEFAULT_DAEMON_CMD,
  DEFAULT_SUBNET,
  HOST_IFACE,
  MAIN_PROC,
  NFT_TABLE,
  buildCommand,
  defaultHostNames,
  exitCode,
  formatSubnet,
  hostAddress,
  hostMac,
  hostArgv,
  hostNetns,
  parseSubnet,
  partitionKey,
  partitionRuleset,
  runsOn,
  substitute,
  switchNetns,
  switchPort,
  validateHostName,
  validateLabName,
  validateSidecar,
  type ProcSpec,
  type StatusRow,
  type TemplateVars,
} from './plan.js';
import { checkPrerequisites, execedInto, pidsInNetns, procInfo, run, sameArgv, signalNumbers, sleep, waitUntil } from './sys.js';
import { cleanupContainerd, containerdNamespace, containerdPaths, unmountUnder } from './containerd.js';
import { cleanupDocker, dockerCgroupParent } from './docker.js';

export type { ProcSpec } from './plan.js';

export interface LabOptions {
  name: string;
  /** A count (host1..hostN) or explicit names. Optional when the lab already exists. */
  hosts?: number | string[];
  /** Lab network, default 10.231.0.0/24; host i gets address number 10+i. */
  subnet?: string;
  /** Default /var/lib/shoal-lab; the lab lives in <baseDir>/<name>/. */
  baseDir?: string;
  /** Template of the main daemon ('daemon'); placeholders listed in README.md. */
  daemonCmd?: string;
  /**
   * Processes started before the daemon in each host (or in the hosts they
   * name): containerd, say (containerd.ts: containerdLabOptions()). Killed after it.
   */
  sidecars?: ProcSpec[];
  /** Value of {repo}; default: the checkout this file belongs to. */
  repo?: string;
  /** Progress lines; silent by default. */
  log?: (line: string) => void;
}

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HostState {
  host: string;
  netns: string;
  ip: string;
  hostDir: string;
  stateDir: string;
  socket: string;
  logFile: string;
  pidFile: string;
  /** The daemon's pid while it runs (verified), else null. */
  pid: number | null;
}

export interface HostStatus extends StatusRow {
  hostDir: string;
}

export interface LabStatus {
  lab: string;
  exists: boolean;
  subnet: string | null;
  baseDir: string;
  procNames: string[];
  hosts: HostStatus[];
  partitions: [string, string][];
}

interface ProcRecord {
  pid: number;
  argv: string[];
  /** /proc start time: together with the pid it identifies our process even after pid reuse. */
  startTime: string;
}

interface HostRecord {
  index: number;
  ip: string;
  netns: string;
}

interface LabState {
  version: 1;
  name: string;
  subnet: string;
  daemonCmd: string;
  sidecars: ProcSpec[];
  /** Insertion order is host order. */
  hosts: Record<string, HostRecord>;
  /** What this lab created, and so what `down` may remove. */
  made: {
    netns: string[];
    links: { netns: string; name: string }[];
    nftTables: { netns: string; family: string; name: string }[];
  };
  procs: Record<string, Record<string, ProcRecord>>;
  partitions: [string, string][];
}

const NSFS_MAGIC = 0x6e736673;

function netnsPath(ns: string): string {
  return `/run/netns/${ns}`;
}

/** True when /run/netns/<ns> is a mounted namespace (not a stale file left by a crash). */
function netnsLive(ns: string): boolean {
  try {
    return statfsSync(netnsPath(ns)).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

function findRepo(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'shoal') return dir;
    } catch {
      // keep walking up
    }
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Whether a unix socket accepts a connection now. */
function canConnect(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(socket);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export class Lab {
  readonly name: string;
  readonly baseDir: string;
  readonly labDir: string;
  readonly stateFile: string;
  readonly repo: string;
  private readonly opts: LabOptions;
  private readonly log: (line: string) => void;

  constructor(opts: LabOptions) {
    validateLabName(opts.name);
    if (opts.subnet !== undefined) parseSubnet(opts.subnet);
    if (Array.isArray(opts.hosts)) opts.hosts.forEach(validateHostName);
    else if (opts.hosts !== undefined) defaultHostNames(opts.hosts);
    (opts.sidecars ?? []).forEach(validateSidecar);
    const names = (opts.sidecars ?? []).map((s) => s.name);
    if (new Set(names).size !== names.length) throw new Error(`sidecar names repeat: ${names.join(', ')}`);
    this.opts = opts;
    this.name = opts.name;
    this.baseDir = path.resolve(opts.baseDir ?? DEFAULT_BASE_DIR);
    this.labDir = path.join(this.baseDir, this.name);
    this.stateFile = path.join(this.labDir, 'lab.json');
    this.repo = opts.repo ?? findRepo();
    this.log = opts.log ?? (() => {});
  }

  /** Whether the lab's state file exists (it has been brought up and not downed). */
  exists(): boolean {
    return existsSync(this.stateFile);
  }

  // ---- names, addresses, paths ------------------------------------------

  /** Hosts in order: those of the existing lab, then any new ones from the options. */
  hosts(): string[] {
    return Object.keys(this.plan(this.readState()).hosts);
  }

  hostIp(host: string): string {
    return this.hostRecord(host).ip;
  }

  hostNetns(host: string): string {
    return this.hostRecord(host).netns;
  }

  /** Paths of a host and the daemon's pid while it runs. */
  hostState(host: string): HostState {
    const rec = this.hostRecord(host);
    const p = this.paths(host, MAIN_PROC);
    const st = this.readState();
    const proc = st?.procs[host]?.[MAIN_PROC];
    const pid = proc && this.readPidFile(p.pidFile) === proc.pid && this.isOurs(proc) ? proc.pid : null;
    return { host, netns: rec.netns, ip: rec.ip, hostDir: p.hostDir, stateDir: p.stateDir, socket: p.socket, logFile: p.logFile, pidFile: p.pidFile, pid };
  }

  private paths(host: string, proc: string) {
    const hostDir = path.join(this.labDir, host);
    return {
      hostDir,
      stateDir: path.join(hostDir, 'state'),
      socket: path.join(hostDir, 'shoald.sock'),
      logFile: path.join(hostDir, `${proc}.log`),
      pidFile: path.join(hostDir, `${proc}.pid`),
    };
  }

  private hostRecord(host: string): HostRecord {
    const rec = this.plan(this.readState()).hosts[host];
    if (!rec) throw new Error(`lab ${this.name} has no host '${host}' (hosts: ${this.hosts().join(', ') || 'none'})`);
    return rec;
  }

  private vars(st: LabState, host: string): TemplateVars {
    const rec = st.hosts[host]!;
    const p = this.paths(host, MAIN_PROC);
    return {
      lab: this.name,
      host,
      ip: rec.ip,
      subnet: st.subnet,
      netns: rec.netns,
      hostDir: p.hostDir,
      stateDir: p.stateDir,
      socket: p.socket,
      repo: this.repo,
      node: process.execPath,
      // Where a containerd sidecar (containerd.ts) serves, for the daemon's template.
      containerdSocket: containerdPaths(p.hostDir).socket,
      containerdNamespace: containerdNamespace(rec.netns),
    };
  }

  /** The sidecars (in start order) and the daemon; with a host, only those that run on it. */
  private specs(st: LabState, host?: string): ProcSpec[] {
    return [...st.sidecars, { name: MAIN_PROC, cmd: st.daemonCmd }].filter((s) => host === undefined || runsOn(s, host));
  }

  /** The process templates of the lab (stored, or planned from the options): sidecars, then the daemon. */
  procSpecs(): ProcSpec[] {
    return this.specs(this.plan(this.readState()));
  }

  /** The pid of a host's daemon or sidecar while it runs (verified to be the process the lab started), else null. */
  procPid(host: string, procName: string = MAIN_PROC): number | null {
    const st = this.readState();
    const rec = st?.procs[host]?.[procName];
    return rec && this.readPidFile(this.paths(host, procName).pidFile) === rec.pid && this.isOurs(rec) ? rec.pid : null;
  }

  // ---- state -------------------------------------------------------------

  private readState(): LabState | undefined {
    let text: string;
    try {
      text = readFileSync(this.stateFile, 'utf8');
    } catch {
      return undefined;
    }
    const st = JSON.parse(text) as LabState;
    if (st.version !== 1) throw new Error(`${this.stateFile}: unknown state version ${String(st.version)}`);
    return st;
  }

  private saveState(st: LabState): void {
    mkdirSync(this.labDir, { recursive: true });
    // Write-then-rename so a crash never leaves a half-written record of what we made.
    const tmp = `${this.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(st, null, 2) + '\n');
    renameSync(tmp, this.stateFile);
  }

  /**
   * The state the options ask for, on top of what exists: existing hosts keep
   * their addresses; new hosts take their natural index (hostN -> N) when free.
   */
  private plan(existing: LabState | undefined): LabState {
    const st: LabState = existing
      ? (JSON.parse(JSON.stringify(existing)) as LabState)
      : {
          version: 1,
          name: this.name,
          subnet: formatSubnet(parseSubnet(this.opts.subnet ?? DEFAULT_SUBNET)),
          daemonCmd: DEFAULT_DAEMON_CMD,
          sidecars: [],
          hosts: {},
          made: { netns: [], links: [], nftTables: [] },
          procs: {},
          partitions: [],
        };
    if (existing && this.opts.subnet !== undefined && formatSubnet(parseSubnet(this.opts.subnet)) !== existing.subnet) {
      throw new Error(`lab ${this.name} exists with subnet ${existing.subnet}; run down first to change it to ${this.opts.subnet}`);
    }
    if (this.opts.daemonCmd !== undefined) st.daemonCmd = this.opts.daemonCmd;
    if (this.opts.sidecars !== undefined) st.sidecars = this.opts.sidecars;
    const wanted = this.opts.hosts === undefined ? (existing ? [] : defaultHostNames(3)) : Array.isArray(this.opts.hosts) ? this.opts.hosts : defaultHostNames(this.opts.hosts);
    const used = new Set(Object.values(st.hosts).map((h) => h.index));
    wanted.forEach((host, i) => {
      if (st.hosts[host]) return;
      let index = i + 1;
      while (used.has(index)) index++;
      used.add(index);
      st.hosts[host] = { index, ip: hostAddress(st.subnet, index), netns: hostNetns(this.name, host) };
    });
    return st;
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    mkdirSync(this.labDir, { recursive: true });
    const lockFile = path.join(this.labDir, 'lab.lock');
    const me = `${process.pid} ${procInfo(process.pid)?.startTime ?? ''}`;
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        writeFileSync(lockFile, me, { flag: 'wx' });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let holder = '';
      try {
        holder = readFileSync(lockFile, 'utf8');
      } catch {
        continue; // released meanwhile
      }
      const [pid, start] = holder.split(' ');
      const info = procInfo(Number(pid));
      if (!info || info.startTime !== start) {
        // The holder died without releasing it.
        rmSync(lockFile, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`lab ${this.name} is busy: ${lockFile} is held by pid ${pid}`);
      await sleep(50);
    }
    try {
      return await fn();
    } finally {
      try {
        if (readFileSync(lockFile, 'utf8') === me) rmSync(lockFile, { force: true });
      } catch {
        // removed with the lab dir by down --purge
      }
    }
  }

  private requirePrerequisites(): void {
    const pre = checkPrerequisites();
    if (!pre.ok) throw new Error(`shoal-lab cannot run here:\n  ${pre.problems.join('\n  ')}`);
  }

  private requireState(): LabState {
    const st = this.readState();
    if (!st) throw new Error(`lab ${this.name} is not up (no ${this.stateFile})`);
    return st;
  }

  private requireHostUp(st: LabState, host: string): HostRecord {
    const rec = st.hosts[host];
    if (!rec) throw new Error(`lab ${this.name} has no host '${host}' (hosts: ${Object.keys(st.hosts).join(', ')})`);
    if (!netnsLive(rec.netns)) throw new Error(`host ${host} of lab ${this.name} is not up (no network namespace ${rec.netns}); run up`);
    return rec;
  }

  // ---- up ----------------------------------------------------------------

  /**
   * Creates whatever is missing (namespaces, bridge, veths, addresses,
   * partition rules, daemons) and leaves what exists alone.
   */
  async up(opts: { noDaemon?: boolean } = {}): Promise<void> {
    this.requirePrerequisites();
    await this.withLock(async () => {
      const existing = this.readState();
      const st = this.plan(existing);
      if (existing && this.opts.hosts !== undefined) {
        const extra = Object.keys(existing.hosts).filter((h) => !this.wantedHosts().includes(h));
        if (extra.length > 0) this.log(`note: lab ${this.name} keeps its hosts ${extra.join(', ')} (up never removes hosts; down does)`);
      }
      this.saveState(st);
      this.log(`lab ${this.name}: subnet ${st.subnet}, ${Object.keys(st.hosts).length} hosts, state in ${this.labDir}`);

      const sw = switchNetns(this.name);
      await this.ensureNetns(st, sw);
      if (!(await this.linkExists(sw, BRIDGE))) {
        this.log(`creating switch ${sw} (bridge ${BRIDGE}) ...`);
        await run(['ip', '-n', sw, 'link', 'add', BRIDGE, 'type', 'bridge']);
        this.recordLink(st, sw, BRIDGE);
      }
      await run(['ip', '-n', sw, 'link', 'set', BRIDGE, 'up']);

      const prefix = parseSubnet(st.subnet).prefix;
      for (const [host, rec] of Object.entries(st.hosts)) {
        const port = switchPort(host);
        const fresh = !netnsLive(rec.netns);
        this.log(`${fresh ? 'creating' : 'checking'} ${host} (netns ${rec.netns}, ${rec.ip}) ...`);
        await this.ensureNetns(st, rec.netns);
        const hostSide = await this.linkExists(rec.netns, HOST_IFACE);
        const swSide = await this.linkExists(sw, port);
        if (!hostSide || !swSide) {
          if (!fresh) this.log(`${host}: veth pair missing or broken, recreating it`);
          // Half a pair is useless; deleting either end removes both.
          if (hostSide) await run(['ip', '-n', rec.netns, 'link', 'del', HOST_IFACE]);
          if (swSide) await run(['ip', '-n', sw, 'link', 'del', port]);
          // Created directly inside the two namespaces: never visible in the root one.
          await run(['ip', 'link', 'add', port, 'netns', sw, 'type', 'veth', 'peer', 'name', HOST_IFACE, 'netns', rec.netns, 'address', hostMac(rec.ip)]);
          this.recordLink(st, sw, port);
        }
        await run(['ip', '-n', sw, 'link', 'set', port, 'master', BRIDGE, 'up']);
        await run(['ip', '-n', rec.netns, 'link', 'set', HOST_IFACE, 'address', hostMac(rec.ip)]);
        await run(['ip', '-n', rec.netns, 'addr', 'replace', `${rec.ip}/${prefix}`, 'dev', HOST_IFACE]);
        await run(['ip', '-n', rec.netns, 'link', 'set', HOST_IFACE, 'up']);
      }
      await this.applyPartitions(st);

      if (!opts.noDaemon) {
        for (const host of Object.keys(st.hosts)) {
          for (const spec of this.specs(st, host)) {
            const rec = st.procs[host]?.[spec.name];
            if (rec && this.isOurs(rec)) continue;
            await this.startProc(st, host, spec);
          }
        }
      }
      this.log(`lab ${this.name} is up`);
    });
  }

  private wantedHosts(): string[] {
    const h = this.opts.hosts;
    return h === undefined ? [] : Array.isArray(h) ? h : defaultHostNames(h);
  }

  private async ensureNetns(st: LabState, ns: string): Promise<void> {
    const ours = st.made.netns.includes(ns);
    if (netnsLive(ns)) {
      if (!ours) throw new Error(`network namespace ${ns} exists but lab ${this.name} did not make it: use another --lab name, or remove it (ip netns del ${ns})`);
    } else {
      // A stale mount point of ours (after a crash) would make `ip netns add` fail.
      if (ours && existsSync(netnsPath(ns))) rmSync(netnsPath(ns), { force: true });
      await run(['ip', 'netns', 'add', ns]);
      if (!ours) st.made.netns.push(ns);
      this.saveState(st);
    }
    await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }

  private async linkExists(ns: string, name: string): Promise<boolean> {
    return (await run(['ip', '-n', ns, 'link', 'show', 'dev', name], { allowFail: true })).code === 0;
  }

  private recordLink(st: LabState, netns: string, name: string): void {
    if (!st.made.links.some((l) => l.netns === netns && l.name === name)) st.made.links.push({ netns, name });
    this.saveState(st);
  }

  // ---- processes ---------------------------------------------------------

  private readPidFile(file: string): number | undefined {
    try {
      const n = Number(readFileSync(file, 'utf8').trim());
      return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** Still the very process we started: same pid, start time and argv, and not a zombie. */
  private isOurs(rec: ProcRecord): boolean {
    const info = procInfo(rec.pid);
    return !!info && !info.zombie && info.startTime === rec.startTime && sameArgv(info.cmdline, rec.argv);
  }

  private async startProc(st: LabState, host: string, spec: ProcSpec, extraEnv?: NodeJS.ProcessEnv): Promise<number> {
    const rec = this.requireHostUp(st, host);
    const p = this.paths(host, spec.name);
    mkdirSync(p.stateDir, { recursive: true });
    const vars = this.vars(st, host);
    const argv = buildCommand(spec.cmd, vars);
    for (const [fileT, contentT] of Object.entries(spec.files ?? {})) {
      const file = path.resolve(p.hostDir, substitute(fileT, vars));
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(`${file}.tmp`, substitute(contentT, vars));
      renameSync(`${file}.tmp`, file);
    }
    this.log(`starting ${spec.name} on ${host} ...`);
    const fd = openSync(p.logFile, 'a');
    writeSync(fd, `--- ${new Date().toISOString()} shoal-lab starts ${spec.name}: ${argv.join(' ')}\n`);
    const full = hostArgv(rec.netns, host, argv);
    // Detached (own session): it outlives the CLI and ignores the terminal's ^C.
    const specEnv = Object.fromEntries(Object.entries(spec.env ?? {}).map(([k, v]) => [k, substitute(v, vars)]));
    const env = spec.env || extraEnv ? { ...process.env, ...specEnv, ...extraEnv } : undefined;
    const child = spawn(full[0]!, full.slice(1), { detached: true, stdio: ['ignore', fd, fd], cwd: p.hostDir, env });
    closeSync(fd);
    let exited: string | undefined;
    child.on('exit', (code, signal) => (exited = signal ? `killed by ${signal}` : `exit code ${code}`));
    child.on('error', (e) => (exited = e.message));
    child.unref();
    const pid = child.pid;
    if (pid === undefined) {
      await sleep(0);
      throw new Error(`cannot start ${spec.name} on ${host}: ${exited ?? 'spawn failed'}`);
    }
    // A wrapper at the command's head (env, nice) shows the whole argv until it execs the rest.
    const refuseWrapper = () => {
      const info = procInfo(pid);
      if (info && !info.zombie && execedInto(info.cmdline, argv)) {
        throw new Error(
          `${spec.name} on ${host}: its command starts with ${argv.slice(0, argv.length - info.cmdline.length).join(' ')}, which replaced itself with ` +
            `${info.cmdline[0]}: the lab knows its daemons by their command line, so the command must start with the daemon itself`,
        );
      }
      return info;
    };
    try {
      // nsenter -> unshare -> sh -> daemon all exec in place; the daemon is
      // running once the pid shows its argv.
      await waitUntil(
        `${spec.name} on ${host} to start`,
        () => {
          if (exited) throw new Error(`${spec.name} on ${host} exited at once (${exited}); end of ${p.logFile}:\n${tail(p.logFile, 15)}`);
          const info = refuseWrapper();
          return !!info && !info.zombie && sameArgv(info.cmdline, argv);
        },
        15_000,
        5,
      );
      if (spec.readySocket !== undefined) {
        const sock = path.resolve(p.hostDir, substitute(spec.readySocket, vars));
        await waitUntil(
          `${spec.name} on ${host} to accept connections on ${sock}`,
          async () => {
            if (exited) throw new Error(`${spec.name} on ${host} exited (${exited}); end of ${p.logFile}:\n${tail(p.logFile, 15)}`);
            return canConnect(sock);
          },
          30_000,
        );
      } else {
        await sleep(50);
      }
      // Seen with its whole argv, it may still have been the wrapper: look again once it is up.
      refuseWrapper();
    } catch (e) {
      if (!exited) child.kill('SIGKILL');
      throw e;
    }
    const startTime = procInfo(pid)!.startTime;
    (st.procs[host] ??= {})[spec.name] = { pid, argv, startTime };
    writeFileSync(p.pidFile, `${pid}\n`);
    this.saveState(st);
    this.log(`${host}: ${spec.name} pid ${pid}, log ${p.logFile}`);
    return pid;
  }

  /** SIGKILLs a process of ours if it runs; returns whether it killed one. */
  private async killProc(st: LabState, host: string, procName: string): Promise<boolean> {
    const p = this.paths(host, procName);
    const pid = this.readPidFile(p.pidFile);
    const rec = st.procs[host]?.[procName];
    if (pid === undefined || !rec) {
      this.log(`${procName} on ${host}: not started by the lab`);
      return false;
    }
    if (rec.pid !== pid) {
      this.log(`${procName} on ${host}: ${p.pidFile} says ${pid} but the lab started ${rec.pid}; not killing either`);
      return false;
    }
    if (!this.isOurs(rec)) {
      this.log(`${procName} on ${host}: pid ${pid} is not running (or is no longer our process)`);
      return false;
    }
    this.log(`killing ${procName} on ${host} (pid ${pid}, SIGKILL) ...`);
    process.kill(pid, 'SIGKILL');
    await waitUntil(`${procName} pid ${pid} on ${host} to die`, () => !this.isOurs(rec), 15_000, 10);
    return true;
  }

  private procSpec(st: LabState, procName: string, host?: string): ProcSpec {
    const spec = this.specs(st).find((s) => s.name === procName);
    if (!spec) throw new Error(`lab ${this.name} has no process '${procName}' (has: ${this.specs(st).map((s) => s.name).join(', ')})`);
    if (host !== undefined && !runsOn(spec, host)) throw new Error(`${procName} of lab ${this.name} runs only on ${spec.hosts!.join(', ')}, not on ${host}`);
    return spec;
  }

  /**
   * Starts the daemon (or a sidecar) unless it already runs; returns its pid. `env` adds to the
   * environment it inherits (for this start only: a later start or restart goes without).
   */
  async startDaemon(host: string, procName: string = MAIN_PROC, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<number> {
    this.requirePrerequisites();
    return this.withLock(async () => {
      const st = this.requireState();
      this.requireHost(st, host);
      const spec = this.procSpec(st, procName, host);
      const rec = st.procs[host]?.[procName];
      if (rec && this.isOurs(rec)) {
        this.log(`${procName} on ${host} already runs (pid ${rec.pid})`);
        return rec.pid;
      }
      return this.startProc(st, host, spec, opts.env);
    });
  }

  /** SIGKILL, after checking the pid is still the process the lab started. */
  async killDaemon(host: string, procName: string = MAIN_PROC): Promise<boolean> {
    return this.withLock(async () => {
      const st = this.requireState();
      this.requireHost(st, host);
      this.procSpec(st, procName, host);
      return this.killProc(st, host, procName);
    });
  }

  async restartDaemon(host: string, procName: string = MAIN_PROC): Promise<number> {
    this.requirePrerequisites();
    return this.withLock(async () => {
      const st = this.requireState();
      this.requireHost(st, host);
      const spec = this.procSpec(st, procName, host);
      await this.killProc(st, host, procName);
      return this.startProc(st, host, spec);
    });
  }

  private requireHost(st: LabState, host: string): void {
    if (!st.hosts[host]) throw new Error(`lab ${this.name} has no host '${host}' (hosts: ${Object.keys(st.hosts).join(', ')})`);
  }

  // ---- running commands in hosts ------------------------------------------

  /** A child process running argv inside the host (its netns, its hostname). */
  spawnIn(host: string, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const rec = this.requireHostUp(this.requireState(), host);
    const full = hostArgv(rec.netns, host, argv);
    return spawn(full[0]!, full.slice(1), options);
  }

  /** Runs argv in the host to completion and collects its output. */
  exec(host: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const child = this.spawnIn(host, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env, cwd: opts.cwd });
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout!.on('data', (d: Buffer) => out.push(d));
      child.stderr!.on('data', (d: Buffer) => err.push(d));
      const timer =
        opts.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              child.kill('SIGKILL');
            }, opts.timeoutMs);
      child.on('error', (e) => {
        if (timer) clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        resolve({ code: exitCode(code, signal, signalNumbers()), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
      child.stdin!.on('error', () => {}); // the command may not read its input
      child.stdin!.end(opts.input ?? '');
    });
  }

  // ---- partitions --------------------------------------------------------

  /** Cuts all traffic between hosts a and b, both ways, until healed. */
  async partition(a: string, b: string): Promise<void> {
    this.requirePrerequisites();
    await this.withLock(async () => {
      const st = this.requireState();
      this.requireHost(st, a);
      this.requireHost(st, b);
      if (a === b) throw new Error('cannot partition a host from itself');
      const key = partitionKey(a, b);
      if (!st.partitions.some(([x, y]) => x === key[0] && y === key[1])) st.partitions.push(key);
      this.log(`partitioning ${a} <-> ${b}`);
      await this.applyPartitions(st);
      this.saveState(st);
    });
  }

  /** Removes the partition between a and b, or all partitions when no hosts are given. */
  async heal(a?: string, b?: string): Promise<void> {
    this.requirePrerequisites();
    await this.withLock(async () => {
      const st = this.requireState();
      if (a !== undefined && b !== undefined) {
        const key = partitionKey(a, b);
        st.partitions = st.partitions.filter(([x, y]) => !(x === key[0] && y === key[1]));
        this.log(`healing ${a} <-> ${b}`);
      } else {
        st.partitions = [];
        this.log('healing all partitions');
      }
      await this.applyPartitions(st);
      this.saveState(st);
    });
  }

  private async applyPartitions(st: LabState): Promise<void> {
    const sw = switchNetns(this.name);
    if (!netnsLive(sw)) return;
    await run(['nsenter', `--net=${netnsPath(sw)}`, 'nft', '-f', '-'], { input: partitionRuleset(st.partitions) });
    const tracked = st.made.nftTables.some((t) => t.netns === sw && t.name === NFT_TABLE);
    if (st.partitions.length > 0 && !tracked) st.made.nftTables.push({ netns: sw, family: 'bridge', name: NFT_TABLE });
    if (st.partitions.length === 0) st.made.nftTables = st.made.nftTables.filter((t) => !(t.netns === sw && t.name === NFT_TABLE));
  }

  // ---- status ------------------------------------------------------------

  status(): LabStatus {
    const st = this.readState();
    if (!st) return { lab: this.name, exists: false, subnet: null, baseDir: this.baseDir, procNames: [], hosts: [], partitions: [] };
    const procNames = this.specs(st).map((s) => s.name);
    const hosts = Object.entries(st.hosts).map(([host, rec]): HostStatus => {
      const procs: StatusRow['procs'] = {};
      for (const name of this.specs(st, host).map((s) => s.name)) {
        const r = st.procs[host]?.[name];
        const pid = this.readPidFile(this.paths(host, name).pidFile) ?? null;
        procs[name] = { pid, alive: !!r && r.pid === pid && this.isOurs(r) };
      }
      return { host, netns: rec.netns, ip: rec.ip, up: netnsLive(rec.netns), procs, hostDir: this.paths(host, MAIN_PROC).hostDir };
    });
    return { lab: this.name, exists: true, subnet: st.subnet, baseDir: this.baseDir, procNames, hosts, partitions: st.partitions };
  }

  // ---- down --------------------------------------------------------------

  /**
   * Kills the processes the lab started, deletes the nftables table, links
   * and namespaces it made and its state file; with purge also the state
   * dirs. Other processes still inside a host's namespace (containerd shims,
   * say) are reported, or SIGKILLed with killStragglers.
   */
  async down(opts: { purge?: boolean; killStragglers?: boolean } = {}): Promise<void> {
    this.requirePrerequisites();
    await this.withLock(async () => {
      const st = this.readState();
      if (!st) {
        this.log(`lab ${this.name} is not up`);
      } else {
        // Every host's daemon first (no daemon sees its containerd go), then the sidecars in reverse order.
        for (const spec of this.specs(st).reverse()) {
          for (const host of Object.keys(st.hosts)) {
            if (!runsOn(spec, host)) continue;
            await this.killProc(st, host, spec.name);
            rmSync(this.paths(host, spec.name).pidFile, { force: true });
            if (st.procs[host]) delete st.procs[host][spec.name];
          }
        }
        this.saveState(st);
        // What a host's containerd leaves running once it is dead: containers, shims, rootfs mounts.
        for (const host of Object.keys(st.hosts)) await cleanupContainerd(this.paths(host, MAIN_PROC).hostDir, this.log);
        // And what a host's dockerd (docker.ts) leaves: its containerd, containers, shims, mounts, cgroups.
        for (const [host, rec] of Object.entries(st.hosts)) {
          await cleanupDocker(this.paths(host, MAIN_PROC).hostDir, { cgroupParent: dockerCgroupParent(rec.netns), log: this.log });
        }
        await this.removeStragglers(st, !!opts.killStragglers);
        for (const t of st.made.nftTables) {
          if (netnsLive(t.netns)) await run(['nsenter', `--net=${netnsPath(t.netns)}`, 'nft', 'delete', 'table', t.family, t.name], { allowFail: true });
        }
        // Explicitly, so nothing is left even if a straggler keeps a namespace alive.
        for (const l of st.made.links) {
          if (netnsLive(l.netns)) {
            this.log(`deleting link ${l.name} in ${l.netns}`);
            await run(['ip', '-n', l.netns, 'link', 'del', 'dev', l.name], { allowFail: true });
          }
        }
        for (const ns of [...st.made.netns].reverse()) {
          if (netnsLive(ns)) {
            this.log(`deleting netns ${ns}`);
            await run(['ip', 'netns', 'del', ns]);
          }
        }
        rmSync(this.stateFile, { force: true });
      }
      if (opts.purge) {
        // Nothing mounted may stay under what rm -r walks into.
        await unmountUnder(this.labDir, this.log);
        this.log(`removing ${this.labDir}`);
        rmSync(this.labDir, { recursive: true, force: true });
      }
      this.log(`lab ${this.name} is down`);
    });
  }

  private async removeStragglers(st: LabState, kill: boolean): Promise<void> {
    for (const ns of st.made.netns) {
      if (!netnsLive(ns)) continue;
      const pids = pidsInNetns(netnsPath(ns));
      if (pids.length === 0) continue;
      if (!kill) {
        this.log(`warning: processes still in ${ns}: ${pids.join(' ')} (down --kill-stragglers ends them)`);
        continue;
      }
      // Snapshot identities first so a pid reused meanwhile is not hit.
      const targets = pids.map((pid) => ({ pid, info: procInfo(pid) })).filter((t) => t.info && !t.info.zombie);
      this.log(`killing processes left in ${ns}: ${targets.map((t) => t.pid).join(' ')}`);
      for (const t of targets) {
        if (procInfo(t.pid)?.startTime === t.info!.startTime) process.kill(t.pid, 'SIGKILL');
      }
      await waitUntil(
        `processes in ${ns} to die`,
        () => targets.every((t) => {
          const now = procInfo(t.pid);
          return !now || now.zombie || now.startTime !== t.info!.startTime;
        }),
        15_000,
      );
    }
  }
}

export { checkPrerequisites } from './sys.js';
export { DEFAULT_BASE_DIR, DEFAULT_DAEMON_CMD, DEFAULT_SUBNET, MAIN_PROC } from './plan.js';
