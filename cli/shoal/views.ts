// Services and tasks as the CLI shows them: docker's JSON (inspect, --format json), the rows of
// `service ls` / `service ps` / `node ps`, and `inspect --pretty`. Pure: the caller fetches.
import type { shoal } from '../../proto/gen/api.js';
import { api } from '../../proto/services.js';
import { ago, formatDuration, titleCase } from './format.js';

type Service = shoal.api.Service.$Properties;
type ServiceSpec = shoal.api.IServiceSpec;
type Task = shoal.api.Task.$Properties;
type Counts = shoal.api.IServiceCounts;

const S = api.TaskState;

export const TASK_STATES: Record<number, string> = {
  [S.TASK_NEW]: 'new', [S.TASK_PENDING]: 'pending', [S.TASK_ASSIGNED]: 'assigned', [S.TASK_ACCEPTED]: 'accepted',
  [S.TASK_PREPARING]: 'preparing', [S.TASK_READY]: 'ready', [S.TASK_STARTING]: 'starting', [S.TASK_RUNNING]: 'running',
  [S.TASK_COMPLETE]: 'complete', [S.TASK_SHUTDOWN]: 'shutdown', [S.TASK_FAILED]: 'failed', [S.TASK_REJECTED]: 'rejected',
  [S.TASK_REMOVE]: 'remove', [S.TASK_ORPHANED]: 'orphaned',
};

export function stateName(s: number | null | undefined): string {
  return TASK_STATES[s ?? 0] ?? String(s);
}

export type ModeName = 'replicated' | 'global' | 'replicated-job' | 'global-job';

export function modeOf(spec: ServiceSpec | null | undefined): ModeName {
  if (spec?.global) return 'global';
  if (spec?.replicatedJob) return 'replicated-job';
  if (spec?.globalJob) return 'global-job';
  return 'replicated';
}

export const isJob = (m: ModeName) => m === 'replicated-job' || m === 'global-job';

const n = (v: number | null | undefined) => Number(v ?? 0);
const iso = (ms: number | null | undefined) => new Date(n(ms)).toISOString();
/** Docker's JSON has durations in nanoseconds (Go's time.Duration). */
const ns = (ms: number | null | undefined) => n(ms) * 1e6;

export function truncId(id: string, noTrunc = false): string {
  return noTrunc ? id : id.slice(0, 12);
}

/** An image without its digest (as docker's tables show it), unless noTrunc. */
export function shortImage(image: string, noTrunc = false): string {
  if (noTrunc) return image;
  const at = image.indexOf('@');
  return at < 0 ? image : image.slice(0, at);
}

// ---- JSON views, docker's field names ----

const RESTART = ['', 'none', 'on-failure', 'any'];
const FAILURE_ACTION = ['', 'pause', 'continue', 'rollback'];
const ORDER = ['', 'stop-first', 'start-first'];
const MOUNT_TYPE = ['volume', 'bind', 'tmpfs'];
const PROTOCOL = ['tcp', 'udp', 'sctp'];
const PUBLISH_MODE = ['ingress', 'host'];
const UPDATE_STATE = ['', 'updating', 'paused', 'completed', 'rollback_started', 'rollback_paused', 'rollback_completed'];

/** Drops what docker leaves out of its JSON (omitempty): undefined, '', false, [] and {}. */
function compact<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => {
    if (v === undefined || v === '' || v === false) return false;
    if (Array.isArray(v)) return v.length > 0;
    if (v !== null && typeof v === 'object') return Object.keys(v).length > 0;
    return true;
  })) as Partial<T>;
}

function resourcesView(r: shoal.api.IResources | null | undefined) {
  return compact({ NanoCPUs: n(r?.nanoCpus) || undefined, MemoryBytes: n(r?.memoryBytes) || undefined });
}

