// Service spec validation at the API edge: valid specs and their normalized form, invalid specs
// with the field path and the rule each is refused for, and a protobuf round trip.
import { describe, expect, it } from 'vitest';
import type { shoal } from '../../../proto/gen/api.js';
import { api, plain } from '../../../proto/services.js';
import { encodeRegistryAuth } from '../../../proto/registryauth.js';
import { SpecError, serviceMode, validateServiceSpec, type ServiceMode, type ServiceSpec } from '../../../manager/controlapi/servicespec.js';

type In = shoal.api.IServiceSpec;
type Container = shoal.api.IContainerSpec;
type Template = shoal.api.ITaskSpec;

const SHA = 'a'.repeat(64);

function base(): In {
  return { name: 'web', taskTemplate: { container: { image: 'busybox' } } };
}
/** The base spec with a change made to it. */
function spec(change: (s: In, t: Template, c: Container) => void): In {
  const s = base();
  change(s, s.taskTemplate!, s.taskTemplate!.container!);
  return s;
}

const defaultUpdate = {
  parallelism: 1,
  delayMs: 0,
  failureAction: api.UpdateFailureAction.FAILURE_ACTION_PAUSE,
  monitorMs: 5000,
  maxFailureRatio: 0,
  order: api.UpdateOrder.UPDATE_ORDER_STOP_FIRST,
};

const minimalNormalized: ServiceSpec = {
  name: 'web',
  labels: {},
  replicated: { replicas: 1 },
  taskTemplate: {
    container: {
      image: 'busybox',
      command: [],
      args: [],
      env: [],
      dir: '',
      user: '',
      hostname: '',
      mounts: [],
      labels: {},
      stopSignal: '',
      stopGracePeriodMs: 10_000,
      readOnly: false,
      init: false,
      capAdd: [],
      capDrop: [],
    },
    resources: { limits: { nanoCpus: 0, memoryBytes: 0 }, reservations: { nanoCpus: 0, memoryBytes: 0 } },
    restartPolicy: { condition: api.RestartCondition.RESTART_ANY, delayMs: 5000, maxAttempts: 0, windowMs: 0 },
    placement: { constraints: [], preferences: [], maxReplicas: 0, platforms: [] },
    networks: [],
    forceUpdate: 0,
  },
  updateConfig: defaultUpdate,
  rollbackConfig: defaultUpdate,
  networks: [],
  endpointSpec: { ports: [] },
};

describe('validateServiceSpec fills defaults', () => {
  it('a minimal spec becomes a complete one', () => {
    expect(validateServiceSpec(base())).toEqual(minimalNormalized);
  });

  it('does not modify its input', () => {
    const input = base();
    const copy = structuredClone(input);
    validateServiceSpec(input);
    expect(input).toEqual(copy);
  });
});

