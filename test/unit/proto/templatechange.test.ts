// Which task-template changes an update would need tasks replaced for: the control API
// refuses those until shoal has rolling updates, and must let through a spec that was
// only read back and sent again.
import { describe, expect, it } from 'vitest';
import { templateChanges } from '../../../proto/templatechange.js';
import { validateServiceSpec } from '../../../manager/controlapi/servicespec.js';
import { api, plain } from '../../../proto/services.js';

const base = () => validateServiceSpec({
  name: 'web',
  replicated: { replicas: 3 },
  taskTemplate: {
    container: { image: 'busybox:1', args: ['sleep', '60'], env: ['A=1'], labels: { tier: 'front' } },
    resources: { limits: { memoryBytes: 64 << 20 } },
    placement: { constraints: ['node.role==worker'] },
    restartPolicy: { condition: api.RestartCondition.RESTART_ON_FAILURE, maxAttempts: 3 },
  },
}).taskTemplate;

type Template = ReturnType<typeof base>;

describe('templateChanges', () => {
  it.each<[string, (t: Template) => void, string[]]>([
    ['nothing', () => undefined, []],
    ['the image', (t) => { t.container.image = 'busybox:2'; }, ['container.image']],
    ['an env entry', (t) => { t.container.env = ['A=2']; }, ['container.env']],
    ['a container label', (t) => { t.container.labels = { tier: 'back' }; }, ['container.labels']],
    ['a memory limit', (t) => { t.resources!.limits!.memoryBytes = 128 << 20; }, ['resources.limits']],
    ['a constraint', (t) => { t.placement!.constraints = ['node.role==manager']; }, ['placement.constraints']],
    ['force_update', (t) => { t.forceUpdate = 1; }, ['force_update']],
    ['image and args', (t) => { t.container.image = 'busybox:2'; t.container.args = []; }, ['container.args', 'container.image']],
    ['the restart policy (read live by the orchestrators)', (t) => { t.restartPolicy!.maxAttempts = 5; }, []],
    ['registry credentials (used by the next pull only)', (t) => { t.container.pullOptions = { registryAuth: 'eyJ9' }; }, []],
  ])('%s', (_what, edit, want) => {
    const next = structuredClone(base());
    edit(next);
    expect(templateChanges(base(), next)).toEqual(want);
  });

  it('64-bit numbers read as Longs equal plain numbers', () => {
    const stored = base();
    const asLong = structuredClone(stored);
    (asLong.resources!.limits as { memoryBytes: unknown }).memoryBytes = { low: 64 << 20, high: 0, unsigned: false };
    expect(templateChanges(stored, asLong)).toEqual([]);
    (asLong.resources!.limits as { memoryBytes: unknown }).memoryBytes = { low: 64 << 20, high: 1, unsigned: false };
    expect(templateChanges(stored, asLong)).toEqual(['resources.limits']);
  });

  it('a template read back through protobuf (every default filled in) equals the stored one', () => {
    const stored = base();
    const asRead = plain(api.TaskSpec.decode(api.TaskSpec.encode(stored as never).finish()));
    expect(JSON.stringify(asRead)).not.toBe(JSON.stringify(stored));
    expect(templateChanges(stored, asRead)).toEqual([]);
    (asRead as { container: { image: string } }).container.image = 'busybox:2';
    expect(templateChanges(stored, asRead)).toEqual(['container.image']);
  });
});