function updateConfigView(u: shoal.api.IUpdateConfig | null | undefined) {
  if (!u) return undefined;
  return {
    Parallelism: n(u.parallelism),
    Delay: ns(u.delayMs),
    FailureAction: FAILURE_ACTION[u.failureAction ?? 0] ?? '',
    Monitor: ns(u.monitorMs),
    MaxFailureRatio: u.maxFailureRatio ?? 0,
    Order: ORDER[u.order ?? 0] ?? '',
  };
}

export function taskSpecView(t: shoal.api.ITaskSpec | null | undefined) {
  const c = t?.container;
  const rp = t?.restartPolicy;
  const p = t?.placement;
  return compact({
    ContainerSpec: compact({
      Image: c?.image ?? '',
      Labels: c?.labels ?? undefined,
      Command: c?.command ?? undefined,
      Args: c?.args ?? undefined,
      Hostname: c?.hostname ?? undefined,
      Env: c?.env ?? undefined,
      Dir: c?.dir ?? undefined,
      User: c?.user ?? undefined,
      Mounts: (c?.mounts ?? []).map((m) => compact({
        Type: MOUNT_TYPE[m.type ?? 0],
        Source: m.source ?? undefined,
        Target: m.target ?? '',
        ReadOnly: m.readOnly ?? undefined,
        VolumeOptions: m.volumeOptions ? compact({ NoCopy: m.volumeOptions.noCopy ?? undefined, Labels: m.volumeOptions.labels ?? undefined }) : undefined,
        TmpfsOptions: m.tmpfsOptions ? compact({ SizeBytes: n(m.tmpfsOptions.sizeBytes) || undefined, Mode: n(m.tmpfsOptions.mode) || undefined }) : undefined,
      })),
      StopSignal: c?.stopSignal ?? undefined,
      StopGracePeriod: c?.stopGracePeriodMs === undefined || c?.stopGracePeriodMs === null ? undefined : ns(c.stopGracePeriodMs),
      ReadOnly: c?.readOnly ?? undefined,
      Init: c?.init ?? undefined,
      CapabilityAdd: c?.capAdd ?? undefined,
      CapabilityDrop: c?.capDrop ?? undefined,
    }),
    Resources: {
      ...compact({ Limits: resourcesView(t?.resources?.limits), Reservations: resourcesView(t?.resources?.reservations) }),
    },
    RestartPolicy: rp ? {
      Condition: RESTART[rp.condition ?? 0] || 'any',
      Delay: ns(rp.delayMs),
      MaxAttempts: n(rp.maxAttempts),
      ...(n(rp.windowMs) ? { Window: ns(rp.windowMs) } : {}),
    } : undefined,
    Placement: p ? compact({
      Constraints: p.constraints ?? undefined,
      Preferences: (p.preferences ?? []).map((pref) => ({ Spread: { SpreadDescriptor: pref.spread ?? '' } })),
      MaxReplicas: n(p.maxReplicas) || undefined,
      Platforms: (p.platforms ?? []).map((pl) => ({ Architecture: pl.architecture ?? '', OS: pl.os ?? '' })),
    }) : undefined,
    Networks: (t?.networks ?? []).map((target) => ({ Target: target })),
    ForceUpdate: n(t?.forceUpdate) || undefined,
  });
}

type ModeView =
  | { Replicated: { Replicas: number } }
  | { Global: Record<string, never> }
  | { ReplicatedJob: { MaxConcurrent: number; TotalCompletions: number } }
  | { GlobalJob: Record<string, never> };

function modeView(spec: ServiceSpec | null | undefined): ModeView {
  switch (modeOf(spec)) {
    case 'global':
      return { Global: {} };
    case 'global-job':
      return { GlobalJob: {} };
    case 'replicated-job':
      return { ReplicatedJob: { MaxConcurrent: n(spec?.replicatedJob?.maxConcurrent), TotalCompletions: n(spec?.replicatedJob?.totalCompletions) } };
    default:
      return { Replicated: { Replicas: n(spec?.replicated?.replicas) } };
  }
}