const valid: [string, In, ServiceMode, object][] = [
  ['replicas 0 is kept, not defaulted', spec((s) => (s.replicated = { replicas: 0 })), 'replicated', { replicated: { replicas: 0 } }],
  ['replicas 6', spec((s) => (s.replicated = { replicas: 6 })), 'replicated', { replicated: { replicas: 6 } }],
  ['global', spec((s) => (s.global = {})), 'global', { global: {} }],
  ['global job', spec((s) => (s.globalJob = {})), 'global-job', { globalJob: {} }],
  ['replicated job: total defaults to max_concurrent', spec((s) => (s.replicatedJob = { maxConcurrent: 3 })), 'replicated-job', { replicatedJob: { maxConcurrent: 3, totalCompletions: 3 } }],
  ['replicated job: defaults', spec((s) => (s.replicatedJob = {})), 'replicated-job', { replicatedJob: { maxConcurrent: 1, totalCompletions: 1 } }],
  ['replicated job: both set', spec((s) => (s.replicatedJob = { maxConcurrent: 2, totalCompletions: 10 })), 'replicated-job', { replicatedJob: { maxConcurrent: 2, totalCompletions: 10 } }],
  ['image with registry, port, path, tag and digest', spec((_s, _t, c) => (c.image = `registry.local:5000/team/app-x:1.2.3@sha256:${SHA}`)), 'replicated', { taskTemplate: { container: { image: `registry.local:5000/team/app-x:1.2.3@sha256:${SHA}` } } }],
  ['image localhost/name', spec((_s, _t, c) => (c.image = 'localhost/busybox:latest')), 'replicated', { taskTemplate: { container: { image: 'localhost/busybox:latest' } } }],
  ['stop signal TERM -> SIGTERM', spec((_s, _t, c) => (c.stopSignal = 'term')), 'replicated', { taskTemplate: { container: { stopSignal: 'SIGTERM' } } }],
  ['stop signal number', spec((_s, _t, c) => (c.stopSignal = '09')), 'replicated', { taskTemplate: { container: { stopSignal: '9' } } }],
  ['stop signal SIGUSR1 kept', spec((_s, _t, c) => (c.stopSignal = 'SIGUSR1')), 'replicated', { taskTemplate: { container: { stopSignal: 'SIGUSR1' } } }],
  ['capabilities get CAP_ and upper case, duplicates dropped', spec((_s, _t, c) => ((c.capAdd = ['net_admin', 'CAP_NET_ADMIN', 'sys_time']), (c.capDrop = ['all']))), 'replicated', { taskTemplate: { container: { capAdd: ['CAP_NET_ADMIN', 'CAP_SYS_TIME'], capDrop: ['ALL'] } } }],
  ['stop grace 0 is kept', spec((_s, _t, c) => (c.stopGracePeriodMs = 0)), 'replicated', { taskTemplate: { container: { stopGracePeriodMs: 0 } } }],
  ['env with = in the value and empty value', spec((_s, _t, c) => (c.env = ['A=b=c', 'EMPTY=', '_x.y-z=1'])), 'replicated', { taskTemplate: { container: { env: ['A=b=c', 'EMPTY=', '_x.y-z=1'] } } }],
  [
    'mounts of each type; targets cleaned',
    spec((_s, _t, c) => (c.mounts = [
      { type: api.MountType.MOUNT_TYPE_BIND, source: '/srv/data', target: '/data/', readOnly: true },
      { target: '/cache', source: 'cache-vol', volumeOptions: { noCopy: true } },
      { type: api.MountType.MOUNT_TYPE_TMPFS, target: '/tmp', tmpfsOptions: { sizeBytes: 1 << 20, mode: 0o1777 } },
    ])),
    'replicated',
    {
      taskTemplate: {
        container: {
          mounts: [
            { type: api.MountType.MOUNT_TYPE_BIND, source: '/srv/data', target: '/data', readOnly: true },
            { type: api.MountType.MOUNT_TYPE_VOLUME, source: 'cache-vol', target: '/cache', readOnly: false, volumeOptions: { noCopy: true, labels: {} } },
            { type: api.MountType.MOUNT_TYPE_TMPFS, source: '', target: '/tmp', readOnly: false, tmpfsOptions: { sizeBytes: 1 << 20, mode: 0o1777 } },
          ],
        },
      },
    },
  ],
  ['reservation equal to limit', spec((_s, t) => (t.resources = { limits: { nanoCpus: 1e9, memoryBytes: 64 << 20 }, reservations: { nanoCpus: 1e9, memoryBytes: 64 << 20 } })), 'replicated', { taskTemplate: { resources: { limits: { nanoCpus: 1e9, memoryBytes: 64 << 20 }, reservations: { nanoCpus: 1e9, memoryBytes: 64 << 20 } } } }],
  ['reservation without a limit', spec((_s, t) => (t.resources = { reservations: { memoryBytes: 1 << 30 } })), 'replicated', { taskTemplate: { resources: { limits: { nanoCpus: 0, memoryBytes: 0 }, reservations: { nanoCpus: 0, memoryBytes: 1 << 30 } } } }],
  ['restart policy on-failure, delay 0 kept', spec((_s, t) => (t.restartPolicy = { condition: api.RestartCondition.RESTART_ON_FAILURE, delayMs: 0, maxAttempts: 3, windowMs: 60_000 })), 'replicated', { taskTemplate: { restartPolicy: { condition: api.RestartCondition.RESTART_ON_FAILURE, delayMs: 0, maxAttempts: 3, windowMs: 60_000 } } }],
  ['restart condition none', spec((_s, t) => (t.restartPolicy = { condition: api.RestartCondition.RESTART_NONE })), 'replicated', { taskTemplate: { restartPolicy: { condition: api.RestartCondition.RESTART_NONE, delayMs: 5000 } } }],
  [
    'placement trimmed and lower-cased platforms',
    spec((_s, t) => (t.placement = { constraints: [' node.labels.zone == eu '], preferences: [{ spread: ' node.labels.rack ' }], maxReplicas: 2, platforms: [{ os: 'Linux', architecture: 'amd64' }] })),
    'replicated',
    { taskTemplate: { placement: { constraints: ['node.labels.zone == eu'], preferences: [{ spread: 'node.labels.rack' }], maxReplicas: 2, platforms: [{ os: 'linux', architecture: 'amd64' }] } } },
  ],
  [
    'update and rollback config',
    spec((s) => ((s.updateConfig = { parallelism: 0, delayMs: 1000, failureAction: api.UpdateFailureAction.FAILURE_ACTION_ROLLBACK, maxFailureRatio: 0.25, order: api.UpdateOrder.UPDATE_ORDER_START_FIRST, monitorMs: 0 }), (s.rollbackConfig = { failureAction: api.UpdateFailureAction.FAILURE_ACTION_CONTINUE, maxFailureRatio: 1 }))),
    'replicated',
    {
      updateConfig: { parallelism: 0, delayMs: 1000, failureAction: api.UpdateFailureAction.FAILURE_ACTION_ROLLBACK, monitorMs: 0, maxFailureRatio: 0.25, order: api.UpdateOrder.UPDATE_ORDER_START_FIRST },
      rollbackConfig: { ...defaultUpdate, failureAction: api.UpdateFailureAction.FAILURE_ACTION_CONTINUE, maxFailureRatio: 1 },
    },
  ],
  [
    'ports: same number on tcp and udp, unpublished duplicates',
    spec((s) => (s.endpointSpec = { ports: [{ targetPort: 53, publishedPort: 53 }, { protocol: api.PortProtocol.PROTOCOL_UDP, targetPort: 53, publishedPort: 53 }, { targetPort: 80 }, { targetPort: 81, publishMode: api.PublishMode.PUBLISH_MODE_HOST }] })),
    'replicated',
    {
      endpointSpec: {
        ports: [
          { protocol: api.PortProtocol.PROTOCOL_TCP, targetPort: 53, publishedPort: 53, publishMode: api.PublishMode.PUBLISH_MODE_INGRESS },
          { protocol: api.PortProtocol.PROTOCOL_UDP, targetPort: 53, publishedPort: 53, publishMode: api.PublishMode.PUBLISH_MODE_INGRESS },
          { protocol: api.PortProtocol.PROTOCOL_TCP, targetPort: 80, publishedPort: 0, publishMode: api.PublishMode.PUBLISH_MODE_INGRESS },
          { protocol: api.PortProtocol.PROTOCOL_TCP, targetPort: 81, publishedPort: 0, publishMode: api.PublishMode.PUBLISH_MODE_HOST },
        ],
      },
    },
  ],
  ['63-character name', spec((s) => (s.name = 'a'.repeat(63))), 'replicated', { name: 'a'.repeat(63) }],
  ['labels and container labels', spec((s, _t, c) => ((s.labels = { 'com.example/team': 'a' }), (c.labels = { tier: 'front' }))), 'replicated', { labels: { 'com.example/team': 'a' }, taskTemplate: { container: { labels: { tier: 'front' } } } }],
  ['registry credentials kept', spec((_s, _t, c) => (c.pullOptions = { registryAuth: encodeRegistryAuth({ username: 'u', password: 'p' }) })), 'replicated', { taskTemplate: { container: { pullOptions: { registryAuth: encodeRegistryAuth({ username: 'u', password: 'p' }) } } } }],
  ['empty registry credentials: none', spec((_s, _t, c) => (c.pullOptions = { registryAuth: '' })), 'replicated', { taskTemplate: { container: { capDrop: [] } } }],
  ['user, dir, hostname', spec((_s, _t, c) => ((c.user = 'www-data:www-data'), (c.dir = '/srv'), (c.hostname = 'web-1.local'))), 'replicated', { taskTemplate: { container: { user: 'www-data:www-data', dir: '/srv', hostname: 'web-1.local' } } }],
];

