// Debian's docker-registry (distribution 2.x) on 127.0.0.1 for pull tests,
// with its storage under a temp dir, started and stopped by PID; and a push of
// a built image through the registry's HTTP API (monolithic blob uploads).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { BuiltImage } from '../../../deploy/images/oci-layout.js';
import { waitFor } from './containerd-harness.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export class LocalRegistry {
  private proc?: ChildProcess;
  port = 0;

  /** With `auth`, the registry wants that username and password (htpasswd: Basic auth) for every call, pushes too. */
  constructor(
    readonly dir: string,
    readonly auth?: { username: string; password: string },
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    if (!this.auth) return extra;
    return { ...extra, authorization: `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64')}` };
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    mkdirSync(join(this.dir, 'data'), { recursive: true });
    this.port = await freePort();
    const config = join(this.dir, 'config.yml');
    const authLines: string[] = [];
    if (this.auth) {
      // distribution reads bcrypt only: htpasswd (apache2-utils) makes it.
      const htpasswd = join(this.dir, 'htpasswd');
      writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', this.auth.username, this.auth.password], { encoding: 'utf8' }));
      authLines.push('auth:', '  htpasswd:', '    realm: shoal-test', `    path: ${htpasswd}`);
    }
    writeFileSync(
      config,
      ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${join(this.dir, 'data')}`, 'http:', `  addr: 127.0.0.1:${this.port}`, ...authLines, ''].join('\n'),
    );
    const log = openSync(join(this.dir, 'registry.log'), 'a');
    this.proc = spawn('docker-registry', ['serve', config], { stdio: ['ignore', log, log] });
    await waitFor('docker-registry to answer', async () => ((await fetch(`http://${this.host}/v2/`, { headers: this.headers() })).ok ? true : undefined), 20_000, 100);
  }

  async push(repo: string, tag: string, img: BuiltImage): Promise<void> {
    const base = `http://${this.host}/v2/${repo}`;
    for (const b of [img.config, ...img.layers]) {
      const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST', headers: this.headers() });
      if (start.status !== 202) throw new Error(`upload start: ${start.status}`);
      const loc = new URL(start.headers.get('location')!, base);
      loc.searchParams.set('digest', b.digest);
      const put = await fetch(loc, { method: 'PUT', body: new Uint8Array(b.data), headers: this.headers({ 'content-type': 'application/octet-stream' }) });
      if (put.status !== 201) throw new Error(`upload ${b.digest}: ${put.status} ${await put.text()}`);
    }
    const res = await fetch(`${base}/manifests/${tag}`, { method: 'PUT', body: new Uint8Array(img.manifest.data), headers: this.headers({ 'content-type': img.manifest.mediaType }) });
    if (res.status !== 201) throw new Error(`manifest put: ${res.status} ${await res.text()}`);
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
}
