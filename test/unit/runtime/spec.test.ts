// OCI runtime spec building: table-driven over limits, mounts, users, env,
// capabilities, namespaces, argv and signals.
import { describe, expect, it } from 'vitest';
import {
  ALL_CAPS,
  DEFAULT_CAPS,
  INIT_TARGET,
  buildOciSpec,
  capabilities,
  processArgs,
  resolveUser,
  signalNumber,
  userNeedsLookup,
  type OciSpec,
  type ResolvedUser,
} from '../../../worker/runtime/spec.js';
import type { ContainerSpec } from '../../../worker/runtime/runtime.js';
import type { ImageConfig } from '../../../worker/runtime/oci.js';
import { rootfsLayers } from '../../../worker/runtime/containerd/runtime.js';

const ROOT: ResolvedUser = { uid: 0, gid: 0, additionalGids: [], home: '/root' };
const image: ImageConfig = {
  config: { Env: ['PATH=/bin', 'LANG=C'], Cmd: ['sh'], WorkingDir: '/srv' },
  rootfs: { type: 'layers', diff_ids: [] },
};
const base: ContainerSpec = { id: 'task-0123456789abcdef', image: 'busybox', logPath: '/var/log/x.log' };
const build = (extra: Partial<ContainerSpec>, img: ImageConfig | undefined = image, user = ROOT, opts = {}): OciSpec =>
  buildOciSpec({ ...base, ...extra }, img, user, opts);

describe('resources', () => {
  const cases: { name: string; resources: ContainerSpec['resources']; want: Partial<OciSpec['linux']['resources']> }[] = [
    { name: 'none', resources: undefined, want: {} },
    { name: 'memory', resources: { memoryLimitBytes: 64 * 1024 * 1024 }, want: { memory: { limit: 67108864 } } },
    { name: 'half a CPU', resources: { cpuLimitNano: 500_000_000 }, want: { cpu: { quota: 50_000, period: 100_000 } } },
    { name: 'two CPUs', resources: { cpuLimitNano: 2_000_000_000 }, want: { cpu: { quota: 200_000, period: 100_000 } } },
    { name: 'pids', resources: { pidsLimit: 100 }, want: { pids: { limit: 100 } } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = build({ resources: c.resources }).linux.resources;
      expect({ memory: r.memory, cpu: r.cpu, pids: r.pids }).toEqual({ memory: undefined, cpu: undefined, pids: undefined, ...c.want });
      expect(r.devices[0]).toEqual({ allow: false, access: 'rwm' });
    });
  }
  it('rejects limits too small to run anything', () => {
    expect(() => build({ resources: { memoryLimitBytes: 1000 } })).toThrow(/below 4 MiB/);
    expect(() => build({ resources: { cpuLimitNano: 1000 } })).toThrow(/below 0.01 CPUs/);
  });
  it('puts the cgroup under the parent', () => {
    expect(build({}).linux.cgroupsPath).toBe('/shoal/task-0123456789abcdef');
    expect(build({}, image, ROOT, { cgroupParent: 'lab/h1/' }).linux.cgroupsPath).toBe('/lab/h1/task-0123456789abcdef');
  });
});