describe('validateServiceSpec accepts and normalizes', () => {
  it.each(valid)('%s', (_name, input, mode, expected) => {
    const out = validateServiceSpec(input);
    expect(serviceMode(out)).toBe(mode);
    expect(['replicated', 'global', 'replicatedJob', 'globalJob'].filter((k) => k in out)).toHaveLength(1);
    expect(out).toMatchObject(expected);
    // Normalizing is idempotent.
    expect(validateServiceSpec(out)).toEqual(out);
  });
});

const invalid: [string, In | null, string, string][] = [
  ['no spec', null, 'spec', 'required'],
  ['no name', spec((s) => (s.name = '')), 'name', 'name is required'],
  ['name with a space', spec((s) => (s.name = 'my web')), 'name', '[a-zA-Z0-9][a-zA-Z0-9_.-]*'],
  ['name starting with -', spec((s) => (s.name = '-web')), 'name', 'starting with a letter or digit'],
  ['name of 64 characters', spec((s) => (s.name = 'a'.repeat(64))), 'name', 'at most 63 characters'],
  ['bad label key', spec((s) => (s.labels = { 'bad key': 'x' })), 'labels', 'label key "bad key" is not valid'],
  ['two modes', spec((s) => ((s.replicated = { replicas: 2 }), (s.global = {}))), 'mode', 'only one of replicated, global'],
  ['replicas on a global service', spec((s) => (s.global = { replicas: 3 } as shoal.api.IGlobalService)), 'global.replicas', 'only for replicated mode'],
  ['negative replicas', spec((s) => (s.replicated = { replicas: -1 })), 'replicated.replicas', 'must not be negative'],
  ['fractional replicas', spec((s) => (s.replicated = { replicas: 1.5 })), 'replicated.replicas', 'whole number'],
  ['job max_concurrent 0', spec((s) => (s.replicatedJob = { maxConcurrent: 0 })), 'replicated_job.max_concurrent', 'at least 1'],
  ['no task template', { name: 'web' }, 'task_template', 'task template is required'],
  ['no container', { name: 'web', taskTemplate: {} }, 'task_template.container', 'container spec is required'],
  ['no image', spec((_s, _t, c) => (c.image = '')), 'task_template.container.image', 'image is required'],
  ['upper-case repository', spec((_s, _t, c) => (c.image = 'library/BusyBox')), 'task_template.container.image', 'must be lowercase'],
  ['bad tag', spec((_s, _t, c) => (c.image = 'busybox:-1')), 'task_template.container.image', 'the tag "-1"'],
  ['short sha256 digest', spec((_s, _t, c) => (c.image = 'busybox@sha256:abcd')), 'task_template.container.image', 'digest'],
  ['image with a space', spec((_s, _t, c) => (c.image = 'busy box')), 'task_template.container.image', 'white space'],
  ['image with //', spec((_s, _t, c) => (c.image = 'a//b')), 'task_template.container.image', 'empty'],
  ['env without =', spec((_s, _t, c) => (c.env = ['A=1', 'NOVALUE'])), 'task_template.container.env[1]', 'must be KEY=VALUE'],
  ['env key starting with a digit', spec((_s, _t, c) => (c.env = ['1A=x'])), 'task_template.container.env[0]', 'not a valid variable name'],
  ['env with empty key', spec((_s, _t, c) => (c.env = ['=x'])), 'task_template.container.env[0]', 'not a valid variable name'],
  ['relative dir', spec((_s, _t, c) => (c.dir = 'srv')), 'task_template.container.dir', 'absolute path'],
  ['bad user', spec((_s, _t, c) => (c.user = 'a:b:c')), 'task_template.container.user', 'uid, uid:gid'],
  ['bad hostname', spec((_s, _t, c) => (c.hostname = 'web_1')), 'task_template.container.hostname', 'not a valid host name'],
  ['empty command', spec((_s, _t, c) => (c.command = [''])), 'task_template.container.command[0]', 'must not be empty'],
  ['relative mount target', spec((_s, _t, c) => (c.mounts = [{ target: 'data' }])), 'task_template.container.mounts[0].target', 'absolute path'],
  ['mount on /', spec((_s, _t, c) => (c.mounts = [{ target: '//' }])), 'task_template.container.mounts[0].target', 'must not be /'],
  ['missing mount target', spec((_s, _t, c) => (c.mounts = [{ source: 'v1' }])), 'task_template.container.mounts[0].target', 'target is required'],
  ['duplicate mount targets', spec((_s, _t, c) => (c.mounts = [{ target: '/data' }, { type: api.MountType.MOUNT_TYPE_TMPFS, target: '/data/' }])), 'task_template.container.mounts[1].target', 'already the target of task_template.container.mounts[0]'],
  ['relative bind source', spec((_s, _t, c) => (c.mounts = [{ type: api.MountType.MOUNT_TYPE_BIND, source: 'srv', target: '/data' }])), 'task_template.container.mounts[0].source', 'absolute path'],
  ['bind without source', spec((_s, _t, c) => (c.mounts = [{ type: api.MountType.MOUNT_TYPE_BIND, target: '/data' }])), 'task_template.container.mounts[0].source', 'needs a source'],
  ['tmpfs options on a bind mount', spec((_s, _t, c) => (c.mounts = [{ type: api.MountType.MOUNT_TYPE_BIND, source: '/srv', target: '/data', tmpfsOptions: { sizeBytes: 1 } }])), 'task_template.container.mounts[0].tmpfs_options', 'only for mounts of type tmpfs'],
  ['tmpfs with a source', spec((_s, _t, c) => (c.mounts = [{ type: api.MountType.MOUNT_TYPE_TMPFS, source: 'x', target: '/t' }])), 'task_template.container.mounts[0].source', 'takes no source'],
  ['negative tmpfs size', spec((_s, _t, c) => (c.mounts = [{ type: api.MountType.MOUNT_TYPE_TMPFS, target: '/t', tmpfsOptions: { sizeBytes: -1 } }])), 'task_template.container.mounts[0].tmpfs_options.size_bytes', 'must not be negative'],
  ['tmpfs mode too big', spec((_s, _t, c) => (c.mounts = [{ type: api.MountType.MOUNT_TYPE_TMPFS, target: '/t', tmpfsOptions: { mode: 0o17777 } }])), 'task_template.container.mounts[0].tmpfs_options.mode', 'at most 4095'],
  ['unknown mount type', spec((_s, _t, c) => (c.mounts = [{ type: 7 as shoal.api.MountType, target: '/t' }])), 'task_template.container.mounts[0].type', 'one of volume, bind, tmpfs'],
  ['bad volume name', spec((_s, _t, c) => (c.mounts = [{ source: 'a', target: '/t' }])), 'task_template.container.mounts[0].source', 'not a valid volume name'],
  ['reserved container label', spec((_s, _t, c) => (c.labels = { 'shoal.runtime.task': 'x' })), 'task_template.container.labels', 'reserved'],
  ['unknown stop signal', spec((_s, _t, c) => (c.stopSignal = 'SIGFOO')), 'task_template.container.stop_signal', 'not a known signal'],
  ['stop signal 65', spec((_s, _t, c) => (c.stopSignal = '65')), 'task_template.container.stop_signal', 'out of range'],
  ['negative stop grace', spec((_s, _t, c) => (c.stopGracePeriodMs = -5)), 'task_template.container.stop_grace_period_ms', 'must not be negative'],
  ['unknown capability', spec((_s, _t, c) => (c.capAdd = ['NET_ADMIN', 'CAP_FLY'])), 'task_template.container.cap_add[1]', 'not a known Linux capability'],
  ['capability added and dropped', spec((_s, _t, c) => ((c.capAdd = ['net_raw']), (c.capDrop = ['CAP_NET_RAW']))), 'task_template.container.cap_drop', 'CAP_NET_RAW is both in cap_add and cap_drop'],
  ['registry credentials not base64', spec((_s, _t, c) => (c.pullOptions = { registryAuth: 'user:pass' })), 'task_template.container.pull_options.registry_auth', 'not base64'],
  ['registry credentials without a password', spec((_s, _t, c) => (c.pullOptions = { registryAuth: Buffer.from('{"username":"u"}').toString('base64url') })), 'task_template.container.pull_options.registry_auth', 'it has no password'],
  ['negative memory limit', spec((_s, t) => (t.resources = { limits: { memoryBytes: -1 } })), 'task_template.resources.limits.memory_bytes', 'must not be negative'],
  ['tiny memory limit', spec((_s, t) => (t.resources = { limits: { memoryBytes: 1024 } })), 'task_template.resources.limits.memory_bytes', 'at least 6 MiB'],
  ['negative cpu reservation', spec((_s, t) => (t.resources = { reservations: { nanoCpus: -1 } })), 'task_template.resources.reservations.nano_cpus', 'must not be negative'],
  ['memory reservation above limit', spec((_s, t) => (t.resources = { limits: { memoryBytes: 64 << 20 }, reservations: { memoryBytes: 128 << 20 } })), 'task_template.resources.reservations.memory_bytes', 'must not exceed the limit'],
  ['cpu reservation above limit', spec((_s, t) => (t.resources = { limits: { nanoCpus: 5e8 }, reservations: { nanoCpus: 1e9 } })), 'task_template.resources.reservations.nano_cpus', 'must not exceed the limit'],
  ['unknown restart condition', spec((_s, t) => (t.restartPolicy = { condition: 9 as shoal.api.RestartCondition })), 'task_template.restart_policy.condition', 'one of none, on-failure, any'],
  ['negative restart delay', spec((_s, t) => (t.restartPolicy = { delayMs: -1 })), 'task_template.restart_policy.delay_ms', 'must not be negative'],
  ['negative max attempts', spec((_s, t) => (t.restartPolicy = { maxAttempts: -2 })), 'task_template.restart_policy.max_attempts', 'must not be negative'],
  ['constraint without operator', spec((_s, t) => (t.placement = { constraints: ['node.role=manager'] })), 'task_template.placement.constraints[0]', 'the operator must be == or !='],
  ['constraint on an unknown key', spec((_s, t) => (t.placement = { constraints: ['node.id==x', 'node.zone==eu'] })), 'task_template.placement.constraints[1]', 'unknown key "node.zone"'],
  ['constraint with a bad role', spec((_s, t) => (t.placement = { constraints: ['node.role==boss'] })), 'task_template.placement.constraints[0]', 'node.role can only be manager or worker'],
  ['preference given as a constraint', spec((_s, t) => (t.placement = { preferences: [{ spread: 'node.labels.zone==eu' }] })), 'task_template.placement.preferences[0].spread', 'not a constraint'],
  ['empty preference', spec((_s, t) => (t.placement = { preferences: [{ spread: '' }] })), 'task_template.placement.preferences[0].spread', 'missing'],
  ['negative max replicas', spec((_s, t) => (t.placement = { maxReplicas: -1 })), 'task_template.placement.max_replicas', 'must not be negative'],
  ['empty platform', spec((_s, t) => (t.placement = { platforms: [{}] })), 'task_template.placement.platforms[0]', 'needs an os'],
  ['duplicate network', spec((_s, t) => (t.networks = ['front', 'front'])), 'task_template.networks[1]', 'listed twice'],
  ['negative parallelism', spec((s) => (s.updateConfig = { parallelism: -1 })), 'update_config.parallelism', 'must not be negative'],
  ['failure ratio above 1', spec((s) => (s.updateConfig = { maxFailureRatio: 1.5 })), 'update_config.max_failure_ratio', 'from 0 to 1'],
  ['negative failure ratio', spec((s) => (s.rollbackConfig = { maxFailureRatio: -0.1 })), 'rollback_config.max_failure_ratio', 'from 0 to 1'],
  ['unknown failure action', spec((s) => (s.updateConfig = { failureAction: 8 as shoal.api.UpdateFailureAction })), 'update_config.failure_action', 'one of pause, continue, rollback'],
  ['rollback of a rollback', spec((s) => (s.rollbackConfig = { failureAction: api.UpdateFailureAction.FAILURE_ACTION_ROLLBACK })), 'rollback_config.failure_action', 'cannot itself roll back'],
  ['unknown update order', spec((s) => (s.updateConfig = { order: 5 as shoal.api.UpdateOrder })), 'update_config.order', 'one of stop-first, start-first'],
  ['negative monitor', spec((s) => (s.updateConfig = { monitorMs: -1 })), 'update_config.monitor_ms', 'must not be negative'],
  ['target port 0', spec((s) => (s.endpointSpec = { ports: [{ targetPort: 0 }] })), 'endpoint_spec.ports[0].target_port', 'from 1 to 65535'],
  ['target port 70000', spec((s) => (s.endpointSpec = { ports: [{ targetPort: 70000 }] })), 'endpoint_spec.ports[0].target_port', 'at most 65535'],
  ['published port 65536', spec((s) => (s.endpointSpec = { ports: [{ targetPort: 80, publishedPort: 65536 }] })), 'endpoint_spec.ports[0].published_port', 'at most 65535'],
  ['unknown protocol', spec((s) => (s.endpointSpec = { ports: [{ targetPort: 80, protocol: 3 as shoal.api.PortProtocol }] })), 'endpoint_spec.ports[0].protocol', 'one of tcp, udp, sctp'],
  ['duplicate published port', spec((s) => (s.endpointSpec = { ports: [{ targetPort: 80, publishedPort: 8080 }, { targetPort: 81, publishedPort: 8080 }] })), 'endpoint_spec.ports[1].published_port', '8080/tcp is already published by endpoint_spec.ports[0]'],
];

describe('validateServiceSpec refuses, naming the field and the rule', () => {
  it('has a row per rule', () => {
    expect(invalid.length).toBeGreaterThanOrEqual(30);
  });

  it.each(invalid)('%s', (_name, input, field, fragment) => {
    let err: unknown;
    try {
      validateServiceSpec(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpecError);
    const e = err as SpecError;
    expect(e.field).toBe(field);
    expect(e.message).toContain(fragment);
    expect(e.message).toContain(field);
  });
});

describe('normalized specs survive the wire', () => {
  it.each(valid)('%s', (_name, input) => {
    const out = validateServiceSpec(input);
    const decoded = api.ServiceSpec.decode(api.ServiceSpec.encode(out).finish());
    const again = validateServiceSpec(plain(decoded));
    expect(again).toEqual(out);
  });

  it('a decoded spec with nothing optional set gets the defaults', () => {
    const decoded = api.ServiceSpec.decode(api.ServiceSpec.encode({ name: 'web', replicated: {}, taskTemplate: { container: { image: 'busybox' } } }).finish());
    expect(validateServiceSpec(decoded)).toEqual(minimalNormalized);
  });
});
