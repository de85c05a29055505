// Which containers an image is in use by, and how a refusal reads.
import { describe, expect, it } from 'vitest';
import { ImageInUseError, containersOfImage, type ContainerInfo } from '../../../worker/runtime/runtime.js';

const c = (id: string, image: string): ContainerInfo => ({ id, image, labels: {}, state: 'running', pid: 1, stopSignal: 'SIGTERM', stopGraceMs: 10_000 });

describe('containersOfImage', () => {
  it.each([
    { why: 'normalized names match', image: 'shoal.local/busybox:1', want: ['a'] },
    { why: 'a short reference held by a container (the Docker adapter keeps it as given) matches its full name', image: 'docker.io/library/busybox:latest', want: ['b', 'd'] },
    { why: 'another tag of the same repository is another image', image: 'shoal.local/busybox:2', want: [] },
    { why: 'a container whose image field cannot be read as a reference is nobody', image: 'docker.io/library/x:latest', want: [] },
  ])('$why', ({ image, want }) => {
    const all = [c('a', 'shoal.local/busybox:1'), c('d', 'busybox'), c('b', 'docker.io/library/busybox:latest'), c('e', 'Not A Ref'), c('f', '')];
    expect(containersOfImage(all, image)).toEqual(want);
  });
});

describe('ImageInUseError', () => {
  it.each([
    { ids: ['t1'], says: 'in use by 1 container(s) on this node (t1)' },
    { ids: ['t1', 't2', 't3'], says: 'in use by 3 container(s) on this node (t1, t2, t3)' },
    { ids: ['t1', 't2', 't3', 't4', 't5'], says: 'in use by 5 container(s) on this node (t1, t2, t3 and 2 more)' },
  ])('names up to three containers: $ids', ({ ids, says }) => {
    const e = new ImageInUseError('shoal.local/busybox:1', ids);
    expect(e.message).toContain(`image shoal.local/busybox:1 is ${says}`);
    expect(e.message).toMatch(/remove the services or tasks that run it first, or use --force/);
    expect(e.containers).toEqual(ids);
  });
});
