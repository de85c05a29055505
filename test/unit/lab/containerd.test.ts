// The containerd and registry sidecars of lab hosts, without running them:
// config files, templates, the daemon's flags, per-host sidecars, and the
// Lab's handling of sidecars limited to some hosts.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONTAINERD_PROC, containerdConfig, containerdLabOptions, containerdPaths, containerdSidecar } from '../../../deploy/lab/containerd.js';
import { dockerSidecar } from '../../../deploy/lab/docker.js';
import { Lab } from '../../../deploy/lab/lab.js';
import { DEFAULT_DAEMON_CMD, buildCommand, runsOn, substitute, validateSidecar } from '../../../deploy/lab/plan.js';
import { splitRepoTag } from '../../../deploy/lab/registry-push.js';
import { AUTH_REGISTRY_PROC, LAB_REGISTRY_USER, REGISTRY_PROC, authRegistrySidecar, registryConfig, registrySidecar } from '../../../deploy/lab/registry.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'shoal-lab-ctd-unit-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const vars = {
  lab: 'l', host: 'host2', ip: '10.231.0.12', subnet: '10.231.0.0/24', netns: 'l-host2', hostDir: '/b/l/host2', stateDir: '/b/l/host2/state',
  socket: '/b/l/host2/shoald.sock', repo: '/repo', node: '/usr/bin/node', containerdSocket: '/b/l/host2/containerd/containerd.sock', containerdNamespace: 'l-host2',
};

