// When a node's heartbeat description is news to the store: anything `node ls`
// shows or the scheduler uses, and nothing else (field order, absent vs empty).
import { describe, expect, it } from 'vitest';
import { descriptionChanged } from '../../../manager/cluster/dispatcher.js';

const stored = {
  hostname: 'host4',
  platform: { os: 'linux', architecture: 'x64' },
  resources: { nanoCpus: 2e9, memoryBytes: 4 * 2 ** 30 },
  version: '0.1.0',
  engineLabels: { a: '1', b: '2' },
};

describe('descriptionChanged', () => {
  it.each([
    { case: 'the same description', reported: { ...stored }, changed: false },
    { case: 'labels in another order', reported: { ...stored, engineLabels: { b: '2', a: '1' } }, changed: false },
    { case: 'int64 fields decoded as strings', reported: { ...stored, resources: { nanoCpus: '2000000000', memoryBytes: String(4 * 2 ** 30) } }, changed: false },
    { case: 'another hostname', reported: { ...stored, hostname: 'host4b' }, changed: true },
    { case: 'another version (an upgrade)', reported: { ...stored, version: '0.2.0' }, changed: true },
    { case: 'more memory', reported: { ...stored, resources: { ...stored.resources, memoryBytes: 8 * 2 ** 30 } }, changed: true },
    { case: 'fewer CPUs', reported: { ...stored, resources: { ...stored.resources, nanoCpus: 1e9 } }, changed: true },
    { case: 'another architecture', reported: { ...stored, platform: { os: 'linux', architecture: 'arm64' } }, changed: true },
    { case: 'a label added', reported: { ...stored, engineLabels: { ...stored.engineLabels, c: '3' } }, changed: true },
    { case: 'a label changed', reported: { ...stored, engineLabels: { a: '1', b: '3' } }, changed: true },
  ])('$case: changed=$changed', ({ reported, changed }) => {
    expect(descriptionChanged(reported as never, stored)).toBe(changed);
  });

  it('anything is news when the store has no description yet', () => {
    expect(descriptionChanged(stored, null)).toBe(true);
    expect(descriptionChanged(stored, undefined)).toBe(true);
  });
});
