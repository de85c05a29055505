// ContainerSpec -> the Docker Engine's create body: table-driven over the
// process, labels, mounts, limits, capabilities, network modes and signals,
// and over the specs the engine cannot run.
import { describe, expect, it } from 'vitest';
import { ENGINE_LOG, L_GRACE, L_LOG, L_NS, L_SIGNAL, canonicalSignal, createBody, engineCaps, type EngineCreateBody } from '../../../worker/runtime/docker/spec.js';
import type { ContainerSpec } from '../../../worker/runtime/runtime.js';

const base: ContainerSpec = { id: 'task-0123456789abcdef', image: 'busybox', logPath: '/var/log/shoal/x.log' };
const IMAGE = 'docker.io/library/busybox:latest';
const body = (extra: Partial<ContainerSpec>, imageStopSignal?: string): EngineCreateBody =>
  createBody({ ...base, ...extra }, { namespace: 'shoal', image: IMAGE, imageStopSignal }).body;

describe('the whole body of a minimal spec', () => {
  it('names the container by the id and fills in the defaults', () => {
    const { name, body: b } = createBody(base, { namespace: 'shoal', image: IMAGE });
    expect(name).toBe('task-0123456789abcdef');
    expect(b).toEqual({
      Image: IMAGE,
      Env: [],
      Hostname: 'task-0123456',
      Labels: { [L_NS]: 'shoal', [L_LOG]: '/var/log/shoal/x.log', [L_SIGNAL]: 'SIGTERM', [L_GRACE]: '10000' },
      StopSignal: 'SIGTERM',
      StopTimeout: 10,
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      OpenStdin: false,
      Tty: false,
      HostConfig: {
        NetworkMode: 'none',
        Mounts: [],
        ReadonlyRootfs: false,
        Init: false,
        CapAdd: [],
        CapDrop: [],
        RestartPolicy: { Name: 'no' },
        AutoRemove: false,
        LogConfig: { Type: 'json-file', Config: { ...ENGINE_LOG.Config } },
      },
    });
  });
});

describe('process', () => {
  const cases: { name: string; spec: Partial<ContainerSpec>; want: Partial<EngineCreateBody> }[] = [
    { name: 'command replaces the entrypoint', spec: { command: ['sh', '-c', 'echo hi'] }, want: { Entrypoint: ['sh', '-c', 'echo hi'] } },
    { name: 'args replace the cmd', spec: { args: ['-x'] }, want: { Cmd: ['-x'] } },
    { name: 'both', spec: { command: ['sleep'], args: ['10'] }, want: { Entrypoint: ['sleep'], Cmd: ['10'] } },
    { name: 'env', spec: { env: ['A=1', 'B=two words'] }, want: { Env: ['A=1', 'B=two words'] } },
    { name: 'workdir', spec: { workdir: '/srv/app' }, want: { WorkingDir: '/srv/app' } },
    { name: 'user by name', spec: { user: 'nobody' }, want: { User: 'nobody' } },
    { name: 'user uid:gid', spec: { user: '1000:1000' }, want: { User: '1000:1000' } },
    { name: 'hostname', spec: { hostname: 'web-1' }, want: { Hostname: 'web-1' } },
  ];
  for (const c of cases) {
    it(c.name, () => expect(body(c.spec)).toMatchObject(c.want));
  }
  it('leaves out what the spec leaves out (the image decides)', () => {
    const b = body({});
    for (const k of ['Entrypoint', 'Cmd', 'WorkingDir', 'User'] as const) expect(b).not.toHaveProperty(k);
  });
  it('copies arrays (the spec stays the caller’s)', () => {
    const command = ['true'];
    const b = body({ command });
    b.Entrypoint!.push('x');
    expect(command).toEqual(['true']);
  });
  it('refuses an empty command without args, like the containerd adapter', () => {
    expect(() => body({ command: [] })).toThrow(/no command/);
    expect(body({ command: [], args: ['sh'] })).toMatchObject({ Entrypoint: [], Cmd: ['sh'] });
  });
});

describe('labels', () => {
  it('keeps the caller’s next to the reserved ones', () => {
    expect(body({ labels: { 'com.shoal.task.id': 't1', a: '' } }).Labels).toEqual({
      'com.shoal.task.id': 't1',
      a: '',
      [L_NS]: 'shoal',
      [L_LOG]: '/var/log/shoal/x.log',
      [L_SIGNAL]: 'SIGTERM',
      [L_GRACE]: '10000',
    });
  });
  it('rejects caller labels with the reserved prefix', () => {
    expect(() => body({ labels: { 'shoal.runtime.ns': 'other' } })).toThrow(/shoal\.runtime\. prefix is reserved/);
    expect(() => body({ labels: { 'shoal.runtime.anything': 'x' } })).toThrow(/reserved/);
  });
  it('uses the namespace given', () => {
    expect(createBody(base, { namespace: 'lab-h1', image: IMAGE }).body.Labels[L_NS]).toBe('lab-h1');
    expect(() => createBody(base, { namespace: '', image: IMAGE })).toThrow(/namespace/);
  });
});