function portsView(spec: ServiceSpec | null | undefined) {
  return (spec?.endpointSpec?.ports ?? []).map((p) => compact({
    Protocol: PROTOCOL[p.protocol ?? 0],
    TargetPort: n(p.targetPort),
    PublishedPort: n(p.publishedPort) || undefined,
    PublishMode: PUBLISH_MODE[p.publishMode ?? 0],
  }));
}

export function specView(spec: ServiceSpec | null | undefined) {
  return {
    Name: spec?.name ?? '',
    Labels: spec?.labels ?? {},
    TaskTemplate: taskSpecView(spec?.taskTemplate),
    Mode: modeView(spec),
    ...compact({
      UpdateConfig: updateConfigView(spec?.updateConfig),
      RollbackConfig: updateConfigView(spec?.rollbackConfig),
      Networks: (spec?.networks ?? []).map((target) => ({ Target: target })),
    }),
    EndpointSpec: { Mode: 'vip', ...compact({ Ports: portsView(spec) }) },
  };
}

export type ServiceView = ReturnType<typeof serviceView>;

/** A service as `service inspect` prints it; with counts (ls --format json) also ServiceStatus. */
export function serviceView(s: Service, counts?: Counts) {
  const u = s.updateStatus;
  return {
    ID: s.id,
    Version: { Index: n(s.meta?.version) },
    CreatedAt: iso(s.meta?.createdAt),
    UpdatedAt: iso(s.meta?.updatedAt),
    Spec: specView(s.spec),
    ...(s.previousSpec ? { PreviousSpec: specView(s.previousSpec) } : {}),
    ...(u && u.state ? {
      UpdateStatus: compact({
        State: UPDATE_STATE[u.state] ?? '',
        StartedAt: n(u.startedAt) ? iso(u.startedAt) : undefined,
        CompletedAt: n(u.completedAt) ? iso(u.completedAt) : undefined,
        Message: u.message ?? undefined,
      }),
    } : {}),
    ...(counts ? { ServiceStatus: { RunningTasks: n(counts.running), DesiredTasks: n(counts.desired), CompletedTasks: n(counts.completed) } } : {}),
  };
}

/** `<service>.<slot>`, or `<service>.<node ID>` for a task of a global service. */
export function taskName(t: Task): string {
  return n(t.slot) > 0 ? `${t.serviceName}.${n(t.slot)}` : `${t.serviceName}.${t.nodeId}`;
}

/** A task as docker's task JSON (`service ps --format json`), plus its Name. */
export function taskView(t: Task) {
  return {
    ID: t.id,
    Version: { Index: n(t.meta?.version) },
    CreatedAt: iso(t.meta?.createdAt),
    UpdatedAt: iso(t.meta?.updatedAt),
    Name: taskName(t),
    Spec: taskSpecView(t.spec),
    ServiceID: t.serviceId,
    ...(n(t.slot) ? { Slot: n(t.slot) } : {}),
    ...(t.nodeId ? { NodeID: t.nodeId } : {}),
    Status: compact({
      Timestamp: iso(t.status?.timestamp),
      State: stateName(t.status?.state),
      Message: t.status?.message ?? undefined,
      Err: t.status?.err ?? undefined,
      ContainerStatus: t.status?.containerId ? { ContainerID: t.status.containerId, ExitCode: n(t.status.exitCode) } : undefined,
    }),
    DesiredState: stateName(t.desiredState),
  };
}

// ---- service ls ----

export function modeColumn(spec: ServiceSpec | null | undefined): string {
  return modeOf(spec).replace('-', ' ');
}

