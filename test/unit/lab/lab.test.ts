// What the Lab class decides without touching the network: host lists,
// addresses, paths, option validation, and the prerequisite messages.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Lab } from '../../../deploy/lab/lab.js';
import { describePrerequisites, execedInto } from '../../../deploy/lab/sys.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'shoal-lab-unit-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('Lab before up', () => {
  it.each([
    [{ hosts: 3 }, ['host1', 'host2', 'host3'], ['10.231.0.11', '10.231.0.12', '10.231.0.13']],
    [{ hosts: ['db', 'web-1'] }, ['db', 'web-1'], ['10.231.0.11', '10.231.0.12']],
    [{ hosts: 2, subnet: '10.99.8.0/22' }, ['host1', 'host2'], ['10.99.8.11', '10.99.8.12']],
    [{}, ['host1', 'host2', 'host3'], ['10.231.0.11', '10.231.0.12', '10.231.0.13']],
  ])('%j plans hosts %j at %j', (opts, hosts, ips) => {
    const lab = new Lab({ name: 'plan', baseDir: base, ...opts });
    expect(lab.exists()).toBe(false);
    expect(lab.hosts()).toEqual(hosts);
    expect(hosts.map((h) => lab.hostIp(h))).toEqual(ips);
  });

  it('puts every host file under <baseDir>/<lab>/<host>/', () => {
    const lab = new Lab({ name: 'paths', hosts: 2, baseDir: base });
    expect(lab.hostState('host2')).toEqual({
      host: 'host2',
      netns: 'paths-host2',
      ip: '10.231.0.12',
      hostDir: path.join(base, 'paths/host2'),
      stateDir: path.join(base, 'paths/host2/state'),
      socket: path.join(base, 'paths/host2/shoald.sock'),
      logFile: path.join(base, 'paths/host2/daemon.log'),
      pidFile: path.join(base, 'paths/host2/daemon.pid'),
      pid: null,
    });
    expect(lab.stateFile).toBe(path.join(base, 'paths/lab.json'));
    expect(new Lab({ name: 'dflt' }).labDir).toBe('/var/lib/shoal-lab/dflt');
  });

  it('names an unknown host', () => {
    expect(() => new Lab({ name: 'x', hosts: 2, baseDir: base }).hostIp('host3')).toThrow(/no host 'host3' \(hosts: host1, host2\)/);
  });

  it.each([
    [{ name: 'bad-name' }, /lab name/],
    [{ name: 'ok', hosts: ['sw'] }, /reserved/],
    [{ name: 'ok', hosts: ['Host1'] }, /host name/],
    [{ name: 'ok', hosts: 0 }, /host count/],
    [{ name: 'ok', subnet: '10.0.0.1/24' }, /host bits/],
    [{ name: 'ok', sidecars: [{ name: 'daemon', cmd: 'x' }] }, /sidecar name/],
  ])('refuses %j', (opts, err) => {
    expect(() => new Lab(opts)).toThrow(err);
  });

  it('status of a lab that is not up says so', () => {
    expect(new Lab({ name: 'none', baseDir: base }).status()).toMatchObject({ lab: 'none', exists: false, hosts: [] });
  });
});

describe('prerequisite messages', () => {
  it.each([
    [true, [], []],
    [false, [], ['the lab needs root (network namespaces, veth links, nftables): run it as root, or with sudo']],
    [true, ['nft'], ['missing nft (Debian package nftables): apt-get install -y nftables']],
    [true, ['nsenter', 'unshare', 'ip'], ['missing nsenter, unshare, ip (Debian packages iproute2 util-linux): apt-get install -y iproute2 util-linux']],
  ])('root=%s missing=%j', (isRoot, missing, problems) => {
    const p = describePrerequisites(isRoot, missing);
    expect(p.problems).toEqual(problems);
    expect(p.ok).toBe(problems.length === 0);
  });
});

describe('a daemon command whose head exec\'d its tail', () => {
  const argv = ['nice', '-n', '5', '/usr/bin/node', 'main.js', '--x'];
  it.each([
    { case: 'the wrapper exec\'d the daemon', cmdline: ['/usr/bin/node', 'main.js', '--x'], execed: true },
    { case: 'still the wrapper (the whole command)', cmdline: argv, execed: false },
    { case: 'a start-up stage (longer than the command)', cmdline: ['sh', '-c', 'exec "$@"', 'sh', ...argv], execed: false },
    { case: 'another program', cmdline: ['/usr/bin/node', 'other.js'], execed: false },
    { case: 'no command line (a kernel thread, a zombie)', cmdline: [], execed: false },
  ])('$case: $execed', ({ cmdline, execed }) => {
    expect(execedInto(cmdline, argv)).toBe(execed);
  });
});
