// `shoal service ...` and `shoal node ps`: docker's commands, flags and output over the control
// API. Flags become specs in serviceflags.ts, objects become rows and JSON in views.ts, and the
// wait for convergence is progress.ts.
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Command, Option } from 'commander';
import type { shoal } from '../../proto/gen/api.js';
import { ControlService, LocalService, api, plain, type Service } from '../../proto/services.js';
import { parseDuration, table } from './format.js';
import { waitForConvergence } from './progress.js';
import { RpcError, UsageError, rpc, stream } from './rpc.js';
import { failOne, out } from './output.js';
import { SERVICE_FILTERS, TASK_FILTER_KEYS, filterUsage, parseFilters, taskFilters } from './filters.js';
import { registryAuthFor } from './registryauth.js';
import { FlagError, buildServiceSpec, parseScaleArgs, randomName, scaleSpec, type CreateFlags } from './serviceflags.js';
import { updateSpec, type UpdateFlags } from './updateflags.js';
import {
  LS_HEADERS, PS_HEADERS, prettyService, serviceRows, serviceView, taskRows, taskView, truncId,
} from './views.js';

type Task = shoal.api.Task.$Properties;

// Repeatable flags; no default, so that help does not print "(default: [])".
const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

async function hostnames(): Promise<Map<string, string>> {
  const res = await rpc(ControlService.listNodes, {} as never);
  return new Map((res.nodes ?? []).map((n) => [n.id ?? '', n.description?.hostname ?? '']));
}

/**
 * Waits for a service to converge, drawing docker's progress on stdout (nothing with quiet).
 * Ctrl-C stops waiting; the service stays as it is.
 */
async function converge(s: Service, verb: string, quiet: boolean, update?: { rollback: boolean }): Promise<void> {
  const name = s.spec?.name ?? s.id;
  const ac = new AbortController();
  const onInt = () => ac.abort();
  process.on('SIGINT', onInt);
  try {
    const r = await waitForConvergence({
      name,
      verb,
      update,
      fetch: async () => {
        const [list, tasks] = await Promise.all([
          rpc(ControlService.listServices, { names: [s.id] } as never, 10_000),
          rpc(ControlService.listTasks, { serviceIds: [s.id] } as never, 10_000),
        ]);
        const i = (list.services ?? []).findIndex((x) => x.id === s.id);
        if (i < 0) return undefined;
        return { service: list.services[i]!, counts: (list.counts ?? []).find((c) => c.serviceId === s.id), tasks: tasks.tasks ?? [] };
      },
      hostnames: () => hostnames(),
      write: quiet ? () => undefined : (text) => process.stdout.write(text),
      tty: !!process.stdout.isTTY,
      columns: process.stdout.columns,
      signal: ac.signal,
    });
    if (r === 'interrupted' && !quiet) {
      out('Operation continuing in background.');
      out(`Use \`shoal service ps ${name}\` to check progress.`);
    }
  } finally {
    process.off('SIGINT', onInt);
  }
}

async function getService(ref: string): Promise<Service> {
  return rpc(ControlService.getService, { ref } as never);
}

interface PsFlags { trunc: boolean; filter?: string[]; format: string; quiet?: boolean }

function psOptions(c: Command): Command {
  return c
    .option('--no-trunc', 'Do not truncate output')
    .option('-f, --filter <filter>', `Filter output based on conditions provided: ${filterUsage(TASK_FILTER_KEYS)} (repeatable)`, collect)
    .addOption(new Option('--format <format>', 'table or json').choices(['table', 'json']).default('table'))
    .option('-q, --quiet', 'Only display task IDs');
}

async function printTasks(tasks: Task[], o: PsFlags): Promise<void> {
  // Hostnames: for the table's NODE column and a node=<hostname> filter; -q and json need none.
  const wantNames = (!o.quiet && o.format !== 'json') || parseFilters(o.filter ?? [], TASK_FILTER_KEYS).values.has('node');
  const names = wantNames ? await hostnames() : new Map<string, string>();
  const shown = tasks.filter(parseFilters(o.filter ?? [], taskFilters(names)).keep);
  const noTrunc = !o.trunc;
  if (o.quiet) return out(shown.map((t) => truncId(t.id ?? '', noTrunc)).join('\n'));
  if (o.format === 'json') return out(JSON.stringify(shown.map(taskView), null, 2));
  out(table(PS_HEADERS, taskRows(shown, { hostnames: names, noTrunc })));
}