describe('containerd per host', () => {
  it('keeps root, state, sockets and config under <hostDir>/containerd', () => {
    expect(containerdPaths('/b/l/host2')).toEqual({
      dir: '/b/l/host2/containerd',
      config: '/b/l/host2/containerd/config.toml',
      root: '/b/l/host2/containerd/root',
      state: '/b/l/host2/containerd/state',
      socket: '/b/l/host2/containerd/containerd.sock',
      ttrpcSocket: '/b/l/host2/containerd/containerd.sock.ttrpc',
      tasks: '/b/l/host2/containerd/state/io.containerd.runtime.v2.task',
    });
  });

  it('writes a config without CRI whose every path is the host\'s', () => {
    const c = containerdConfig('/b/l/host2');
    expect(c).toContain('version = 2\n');
    expect(c).toContain('root = "/b/l/host2/containerd/root"\n');
    expect(c).toContain('state = "/b/l/host2/containerd/state"\n');
    expect(c).toContain('[grpc]\n  address = "/b/l/host2/containerd/containerd.sock"\n');
    expect(c).toContain('[ttrpc]\n  address = "/b/l/host2/containerd/containerd.sock.ttrpc"\n');
    expect(c).toMatch(/^disabled_plugins = \["io\.containerd\.grpc\.v1\.cri"/m);
    expect(c).not.toMatch(/snapshotter\.v1\.overlayfs"\]|"io\.containerd\.snapshotter\.v1\.overlayfs"/);
    expect(c).toContain('path = "/b/l/host2/containerd/opt"');
    // Every absolute path in it lies under the host dir.
    for (const m of c.matchAll(/"(\/[^"]*)"/g)) expect(m[1]!.startsWith('/b/l/host2/containerd/')).toBe(true);
  });

  it('is a sidecar whose templates become the host\'s command, config file and ready socket', () => {
    const s = containerdSidecar();
    expect(s.name).toBe(CONTAINERD_PROC);
    expect(s.hosts).toBeUndefined();
    expect(buildCommand(s.cmd, vars)).toEqual(['containerd', '--config', '/b/l/host2/containerd/config.toml']);
    const [[file, content]] = Object.entries(s.files!) as [[string, string]];
    expect(substitute(file, vars)).toBe('/b/l/host2/containerd/config.toml');
    expect(substitute(content, vars)).toBe(containerdConfig('/b/l/host2'));
    expect(substitute(s.readySocket!, vars)).toBe('/b/l/host2/containerd/containerd.sock');
  });

  it('points the default shoald command at the host\'s containerd and namespace', () => {
    const o = containerdLabOptions();
    expect(o.sidecars.map((s) => s.name)).toEqual([CONTAINERD_PROC]);
    expect(o.daemonCmd.startsWith(DEFAULT_DAEMON_CMD + ' ')).toBe(true);
    expect(buildCommand(o.daemonCmd, vars).slice(11)).toEqual([
      '--runtime', 'containerd', '--containerd-socket', '/b/l/host2/containerd/containerd.sock', '--containerd-namespace', 'l-host2',
    ]);
  });

  it.each([
    [{ registryHost: 'host1' }, '10.231.0.11:5000'],
    [{ registryHost: 'host3', subnet: '10.9.0.0/24' }, '10.9.0.13:5000'],
    [{ registryHost: 'reg', registryHostIndex: 7 }, '10.231.0.17:5000'],
  ])('with a registry %j, runs it on that host and lets shoald pull from %s over HTTP', (opts, addr) => {
    const o = containerdLabOptions({ ...opts, daemonCmd: '{node} d.js', insecureRegistries: ['r.example:5000'] });
    expect(o.sidecars.map((s) => [s.name, s.hosts])).toEqual([[CONTAINERD_PROC, undefined], [REGISTRY_PROC, [opts.registryHost]]]);
    expect(buildCommand(o.daemonCmd, vars).slice(0, 2)).toEqual(['/usr/bin/node', 'd.js']);
    expect(o.daemonCmd.endsWith(`--insecure-registry r.example:5000 --insecure-registry ${addr}`)).toBe(true);
  });
});

describe('dockerd per host', () => {
  it('keeps the stack dump its containerd writes before dockerd kills it ($TMPDIR) in the host\'s docker dir, one that exists before the start', () => {
    const s = dockerSidecar();
    const tmp = substitute(s.env!.TMPDIR!, vars);
    expect(tmp).toBe('/b/l/host2/docker');
    const written = Object.keys(s.files!).map((f) => path.dirname(substitute(f, vars)));
    expect(written).toContain(tmp);
  });
});

describe('registry sidecar', () => {
  it('listens on the host address, port 5000, storage in the host dir', () => {
    const s = registrySidecar('host1');
    expect(s.hosts).toEqual(['host1']);
    expect(buildCommand(s.cmd, vars)).toEqual(['docker-registry', 'serve', '/b/l/host2/registry/config.yml']);
    const [[file, content]] = Object.entries(s.files!) as [[string, string]];
    expect(substitute(file, vars)).toBe('/b/l/host2/registry/config.yml');
    expect(substitute(content, vars)).toBe(registryConfig('/b/l/host2', '10.231.0.12'));
    expect(registryConfig('/h', '10.0.0.1')).toMatch(/rootdirectory: \/h\/registry\/data\n[\s\S]*addr: 10\.0\.0\.1:5000\n/);
  });

  it('behind the lab\'s login: the same storage on port 5001, an htpasswd of the lab user, and shoald lets it be reached over HTTP', () => {
    const s = authRegistrySidecar('host1');
    expect([s.name, s.hosts]).toEqual([AUTH_REGISTRY_PROC, ['host1']]);
    expect(buildCommand(s.cmd, vars)).toEqual(['docker-registry', 'serve', '/b/l/host2/registry/config-auth.yml']);
    const files = Object.fromEntries(Object.entries(s.files!).map(([f, c]) => [substitute(f, vars), substitute(c, vars)]));
    expect(files['/b/l/host2/registry/config-auth.yml']).toMatch(
      /rootdirectory: \/b\/l\/host2\/registry\/data\n[\s\S]*addr: 10\.231\.0\.12:5001\nauth:\n {2}htpasswd:\n {4}realm: shoal-lab\n {4}path: \/b\/l\/host2\/registry\/htpasswd\n/,
    );
    expect(files['/b/l/host2/registry/htpasswd']).toMatch(new RegExp(`^${LAB_REGISTRY_USER}:\\$2y\\$`));
    const o = containerdLabOptions({ registryHost: 'host1', authRegistry: true });
    expect(o.sidecars.map((x) => x.name)).toEqual([CONTAINERD_PROC, REGISTRY_PROC, AUTH_REGISTRY_PROC]);
    expect(o.daemonCmd.endsWith('--insecure-registry 10.231.0.11:5000 --insecure-registry 10.231.0.11:5001')).toBe(true);
  });

  it.each([
    ['busybox:1', ['busybox', '1']],
    ['busybox', ['busybox', 'latest']],
    ['team/app:v2.1', ['team/app', 'v2.1']],
  ])('%s is repo and tag %j', (ref, want) => {
    expect(splitRepoTag(ref)).toEqual(want);
  });

  it.each(['Busybox:1', 'a//b:1', 'busybox:-x'])('refuses %s', (ref) => {
    expect(() => splitRepoTag(ref)).toThrow(/not a/);
  });
});

describe('sidecars on some hosts', () => {
  it('runs a sidecar only on the hosts it names', () => {
    expect(runsOn({ name: 'x', cmd: 'x' }, 'host3')).toBe(true);
    expect(runsOn({ name: 'x', cmd: 'x', hosts: ['host1'] }, 'host1')).toBe(true);
    expect(runsOn({ name: 'x', cmd: 'x', hosts: ['host1'] }, 'host3')).toBe(false);
  });

  it.each([
    [{ name: 'daemon', cmd: 'x' }, /sidecar name/],
    [{ name: 'Bad', cmd: 'x' }, /sidecar name/],
    [{ name: 'x', cmd: 'x', hosts: [] }, /empty host list/],
    [{ name: 'x', cmd: 'x', hosts: ['sw'] }, /reserved/],
  ])('refuses %j', (s, err) => {
    expect(() => validateSidecar(s)).toThrow(err);
  });

  it('refuses two sidecars of one name', () => {
    expect(() => new Lab({ name: 'dup', baseDir: base, sidecars: [containerdSidecar(), containerdSidecar()] })).toThrow(/repeat/);
  });

  it('plans the sidecars before the daemon', () => {
    const o = containerdLabOptions({ registryHost: 'host1' });
    const lab = new Lab({ name: 'planned', hosts: 2, baseDir: base, ...o });
    expect(lab.procSpecs().map((s) => s.name)).toEqual([CONTAINERD_PROC, REGISTRY_PROC, 'daemon']);
    expect(lab.procSpecs().at(-1)!.cmd).toBe(o.daemonCmd);
    expect(lab.procPid('host1', CONTAINERD_PROC)).toBeNull();
  });
});
