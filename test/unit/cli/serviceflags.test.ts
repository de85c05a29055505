import { describe, expect, it } from 'vitest';
import { api } from '../../../proto/services.js';
import {
  FlagError, buildServiceSpec, parseBytes, parseEnvFile, parseCpus, parseMount, parseScaleArgs, randomName, scaleSpec, shellWords, type CreateFlags,
} from '../../../cli/shoal/serviceflags.js';
import { validateServiceSpec } from '../../../manager/controlapi/servicespec.js';

const noEnv = () => undefined;
const build = (f: CreateFlags, args: string[] = [], env: (k: string) => string | undefined = noEnv) => buildServiceSpec('busybox:1', args, f, env);

describe('service create flags -> spec fields', () => {
  // [flags, path into the spec, expected value]
  const cases: [string, CreateFlags, (s: ReturnType<typeof build>) => unknown, unknown][] = [
    ['--name', { name: 'web' }, (s) => s.name, 'web'],
    ['--replicas', { replicas: '6' }, (s) => s.replicated, { replicas: 6 }],
    ['no --replicas: the server default', {}, (s) => s.replicated, {}],
    ['--mode global', { mode: 'global' }, (s) => [s.global, s.replicated], [{}, undefined]],
    ['--mode global-job', { mode: 'global-job' }, (s) => [s.globalJob, s.replicated], [{}, undefined]],
    ['--mode replicated-job --replicas: completions, as many at once', { mode: 'replicated-job', replicas: '6' }, (s) => s.replicatedJob, { maxConcurrent: 6, totalCompletions: 6 }],
    ['--mode replicated-job --max-concurrent', { mode: 'replicated-job', replicas: '6', maxConcurrent: '2' }, (s) => s.replicatedJob, { maxConcurrent: 2, totalCompletions: 6 }],
    ['--env', { env: ['A=1', 'B=x=y', 'C='] }, (s) => s.taskTemplate?.container?.env, ['A=1', 'B=x=y', 'C=']],
    ['--workdir', { workdir: '/srv' }, (s) => s.taskTemplate?.container?.dir, '/srv'],
    ['--user', { user: '1000:1000' }, (s) => s.taskTemplate?.container?.user, '1000:1000'],
    ['--hostname', { hostname: 'h1' }, (s) => s.taskTemplate?.container?.hostname, 'h1'],
    ['--label', { label: ['a=1', 'b'] }, (s) => s.labels, { a: '1', b: '' }],
    ['--container-label', { containerLabel: ['c=3'] }, (s) => s.taskTemplate?.container?.labels, { c: '3' }],
    ['--constraint', { constraint: ['node.labels.zone==eu', 'node.role!=manager'] }, (s) => s.taskTemplate?.placement?.constraints, ['node.labels.zone==eu', 'node.role!=manager']],
    ['--placement-pref', { placementPref: ['spread=node.labels.zone'] }, (s) => s.taskTemplate?.placement?.preferences, [{ spread: 'node.labels.zone' }]],
    ['--replicas-max-per-node', { replicasMaxPerNode: '2' }, (s) => s.taskTemplate?.placement?.maxReplicas, 2],
    ['--reserve-cpu', { reserveCpu: '0.5' }, (s) => s.taskTemplate?.resources?.reservations, { nanoCpus: 500_000_000 }],
    ['--reserve-memory', { reserveMemory: '256m' }, (s) => s.taskTemplate?.resources?.reservations, { memoryBytes: 256 * 2 ** 20 }],
    ['--limit-cpu', { limitCpu: '2' }, (s) => s.taskTemplate?.resources?.limits, { nanoCpus: 2e9 }],
    ['--limit-memory', { limitMemory: '1g' }, (s) => s.taskTemplate?.resources?.limits, { memoryBytes: 2 ** 30 }],
    ['--restart-condition none', { restartCondition: 'none' }, (s) => s.taskTemplate?.restartPolicy?.condition, api.RestartCondition.RESTART_NONE],
    ['--restart-condition on-failure', { restartCondition: 'on-failure' }, (s) => s.taskTemplate?.restartPolicy?.condition, api.RestartCondition.RESTART_ON_FAILURE],
    ['--restart-condition any', { restartCondition: 'any' }, (s) => s.taskTemplate?.restartPolicy?.condition, api.RestartCondition.RESTART_ANY],
    ['--restart-delay', { restartDelay: '1m30s' }, (s) => s.taskTemplate?.restartPolicy, { delayMs: 90_000 }],
    ['--restart-max-attempts', { restartMaxAttempts: '3' }, (s) => s.taskTemplate?.restartPolicy, { maxAttempts: 3 }],
    ['--restart-window', { restartWindow: '2m' }, (s) => s.taskTemplate?.restartPolicy, { windowMs: 120_000 }],
    ['--stop-signal', { stopSignal: 'SIGINT' }, (s) => s.taskTemplate?.container?.stopSignal, 'SIGINT'],
    ['--stop-grace-period', { stopGracePeriod: '30s' }, (s) => s.taskTemplate?.container?.stopGracePeriodMs, 30_000],
    ['--read-only', { readOnly: true }, (s) => s.taskTemplate?.container?.readOnly, true],
    ['--init', { init: true }, (s) => s.taskTemplate?.container?.init, true],
    ['--cap-add / --cap-drop', { capAdd: ['NET_ADMIN'], capDrop: ['CAP_CHOWN'] }, (s) => [s.taskTemplate?.container?.capAdd, s.taskTemplate?.container?.capDrop], [['NET_ADMIN'], ['CAP_CHOWN']]],
    ['--entrypoint, split as a shell would', { entrypoint: '/bin/sh -c "echo a b"' }, (s) => s.taskTemplate?.container?.command, ['/bin/sh', '-c', 'echo a b']],
    ['--mount', { mount: ['type=bind,source=/src,target=/dst,readonly'] }, (s) => s.taskTemplate?.container?.mounts,
      [{ type: api.MountType.MOUNT_TYPE_BIND, source: '/src', target: '/dst', readOnly: true }]],
    ['--update-parallelism', { updateParallelism: '2' }, (s) => s.updateConfig, { parallelism: 2 }],
    ['--update-delay', { updateDelay: '10s' }, (s) => s.updateConfig, { delayMs: 10_000 }],
    ['--update-failure-action', { updateFailureAction: 'rollback' }, (s) => s.updateConfig, { failureAction: api.UpdateFailureAction.FAILURE_ACTION_ROLLBACK }],
    ['--update-monitor', { updateMonitor: '500ms' }, (s) => s.updateConfig, { monitorMs: 500 }],
    ['--update-max-failure-ratio', { updateMaxFailureRatio: '0.25' }, (s) => s.updateConfig, { maxFailureRatio: 0.25 }],
    ['--update-order', { updateOrder: 'start-first' }, (s) => s.updateConfig, { order: api.UpdateOrder.UPDATE_ORDER_START_FIRST }],
  ];
  it.each(cases)('%s', (_name, flags, get, want) => {
    expect(get(build(flags))).toEqual(want);
  });

  it('puts COMMAND ARG... in args (the image\'s CMD) and the image in the container; leaves out what no flag set', () => {
    const s = build({}, ['sleep', '3600']);
    expect(s.taskTemplate).toEqual({ container: { image: 'busybox:1', args: ['sleep', '3600'] } });
    expect(s.updateConfig).toBeUndefined();
    expect(s.labels).toBeUndefined();
  });

  it('takes a bare --env KEY from this shell, and refuses it when unset', () => {
    expect(build({ env: ['HOME'] }, [], (k) => (k === 'HOME' ? '/root' : undefined)).taskTemplate?.container?.env).toEqual(['HOME=/root']);
    expect(() => build({ env: ['NOPE'] })).toThrow(/invalid --env "NOPE": use KEY=VALUE \(NOPE is not set in this shell/);
    expect(() => build({ env: ['=x'] })).toThrow(/invalid --env "=x": the variable name is empty/);
  });

  it.each([
    { why: 'KEY=VALUE per line, the value as written (quotes, spaces, more =)', text: 'A=1\nB="two words"\nC=x=y\nD= padded \n', want: ['A=1', 'B="two words"', 'C=x=y', 'D= padded '] },
    { why: 'blank lines, comments and leading whitespace skipped; CRLF read', text: '# a comment\r\n\r\n   E=5\r\n\t# indented comment\n', want: ['E=5'] },
    { why: 'a bare KEY takes its value from this shell', text: 'HOME\n', want: ['HOME=/root'] },
    { why: 'a bare KEY the shell has not is left out (docker\'s rule)', text: 'NOPE\nF=6\n', want: ['F=6'] },
    { why: 'an empty value is a value', text: 'G=\n', want: ['G='] },
  ])('--env-file: $why', ({ text, want }) => {
    expect(parseEnvFile(text, 'app.env', (k) => (k === 'HOME' ? '/root' : undefined))).toEqual(want);
  });

  it.each([
    { text: 'A=1\n=2\n', error: /invalid --env-file app.env, line 2: the variable name is empty; use KEY=VALUE/ },
    { text: 'MY VAR=1\n', error: /invalid --env-file app.env, line 1: variable name "MY VAR" contains whitespace/ },
  ])('--env-file refuses $text', ({ text, error }) => {
    expect(() => parseEnvFile(text, 'app.env', noEnv)).toThrow(FlagError);
    expect(() => parseEnvFile(text, 'app.env', noEnv)).toThrow(error);
  });

  it('--env-file entries come first, files in order, then --env: the last of a name wins in the container', () => {
    const s = build({ envFiles: [{ path: 'a.env', text: 'A=file-a\nB=file-a\n' }, { path: 'b.env', text: 'B=file-b\n' }], env: ['A=flag'] });
    expect(s.taskTemplate?.container?.env).toEqual(['A=file-a', 'B=file-a', 'B=file-b', 'A=flag']);
    expect(build({ envFiles: [{ path: 'e.env', text: '# nothing\n' }] }).taskTemplate?.container?.env).toBeUndefined();
  });

  it('gives specs the control API accepts, with its defaults filled in', () => {
    const spec = build({ name: 'web', replicas: '3', reserveMemory: '64m', limitMemory: '128m', restartCondition: 'on-failure', mount: ['type=tmpfs,dst=/tmp,tmpfs-size=16m'] }, ['sleep', '1']);
    const v = validateServiceSpec(spec);
    expect(v.replicated).toEqual({ replicas: 3 });
    expect(v.taskTemplate.resources.reservations.memoryBytes).toBe(64 * 2 ** 20);
    expect(v.taskTemplate.container.mounts[0]).toMatchObject({ type: api.MountType.MOUNT_TYPE_TMPFS, target: '/tmp', tmpfsOptions: { sizeBytes: 16 * 2 ** 20 } });
    expect(v.taskTemplate.restartPolicy.delayMs).toBe(5000);
  });
});

describe('service create flag errors name the flag and the accepted form', () => {
  const cases: [CreateFlags, RegExp][] = [
    [{ mode: 'daemon' }, /invalid --mode "daemon": use one of replicated, global, replicated-job, global-job/],
    [{ replicas: 'three' }, /invalid --replicas "three": use a whole number, 0 or more/],
    [{ replicas: '-1' }, /invalid --replicas "-1"/],
    [{ replicas: '2', mode: 'global' }, /--replicas can only be used with replicated or replicated-job mode/],
    [{ maxConcurrent: '2' }, /--max-concurrent can only be used with replicated-job mode/],
    [{ replicasMaxPerNode: '1', mode: 'global' }, /--replicas-max-per-node can only be used with replicated mode/],
    [{ reserveCpu: 'half' }, /invalid --reserve-cpu "half": use a number of CPUs, e\.g\. 0\.5 or 2/],
    [{ limitCpu: '0.0000000001' }, /invalid --limit-cpu "0\.0000000001": at most 9 decimal places/],
    [{ limitMemory: '1x' }, /invalid --limit-memory "1x": use a number of bytes with an optional unit b, k, m or g/],
    [{ restartCondition: 'always' }, /invalid --restart-condition "always": use one of none, on-failure, any/],
    [{ restartDelay: '5' }, /invalid duration "5" for --restart-delay: use a number with a unit/],
    [{ restartWindow: '1d' }, /invalid duration "1d" for --restart-window/],
    [{ stopGracePeriod: 'soon' }, /invalid duration "soon" for --stop-grace-period/],
    [{ restartMaxAttempts: '1.5' }, /invalid --restart-max-attempts "1\.5": use a whole number/],
    [{ updateFailureAction: 'explode' }, /invalid --update-failure-action "explode": use one of pause, continue, rollback/],
    [{ updateOrder: 'random' }, /invalid --update-order "random": use one of stop-first, start-first/],
    [{ updateMaxFailureRatio: 'lots' }, /invalid --update-max-failure-ratio "lots": use a number from 0 to 1/],
    [{ updateMonitor: '5 s' }, /invalid duration "5 s" for --update-monitor/],
    [{ placementPref: ['binpack=node.labels.zone'] }, /invalid --placement-pref "binpack=node.labels.zone": use spread=<node attribute>/],
    [{ placementPref: ['spread='] }, /invalid --placement-pref "spread="/],
    [{ label: ['=v'] }, /invalid --label "=v": the key is empty/],
    [{ containerLabel: ['=v'] }, /invalid --container-label "=v": the key is empty/],
    [{ entrypoint: 'sh -c "oops' }, /invalid --entrypoint .*quote is not closed/],
  ];
  it.each(cases)('%o', (flags, msg) => {
    let err: unknown;
    try {
      build(flags);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FlagError);
    expect((err as Error).message).toMatch(msg);
  });
});

describe('--mount, docker\'s syntax', () => {
  const B = api.MountType.MOUNT_TYPE_BIND;
  const V = api.MountType.MOUNT_TYPE_VOLUME;
  const T = api.MountType.MOUNT_TYPE_TMPFS;
  it.each([
    ['type=bind,source=/src,target=/dst', { type: B, source: '/src', target: '/dst' }],
    ['type=bind,src=/a,dst=/b,ro', { type: B, source: '/a', target: '/b', readOnly: true }],
    ['type=bind,src=/a,destination=/b,readonly=false', { type: B, source: '/a', target: '/b', readOnly: false }],
    ['type=bind,src=/a,dst=/b,ro=1', { type: B, source: '/a', target: '/b', readOnly: true }],
    ['source=data,target=/data', { type: V, source: 'data', target: '/data' }],
    ['TYPE=volume,src=data,dst=/data,volume-nocopy', { type: V, source: 'data', target: '/data', volumeOptions: { noCopy: true } }],
    ['type=volume,src=d,dst=/d,volume-label=a=b,volume-label=c', { type: V, source: 'd', target: '/d', volumeOptions: { labels: { a: 'b', c: '' } } }],
    ['type=tmpfs,dst=/tmp,tmpfs-size=64m,tmpfs-mode=1770', { type: T, target: '/tmp', tmpfsOptions: { sizeBytes: 64 * 2 ** 20, mode: 0o1770 } }],
    ['"type=bind","src=/a,b",dst=/c', { type: B, source: '/a,b', target: '/c' }],
  ])('%s', (s, want) => {
    expect(parseMount(s)).toEqual(want);
  });

  it.each([
    ['type=nfs,dst=/a', /invalid --mount type "nfs": use one of volume, bind, tmpfs/],
    ['type=bind,src=/a,dst=/b,size=1', /unknown key "size" in --mount .*\(accepted: type, source \(src\), target/],
    ['type=bind,src=/a,dst=/b,bind-propagation=rshared', /--mount option "bind-propagation" is not supported by shoal/],
    ['type=volume,src=d,dst=/d,volume-driver=nfs', /--mount option "volume-driver" is not supported by shoal/],
    ['type=bind,/a,dst=/b', /invalid field "\/a" in --mount .*must be a key=value pair/],
    ['type=bind,src=/a,,dst=/b', /empty field; use comma-separated key=value fields/],
    ['type=bind,src=/a,dst=/b,readonly=yes', /invalid --mount readonly "yes": use true or false/],
    ['type=tmpfs,dst=/t,tmpfs-size=big', /invalid --mount tmpfs-size "big": use a number of bytes/],
    ['type=tmpfs,dst=/t,tmpfs-mode=999', /invalid --mount tmpfs-mode "999": use octal permission bits/],
    ['type=volume,src=d,dst=/d,volume-label==x', /invalid --mount volume-label "=x": use volume-label=key=value/],
    ['"type=bind,src=/a', /a " quote is not closed/],
  ])('%s is refused', (s, msg) => {
    expect(() => parseMount(s)).toThrow(msg);
  });
});

describe('units', () => {
  it.each([
    ['100', 100], ['100b', 100], ['1k', 1024], ['1K', 1024], ['512m', 512 * 2 ** 20], ['512MB', 512 * 2 ** 20], ['64MiB', 64 * 2 ** 20],
    ['1.5g', 1.5 * 2 ** 30], ['2G', 2 * 2 ** 30], ['1t', 2 ** 40], ['10 m', 10 * 2 ** 20],
  ])('memory %s = %i bytes', (s, bytes) => {
    expect(parseBytes(s, '--limit-memory')).toBe(bytes);
  });

  it.each(['', 'm', '1x', '-1m', '1.m', '1im', '1mm', 'lots'])('memory "%s" is refused', (s) => {
    expect(() => parseBytes(s, '--limit-memory')).toThrow(/invalid --limit-memory/);
  });

  it.each([
    ['1', 1e9], ['0.5', 5e8], ['.25', 2.5e8], ['1.000000001', 1_000_000_001], ['0.1', 1e8], ['12', 12e9], ['3.', 3e9],
  ])('cpu %s = %i nano-CPUs, exactly', (s, nano) => {
    expect(parseCpus(s, '--limit-cpu')).toBe(nano);
  });

  it.each(['', '.', 'one', '-1', '1e3', '1,5'])('cpu "%s" is refused', (s) => {
    expect(() => parseCpus(s, '--reserve-cpu')).toThrow(/invalid --reserve-cpu/);
  });

  it('splits words like a shell: quotes, escapes, runs of spaces', () => {
    expect(shellWords(`  a  'b c' "d \\"e\\"" f\\ g ''`, '--entrypoint')).toEqual(['a', 'b c', 'd "e"', 'f g', '']);
  });
});

describe('service scale', () => {
  it('parses SERVICE=REPLICAS arguments', () => {
    expect(parseScaleArgs(['web=5', 'api=0', 'job=12'])).toEqual([
      { service: 'web', replicas: 5 }, { service: 'api', replicas: 0 }, { service: 'job', replicas: 12 },
    ]);
  });

  it.each([
    [['web'], /invalid scale specifier "web": use SERVICE=REPLICAS, e\.g\. web=5/],
    [['=5'], /invalid scale specifier "=5"/],
    [['web=five'], /invalid replicas value "five" in "web=five": use a whole number, 0 or more/],
    [['web=-1'], /invalid replicas value "-1"/],
    [['web=1.5'], /invalid replicas value "1\.5"/],
    [['web='], /invalid replicas value ""/],
    [['web=a=1'], /invalid replicas value "a=1"/],
    [[], /needs at least one SERVICE=REPLICAS/],
  ])('%o is refused', (args, msg) => {
    expect(() => parseScaleArgs(args)).toThrow(msg);
  });

  it('sets the replicas of a replicated service and keeps the rest of the spec', () => {
    const spec = { name: 'web', labels: { a: '1' }, replicated: { replicas: 2 }, taskTemplate: { container: { image: 'busybox' } } };
    const out = scaleSpec(spec, 7);
    expect(out).toEqual({ ...spec, replicated: { replicas: 7 } });
    expect(spec.replicated.replicas).toBe(2); // not changed in place
  });

  it('sets the total completions of a replicated job', () => {
    expect(scaleSpec({ name: 'j', replicatedJob: { maxConcurrent: 2, totalCompletions: 4 } }, 9).replicatedJob).toEqual({ maxConcurrent: 2, totalCompletions: 9 });
  });

  it.each([[{ name: 'g', global: {} }], [{ name: 'gj', globalJob: {} }]])('refuses %o with docker\'s words', (spec) => {
    expect(() => scaleSpec(spec, 3)).toThrow(/^scale can only be used with replicated or replicated-job mode$/);
  });
});

describe('generated names', () => {
  it('are docker-style adjective_name and valid service names', () => {
    let x = 0;
    const seq = () => ((x = (x * 7 + 3) % 97) / 97);
    for (let i = 0; i < 50; i++) {
      const name = randomName(seq);
      expect(name).toMatch(/^[a-z]+_[a-z]+$/);
      expect(validateServiceSpec({ name, taskTemplate: { container: { image: 'busybox' } } }).name).toBe(name);
    }
  });
});