/** REPLICAS of `service ls`: running/desired; jobs completed/total. */
export function replicasColumn(s: Service, c: Counts | undefined): string {
  const spec = s.spec;
  switch (modeOf(spec)) {
    case 'replicated-job':
      return `${n(c?.completed)}/${n(spec?.replicatedJob?.totalCompletions)}`;
    case 'global-job':
      return `${n(c?.completed)}/${Math.max(n(c?.desired), n(c?.completed))}`;
    case 'global':
      return `${n(c?.running)}/${n(c?.desired)}`;
    default: {
      const max = n(spec?.taskTemplate?.placement?.maxReplicas);
      const desired = c ? n(c.desired) : n(spec?.replicated?.replicas);
      return `${n(c?.running)}/${desired}${max ? ` (max ${max} per node)` : ''}`;
    }
  }
}

/** PORTS as docker writes them: `*:8080->80/tcp` (routing mesh), `8080->80/tcp` (host mode). */
export function portsColumn(spec: ServiceSpec | null | undefined): string {
  return (spec?.endpointSpec?.ports ?? []).filter((p) => n(p.publishedPort) > 0).map((p) => {
    const host = (p.publishMode ?? 0) === api.PublishMode.PUBLISH_MODE_INGRESS ? '*:' : '';
    return `${host}${n(p.publishedPort)}->${n(p.targetPort)}/${PROTOCOL[p.protocol ?? 0]}`;
  }).join(', ');
}

export const LS_HEADERS = ['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'];

/** Rows of `service ls`, by name. */
export function serviceRows(services: Service[], counts: Counts[]): string[][] {
  const byId = new Map(counts.map((c) => [c.serviceId ?? '', c]));
  return [...services].sort((a, b) => (a.spec?.name ?? '').localeCompare(b.spec?.name ?? '') || (a.id ?? '').localeCompare(b.id ?? '')).map((s) => [
    truncId(s.id ?? ''),
    s.spec?.name ?? '',
    modeColumn(s.spec),
    replicasColumn(s, byId.get(s.id ?? '')),
    shortImage(s.spec?.taskTemplate?.container?.image ?? ''),
    portsColumn(s.spec),
  ]);
}

// ---- service ps, node ps ----

export const PS_HEADERS = ['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR', 'PORTS'];

const ERR_WIDTH = 30;

/**
 * Why a pending task fits no node, in the scheduler's words (manager/scheduler: "no suitable
 * node (...)", "no node satisfies ...: N nodes checked"), which it writes to the task's status
 * message; undefined for other pending messages ("pending task scheduling", a restart delay).
 */
export function schedulingReason(t: Task): string | undefined {
  if (t.status?.state !== S.TASK_PENDING) return undefined;
  const msg = t.status?.message || t.status?.err || '';
  return /no suitable node|no node satisfies/.test(msg) ? msg : undefined;
}

/** ERROR of `service ps`: the task's error, or a pending task's reason, quoted; cut to 30 characters unless noTrunc (docker's). */
export function taskError(t: Task, noTrunc = false): string {
  const msg = t.status?.err || schedulingReason(t) || '';
  if (!msg) return '';
  const q = `"${msg}"`;
  return noTrunc || q.length <= ERR_WIDTH ? q : `${q.slice(0, ERR_WIDTH - 1)}…`;
}

/** Newest first: by creation time, then by store version. */
export function newestFirst(a: Task, b: Task): number {
  return n(b.meta?.createdAt) - n(a.meta?.createdAt) || n(b.meta?.version) - n(a.meta?.version) || (b.id ?? '').localeCompare(a.id ?? '');
}

/** Tasks in `service ps` order: by service, then slot (or node for global tasks), then newest first. */
export function sortTasks(tasks: Task[]): Task[] {
  return [...tasks].sort((a, b) => (a.serviceName ?? '').localeCompare(b.serviceName ?? '') || (a.serviceId ?? '').localeCompare(b.serviceId ?? '')
    || n(a.slot) - n(b.slot) || (n(a.slot) === 0 ? (a.nodeId ?? '').localeCompare(b.nodeId ?? '') : 0) || newestFirst(a, b));
}

export interface PsOptions {
  /** Node ID -> hostname. */
  hostnames: Map<string, string>;
  noTrunc?: boolean;
  now?: number;
}

