// `shoal image pull/ls/rm` through a real shoald (not in a swarm) on a private
// containerd, pulling from a docker-registry that wants a password: the node's
// credentials come from shoald's --registry-config file. Needs root, a build
// and the runtime packages (installed with apt-get when missing): skipped
// without them, and fails under CI=true.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBusyboxImage } from '../../../deploy/images/busybox.js';
import { ContainerdRuntime } from '../../../worker/runtime/containerd/runtime.js';
import { PrivateContainerd, prepareRuntimePrerequisites, waitFor } from './containerd-harness.js';
import { LocalRegistry } from './registry-harness.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SHOAL = path.join(repo, 'dist/cli/shoal/main.js');
const SHOALD = path.join(repo, 'dist/cli/shoald/main.js');
const inCI = process.env.CI === 'true';
const problems = [...prepareRuntimePrerequisites(), ...(existsSync(SHOALD) ? [] : ['no build (npm run build)'])];
if (problems.length && !inCI) console.log(`skipping shoald image tests: ${problems.join('; ')}`);

describe.skipIf(problems.length > 0 && !inCI)('shoal image pull/ls/rm through shoald, from a registry that wants a password', () => {
  let dir: string;
  let containerd: PrivateContainerd;
  let registry: LocalRegistry;
  let shoald: ChildProcess | undefined;
  let configFile: string;
  let socket: string;
  const namespace = `shoal-img-${process.pid}`;
  const auth = { username: 'node', password: 's3cret' };

  const shoal = (...args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--', SHOAL, '--socket', socket, ...args], { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });

  beforeAll(async () => {
    if (problems.length) throw new Error(`prerequisites missing: ${problems.join('; ')}`);
    dir = mkdtempSync(path.join(tmpdir(), 'shoal-img-'));
    containerd = new PrivateContainerd(path.join(dir, 'containerd'));
    await containerd.start();
    registry = new LocalRegistry(path.join(dir, 'registry'), auth);
    await registry.start();
    configFile = path.join(dir, 'docker', 'config.json');
    socket = path.join(dir, 'state', 'shoald.sock');
    shoald = spawn(process.execPath, [SHOALD, '--state-dir', path.join(dir, 'state'), '--listen-addr', '127.0.0.1:0', '--containerd-socket', containerd.socket,
      '--containerd-namespace', namespace, '--registry-config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    shoald.stdout!.on('data', (b: Buffer) => (log += b.toString()));
    shoald.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    await waitFor('shoald ready', () => (log.includes('shoald ready') ? true : undefined), 30_000);
  }, 120_000);

  afterAll(async () => {
    shoald?.kill('SIGKILL');
    await registry?.stop();
    await containerd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('refuses a pull without credentials, saying where they go; pulls with them; a moved tag is fetched again', async () => {
    const v1 = buildBusyboxImage({ name: 'x', applets: ['sh'] });
    await registry.push('team/app', '1', v1);
    const ref = `${registry.host}/team/app:1`;

    const refused = await shoal('image', 'pull', ref);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${registry.host} wants a username and password: log this node in: an "auths" entry for the registry in ${configFile}`);

    // What `docker login` writes; shoald reads it at the next pull, no restart.
    mkdirSync(path.dirname(configFile), { recursive: true });
    writeFileSync(configFile, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${auth.username}:${auth.password}`).toString('base64') } } }));
    const pulled = await shoal('image', 'pull', ref);
    expect(pulled.stderr).toContain(`Pulling ${ref} ...`);
    expect(pulled.stdout).toBe(`Pulled: ${ref}\nDigest: ${v1.manifest.digest}\n`);
    expect(pulled.code).toBe(0);
    // Progress per layer, as docker shows it; not a terminal: a line per change of status.
    const layer = (d: string) => d.replace('sha256:', '').slice(0, 12);
    for (const l of v1.layers) {
      expect(pulled.stderr).toMatch(new RegExp(`^${layer(l.digest)}: Downloading \\[>? *=*>? *\\] [\\d.]+[KMG]?i?B/[\\d.]+[KMG]?i?B\n(.*\n)*${layer(l.digest)}: Download complete\n(.*\n)*${layer(l.digest)}: Pull complete$`, 'm'));
    }
    // A second name for the same image: its layer is there already.
    await registry.push('team/app', 'same', v1);
    const again = await shoal('image', 'pull', `${registry.host}/team/app:same`);
    expect(again.code).toBe(0);
    expect(again.stderr).toBe(`Pulling ${registry.host}/team/app:same ...\n${v1.layers.map((l) => `${layer(l.digest)}: Already exists\n`).join('')}`);
    expect((await shoal('image', 'pull', '-q', `${registry.host}/team/app:same`)).stderr).toBe('');
    expect((await shoal('image', 'rm', `${registry.host}/team/app:same`)).code).toBe(0);

    // Checked through containerd itself, not shoal's report.
    const rt = new ContainerdRuntime({ socket: containerd.socket, namespace });
    try {
      expect(await rt.listImages()).toContainEqual({ name: ref, digest: v1.manifest.digest, size: v1.config.size + v1.layers.reduce((n, l) => n + l.size, 0) });
      // The tag moves to another image: a pull fetches it even though the old one is present.
      const v2 = buildBusyboxImage({ name: 'x', applets: ['sh', 'echo'] });
      await registry.push('team/app', '1', v2);
      expect((await shoal('image', 'pull', ref)).stdout).toContain(`Digest: ${v2.manifest.digest}\n`);
      expect((await rt.listImages()).find((i) => i.name === ref)?.digest).toBe(v2.manifest.digest);
    } finally {
      rt.close();
    }
    expect((await shoal('image', 'ls', '-q')).stdout.split('\n')).toContain(ref);
    const ls = JSON.parse((await shoal('image', 'ls', '--format', 'json')).stdout) as Array<{ Name: string; Size: number }>;
    expect(ls.find((i) => i.Name === ref)?.Size).toBeGreaterThan(0);
    expect((await shoal('image', 'ls')).stdout).toMatch(new RegExp(`^NAME\\s+DIGEST\\s+SIZE\n(.*\n)*${ref.replace(/[.:/]/g, '\\$&')}\\s+sha256:[0-9a-f]{12}\\s+\\d+(\\.\\d+)?[KM]iB$`, 'm'));
    expect((await shoal('image', 'rm', ref)).stdout).toBe(`Untagged: ${ref}\n`);
  }, 120_000);

  it.each([
    { ref: () => 'Bad//Ref', error: 'invalid image reference "Bad//Ref"' },
    { ref: () => `${registry.host}/team/none:1`, error: 'not found in registry' },
  ])('refuses $error', async ({ ref, error }) => {
    const r = await shoal('image', 'pull', ref());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(error);
  }, 60_000);
});
