// The part of image removal both runtime adapters must show alike, on a real
// runtime: refused while a container of ours was made from the image (naming
// it), forced with the container running on, then gone; other images untouched.
import { join } from 'node:path';
import { expect } from 'vitest';
import { buildBusyboxImage, writeImage } from '../../../deploy/images/busybox.js';
import type { BuiltImage } from '../../../deploy/images/oci-layout.js';
import { ImageInUseError, ImageNotFoundError, type ContainerSpec, type Runtime } from '../../../worker/runtime/runtime.js';

/** Loads an image of its own, runs `id` from it, and removes the image; the container is left running for the caller. */
export async function removeImageInUse(rt: Runtime, dir: string, spec: (id: string, extra: Partial<ContainerSpec>) => ContainerSpec, keep: string): Promise<BuiltImage> {
  const name = 'shoal.local/busybox-rm:1';
  const tarPath = join(dir, 'busybox-rm.tar');
  const built = buildBusyboxImage({ name, applets: ['sh', 'sleep'] });
  writeImage(built, tarPath);
  await rt.loadImage(tarPath);
  await rt.create(spec('rmimg-1', { image: name, command: ['sleep', '1000'], stopGraceMs: 0 }));
  await rt.start('rmimg-1');

  const refused = await rt.removeImage(name).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(ImageInUseError);
  expect((refused as ImageInUseError).containers).toEqual(['rmimg-1']);
  expect((refused as Error).message).toMatch(/in use by 1 container\(s\) on this node \(rmimg-1\).*--force/);
  expect((await rt.listImages()).map((i) => i.name)).toContain(name);

  expect(await rt.removeImage(name, { force: true })).toEqual({ name, digest: built.manifest.digest });
  expect((await rt.listImages()).map((i) => i.name)).not.toContain(name);
  expect((await rt.inspect('rmimg-1'))?.state).toBe('running');
  const again = await rt.removeImage(name).catch((e: unknown) => e);
  expect(again).toBeInstanceOf(ImageNotFoundError);
  expect((again as Error).message).toContain(name);
  expect((await rt.listImages()).map((i) => i.name)).toContain(keep);
  return built;
}