/** Only running ones asked for: let the server filter (it keeps the history otherwise). Refuses a bad filter before any call. */
const onlyRunning = (filters: string[] = []) => {
  const v = parseFilters(filters, TASK_FILTER_KEYS).values.get('desired-state') ?? [];
  return v.length > 0 && v.every((x) => x === 'running');
};

/** --since: a duration back from now (10m), an RFC 3339 time, or Unix seconds. */
export function parseSince(v: string, now = Date.now()): number {
  if (/^[0-9]+(\.[0-9]+)?$/.test(v)) return Math.floor(Number(v) * 1000);
  if (/^[0-9.]+(ms|s|m|h)/.test(v)) {
    try {
      return now - parseDuration(v, '--since');
    } catch {
      // not a duration: maybe a time
    }
  }
  const t = Date.parse(v);
  if (/^\d{4}-\d{2}-\d{2}/.test(v) && !Number.isNaN(t)) return t;
  throw new FlagError(`invalid --since ${JSON.stringify(v)}: use a duration back from now (e.g. 10m, 1h30m), an RFC 3339 time (e.g. 2024-05-01T12:00:00Z) or Unix seconds`);
}

export function parseTail(v: string): number {
  if (v === 'all') return -1;
  if (!/^[0-9]+$/.test(v)) throw new FlagError(`invalid --tail ${JSON.stringify(v)}: use a number of lines or all`);
  return Number(v);
}

interface CreateOpts extends CreateFlags { detach?: boolean; quiet?: boolean; envFile?: string[]; withRegistryAuth?: boolean }

/** The flags `service create` and `service update` share; create's help names the defaults. */
function sharedTaskOptions(cmd: Command, create: boolean): Command {
  const d = (v: string) => (create ? ` (default ${v})` : '');
  return cmd
    .option('-w, --workdir <string>', 'Working directory inside the container')
    .option('-u, --user <string>', 'Username or UID (format: <name|uid>[:<group|gid>])')
    .option('--hostname <string>', 'Container hostname')
    .option('--entrypoint <command>', 'Overwrite the default ENTRYPOINT of the image')
    .option('--reserve-cpu <decimal>', 'Reserve CPUs, e.g. 0.5')
    .option('--reserve-memory <bytes>', 'Reserve Memory, e.g. 256m')
    .option('--limit-cpu <decimal>', 'Limit CPUs, e.g. 1.5')
    .option('--limit-memory <bytes>', 'Limit Memory, e.g. 1g')
    .option('--restart-condition <string>', `Restart when condition is met: none, on-failure or any${d('"any"')}`)
    .option('--restart-delay <duration>', `Delay between restart attempts (ms|s|m|h)${d('5s')}`)
    .option('--restart-max-attempts <uint>', `Maximum number of restarts before giving up${d('0 = unlimited')}`)
    .option('--restart-window <duration>', 'Window used to evaluate the restart policy (ms|s|m|h)')
    .option('--stop-signal <string>', 'Signal to stop the container')
    .option('--stop-grace-period <duration>', `Time to wait before force killing a container (ms|s|m|h)${d('10s')}`)
    .option('--update-parallelism <uint>', `Maximum number of tasks updated simultaneously (0 to update all at once)${d('1')}`)
    .option('--update-delay <duration>', `Delay between updates (ms|s|m|h)${d('0s')}`)
    .option('--update-failure-action <string>', `Action on update failure: pause, continue or rollback${d('"pause"')}`)
    .option('--update-monitor <duration>', `Duration after each task update to monitor for failure (ms|s|m|h)${d('5s')}`)
    .option('--update-max-failure-ratio <float>', `Failure rate to tolerate during an update${d('0')}`)
    .option('--update-order <string>', `Update order: start-first or stop-first${d('"stop-first"')}`);
}

