// The service half of the control API: create, inspect, list, update, remove
// services and list their tasks. Specs pass validateServiceSpec() before
// anything is written; a bad one is refused naming the field and the rule.
import * as grpc from '@grpc/grpc-js';
import type { shoal } from '../../proto/gen/api.js';
import { api, plain, type Service, type Task } from '../../proto/services.js';
import { CallError } from '../cluster/auth.js';
import { newObjectId } from '../cluster/ids.js';
import type { Manager } from '../cluster/manager.js';
import { servicesTable, tasksTable, type ServiceObject, type TaskObject } from '../cluster/tables.js';
import { isStoreError } from '../store/index.js';
import { S, isLive, stateOf } from '../orchestrator/states.js';
import { SpecError, serviceMode, validateServiceSpec, type ServiceSpec } from './servicespec.js';
import { templateChanges } from '../../proto/templatechange.js';

function invalid(msg: string): CallError {
  return new CallError(grpc.status.INVALID_ARGUMENT, msg);
}

function validate(input: shoal.api.IServiceSpec | null | undefined): ServiceSpec {
  if (!input) throw invalid('spec is required');
  try {
    return validateServiceSpec(input);
  } catch (e) {
    if (e instanceof SpecError) throw invalid(e.message);
    throw e;
  }
}

export function resolveService(m: Manager, ref: string): ServiceObject {
  if (!ref) throw invalid('a service ID or name is required');
  const all = m.store.view((r) => r.list(servicesTable));
  const exact = all.find((s) => s.id === ref) ?? all.find((s) => s.spec?.name === ref);
  if (exact) return exact;
  const byPrefix = all.filter((s) => s.id.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1) throw invalid(`service "${ref}" is ambiguous: it matches ${byPrefix.map((s) => s.id.slice(0, 12)).join(', ')}; use a longer ID`);
  throw new CallError(grpc.status.NOT_FOUND, `no such service: ${ref}`);
}

export interface ServiceCounts {
  serviceId: string;
  desired: number;
  running: number;
  completed: number;
}

export function countTasks(svc: ServiceObject, tasks: readonly TaskObject[]): ServiceCounts {
  let running = 0;
  let completed = 0;
  let live = 0;
  for (const t of tasks) {
    if (stateOf(t) === S.TASK_COMPLETE) completed++;
    if (!isLive(t)) continue;
    live++;
    if (stateOf(t) === S.TASK_RUNNING) running++;
  }
  const spec = svc.spec!;
  let desired = live;
  if (spec.replicated) desired = Number(spec.replicated.replicas ?? 1);
  else if (spec.replicatedJob) desired = Number(spec.replicatedJob.totalCompletions ?? 1);
  return { serviceId: svc.id, desired, running, completed };
}

/** A create whose name is taken: what the user can do instead (only commands that exist). */
function nameTaken(name: string): CallError {
  return new CallError(
    grpc.status.ALREADY_EXISTS,
    `a service named "${name}" already exists: pick another --name, scale it with \`shoal service scale ${name}=N\`, or remove it first with \`shoal service rm ${name}\``,
  );
}

/** A job runs to completion: there is nothing to update in place. */
function jobTemplateRefused(name: string, fields: string[]): CallError {
  const shown = fields.slice(0, 3).map((f) => `task_template.${f}`).join(', ') + (fields.length > 3 ? ` and ${fields.length - 3} more` : '');
  return new CallError(
    grpc.status.FAILED_PRECONDITION,
    `${name} is a job: its tasks run to completion, so changing ${shown} cannot update them; nothing was changed. `
      + `Remove the job (\`shoal service rm ${name}\`) and create it again with the new spec`,
  );
}

type Container = { pullOptions?: { registryAuth?: string | null } | null } | null | undefined;

/** A task spec's container, where the registry credentials are. */
const containerOf = (spec: { taskTemplate?: { container?: unknown } | null } | null | undefined): Container => spec?.taskTemplate?.container as Container;

/** Registry credentials go to the agents with their tasks, never back to a caller (as in Docker). */
function redactService(s: Service): Service {
  for (const spec of [s.spec, s.previousSpec]) {
    const c = containerOf(spec);
    if (c) c.pullOptions = null;
  }
  return s;
}

function redactTask(t: Task): Task {
  const c = t.spec?.container as Container;
  if (c) c.pullOptions = null;
  return t;
}

export class ServiceApi {
  constructor(private readonly m: Manager) {}

  async createService(req: { spec?: shoal.api.IServiceSpec | null }): Promise<Service> {
    const spec = validate(req.spec);
    const id = newObjectId();
    try {
      await this.m.store.update((tx) => {
        if (tx.find(servicesTable, 'name', spec.name).length > 0) {
          throw nameTaken(spec.name);
        }
        tx.create(servicesTable, { id, spec: spec as never, updateStatus: null, previousSpec: null } as never);
      });
    } catch (e) {
      if (isStoreError(e) && e.code === 'EXISTS') {
        throw nameTaken(spec.name);
      }
      throw this.m.wrap(e);
    }
    return redactService(plain(this.m.store.view((r) => r.get(servicesTable, id))!));
  }

