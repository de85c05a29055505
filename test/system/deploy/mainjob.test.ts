// The README's main-job command, as a user runs it: `deploy/up.sh` brings up
// 5 lab hosts (3 managers, 2 workers), each with its own containerd and shoald,
// and a demo service of 6 replicas; a rerun repairs and never duplicates;
// `deploy/down.sh` leaves nothing behind. The demo's containers are counted
// through each host's containerd, not through shoal's own reports. Needs root
// and the lab's packages (up.sh installs them): skipped without root, except
// under CI=true, where that fails.
import { spawn } from 'node:child_process';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { LABEL_SERVICE_NAME } from '../../../worker/agent/containerspec.js';
import { ContainerdRuntime } from '../../../worker/runtime/containerd/runtime.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const inCI = process.env.CI === 'true';
const root = process.getuid?.() === 0;
if (!root && !inCI) console.log('skipping the main-job test: deploy/up.sh needs root');

const LAB = `mj${process.pid % 10000}`;
const BASE = '/var/lib/shoal-lab';
const HOSTS = ['host1', 'host2', 'host3', 'host4', 'host5'];

/** Run a deploy script with this lab's name; its exit code and output. */
function script(name: string, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('bash', [path.join(repo, 'deploy', name)], { cwd: repo, env: { ...process.env, SHOAL_LAB: LAB }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => p.kill('SIGTERM'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** The demo's running containers per host, asked of each host's containerd. */
async function demoContainers(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const h of HOSTS) {
    const rt = new ContainerdRuntime({ socket: path.join(BASE, LAB, h, 'containerd', 'containerd.sock'), namespace: `${LAB}-${h}` });
    try {
      out[h] = (await rt.list()).filter((c) => c.labels[LABEL_SERVICE_NAME] === 'demo' && c.state === 'running').map((c) => c.id).sort();
    } finally {
      rt.client.close();
    }
  }
  return out;
}

const labNamespaces = (): string[] =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`${LAB}-`));

describe.skipIf(!root && !inCI)('the main job: deploy/up.sh and deploy/down.sh', () => {
  afterAll(async () => {
    if (labNamespaces().length > 0 || existsSync(path.join(BASE, LAB))) await script('down.sh', 120_000);
  }, 150_000);

  let first: Record<string, string[]> = {};
  const socket1 = path.join(BASE, LAB, 'host1', 'shoald.sock');

  it('up.sh: 5 hosts in the swarm (3 managers), the demo service\'s 6 containers running, spread over the hosts', async () => {
    if (!root) throw new Error('deploy/up.sh needs root');
    const r = await script('up.sh', 300_000);
    expect(r.code, r.out.slice(-3000)).toBe(0);
    expect(r.out).toContain('The cluster is up: 5 hosts');
    expect(r.out.match(/ demo\.\d+ .* Running /g) ?? []).toHaveLength(6);
    // Through the command the script tells the user to run.
    expect(r.out).toContain('deploy/shoal node ls');
    const nodes = JSON.parse(execFileSync(path.join(repo, 'deploy/shoal'), ['--socket', socket1, 'node', 'ls', '--format', 'json'], { cwd: repo, encoding: 'utf8' })) as Array<{ Status: { State: string }; ManagerStatus?: unknown }>;
    expect(nodes.map((n) => n.Status.State)).toEqual(HOSTS.map(() => 'ready'));
    expect(nodes.filter((n) => n.ManagerStatus).length).toBe(3);
    first = await demoContainers();
    const counts = HOSTS.map((h) => first[h]!.length);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(6);
    expect(Math.max(...counts)).toBeLessThanOrEqual(2);
    expect(counts.filter((n) => n > 0).length).toBe(5);
  }, 320_000);

  it('a rerun repairs nothing that is fine: the same 6 containers, no second demo', async () => {
    const r = await script('up.sh', 300_000);
    expect(r.code, r.out.slice(-3000)).toBe(0);
    expect(r.out).toContain('service demo exists already');
    expect(await demoContainers()).toEqual(first);
  }, 320_000);

  it('deploy/shoal hands --env-file to shoal, not to Node.js: a missing file gets shoal\'s message and nothing is created', () => {
    const r = spawnSync(path.join(repo, 'deploy/shoal'), ['--socket', socket1, 'service', 'create', '--detach', '--name', 'envless', '--env-file', '/nonexistent/shoal.env', 'shoal.local/busybox:1', 'true'], { cwd: repo, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('cannot read --env-file /nonexistent/shoal.env: no such file');
    const services = JSON.parse(execFileSync(path.join(repo, 'deploy/shoal'), ['--socket', socket1, 'service', 'ls', '--format', 'json'], { encoding: 'utf8' })) as Array<{ Spec: { Name: string } }>;
    expect(services.map((x) => x.Spec.Name)).toEqual(['demo']);
  });

  it('down.sh: no namespace, no state, no daemon of the lab is left', async () => {
    const r = await script('down.sh', 120_000);
    expect(r.code, r.out.slice(-3000)).toBe(0);
    expect(labNamespaces()).toEqual([]);
    expect(existsSync(path.join(BASE, LAB))).toBe(false);
    const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
    expect(ps.split('\n').filter((l) => l.includes(`${path.join(BASE, LAB)}/`))).toEqual([]);
  }, 150_000);
});