/** Rows of `service ps` / `node ps`: a slot's older tasks follow its newest, as ` \_ <name>`. */
export function taskRows(tasks: Task[], o: PsOptions): string[][] {
  let prev = '';
  return sortTasks(tasks).map((t) => {
    const name = taskName(t);
    const shown = name === prev ? ` \\_ ${name}` : name;
    prev = name;
    const when = n(t.status?.timestamp) || n(t.meta?.updatedAt);
    return [
      truncId(t.id ?? '', o.noTrunc),
      shown,
      shortImage(t.spec?.container?.image ?? '', o.noTrunc),
      t.nodeId ? (o.hostnames.get(t.nodeId) ?? t.nodeId) : '',
      titleCase(stateName(t.desiredState)),
      `${titleCase(stateName(t.status?.state))} ${ago(when, o.now)}`,
      taskError(t, o.noTrunc),
      '',
    ];
  });
}

// ---- inspect --pretty ----

function cpus(nano: number): string {
  return String(nano / 1e9);
}

/** Bytes in docker's words: 512MiB, 1.5GiB, 100B. */
export function bytesHuman(b: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = b;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number(v.toFixed(2))}${units[i]}`;
}

const dur = (nsv: number) => formatDuration(nsv / 1e6);

/** `service inspect --pretty`: docker's layout. */
export function prettyService(v: ServiceView): string {
  const spec = v.Spec;
  const c = spec.TaskTemplate.ContainerSpec ?? { Image: '' };
  const t = spec.TaskTemplate;
  const lines: string[] = [
    '',
    `ID:\t\t${v.ID}`,
    `Name:\t\t${spec.Name}`,
  ];
  const labels = Object.entries(spec.Labels);
  if (labels.length) lines.push('Labels:', ...labels.map(([k, val]) => ` ${k}=${val}`));
  if ('Replicated' in spec.Mode) lines.push('Service Mode:\tReplicated', ` Replicas:\t${spec.Mode.Replicated.Replicas}`);
  else if ('ReplicatedJob' in spec.Mode) {
    lines.push('Service Mode:\tReplicated job', ` Max concurrent:\t${spec.Mode.ReplicatedJob.MaxConcurrent}`, ` Total completions:\t${spec.Mode.ReplicatedJob.TotalCompletions}`);
  } else if ('Global' in spec.Mode) lines.push('Service Mode:\tGlobal');
  else lines.push('Service Mode:\tGlobal job');
  if (v.UpdateStatus) {
    lines.push('UpdateStatus:', ` State:\t\t${v.UpdateStatus.State}`);
    if (v.UpdateStatus.StartedAt) lines.push(` Started:\t${ago(Date.parse(v.UpdateStatus.StartedAt))}`);
    if (v.UpdateStatus.CompletedAt) lines.push(` Completed:\t${ago(Date.parse(v.UpdateStatus.CompletedAt))}`);
    if (v.UpdateStatus.Message) lines.push(` Message:\t${v.UpdateStatus.Message}`);
  }
  lines.push('Placement:');
  if (t.Placement?.Constraints) lines.push(` Constraints:\t[${t.Placement.Constraints.join(' ')}]`);
  if (t.Placement?.Preferences) lines.push(` Preferences:\t[${t.Placement.Preferences.map((p) => `{Spread=${p.Spread.SpreadDescriptor}}`).join(' ')}]`);
  if (t.Placement?.MaxReplicas) lines.push(` Max Replicas Per Node:  ${t.Placement.MaxReplicas}`);
  for (const [title, u, orderWord] of [['UpdateConfig', spec.UpdateConfig, 'Update order'], ['RollbackConfig', spec.RollbackConfig, 'Rollback order']] as const) {
    if (!u) continue;
    lines.push(`${title}:`, ` Parallelism:\t${u.Parallelism}`);
    if (u.Delay) lines.push(` Delay:\t\t${dur(u.Delay)}`);
    lines.push(` On failure:\t${u.FailureAction}`, ` Monitoring Period: ${dur(u.Monitor)}`, ` Max failure ratio: ${u.MaxFailureRatio}`, ` ${orderWord}:${orderWord === 'Update order' ? '      ' : '    '}${u.Order}`);
  }
  lines.push('ContainerSpec:', ` Image:\t\t${c.Image}`);
  if (c.Command) lines.push(` Command:\t${c.Command.join(' ')}`);
  if (c.Args) lines.push(` Args:\t\t${c.Args.join(' ')}`);
  if (c.Env) lines.push(` Env:\t\t${c.Env.join(' ')}`);
  if (c.Dir) lines.push(` Dir:\t\t${c.Dir}`);
  if (c.User) lines.push(` User:\t\t${c.User}`);
  if (c.Hostname) lines.push(` Hostname:\t${c.Hostname}`);
  if (c.Labels) lines.push(' Labels:', ...Object.entries(c.Labels).map(([k, val]) => `  ${k}=${val}`));
  if (c.StopSignal) lines.push(` Stop Signal:\t${c.StopSignal}`);
  if (c.StopGracePeriod !== undefined) lines.push(` Stop Grace Period: ${dur(c.StopGracePeriod)}`);
  lines.push(` Init:\t\t${c.Init ? 'true' : 'false'}`);
  if (c.ReadOnly) lines.push(' Read Only:\ttrue');
  if (c.CapabilityAdd) lines.push(` Capability Add:\t${c.CapabilityAdd.join(', ')}`);
  if (c.CapabilityDrop) lines.push(` Capability Drop:\t${c.CapabilityDrop.join(', ')}`);
  if (c.Mounts) {
    lines.push('Mounts:');
    for (const m of c.Mounts) {
      lines.push(` Target:\t${m.Target}`, `  Source:\t${m.Source ?? ''}`, `  ReadOnly:\t${m.ReadOnly ? 'true' : 'false'}`, `  Type:\t\t${m.Type}`);
      if (m.TmpfsOptions?.SizeBytes) lines.push(`  Size:\t\t${bytesHuman(m.TmpfsOptions.SizeBytes)}`);
      if (m.TmpfsOptions?.Mode) lines.push(`  Mode:\t\t0${m.TmpfsOptions.Mode.toString(8)}`);
      if (m.VolumeOptions?.NoCopy) lines.push('  NoCopy:\ttrue');
    }
  }
  if (t.RestartPolicy) {
    const r = t.RestartPolicy;
    lines.push('Restart Policy:', ` Condition:\t${r.Condition}`, ` Delay:\t\t${dur(r.Delay)}`, ` Max Attempts:\t${r.MaxAttempts}`);
    if (r.Window) lines.push(` Window:\t${dur(r.Window)}`);
  }
  lines.push('Resources:');
  for (const [title, r] of [['Reservations', t.Resources?.Reservations], ['Limits', t.Resources?.Limits]] as const) {
    if (!r || (!r.NanoCPUs && !r.MemoryBytes)) continue;
    lines.push(` ${title}:`);
    if (r.NanoCPUs) lines.push(`  CPU:\t\t${cpus(r.NanoCPUs)}`);
    if (r.MemoryBytes) lines.push(`  Memory:\t${bytesHuman(r.MemoryBytes)}`);
  }
  if (t.Networks) lines.push(`Networks:\t${t.Networks.map((x) => x.Target).join(' ')}`);
  lines.push('Endpoint Mode:\tvip');
  if (spec.EndpointSpec.Ports) {
    lines.push('Ports:');
    for (const p of spec.EndpointSpec.Ports) {
      lines.push(` PublishedPort = ${p.PublishedPort ?? 0}`, `  Protocol = ${p.Protocol}`, `  TargetPort = ${p.TargetPort}`, `  PublishMode = ${p.PublishMode}`);
    }
  }
  return lines.join('\n');
}