  async getService(ref: string): Promise<Service> {
    await this.m.store.readCurrent(() => undefined);
    return redactService(plain(resolveService(this.m, ref)));
  }

  async listServices(req: { names?: string[] | null }): Promise<{ services: Service[]; counts: ServiceCounts[] }> {
    const { services, tasks } = await this.m.store.readCurrent((r) => ({ services: r.list(servicesTable), tasks: r.list(tasksTable) }));
    const names = new Set(req.names ?? []);
    const chosen = names.size ? services.filter((s) => names.has(s.spec?.name ?? '') || names.has(s.id)) : services;
    const bySvc = new Map<string, TaskObject[]>();
    for (const t of tasks) {
      let l = bySvc.get(t.serviceId);
      if (!l) bySvc.set(t.serviceId, (l = []));
      l.push(t);
    }
    return { services: chosen.map((s) => redactService(plain(s))), counts: chosen.map((s) => countTasks(s, bySvc.get(s.id) ?? [])) };
  }

  async updateService(req: { serviceId?: string | null; version?: number | null; spec?: shoal.api.IServiceSpec | null; rollback?: boolean | null }): Promise<Service> {
    const svc = resolveService(this.m, req.serviceId ?? '');
    const spec = req.rollback ? undefined : validate(req.spec);
    if (spec && serviceMode(spec) !== serviceMode(svc.spec as unknown as ServiceSpec)) {
      throw invalid(`service mode change is not allowed: ${svc.spec?.name} is ${serviceMode(svc.spec as unknown as ServiceSpec)}; remove it and create it again`);
    }
    try {
      await this.m.store.update((tx) => {
        const cur = tx.get(servicesTable, svc.id);
        if (!cur) throw new CallError(grpc.status.NOT_FOUND, `no such service: ${req.serviceId}`);
        if (req.version && Number(cur.meta.version) !== Number(req.version)) {
          throw new CallError(grpc.status.ABORTED, `service ${cur.spec?.name} changed since version ${req.version} (now ${cur.meta.version}): read it again and retry`);
        }
        const next = plain(cur) as ServiceObject;
        const name = spec ? spec.name : cur.previousSpec?.name;
        if (name && name !== cur.spec?.name && tx.find(servicesTable, 'name', name).length > 0) {
          throw new CallError(grpc.status.ALREADY_EXISTS, `a service named "${name}" already exists`);
        }
        if (!spec) {
          // `service rollback`: the previous spec comes back, with the rollback settings.
          if (!cur.previousSpec) throw new CallError(grpc.status.FAILED_PRECONDITION, `service ${cur.spec?.name} has no previous spec to roll back to: it was never updated`);
          next.spec = plain(cur.previousSpec) as never;
          next.previousSpec = plain(cur.spec) as never;
          next.updateStatus = { state: api.UpdateState.UPDATE_ROLLBACK_STARTED, startedAt: Date.now(), completedAt: 0, message: 'manually requested rollback' } as never;
          tx.update(servicesTable, next);
          return;
        }
        // Callers never see the stored credentials, so an update without any (scale) keeps them;
        // `--with-registry-auth` on an update would send new ones.
        const kept = containerOf(cur.spec as never)?.pullOptions?.registryAuth;
        if (kept && !spec.taskTemplate.container.pullOptions) spec.taskTemplate.container.pullOptions = { registryAuth: kept };
        const changed = templateChanges(cur.spec?.taskTemplate, spec.taskTemplate);
        if (changed.length > 0) {
          if (spec.replicatedJob || spec.globalJob) throw jobTemplateRefused(cur.spec?.name ?? '', changed);
          // The orchestrator replaces the tasks (update.ts); a new update restarts the count of failures.
          next.updateStatus = { state: api.UpdateState.UPDATE_UPDATING, startedAt: Date.now(), completedAt: 0, message: 'update in progress' } as never;
        }
        next.previousSpec = plain(cur.spec) as never;
        next.spec = spec as never;
        tx.update(servicesTable, next);
      });
    } catch (e) {
      throw this.m.wrap(e);
    }
    return redactService(plain(this.m.store.view((r) => r.get(servicesTable, svc.id))!));
  }

  async removeService(req: { serviceId?: string | null }): Promise<Record<string, never>> {
    const svc = resolveService(this.m, req.serviceId ?? '');
    try {
      await this.m.store.update((tx) => {
        const cur = tx.get(servicesTable, svc.id);
        if (cur) tx.delete(servicesTable, cur);
      }, { retries: 3 });
    } catch (e) {
      throw this.m.wrap(e);
    }
    return {};
  }

  async listTasks(req: { serviceIds?: string[] | null; nodeIds?: string[] | null; desiredRunning?: boolean | null }): Promise<{ tasks: Task[] }> {
    const tasks = await this.m.store.readCurrent((r) => r.list(tasksTable));
    const svcs = new Set(req.serviceIds ?? []);
    const nodes = new Set(req.nodeIds ?? []);
    const out = tasks.filter((t) => (svcs.size === 0 || svcs.has(t.serviceId))
      && (nodes.size === 0 || nodes.has(t.nodeId))
      && (!req.desiredRunning || isLive(t)));
    return { tasks: out.map((t) => redactTask(plain(t))) };
  }
}
