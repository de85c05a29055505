// `service update` flags applied to the spec as read: docker's add/rm semantics for lists and
// maps, the other flags replacing one value; bad values refused naming the flag.
import { describe, expect, it } from 'vitest';
import type { shoal } from '../../../proto/gen/api.js';
import { api } from '../../../proto/services.js';
import { updateSpec, type UpdateFlags } from '../../../cli/shoal/updateflags.js';

const current = (): shoal.api.IServiceSpec => ({
  name: 'web',
  labels: { team: 'a', tier: 'front' },
  replicated: { replicas: 3 },
  taskTemplate: {
    container: { image: 'app:1', args: ['serve'], env: ['A=1', 'B=2', 'C'], labels: { x: '1' }, mounts: [{ type: api.MountType.MOUNT_TYPE_TMPFS, target: '/cache' }] },
    placement: { constraints: ['node.role==worker'] },
    resources: { limits: { memoryBytes: 1 << 26 } },
    restartPolicy: { condition: api.RestartCondition.RESTART_ANY, delayMs: 5000 },
    forceUpdate: 2,
  },
  updateConfig: { parallelism: 1, delayMs: 0 },
});

describe('updateSpec', () => {
  it.each<[string, UpdateFlags, (s: shoal.api.IServiceSpec) => unknown, unknown]>([
    ['--image', { image: 'app:2' }, (s) => s.taskTemplate?.container?.image, 'app:2'],
    ['--args (shell words)', { args: "sh -c 'echo hi'" }, (s) => s.taskTemplate?.container?.args, ['sh', '-c', 'echo hi']],
    ['--env-add replaces a set variable, adds a new one', { envAdd: ['B=3', 'D=4'] }, (s) => s.taskTemplate?.container?.env, ['A=1', 'C', 'B=3', 'D=4']],
    ['--env-rm by name, with or without a value', { envRm: ['A', 'C'] }, (s) => s.taskTemplate?.container?.env, ['B=2']],
    ['--label-add and --label-rm', { labelAdd: ['team=b'], labelRm: ['tier'] }, (s) => s.labels, { team: 'b' }],
    ['--container-label-rm', { containerLabelRm: ['x'] }, (s) => s.taskTemplate?.container?.labels, {}],
    ['--constraint-add (once) and --constraint-rm', { constraintAdd: ['node.labels.zone==eu', 'node.role==worker'], constraintRm: ['node.role==worker'] },
      (s) => s.taskTemplate?.placement?.constraints, ['node.labels.zone==eu', 'node.role==worker']],
    ['--mount-rm by target, --mount-add', { mountRm: ['/cache'], mountAdd: ['type=tmpfs,target=/tmp'] }, (s) => s.taskTemplate?.container?.mounts?.map((m) => m.target), ['/tmp']],
    ['--replicas', { replicas: '7' }, (s) => s.replicated?.replicas, 7],
    ['--limit-cpu keeps the memory limit', { limitCpu: '0.5' }, (s) => s.taskTemplate?.resources?.limits, { memoryBytes: 1 << 26, nanoCpus: 5e8 }],
    ['--restart-max-attempts keeps the rest of the policy', { restartMaxAttempts: '4' }, (s) => s.taskTemplate?.restartPolicy,
      { condition: api.RestartCondition.RESTART_ANY, delayMs: 5000, maxAttempts: 4 }],
    ['--update-parallelism and --update-order', { updateParallelism: '2', updateOrder: 'start-first' }, (s) => s.updateConfig,
      { parallelism: 2, delayMs: 0, order: api.UpdateOrder.UPDATE_ORDER_START_FIRST }],
    ['--rollback-failure-action', { rollbackFailureAction: 'continue' }, (s) => s.rollbackConfig?.failureAction, api.UpdateFailureAction.FAILURE_ACTION_CONTINUE],
    ['--force bumps force_update', { force: true }, (s) => s.taskTemplate?.forceUpdate, 3],
    ['nothing given: the spec as read', {}, (s) => s, current()],
  ])('%s', (_what, flags, pick, want) => {
    expect(pick(updateSpec(current(), flags, () => undefined))).toEqual(want);
  });

  it.each<[string, UpdateFlags, shoal.api.IServiceSpec | undefined, RegExp]>([
    ['a bad --replicas', { replicas: 'x' }, undefined, /invalid --replicas "x": use a whole number/],
    ['--replicas on a global service', { replicas: '2' }, { name: 'g', global: {}, taskTemplate: { container: { image: 'a' } } }, /--replicas can only be used with replicated or replicated-job mode/],
    ['a rollback that would roll back on failure', { rollbackFailureAction: 'rollback' }, undefined, /invalid --rollback-failure-action "rollback": use one of pause, continue/],
    ['a bad --update-delay', { updateDelay: 'soon' }, undefined, /--update-delay/],
  ])('refuses %s', (_what, flags, spec, error) => {
    expect(() => updateSpec(spec ?? current(), flags, () => undefined)).toThrow(error);
  });

  it('leaves the spec it was given alone', () => {
    const s = current();
    updateSpec(s, { image: 'app:9', envAdd: ['Z=1'] }, () => undefined);
    expect(s).toEqual(current());
  });
});
