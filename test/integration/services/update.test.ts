// `UpdateService` through the control API: what changes in place (replicas, labels,
// the restart policy) starts no update; a changed task template starts a rolling
// update (the orchestrator replaces the tasks, update by update); a job's template
// cannot change; `rollback` brings the previous spec back. Refusals write nothing.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { servicesTable, tasksTable } from '../../../manager/cluster/tables.js';
import { api, plain, type ServiceSpec } from '../../../proto/services.js';
import { useTestManagerWithApi } from '../../support/manager.js';
import { waitFor } from '../../support/wait.js';

const U = api.UpdateState;

describe('service updates through the control API', () => {
  const ctx = useTestManagerWithApi();
  const read = async (name: string) => {
    // As a client sees it: through protobuf, every default filled in.
    const s = await ctx.api.services.getService(name);
    return { id: s.id, version: Number(s.meta?.version), spec: plain(api.ServiceSpec.decode(api.ServiceSpec.encode(s.spec!).finish())) as ServiceSpec };
  };
  const update = async (name: string, edit: (spec: ServiceSpec) => void) => {
    const s = await read(name);
    edit(s.spec);
    return ctx.api.services.updateService({ serviceId: s.id, version: s.version, spec: s.spec as never });
  };
  const stored = (name: string) => ctx.t.m.store.view((r) => r.list(servicesTable)).find((x) => x.spec?.name === name)!;
  const tasksOf = (name: string) => ctx.t.m.store.view((r) => r.list(tasksTable)).filter((t) => t.serviceName === name);
  const refusal = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as { code: number; message: string });

  it('scales, relabels and changes the restart policy in place: no update starts', async () => {
    await ctx.api.services.createService({ spec: { name: 'web', replicated: { replicas: 2 }, taskTemplate: { container: { image: 'busybox:1', env: ['A=1'] } } } as never });
    await waitFor('2 tasks', () => tasksOf('web').length === 2 || undefined);
    await update('web', (s) => {
      s.replicated = { replicas: 3 } as never;
      s.labels = { team: 'a' };
      s.taskTemplate!.restartPolicy = { condition: api.RestartCondition.RESTART_NONE } as never;
    });
    const svc = stored('web');
    expect(Number(svc.spec?.replicated?.replicas)).toBe(3);
    expect(svc.spec?.labels).toEqual({ team: 'a' });
    expect(Number(svc.spec?.taskTemplate?.restartPolicy?.condition)).toBe(api.RestartCondition.RESTART_NONE);
    expect(Number(svc.updateStatus?.state ?? 0)).toBe(U.UPDATE_UNKNOWN);
    await waitFor('3 tasks', () => tasksOf('web').length === 3 || undefined);
  });

  it('a new image starts a rolling update: the old spec is kept, the first task replaced', async () => {
    const before = tasksOf('web').map((t) => t.id).sort();
    const t0 = Date.now();
    await update('web', (s) => { s.taskTemplate!.container!.image = 'busybox:2'; });
    const svc = stored('web');
    expect(Number(svc.updateStatus?.state)).toBe(U.UPDATE_UPDATING);
    expect(svc.updateStatus?.message).toBe('update in progress');
    expect(Number(svc.updateStatus?.startedAt)).toBeGreaterThanOrEqual(t0);
    expect(svc.previousSpec?.taskTemplate?.container?.image).toBe('busybox:1');
    // Parallelism 1 (the default): one old task shut down, one of the new image made. The others
    // wait for it to run, and no agent runs anything here.
    await waitFor('the first replacement', () => tasksOf('web').some((t) => t.spec?.container?.image === 'busybox:2') || undefined);
    const shut = tasksOf('web').filter((t) => before.includes(t.id) && Number(t.desiredState) > api.TaskState.TASK_RUNNING);
    expect(shut.map((t) => t.shutdownReason)).toEqual(["replaced by the service's new spec"]);
    expect(tasksOf('web').filter((t) => t.spec?.container?.image === 'busybox:2')).toHaveLength(1);
  });

  it('rollback brings the previous spec back, with a rollback under way', async () => {
    const s = await read('web');
    await ctx.api.services.updateService({ serviceId: s.id, version: s.version, rollback: true });
    const svc = stored('web');
    expect(svc.spec?.taskTemplate?.container?.image).toBe('busybox:1');
    expect(svc.previousSpec?.taskTemplate?.container?.image).toBe('busybox:2');
    expect(Number(svc.updateStatus?.state)).toBe(U.UPDATE_ROLLBACK_STARTED);
    expect(svc.updateStatus?.message).toBe('manually requested rollback');
  });

  it('refuses a rollback to a name another service took meanwhile, writing nothing', async () => {
    await update('web', (s) => { s.name = 'web2'; });
    await ctx.api.services.createService({ spec: { name: 'web', replicated: { replicas: 0 }, taskTemplate: { container: { image: 'busybox:1' } } } as never });
    const renamed = await read('web2');
    const err = await refusal(ctx.api.services.updateService({ serviceId: renamed.id, version: renamed.version, rollback: true }));
    expect(err?.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(err?.message).toBe('a service named "web" already exists');
    expect((await read('web2')).version).toBe(renamed.version);
  });

  it('refuses a rollback of a service never updated, and a job\'s template change, writing nothing', async () => {
    await ctx.api.services.createService({ spec: { name: 'once', replicatedJob: { maxConcurrent: 1, totalCompletions: 1 }, taskTemplate: { container: { image: 'busybox:1' } } } as never });
    const job = await read('once');
    const noPrev = await refusal(ctx.api.services.updateService({ serviceId: job.id, version: job.version, rollback: true }));
    expect(noPrev?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(noPrev?.message).toBe('service once has no previous spec to roll back to: it was never updated');
    const err = await refusal(update('once', (s) => { s.taskTemplate!.container!.image = 'busybox:2'; }));
    expect(err?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err?.message).toMatch(/^once is a job: its tasks run to completion, so changing task_template\.container\.image cannot update them; nothing was changed\. Remove the job \(`shoal service rm once`\)/);
    const after = await read('once');
    expect(after.version).toBe(job.version);
    expect(after.spec).toEqual(job.spec);
  });
});
