// Starts raftkv members as separate OS processes on loopback, each with its
// own data dir; kills (SIGKILL, by pid) and restarts them on demand.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The compiled server: tests run from sources, members run from dist. */
export function serverScript(): string {
  const repo = findRepoRoot(here);
  const js = path.join(repo, 'dist', 'test', 'support', 'raftkv', 'server.js');
  if (!fs.existsSync(js)) throw new Error(`${js} is missing: run \`npm run build\` first`);
  return js;
}

function findRepoRoot(dir: string): string {
  for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json'))) return d;
  }
  throw new Error(`no package.json above ${dir}`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Member {
  id: number;
  raftAddr: string;
  clientAddr: string;
  dataDir: string;
  proc?: ChildProcess;
  stderr: string[];
}

export interface ClusterOptions {
  size: number;
  baseDir?: string;
  tickMs?: number;
  snapshotEntries?: number;
  compactionMargin?: number;
  snapshotLogRatio?: number;
  env?: Record<string, string>;
}

export class RaftKvCluster {
  readonly members: Member[] = [];
  readonly baseDir: string;
  private readonly ownsBaseDir: boolean;

  private constructor(readonly opts: ClusterOptions) {
    this.ownsBaseDir = !opts.baseDir;
    this.baseDir = opts.baseDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-'));
  }

  static async create(opts: ClusterOptions): Promise<RaftKvCluster> {
    const c = new RaftKvCluster(opts);
    for (let id = 1; id <= opts.size; id++) {
      c.members.push({
        id, raftAddr: `127.0.0.1:${await freePort()}`, clientAddr: `127.0.0.1:${await freePort()}`,
        dataDir: path.join(c.baseDir, `node${id}`), stderr: [],
      });
    }
    await Promise.all(c.members.map((m) => c.start(m.id)));
    return c;
  }

  get clientAddrs(): string[] {
    return this.members.map((m) => m.clientAddr);
  }

  member(id: number): Member {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  /** Start (or restart) a member and wait until it serves clients. */
  async start(id: number): Promise<void> {
    const m = this.member(id);
    if (m.proc && m.proc.exitCode === null && m.proc.signalCode === null) throw new Error(`member ${id} is running`);
    const peers = this.members.map((x) => `${x.id}=${x.raftAddr}`).join(',');
    const clients = this.members.map((x) => `${x.id}=${x.clientAddr}`).join(',');
    const args = [serverScript(), '--id', String(id), '--data-dir', m.dataDir, '--raft-addr', m.raftAddr,
      '--client-addr', m.clientAddr, '--peers', peers, '--clients', clients,
      '--tick-ms', String(this.opts.tickMs ?? 100)];
    if (this.opts.snapshotEntries) args.push('--snapshot-entries', String(this.opts.snapshotEntries));
    if (this.opts.compactionMargin !== undefined) args.push('--compaction-margin', String(this.opts.compactionMargin));
    if (this.opts.snapshotLogRatio !== undefined) args.push('--snapshot-log-ratio', String(this.opts.snapshotLogRatio));
    // RAFTKV_NODE_ARGS: extra node flags for the members (e.g. "--cpu-prof --cpu-prof-dir=D" to profile them).
    const nodeArgs = (process.env.RAFTKV_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const proc = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.opts.env } });
    m.proc = proc;
    m.stderr = [];
    proc.stderr!.on('data', (d: Buffer) => {
      m.stderr.push(d.toString());
      if (m.stderr.length > 200) m.stderr.shift();
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (d: Buffer) => {
        out += d.toString();
        if (out.includes('READY')) {
          proc.stdout!.off('data', onData);
          resolve();
        }
      };
      proc.stdout!.on('data', onData);
      proc.once('exit', (code, sig) => reject(new Error(`member ${id} exited (${code ?? sig}) before serving:\n${m.stderr.join('')}`)));
    });
  }

  /** SIGKILL a member's process (by its pid) and wait until it is gone. */
  async kill(id: number): Promise<void> {
    const m = this.member(id);
    const p = m.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      process.kill(p.pid!, 'SIGKILL');
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map(async (m) => {
      const p = m.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      process.kill(p.pid!, 'SIGTERM');
      const t = setTimeout(() => { if (p.exitCode === null) process.kill(p.pid!, 'SIGKILL'); }, 5000);
      await gone;
      clearTimeout(t);
    }));
    if (this.ownsBaseDir) fs.rmSync(this.baseDir, { recursive: true, force: true });
  }
}