export function registerServiceCommands(program: Command, node: Command): void {
  const service = program.command('service').description('Manage services');

  const createCmd = service.command('create')
    .description('Create a new service')
    .usage('[options] IMAGE [COMMAND] [ARG...]')
    .argument('<image>', 'image to run')
    .argument('[command...]', 'command and arguments (replace the image\'s CMD)')
    // Everything after IMAGE belongs to the container (docker's rule): `create busybox ls -l`.
    .passThroughOptions()
    .option('--name <string>', 'Service name (default: a generated one)')
    .option('--mode <string>', 'Service mode: replicated, global, replicated-job or global-job (default "replicated")')
    .option('--replicas <uint>', 'Number of tasks (replicated-job: completions) (default 1)')
    .option('--max-concurrent <uint>', 'Number of job tasks to run concurrently (default equal to --replicas)')
    .option('-e, --env <KEY=VALUE>', 'Set environment variables (repeatable; a bare KEY takes its value from this shell)', collect)
    .option('--env-file <file>', 'Read in a file of environment variables, KEY=VALUE per line (repeatable; --env wins over it)', collect)
    .option('--mount <mount>', 'Attach a filesystem mount to the service: type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=64m][,tmpfs-mode=1777] (repeatable)', collect)
    .option('-l, --label <key=value>', 'Service labels (repeatable)', collect)
    .option('--container-label <key=value>', 'Container labels (repeatable)', collect)
    .option('--constraint <expr>', 'Placement constraints, e.g. node.labels.zone==eu (repeatable)', collect)
    .option('--placement-pref <pref>', 'Add a placement preference, e.g. spread=node.labels.zone (repeatable)', collect)
    .option('--replicas-max-per-node <uint>', 'Maximum number of tasks per node (default 0 = unlimited)');
  sharedTaskOptions(createCmd, true)
    .option('--read-only', 'Mount the container\'s root filesystem as read only')
    .option('--init', 'Use an init inside each service container to forward signals and reap processes')
    .option('--cap-add <capability>', 'Add Linux capabilities (repeatable)', collect)
    .option('--cap-drop <capability>', 'Drop Linux capabilities (repeatable)', collect)
    .option('--with-registry-auth', 'Send this client\'s registry login for the image (Docker\'s config.json) to the nodes with the tasks')
    .option('-d, --detach', 'Exit immediately instead of waiting for the service to converge')
    .option('-q, --quiet', 'Suppress progress output')
    .action(async (image: string, command: string[], o: CreateOpts) => {
      // Node 20 also reads a --env-file on its command line into this process's environment
      // (and exits 9 itself when the file is missing) unless the command starts `node -- ...`;
      // harmless here, as the spec takes the file's variables from its text, read below.
      const envFiles = (o.envFile ?? []).map((p) => {
        try {
          return { path: p, text: fs.readFileSync(p, 'utf8') };
        } catch (e) {
          throw new FlagError(`cannot read --env-file ${p}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
        }
      });
      const spec = buildServiceSpec(image, command, { ...o, envFiles });
      if (o.withRegistryAuth) spec.taskTemplate!.container!.pullOptions = { registryAuth: registryAuthFor(image) };
      if (!spec.name) spec.name = randomName();
      const s = await rpc(ControlService.createService, { spec } as never);
      out(s.id);
      if (!o.detach) await converge(s, 'created', !!o.quiet);
    });

  const updateCmd = service.command('update')
    .description('Update a service: a changed task template (image, command, env, mounts, resources, placement...) replaces its tasks by a rolling update')
    .argument('<service>', 'service name or ID')
    .option('--image <image>', 'Service image tag')
    .option('--args <command>', 'Service command args (replace the image\'s CMD)')
    .option('--env-add <KEY=VALUE>', 'Add or update an environment variable (repeatable)', collect)
    .option('--env-rm <KEY>', 'Remove an environment variable (repeatable)', collect)
    .option('--label-add <key=value>', 'Add or update a service label (repeatable)', collect)
    .option('--label-rm <key>', 'Remove a label by its key (repeatable)', collect)
    .option('--container-label-add <key=value>', 'Add or update a container label (repeatable)', collect)
    .option('--container-label-rm <key>', 'Remove a container label by its key (repeatable)', collect)
    .option('--constraint-add <expr>', 'Add or update a placement constraint (repeatable)', collect)
    .option('--constraint-rm <expr>', 'Remove a constraint (repeatable)', collect)
    .option('--mount-add <mount>', 'Add or update a mount on a service (repeatable; see service create --mount)', collect)
    .option('--mount-rm <target>', 'Remove a mount by its target path (repeatable)', collect)
    .option('--replicas <uint>', 'Number of tasks')
    .option('--rollback-parallelism <uint>', 'Maximum number of tasks rolled back simultaneously (0 to roll back all at once)')
    .option('--rollback-delay <duration>', 'Delay between task rollbacks (ms|s|m|h)')
    .option('--rollback-failure-action <string>', 'Action on rollback failure: pause or continue')
    .option('--rollback-monitor <duration>', 'Duration after each task rollback to monitor for failure (ms|s|m|h)')
    .option('--rollback-max-failure-ratio <float>', 'Failure rate to tolerate during a rollback')
    .option('--rollback-order <string>', 'Rollback order: start-first or stop-first')
    .option('--force', 'Force update even if no changes require it (replaces every task)')
    .option('--rollback', 'Roll back to the previous specification (as `service rollback`)')
    .option('--with-registry-auth', 'Send this client\'s registry login for the image (Docker\'s config.json) to the nodes with the tasks');
  sharedTaskOptions(updateCmd, false)
    .option('-d, --detach', 'Exit immediately instead of waiting for the service to converge')
    .option('-q, --quiet', 'Suppress progress output')
    .action(async (ref: string, o: UpdateFlags & { rollback?: boolean; withRegistryAuth?: boolean; detach?: boolean; quiet?: boolean }) => {
      if (o.rollback) {
        const given = Object.keys(o).filter((k) => !['rollback', 'detach', 'quiet'].includes(k));
        if (given.length > 0) throw new UsageError('--rollback takes no other change: roll back first, then update');
        return rollback(ref, o);
      }
      const { before, after } = await updateOne(ref, (s) => {
        const spec = updateSpec(plain(s.spec ?? {}) as shoal.api.IServiceSpec, o);
        if (o.withRegistryAuth) spec.taskTemplate!.container!.pullOptions = { registryAuth: registryAuthFor(spec.taskTemplate?.container?.image ?? '') };
        return { spec };
      });
      out(after.spec?.name ?? ref);
      if (o.detach) return;
      // A changed template started a rolling update; anything else converges as a scale does.
      const started = Number(after.updateStatus?.state) === api.UpdateState.UPDATE_UPDATING
        && Number(after.updateStatus?.startedAt) !== Number(before.updateStatus?.startedAt ?? 0);
      await converge(after, 'updated', !!o.quiet, started ? { rollback: false } : undefined);
    });

  service.command('rollback')
    .description('Revert changes to a service\'s configuration: back to the spec before its last update, replacing its tasks by the rollback settings')
    .argument('<service>', 'service name or ID')
    .option('-d, --detach', 'Exit immediately instead of waiting for the service to converge')
    .option('-q, --quiet', 'Suppress progress output')
    .action((ref: string, o: { detach?: boolean; quiet?: boolean }) => rollback(ref, o));

  service.command('ls')
    .alias('list')
    .description('List services')
    .option('-q, --quiet', 'Only display IDs')
    .option('-f, --filter <filter>', `Filter output based on conditions provided: ${filterUsage(SERVICE_FILTERS)} (repeatable)`, collect)
    .addOption(new Option('--format <format>', 'table or json').choices(['table', 'json']).default('table'))
    .action(async (o: { quiet?: boolean; filter?: string[]; format: string }) => {
      const { keep } = parseFilters(o.filter ?? [], SERVICE_FILTERS);
      const res = await rpc(ControlService.listServices, {} as never);
      const services = (res.services ?? []).filter(keep).sort((a, b) => (a.spec?.name ?? '').localeCompare(b.spec?.name ?? ''));
      const counts = res.counts ?? [];
      if (o.quiet) return out(services.map((s) => s.id).join('\n'));
      if (o.format === 'json') return out(JSON.stringify(services.map((s) => serviceView(s, counts.find((c) => c.serviceId === s.id))), null, 2));
      out(table(LS_HEADERS, serviceRows(services, counts)));
    });

  psOptions(service.command('ps')
    .description('List the tasks of one or more services')
    .argument('<service...>', 'service names or IDs'))
    .action(async (refs: string[], o: PsFlags) => {
      const desiredRunning = onlyRunning(o.filter);
      const services = await Promise.all(refs.map(getService));
      const res = await rpc(ControlService.listTasks, { serviceIds: services.map((s) => s.id), desiredRunning } as never);
      await printTasks(res.tasks ?? [], o);
    });

  psOptions(node.command('ps')
    .description('List tasks running on one or more nodes, defaults to current node')
    .argument('[node...]', 'node IDs or hostnames; self for this node'))
    .action(async (refs: string[], o: PsFlags) => {
      const desiredRunning = onlyRunning(o.filter);
      const wanted = refs.length ? refs : ['self'];
      let self: string | undefined;
      const ids: string[] = [];
      for (const ref of wanted) {
        if (ref === 'self') {
          if (program.opts<{ host?: string }>().host) throw new UsageError('with --host, name the node(s): "self" means the node this command runs on');
          self ??= (await rpc(LocalService.info, {} as never)).nodeId;
          if (!self) throw new Error('this node is not part of a swarm');
          ids.push(self);
        } else {
          ids.push((await rpc(ControlService.getNode, { ref } as never)).id);
        }
      }
      const res = await rpc(ControlService.listTasks, { nodeIds: ids, desiredRunning } as never);
      await printTasks(res.tasks ?? [], o);
    });

  service.command('inspect')
    .description('Display detailed information on one or more services')
    .argument('<service...>', 'service names or IDs')
    .option('--pretty', 'Print the information in a human friendly format')
    .addOption(new Option('--format <format>', 'json or pretty').choices(['json', 'pretty']).default('json'))
    .action(async (refs: string[], o: { pretty?: boolean; format: string }) => {
      const found: Service[] = [];
      for (const ref of refs) {
        try {
          found.push(await getService(ref));
        } catch (e) {
          failOne((e as Error).message);
        }
      }
      const views = found.map((s) => serviceView(s));
      if (o.pretty || o.format === 'pretty') {
        if (views.length) out(views.map(prettyService).join('\n\n'));
        return;
      }
      out(JSON.stringify(views, null, 2));
    });

  service.command('scale')
    .description('Scale one or multiple replicated services')
    .usage('[options] SERVICE=REPLICAS [SERVICE=REPLICAS...]')
    .argument('<service=replicas...>', 'e.g. web=5 api=2')
    .option('-d, --detach', 'Exit immediately instead of waiting for the service to converge')
    .action(async (args: string[], o: { detach?: boolean }) => {
      const targets = parseScaleArgs(args);
      const scaled: Service[] = [];
      const errors: string[] = [];
      for (const t of targets) {
        try {
          scaled.push(await scaleOne(t.service, t.replicas));
          out(`${t.service} scaled to ${t.replicas}`);
        } catch (e) {
          errors.push(`${t.service}: ${(e as Error).message}`);
        }
      }
      if (!o.detach) {
        for (const s of scaled) {
          if (scaled.length > 1) out(`${s.spec?.name}:`);
          try {
            await converge(s, 'scaled', false);
          } catch (e) {
            errors.push(`${s.spec?.name}: ${(e as Error).message}`);
          }
        }
      }
      if (errors.length) throw new Error(errors.join('\n'));
    });

  service.command('rm')
    .alias('remove')
    .description('Remove one or more services')
    .argument('<service...>', 'service names or IDs')
    .action(async (refs: string[]) => {
      for (const ref of refs) {
        try {
          const s = await getService(ref);
          await rpc(ControlService.removeService, { serviceId: s.id } as never);
          out(ref);
        } catch (e) {
          failOne((e as Error).message);
        }
      }
    });

  service.command('logs')
    .description('Fetch the logs of a service or task')
    .argument('<service|task>', 'a service name or ID, or a task ID')
    .option('-f, --follow', 'Follow log output')
    .option('--tail <n>', 'Number of lines to show from the end of the logs of each task, or all', 'all')
    .option('--since <time>', 'Show logs since a time (e.g. 2024-05-01T12:00:00Z) or for a duration back (e.g. 42m)')
    .option('-t, --timestamps', 'Show timestamps')
    .option('--no-task-ids', 'Do not include task IDs in output')
    .option('--no-trunc', 'Do not truncate output')
    .option('--raw', 'Do not neatly format logs')
    .action(async (ref: string, o: { follow?: boolean; tail: string; since?: string; timestamps?: boolean; taskIds: boolean; trunc: boolean; raw?: boolean }) => {
      const tail = parseTail(o.tail);
      const since = o.since === undefined ? 0 : parseSince(o.since);
      await logs(ref, { follow: !!o.follow, tail, since, timestamps: !!o.timestamps, taskIds: o.taskIds, noTrunc: !o.trunc, raw: !!o.raw });
    });
}

/**
 * GetService, then UpdateService with what `change` makes of the service read (a new spec, or a
 * rollback), at the version read; once more if someone changed it in between.
 */
async function updateOne(ref: string, change: (s: Service) => { spec?: shoal.api.IServiceSpec; rollback?: boolean }): Promise<{ before: Service; after: Service }> {
  for (let attempt = 0; ; attempt++) {
    const before = await getService(ref);
    const req = change(before);
    try {
      const after = await rpc(ControlService.updateService, { serviceId: before.id, version: before.meta?.version ?? 0, ...req } as never);
      return { before, after };
    } catch (e) {
      if (attempt === 0 && e instanceof RpcError && e.code === grpc.status.ABORTED) continue;
      throw e;
    }
  }
}

/** `service rollback` (and `update --rollback`): the previous spec back, its tasks replaced, progress shown. */
async function rollback(ref: string, o: { detach?: boolean; quiet?: boolean }): Promise<void> {
  const { after } = await updateOne(ref, () => ({ rollback: true }));
  out(after.spec?.name ?? ref);
  if (!o.quiet && !o.detach) out(`rollback: ${after.updateStatus?.message || 'manually requested rollback'}`);
  if (!o.detach) await converge(after, 'rolled back', !!o.quiet, { rollback: true });
}

async function scaleOne(ref: string, replicas: number): Promise<Service> {
  return (await updateOne(ref, (s) => ({ spec: scaleSpec(plain(s.spec ?? {}) as shoal.api.IServiceSpec, replicas) }))).after;
}

interface LogOpts { follow: boolean; tail: number; since: number; timestamps: boolean; taskIds: boolean; noTrunc: boolean; raw: boolean }

/** `<service>.<slot>.<task ID>@<hostname>`, as docker's log lines start. */
export function logContext(t: Pick<Task, 'id' | 'serviceName' | 'slot' | 'nodeId'>, host: string, o: { taskIds: boolean; noTrunc: boolean }): string {
  const where = Number(t.slot) > 0 ? String(Number(t.slot)) : (t.nodeId ?? '');
  const id = o.taskIds ? `.${truncId(t.id ?? '', o.noTrunc)}` : '';
  return `${t.serviceName}.${where}${id}@${host}`;
}

async function logs(ref: string, o: LogOpts): Promise<void> {
  // A service (name, ID, prefix) or a task (ID or unique prefix).
  let serviceId: string;
  let streamRef: string;
  try {
    const s = await getService(ref);
    serviceId = s.id;
    streamRef = s.id;
  } catch (e) {
    if (!(e instanceof RpcError) || e.code !== grpc.status.NOT_FOUND) throw e;
    const all = (await rpc(ControlService.listTasks, {} as never)).tasks ?? [];
    const exact = all.filter((t) => t.id === ref);
    const hits = exact.length ? exact : all.filter((t) => (t.id ?? '').startsWith(ref));
    if (hits.length === 0) throw new Error(`no such service or task: ${ref}`);
    if (hits.length > 1) throw new Error(`task "${ref}" is ambiguous: it matches ${hits.map((t) => truncId(t.id ?? '')).join(', ')}; use a longer ID`);
    serviceId = hits[0]!.serviceId ?? '';
    streamRef = hits[0]!.id ?? '';
  }

  const tasks = new Map<string, Task>();
  let hosts = new Map<string, string>();
  const refresh = async () => {
    const [t, h] = await Promise.all([rpc(ControlService.listTasks, { serviceIds: [serviceId] } as never), hostnames()]);
    for (const x of t.tasks ?? []) tasks.set(x.id ?? '', x);
    hosts = h;
  };
  if (!o.raw) await refresh();

  // Messages are handled one after the other (a line of an unknown task waits for a refresh).
  let queue = Promise.resolve();
  const handle = async (m: InstanceType<typeof api.ServiceLogsMessage>) => {
    for (const w of m.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
    for (const l of m.lines ?? []) {
      let prefix = '';
      if (o.timestamps) prefix += `${new Date(Number(l.timestamp)).toISOString()} `;
      if (!o.raw) {
        const taskId = l.taskId ?? '';
        const nodeId = l.nodeId ?? '';
        if (!tasks.has(taskId)) await refresh().catch(() => undefined);
        const t = tasks.get(taskId) ?? { id: taskId, serviceName: '?', slot: 0, nodeId };
        prefix += `${logContext(t, hosts.get(nodeId) || nodeId, o)}    | `;
      }
      const text = `${prefix}${Buffer.from(l.data ?? []).toString('utf8')}\n`;
      (l.stream === api.LogStream.LOG_STDERR ? process.stderr : process.stdout).write(text);
    }
  };
  const s = stream(ControlService.serviceLogs, { ref: streamRef, follow: o.follow, tail: o.tail, since: o.since } as never, (m) => {
    queue = queue.then(() => handle(m));
  });
  const onInt = () => s.cancel();
  // `logs -f | head`: the reader went away; stop quietly.
  const onOutErr = (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    s.cancel();
  };
  process.on('SIGINT', onInt);
  process.stdout.on('error', onOutErr);
  try {
    await s.done;
    await queue;
  } finally {
    process.off('SIGINT', onInt);
    process.stdout.off('error', onOutErr);
  }
}
