// The lab on real network namespaces, with a stand-in daemon that answers
// TCP connections with its hostname. Needs root, iproute2, nftables and
// util-linux: without them the suite skips (and fails under CI=true).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, checkPrerequisites } from '../../../deploy/lab/lab.js';
import { waitFor } from '../../support/wait.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const standin = path.join(here, 'standin-daemon.mjs');
const daemonCmd = `{node} ${standin} --listen {ip}:4377`;

const pre = checkPrerequisites();
const inCI = process.env.CI === 'true';
if (!pre.ok && !inCI) console.log(`skipping lab system tests: ${pre.problems.join('; ')}`);


// From inside `from`, connect to ip:4377 and return the peer's answer (its
// hostname), or null when the connection fails or times out.
const PROBE = `
const s = require('net').connect(4377, process.argv[1]);
s.setTimeout(1000, () => { console.log('!timeout'); process.exit(1); });
let got = '';
s.on('data', (d) => (got += d));
s.on('end', () => { process.stdout.write(got); process.exit(0); });
s.on('error', (e) => { console.log('!' + e.code); process.exit(1); });
`;

async function reach(lab: Lab, from: string, ip: string): Promise<string | null> {
  const r = await lab.exec(from, [process.execPath, '-e', PROBE, ip], { timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout.trim() : null;
}

/** Poll until reach() gives `want` (a hostname, or null for unreachable). */
function expectReach(lab: Lab, from: string, to: string, want: string | null, targetLab: Lab = lab): Promise<true> {
  const ip = targetLab.hostIp(to);
  return waitFor(`${lab.name}/${from} -> ${ip} to answer ${want ?? 'nothing'}`, async () => ((await reach(lab, from, ip)) === want ? true : undefined));
}

function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

function rootAddrs(): string {
  return execFileSync('ip', ['-o', 'addr'], { encoding: 'utf8' });
}

function rootLinks(): string[] {
  return execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter(Boolean);
}

function gone(pid: number): boolean {
  return !existsSync(`/proc/${pid}`);
}

describe.skipIf(!pre.ok && !inCI)('lab on network namespaces', () => {
  const logs: string[] = [];
  const foreignNs = `v${process.pid}-sw`;
  const pids: number[] = [];
  let base = '';
  let a: Lab;
  let b: Lab;

  beforeAll(() => {
    // Under CI a missing prerequisite fails every test instead of skipping.
    if (!pre.ok) throw new Error(`lab prerequisites missing: ${pre.problems.join('; ')}`);
    base = mkdtempSync('/tmp/shoal-lab-test-');
    a = new Lab({ name: `t${process.pid}`, hosts: 3, baseDir: base, daemonCmd, log: (l) => logs.push(l) });
    b = new Lab({ name: `u${process.pid}`, hosts: 2, subnet: '10.232.0.0/24', baseDir: base, daemonCmd });
  });

  afterAll(async () => {
    if (!base) return;
    for (const lab of [a, b]) await lab.down({ purge: true, killStragglers: true }).catch((e: unknown) => console.error(e));
    spawnSync('ip', ['netns', 'del', foreignNs], { stdio: 'ignore' });
    rmSync(base, { recursive: true, force: true });
  });

  it('brings up 3 hosts, each with its own hostname, address and daemon', async () => {
    await a.up();
    expect(logs).toContain('creating host3 (netns ' + `t${process.pid}-host3, 10.231.0.13) ...`);
    expect(logs).toContain('starting daemon on host3 ...');
    expect(a.hosts()).toEqual(['host1', 'host2', 'host3']);
    for (const [i, host] of a.hosts().entries()) {
      const ip = `10.231.0.${11 + i}`;
      expect(a.hostIp(host)).toBe(ip);
      expect((await a.exec(host, ['hostname'])).stdout.trim()).toBe(host);
      const addr = await a.exec(host, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      expect(addr.stdout).toContain(`${ip}/24`);
      const st = a.hostState(host);
      expect(st.pid).toBeGreaterThan(0);
      expect(st.stateDir).toBe(path.join(base, a.name, host, 'state'));
      expect(existsSync(st.stateDir)).toBe(true);
      expect(readFileSync(st.pidFile, 'utf8').trim()).toBe(String(st.pid));
      // The daemon runs inside the host's network namespace.
      const nsIno = execFileSync('stat', ['-L', '-c', '%i', `/run/netns/${a.hostNetns(host)}`], { encoding: 'utf8' }).trim();
      expect(execFileSync('readlink', [`/proc/${st.pid}/ns/net`], { encoding: 'utf8' }).trim()).toBe(`net:[${nsIno}]`);
      pids.push(st.pid!);
    }
    expect(a.status().hosts.map((h) => [h.host, h.up, h.procs.daemon!.alive])).toEqual([
      ['host1', true, true],
      ['host2', true, true],
      ['host3', true, true],
    ]);
    // No lab address or link ever appears in the machine's own namespace.
    expect(rootAddrs()).not.toContain('10.231.0.');
    expect(rootLinks().filter((l) => l.startsWith('to-host'))).toEqual([]);
  });

  it('exec passes output and exit codes through', async () => {
    expect(await a.exec('host1', ['sh', '-c', 'echo out; echo err >&2; exit 3'])).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(await a.exec('host1', ['cat'], { input: 'fed in' })).toMatchObject({ code: 0, stdout: 'fed in' });
    expect((await a.exec('host1', ['sh', '-c', 'kill -9 $$'])).code).toBe(137);
  });

  it('hosts reach each other over TCP on the lab network', async () => {
    await expectReach(a, 'host1', 'host2', 'host2');
    await expectReach(a, 'host2', 'host3', 'host3');
    await expectReach(a, 'host3', 'host1', 'host1');
  });

  it('partition cuts two hosts apart both ways and heal joins them again', async () => {
    await a.partition('host1', 'host2');
    await expectReach(a, 'host1', 'host2', null);
    await expectReach(a, 'host2', 'host1', null);
    await expectReach(a, 'host1', 'host3', 'host3');
    await expectReach(a, 'host3', 'host2', 'host2');
    await a.partition('host2', 'host1'); // same pair: no duplicate
    expect(a.status().partitions).toEqual([['host1', 'host2']]);

    await a.heal();
    expect(a.status().partitions).toEqual([]);
    await expectReach(a, 'host1', 'host2', 'host2');
    await expectReach(a, 'host2', 'host1', 'host1');
  });

  it('heal of one pair keeps the others', async () => {
    await a.partition('host1', 'host2');
    await a.partition('host1', 'host3');
    await a.heal('host3', 'host1');
    expect(a.status().partitions).toEqual([['host1', 'host2']]);
    await expectReach(a, 'host1', 'host3', 'host3');
    await expectReach(a, 'host1', 'host2', null);
    await a.heal();
    await expectReach(a, 'host1', 'host2', 'host2');
  });

  it('kill SIGKILLs the daemon; restart brings it back with a new pid', async () => {
    const old = a.hostState('host3').pid!;
    expect(await a.killDaemon('host3')).toBe(true);
    await waitFor(`pid ${old} to be gone`, () => (gone(old) ? true : undefined));
    expect(a.hostState('host3').pid).toBeNull();
    expect(a.status().hosts[2]!.procs.daemon).toEqual({ pid: old, alive: false });
    await expectReach(a, 'host1', 'host3', null);
    // Killing what is already dead is a no-op, not an error.
    expect(await a.killDaemon('host3')).toBe(false);

    const fresh = await a.restartDaemon('host3');
    expect(fresh).not.toBe(old);
    expect(a.hostState('host3').pid).toBe(fresh);
    expect(a.status().hosts[2]!.procs.daemon).toEqual({ pid: fresh, alive: true });
    await expectReach(a, 'host1', 'host3', 'host3');
    pids[2] = fresh;

    // startDaemon on a running daemon leaves it alone.
    expect(await a.startDaemon('host3')).toBe(fresh);
  });

  it('up is idempotent and repairs what is missing', async () => {
    const before = readFileSync(a.stateFile, 'utf8');
    const statusBefore = a.status();
    await a.up();
    expect(readFileSync(a.stateFile, 'utf8')).toBe(before);
    expect(a.status()).toEqual(statusBefore);

    // Break host2's link and kill host1's daemon: up fixes just those.
    execFileSync('ip', ['-n', `${a.name}-sw`, 'link', 'del', 'to-host2']);
    await a.killDaemon('host1');
    await expectReach(a, 'host3', 'host2', null);
    await a.up();
    await expectReach(a, 'host3', 'host2', 'host2');
    await expectReach(a, 'host3', 'host1', 'host1');
    expect(a.hostState('host2').pid).toBe(pids[1]);
    expect(a.hostState('host3').pid).toBe(pids[2]);
    expect(a.hostState('host1').pid).not.toBe(pids[0]);
    pids[0] = a.hostState('host1').pid!;
  });

  it('a second lab with its own name and subnet coexists, isolated from the first', async () => {
    await b.up();
    expect(b.hostIp('host2')).toBe('10.232.0.12');
    expect((await b.exec('host1', ['hostname'])).stdout.trim()).toBe('host1');
    await expectReach(b, 'host1', 'host2', 'host2');
    await expectReach(a, 'host1', 'host2', 'host2');
    // Separate switches: lab b's host1 cannot reach lab a's host2.
    await expectReach(b, 'host1', 'host2', null, a);
    await b.down({ purge: true });
    expect(netnsList().filter((n) => n.startsWith(`${b.name}-`))).toEqual([]);
    await expectReach(a, 'host1', 'host2', 'host2');
  });

  it('refuses to adopt a namespace it did not make, and leaves it alone on down', async () => {
    execFileSync('ip', ['netns', 'add', foreignNs]);
    const v = new Lab({ name: `v${process.pid}`, hosts: 1, baseDir: base, daemonCmd });
    await expect(v.up()).rejects.toThrow(/did not make it/);
    await v.down({ purge: true });
    expect(netnsList()).toContain(foreignNs);
    execFileSync('ip', ['netns', 'del', foreignNs]);
  });

  it('a daemon command behind a wrapper that execs (env, nice) is refused at once, saying why', async () => {
    const w = new Lab({ name: `w${process.pid}`, hosts: 1, subnet: '10.234.0.0/24', baseDir: base, daemonCmd: `env ${daemonCmd}` });
    try {
      const t0 = Date.now();
      await expect(w.up()).rejects.toThrow(/its command starts with env, which replaced itself with .*node.*must start with the daemon itself/);
      expect(Date.now() - t0).toBeLessThan(10_000); // not the 15 s start timeout
    } finally {
      await w.down({ purge: true, killStragglers: true });
    }
    expect(netnsList().filter((n) => n.startsWith(`${w.name}-`))).toEqual([]);
  });

  const cli = path.join(repo, 'dist/deploy/lab/cli.js');
  it.skipIf(!existsSync(cli) && !inCI)('the CLI reports status and runs commands in hosts', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--lab', a.name, '--base-dir', base, ...args], { encoding: 'utf8' });
    const st = run('status', '--json');
    expect(st.status, st.stderr).toBe(0);
    const parsed = JSON.parse(st.stdout) as { hosts: { host: string; ip: string; procs: { daemon: { pid: number; alive: boolean } } }[] };
    expect(parsed.hosts.map((h) => [h.host, h.ip, h.procs.daemon.pid, h.procs.daemon.alive])).toEqual([
      ['host1', '10.231.0.11', pids[0], true],
      ['host2', '10.231.0.12', pids[1], true],
      ['host3', '10.231.0.13', pids[2], true],
    ]);
    const table = run('status');
    expect(table.stdout).toMatch(/host2\s+t\d+-host2\s+10\.231\.0\.12\s+up\s+\d+\s+yes/);
    const ex = run('exec', 'host2', 'sh', '-c', 'hostname; exit 5');
    expect([ex.status, ex.stdout]).toEqual([5, 'host2\n']);
  });

  it('down removes the namespaces, links, rules, daemons and state it made', async () => {
    await a.partition('host1', 'host3'); // leave a rule behind for down to remove
    const straggler = a.spawnIn('host2', ['sleep', '600'], { stdio: 'ignore' });
    await a.down({ purge: true, killStragglers: true });
    for (const pid of pids) await waitFor(`daemon pid ${pid} to be gone`, () => (gone(pid) ? true : undefined));
    await waitFor('the straggler to be gone', () => (gone(straggler.pid!) ? true : undefined));
    expect(netnsList().filter((n) => n.startsWith(`${a.name}-`))).toEqual([]);
    expect(existsSync(a.stateFile)).toBe(false);
    expect(existsSync(a.labDir)).toBe(false);
    expect(a.status().exists).toBe(false);
    expect(rootAddrs()).not.toContain('10.231.0.');
    expect(rootLinks().filter((l) => l.startsWith('to-host'))).toEqual([]);
    // Down again is a no-op.
    await a.down({ purge: true });
  });
});