describe('stop signal and grace', () => {
  const cases: { name: string; spec: Partial<ContainerSpec>; imageSignal?: string; signal: string; grace: string; timeout: number }[] = [
    { name: 'defaults', spec: {}, signal: 'SIGTERM', grace: '10000', timeout: 10 },
    { name: 'the image’s signal', spec: {}, imageSignal: 'SIGQUIT', signal: 'SIGQUIT', grace: '10000', timeout: 10 },
    { name: 'the spec’s over the image’s', spec: { stopSignal: 'INT' }, imageSignal: 'SIGQUIT', signal: 'SIGINT', grace: '10000', timeout: 10 },
    { name: 'a number', spec: { stopSignal: '10' }, signal: 'SIGUSR1', grace: '10000', timeout: 10 },
    { name: 'lower case', spec: { stopSignal: 'sighup' }, signal: 'SIGHUP', grace: '10000', timeout: 10 },
    { name: 'grace rounds up to whole seconds', spec: { stopGraceMs: 300 }, signal: 'SIGTERM', grace: '300', timeout: 1 },
    { name: 'no grace', spec: { stopGraceMs: 0 }, signal: 'SIGTERM', grace: '0', timeout: 0 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const b = body(c.spec, c.imageSignal);
      expect([b.StopSignal, b.Labels[L_SIGNAL], b.Labels[L_GRACE], b.StopTimeout]).toEqual([c.signal, c.signal, c.grace, c.timeout]);
    });
  }
  it('rejects unknown signals and negative grace', () => {
    expect(() => body({ stopSignal: 'SIGNOPE' })).toThrow(/unknown signal/);
    expect(() => body({ stopSignal: '99' })).toThrow(/invalid signal/);
    expect(() => body({ stopGraceMs: -1 })).toThrow(/stopGraceMs/);
  });
  it('canonical names', () => {
    expect(['TERM', 'SIGKILL', '9', 'usr2'].map(canonicalSignal)).toEqual(['SIGTERM', 'SIGKILL', 'SIGKILL', 'SIGUSR2']);
  });
});

describe('mounts', () => {
  const cases: { name: string; mounts: ContainerSpec['mounts']; want: unknown }[] = [
    {
      name: 'bind, read-write',
      mounts: [{ type: 'bind', source: '/srv/data', target: '/data' }],
      want: [{ Type: 'bind', Source: '/srv/data', Target: '/data', ReadOnly: false, BindOptions: { Propagation: 'rprivate' } }],
    },
    {
      name: 'bind, read-only',
      mounts: [{ type: 'bind', source: '/etc/hosts.lab', target: '/etc/hosts', readOnly: true }],
      want: [{ Type: 'bind', Source: '/etc/hosts.lab', Target: '/etc/hosts', ReadOnly: true, BindOptions: { Propagation: 'rprivate' } }],
    },
    { name: 'tmpfs, defaults', mounts: [{ type: 'tmpfs', target: '/run' }], want: [{ Type: 'tmpfs', Target: '/run' }] },
    {
      name: 'tmpfs with size and mode',
      mounts: [{ type: 'tmpfs', target: '/scratch', sizeBytes: 1 << 20, mode: 0o1777 }],
      want: [{ Type: 'tmpfs', Target: '/scratch', TmpfsOptions: { SizeBytes: 1 << 20, Mode: 0o1777 } }],
    },
    { name: 'tmpfs with mode only', mounts: [{ type: 'tmpfs', target: '/t', mode: 0o700 }], want: [{ Type: 'tmpfs', Target: '/t', TmpfsOptions: { Mode: 0o700 } }] },
  ];
  for (const c of cases) {
    it(c.name, () => expect(body({ mounts: c.mounts }).HostConfig.Mounts).toEqual(c.want));
  }
  const bad: { name: string; mounts: ContainerSpec['mounts']; error: RegExp }[] = [
    { name: 'relative target', mounts: [{ type: 'tmpfs', target: 'tmp' }], error: /target "tmp" must be an absolute path/ },
    { name: 'relative bind source', mounts: [{ type: 'bind', source: 'data', target: '/data' }], error: /source "data" must be an absolute host path/ },
    { name: 'zero tmpfs size', mounts: [{ type: 'tmpfs', target: '/t', sizeBytes: 0 }], error: /positive number of bytes/ },
    { name: 'mode out of range', mounts: [{ type: 'tmpfs', target: '/t', mode: 0o17777 }], error: /permission bits/ },
  ];
  for (const c of bad) {
    it(`rejects: ${c.name}`, () => expect(() => body({ mounts: c.mounts })).toThrow(c.error));
  }
});

