// A service's registry credentials (`service create --with-registry-auth`) are stored
// with the service and its tasks, for the agents, but the control API never answers
// with them; an update without any (a scale sends the spec as read) keeps them, and
// one with new ones replaces them.
import { describe, expect, it } from 'vitest';
import { servicesTable, tasksTable } from '../../../manager/cluster/tables.js';
import { encodeRegistryAuth } from '../../../proto/registryauth.js';
import { plain } from '../../../proto/services.js';
import { useTestManagerWithApi } from '../../support/manager.js';
import { waitFor } from '../../support/wait.js';

const AUTH = encodeRegistryAuth({ username: 'alice', password: 'first-secret', serveraddress: '10.0.0.1:5000' });
const NEW_AUTH = encodeRegistryAuth({ username: 'alice', password: 'second-secret', serveraddress: '10.0.0.1:5000' });

describe('registry credentials through the control API', () => {
  const ctx = useTestManagerWithApi();

  const stored = (id: string) => {
    const s = ctx.t.m.store.view((r) => r.get(servicesTable, id))!;
    return s.spec?.taskTemplate?.container?.pullOptions?.registryAuth ?? '';
  };
  const noSecrets = (answer: unknown) => {
    const text = JSON.stringify(answer);
    expect(text).not.toContain(AUTH);
    expect(text).not.toContain(NEW_AUTH);
  };

  it('kept for the agents, never answered with', async () => {
    const spec = { name: 'private', replicated: { replicas: 2 }, taskTemplate: { container: { image: '10.0.0.1:5000/app:1', pullOptions: { registryAuth: AUTH } } } };
    const created = await ctx.api.services.createService({ spec: spec as never });
    noSecrets(created);
    expect(stored(created.id)).toBe(AUTH);
    // Its tasks carry them (the dispatcher sends tasks as stored), the listing does not.
    const tasks = await waitFor('2 tasks', () => {
      const l = ctx.t.m.store.view((r) => r.list(tasksTable)).filter((x) => x.serviceId === created.id);
      return l.length === 2 ? l : undefined;
    });
    expect(tasks.map((x) => x.spec?.container?.pullOptions?.registryAuth)).toEqual([AUTH, AUTH]);
    const listed = await ctx.api.services.listTasks({ serviceIds: [created.id] });
    expect(listed.tasks).toHaveLength(2);
    noSecrets(listed);
    noSecrets(await ctx.api.services.getService('private'));
    noSecrets(await ctx.api.services.listServices({}));
  });

  it('an update without credentials keeps them; one with new credentials replaces them; previous specs are not answered with either', async () => {
    const read = await ctx.api.services.getService('private');
    const scaled = plain(read.spec!);
    scaled.replicated = { replicas: 3 };
    const after = await ctx.api.services.updateService({ serviceId: read.id, version: Number(read.meta?.version), spec: scaled as never });
    noSecrets(after);
    expect(stored(read.id)).toBe(AUTH);
    const again = await ctx.api.services.getService('private');
    const renewed = plain(again.spec!);
    renewed.taskTemplate!.container!.pullOptions = { registryAuth: NEW_AUTH };
    noSecrets(await ctx.api.services.updateService({ serviceId: again.id, version: Number(again.meta?.version), spec: renewed as never }));
    expect(stored(again.id)).toBe(NEW_AUTH);
    const prev = ctx.t.m.store.view((r) => r.get(servicesTable, again.id))!.previousSpec;
    expect(prev?.taskTemplate?.container?.pullOptions?.registryAuth).toBe(AUTH);
    noSecrets(await ctx.api.services.getService('private'));
  });

  it('bad credentials are refused at the edge, naming the field, and nothing is written', async () => {
    const before = (await ctx.api.services.listServices({})).services.length;
    const spec = { name: 'bad', replicated: { replicas: 1 }, taskTemplate: { container: { image: 'busybox', pullOptions: { registryAuth: 'alice:pw' } } } };
    await expect(ctx.api.services.createService({ spec: spec as never })).rejects.toThrow(/task_template\.container\.pull_options\.registry_auth: not base64/);
    expect((await ctx.api.services.listServices({})).services.length).toBe(before);
  });
});