describe('mounts', () => {
  const dest = (s: OciSpec): string[] => s.mounts.map((m) => m.destination);
  it('has Docker’s defaults', () => {
    expect(dest(build({}))).toEqual(['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm']);
  });
  const cases: { name: string; mounts: ContainerSpec['mounts']; want: object }[] = [
    { name: 'bind rw', mounts: [{ type: 'bind', source: '/data', target: '/var/data' }], want: { destination: '/var/data', type: 'bind', source: '/data', options: ['rbind', 'rprivate', 'rw'] } },
    { name: 'bind ro', mounts: [{ type: 'bind', source: '/etc/x', target: '/etc/x', readOnly: true }], want: { destination: '/etc/x', type: 'bind', source: '/etc/x', options: ['rbind', 'rprivate', 'ro'] } },
    { name: 'tmpfs', mounts: [{ type: 'tmpfs', target: '/run' }], want: { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec'] } },
    {
      name: 'tmpfs with size and mode',
      mounts: [{ type: 'tmpfs', target: '/cache', sizeBytes: 1048576, mode: 0o1777 }],
      want: { destination: '/cache', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', 'size=1048576', 'mode=1777'] },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const s = build({ mounts: c.mounts });
      expect(s.mounts[s.mounts.length - 1]).toEqual(c.want);
    });
  }
  it('a task mount replaces the default at the same place', () => {
    const s = build({ mounts: [{ type: 'tmpfs', target: '/dev/shm', sizeBytes: 1 << 30 }] });
    expect(s.mounts.filter((m) => m.destination === '/dev/shm')).toEqual([{ destination: '/dev/shm', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', 'size=1073741824'] }]);
  });
  it('rejects relative paths', () => {
    expect(() => build({ mounts: [{ type: 'bind', source: 'data', target: '/data' }] })).toThrow(/not absolute/);
    expect(() => build({ mounts: [{ type: 'tmpfs', target: 'tmp' }] })).toThrow(/not absolute/);
  });
  it('init bind-mounts the init binary and runs it first', () => {
    const s = build({ init: true, command: ['sleep', '5'] }, image, ROOT, { initPath: '/usr/bin/tini-static' });
    expect(s.process.args).toEqual([INIT_TARGET, '--', 'sleep', '5']);
    expect(s.mounts).toContainEqual({ destination: INIT_TARGET, type: 'bind', source: '/usr/bin/tini-static', options: ['rbind', 'rprivate', 'ro'] });
    expect(() => build({ init: true })).toThrow(/no init binary/);
  });
  it('read-only rootfs', () => {
    expect(build({}).root).toEqual({ path: 'rootfs', readonly: false });
    expect(build({ readOnlyRootfs: true }).root).toEqual({ path: 'rootfs', readonly: true });
  });
});

describe('argv, env, cwd, hostname', () => {
  const img = (Entrypoint?: string[], Cmd?: string[]): ImageConfig => ({ config: { Entrypoint, Cmd }, rootfs: { type: 'layers', diff_ids: [] } });
  const cases: { name: string; spec: Partial<ContainerSpec>; img: ImageConfig; want: string[] }[] = [
    { name: 'image CMD', spec: {}, img: img(undefined, ['sh']), want: ['sh'] },
    { name: 'image ENTRYPOINT + CMD', spec: {}, img: img(['/app'], ['--port', '80']), want: ['/app', '--port', '80'] },
    { name: 'args replace CMD', spec: { args: ['--port', '81'] }, img: img(['/app'], ['--port', '80']), want: ['/app', '--port', '81'] },
    { name: 'command replaces ENTRYPOINT and drops CMD', spec: { command: ['sleep', '9'] }, img: img(['/app'], ['--port', '80']), want: ['sleep', '9'] },
    { name: 'command and args', spec: { command: ['echo'], args: ['hi'] }, img: img(['/app'], ['x']), want: ['echo', 'hi'] },
  ];
  for (const c of cases) it(c.name, () => expect(processArgs(c.spec, c.img)).toEqual(c.want));
  it('no command at all is an error naming the image', () => {
    expect(() => build({}, img())).toThrow(/busybox has no ENTRYPOINT or CMD/);
  });
  it('env: defaults, image, hostname, task overrides by key, HOME from the user', () => {
    const s = build({ env: ['LANG=de_DE.UTF-8', 'FOO=bar'] });
    expect(s.process.env).toEqual(['PATH=/bin', 'LANG=de_DE.UTF-8', 'HOSTNAME=task-0123456', 'FOO=bar', 'HOME=/root']);
    expect(build({ env: ['HOME=/x'] }).process.env).toContain('HOME=/x');
    expect(buildOciSpec({ ...base, command: ['x'] }, undefined, ROOT).process.env[0]).toMatch(/^PATH=\/usr\/local\/sbin:/);
  });
  it('cwd from the task, else the image, else /', () => {
    expect(build({ workdir: '/w' }).process.cwd).toBe('/w');
    expect(build({}).process.cwd).toBe('/srv');
    expect(build({}, img(undefined, ['sh'])).process.cwd).toBe('/');
  });
  it('hostname defaults to the id’s first 12 characters', () => {
    expect(build({}).hostname).toBe('task-0123456');
    expect(build({ hostname: 'web.1' }).hostname).toBe('web.1');
  });
});

describe('namespaces', () => {
  const types = (s: OciSpec): object[] => s.linux.namespaces;
  it('private network by default, a given netns, or the host’s', () => {
    expect(types(build({}))).toEqual([{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }]);
    expect(types(build({ netnsPath: '/run/netns/sb1' }))).toContainEqual({ type: 'network', path: '/run/netns/sb1' });
    expect(types(build({ hostNetwork: true })).some((n) => (n as { type: string }).type === 'network')).toBe(false);
  });
});

describe('capabilities', () => {
  const cases: { name: string; add?: string[]; drop?: string[]; want: string[] }[] = [
    { name: 'Docker default', want: DEFAULT_CAPS },
    { name: 'add one, short name', add: ['NET_ADMIN'], want: [...DEFAULT_CAPS, 'CAP_NET_ADMIN'] },
    { name: 'drop one, CAP_ name, lower case', drop: ['cap_net_raw'], want: DEFAULT_CAPS.filter((c) => c !== 'CAP_NET_RAW') },
    { name: 'drop ALL, add one', add: ['CHOWN'], drop: ['ALL'], want: ['CAP_CHOWN'] },
    { name: 'add ALL, drop one', add: ['ALL'], drop: ['SYS_ADMIN'], want: ALL_CAPS.filter((c) => c !== 'CAP_SYS_ADMIN') },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = capabilities(c.add, c.drop);
      expect([...got].sort()).toEqual([...c.want].sort());
    });
  }
  it('unknown names fail', () => expect(() => capabilities(['FLY'])).toThrow(/unknown capability "FLY"/));
  it('root gets them effective; another user only in the bounding set', () => {
    expect(build({}).process.capabilities.effective).toEqual(build({}).process.capabilities.bounding);
    const s = build({}, image, { uid: 1000, gid: 1000, additionalGids: [], home: '/' });
    expect(s.process.capabilities.effective).toEqual([]);
    expect(s.process.capabilities.bounding.length).toBe(DEFAULT_CAPS.length);
  });
});

describe('users', () => {
  const passwd = 'root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\nnobody:x:65534:65534::/nonexistent:/bin/false\n';
  const group = 'root:x:0:\nwww:x:33:\nadm:x:4:www,root\nweb:x:800:www\n';
  const cases: { user: string | undefined; want: ResolvedUser | RegExp }[] = [
    { user: undefined, want: { uid: 0, gid: 0, additionalGids: [4], home: '/root' } },
    { user: '0', want: { uid: 0, gid: 0, additionalGids: [4], home: '/root' } },
    { user: '33', want: { uid: 33, gid: 33, additionalGids: [4, 800], home: '/var/www' } },
    { user: 'www', want: { uid: 33, gid: 33, additionalGids: [4, 800], home: '/var/www' } },
    { user: 'www:adm', want: { uid: 33, gid: 4, additionalGids: [], home: '/var/www' } },
    { user: '1234', want: { uid: 1234, gid: 0, additionalGids: [], home: '/' } },
    { user: '1234:55', want: { uid: 1234, gid: 55, additionalGids: [], home: '/' } },
    { user: 'nobody', want: { uid: 65534, gid: 65534, additionalGids: [], home: '/nonexistent' } },
    { user: 'ghost', want: /user "ghost" not found/ },
    { user: 'www:ghosts', want: /group "ghosts" not found/ },
  ];
  for (const c of cases) {
    it(String(c.user), () => {
      if (c.want instanceof RegExp) expect(() => resolveUser(c.user, passwd, group)).toThrow(c.want);
      else expect(resolveUser(c.user, passwd, group)).toEqual(c.want);
    });
  }
  it('numeric users resolve without an /etc/passwd', () => {
    expect(resolveUser('5:6')).toEqual({ uid: 5, gid: 6, additionalGids: [], home: '/' });
    expect(userNeedsLookup('5:6')).toBe(false);
    expect(userNeedsLookup('5:adm')).toBe(true);
    expect(userNeedsLookup('www')).toBe(true);
  });
  it('goes into the spec', () => {
    expect(build({}, image, { uid: 33, gid: 33, additionalGids: [4], home: '/var/www' }).process.user).toEqual({ uid: 33, gid: 33, additionalGids: [4] });
    expect(build({}).process.user).toEqual({ uid: 0, gid: 0 });
  });
});

describe('signals', () => {
  const cases: [string | number, number][] = [['SIGTERM', 15], ['TERM', 15], ['sigkill', 9], ['9', 9], ['SIGQUIT', 3], ['SIGUSR1', 10], [2, 2]];
  for (const [s, n] of cases) it(String(s), () => expect(signalNumber(s)).toBe(n));
  it('rejects nonsense', () => {
    expect(() => signalNumber('SIGFOO')).toThrow(/unknown signal/);
    expect(() => signalNumber('0')).toThrow(/invalid signal/);
  });
});

describe('rootfs layers from snapshot mounts', () => {
  it('overlay: upper first, then lowers top-down; bind: its source', () => {
    expect(rootfsLayers([{ type: 'overlay', source: 'overlay', options: ['index=off', 'workdir=/s/3/work', 'upperdir=/s/3/fs', 'lowerdir=/s/2/fs:/s/1/fs'] }])).toEqual(['/s/3/fs', '/s/2/fs', '/s/1/fs']);
    expect(rootfsLayers([{ type: 'bind', source: '/s/1/fs', options: ['rbind', 'ro'] }])).toEqual(['/s/1/fs']);
  });
});