describe('resources', () => {
  const cases: { name: string; resources: ContainerSpec['resources']; want: { Memory?: number; NanoCpus?: number; PidsLimit?: number } }[] = [
    { name: 'none', resources: undefined, want: {} },
    { name: 'memory', resources: { memoryLimitBytes: 64 * 1024 * 1024 }, want: { Memory: 67108864 } },
    { name: 'half a CPU', resources: { cpuLimitNano: 500_000_000 }, want: { NanoCpus: 500_000_000 } },
    { name: 'pids', resources: { pidsLimit: 100 }, want: { PidsLimit: 100 } },
    { name: 'all three', resources: { memoryLimitBytes: 8 << 20, cpuLimitNano: 2e9, pidsLimit: 5 }, want: { Memory: 8 << 20, NanoCpus: 2e9, PidsLimit: 5 } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const h = body({ resources: c.resources }).HostConfig;
      expect({ Memory: h.Memory, NanoCpus: h.NanoCpus, PidsLimit: h.PidsLimit }).toEqual({ Memory: undefined, NanoCpus: undefined, PidsLimit: undefined, ...c.want });
    });
  }
  it('rejects limits too small to run anything', () => {
    expect(() => body({ resources: { memoryLimitBytes: 1000 } })).toThrow(/below 4 MiB/);
    expect(() => body({ resources: { cpuLimitNano: 1000 } })).toThrow(/below 0.01 CPUs/);
    expect(() => body({ resources: { pidsLimit: 0 } })).toThrow(/pidsLimit/);
  });
});

describe('capabilities, init, read-only rootfs', () => {
  const cases: { name: string; spec: Partial<ContainerSpec>; want: Partial<EngineCreateBody['HostConfig']> }[] = [
    { name: 'add without prefix', spec: { capAdd: ['net_admin', 'SYS_TIME'] }, want: { CapAdd: ['CAP_NET_ADMIN', 'CAP_SYS_TIME'] } },
    { name: 'drop with prefix', spec: { capDrop: ['CAP_CHOWN'] }, want: { CapDrop: ['CAP_CHOWN'] } },
    { name: 'drop all', spec: { capDrop: ['all'], capAdd: ['NET_BIND_SERVICE'] }, want: { CapDrop: ['ALL'], CapAdd: ['CAP_NET_BIND_SERVICE'] } },
    { name: 'init', spec: { init: true }, want: { Init: true } },
    { name: 'read-only rootfs', spec: { readOnlyRootfs: true }, want: { ReadonlyRootfs: true } },
  ];
  for (const c of cases) {
    it(c.name, () => expect(body(c.spec).HostConfig).toMatchObject(c.want));
  }
  it('rejects unknown capabilities', () => {
    expect(() => body({ capAdd: ['NET_WIZARDRY'] })).toThrow(/unknown capability "NET_WIZARDRY"/);
  });
  it('engineCaps', () => {
    expect(engineCaps(undefined)).toEqual([]);
    expect(engineCaps([' kill ', 'All'])).toEqual(['CAP_KILL', 'ALL']);
  });
});

describe('network', () => {
  const cases: { name: string; spec: Partial<ContainerSpec>; mode: string; hostname?: string }[] = [
    { name: 'default: only loopback', spec: {}, mode: 'none', hostname: 'task-0123456' },
    { name: 'host network', spec: { hostNetwork: true }, mode: 'host', hostname: 'task-0123456' },
    { name: 'another container’s network (no hostname of its own)', spec: { netnsPath: 'container:sandbox-1' }, mode: 'container:sandbox-1', hostname: undefined },
    { name: 'netnsPath wins over hostNetwork', spec: { netnsPath: 'container:sb', hostNetwork: true }, mode: 'container:sb', hostname: undefined },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const b = body(c.spec);
      expect(b.HostConfig.NetworkMode).toBe(c.mode);
      expect(b.Hostname).toBe(c.hostname);
    });
  }
  it('refuses a network namespace file, saying what to do', () => {
    expect(() => body({ netnsPath: '/run/netns/shoal-1' })).toThrow(/cannot join the network namespace \/run\/netns\/shoal-1.*containerd runtime/);
  });
});

describe('ids and log path', () => {
  const bad: { name: string; spec: Partial<ContainerSpec>; error: RegExp }[] = [
    { name: 'empty id', spec: { id: '' }, error: /invalid container id/ },
    { name: 'slash in id', spec: { id: 'a/b' }, error: /invalid container id/ },
    { name: 'one character (the engine needs two)', spec: { id: 'a' }, error: /at least two characters/ },
    { name: 'relative log path', spec: { logPath: 'x.log' }, error: /logPath must be an absolute path/ },
  ];
  for (const c of bad) {
    it(`rejects: ${c.name}`, () => expect(() => body(c.spec)).toThrow(c.error));
  }
  it('accepts the longest id', () => {
    const id = `a${'b'.repeat(75)}`;
    expect(createBody({ ...base, id }, { namespace: 'shoal', image: IMAGE }).name).toBe(id);
  });
});
