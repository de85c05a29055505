// `UpdateService` applies in place what running tasks need not be replaced for
// (replicas, labels, the restart policy), and refuses a change to what they run
// (image, env, resources, placement...) until shoal has rolling updates, saying
// what to do instead, with nothing written: tasks must never run a mix of specs
// nobody asked for.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { servicesTable, tasksTable } from '../../../manager/cluster/tables.js';
import { api, plain } from '../../../proto/services.js';
import { useTestManagerWithApi } from '../../support/manager.js';
import { waitFor } from '../../support/wait.js';

describe('service updates through the control API', () => {
  const ctx = useTestManagerWithApi();
  const read = async () => {
    // As a client sees it: through protobuf, every default filled in.
    const s = await ctx.api.services.getService('web');
    return { id: s.id, version: Number(s.meta?.version), spec: plain(api.ServiceSpec.decode(api.ServiceSpec.encode(s.spec!).finish())) };
  };
  const update = async (edit: (spec: ReturnType<typeof plain<api.ServiceSpec>>) => void) => {
    const s = await read();
    edit(s.spec);
    return ctx.api.services.updateService({ serviceId: s.id, version: s.version, spec: s.spec as never });
  };
  const tasksOfWeb = () => ctx.t.m.store.view((r) => r.list(tasksTable)).filter((t) => t.serviceName === 'web');

  it('scales, relabels and changes the restart policy in place', async () => {
    await ctx.api.services.createService({ spec: { name: 'web', replicated: { replicas: 2 }, taskTemplate: { container: { image: 'busybox:1', env: ['A=1'] } } } as never });
    await waitFor('2 tasks', () => tasksOfWeb().length === 2 || undefined);
    await update((s) => {
      s.replicated = { replicas: 3 } as never;
      s.labels = { team: 'a' };
      s.taskTemplate!.restartPolicy = { condition: api.RestartCondition.RESTART_NONE } as never;
    });
    const stored = ctx.t.m.store.view((r) => r.list(servicesTable)).find((x) => x.spec?.name === 'web')!;
    expect(Number(stored.spec?.replicated?.replicas)).toBe(3);
    expect(stored.spec?.labels).toEqual({ team: 'a' });
    expect(Number(stored.spec?.taskTemplate?.restartPolicy?.condition)).toBe(api.RestartCondition.RESTART_NONE);
    await waitFor('3 tasks', () => tasksOfWeb().length === 3 || undefined);
  });

  it.each<[string, (s: ReturnType<typeof plain<api.ServiceSpec>>) => void, RegExp]>([
    ['the image', (s) => { s.taskTemplate!.container!.image = 'busybox:2'; }, /changing task_template\.container\.image needs web's tasks replaced/],
    ['env and a memory limit', (s) => {
      s.taskTemplate!.container!.env = ['A=2'];
      s.taskTemplate!.resources = { limits: { memoryBytes: 1 << 26 } } as never;
    }, /changing task_template\.container\.env, task_template\.resources\.limits needs/],
    ['force_update', (s) => { s.taskTemplate!.forceUpdate = 1; }, /changing task_template\.force_update/],
  ])('refuses a change to %s, naming it, and writes nothing', async (_what, edit, message) => {
    const before = await read();
    const taskIds = tasksOfWeb().map((t) => t.id).sort();
    const err = await update((s) => {
      s.replicated = { replicas: 5 } as never; // not applied either: the update is refused whole
      edit(s);
    }).then(() => undefined, (e: unknown) => e as { code: number; message: string });
    expect(err?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err?.message).toMatch(message);
    expect(err?.message).toMatch(/nothing was changed\. Remove the service \(`shoal service rm web`\) and create it again/);
    const after = await read();
    expect(after.version).toBe(before.version);
    expect(after.spec).toEqual(before.spec);
    expect(tasksOfWeb().map((t) => t.id).sort()).toEqual(taskIds);
  });
});
