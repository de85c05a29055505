// Images for lab hosts with their own containerd (containerd.ts): load an OCI
// layout tarball straight into a host's containerd, over its socket, from the
// root namespace (the lab's hosts share the machine's mount namespace, so the
// host's containerd sees the same files and mounts we do).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ContainerdRuntime } from '../../worker/runtime/containerd/runtime.js';
import type { ImageInfo } from '../../worker/runtime/runtime.js';
import { DEFAULT_NAME, DEFAULT_OUT, buildBusyboxImage, writeImage } from '../images/busybox.js';
import { hostContainerd } from './containerd.js';
import type { Lab } from './lab.js';

export const BUSYBOX_IMAGE = DEFAULT_NAME;

/**
 * Waits until the host's containerd answers (up to timeoutMs), so a caller
 * right after `up` does not race containerd's start.
 */
export async function waitContainerd(lab: Lab, host: string, namespace?: string, timeoutMs = 30_000): Promise<string> {
  const c = hostContainerd(lab, host);
  const rt = new ContainerdRuntime({ socket: c.socket, namespace: namespace ?? c.namespace, callTimeoutMs: 5_000 });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        return await rt.ping();
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`containerd of ${host} (${c.socket}) does not answer after ${timeoutMs} ms: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    rt.close();
  }
}

/**
 * Loads an OCI layout tarball into a lab host's containerd, in `namespace`
 * (default: the host's own, which its shoald uses). Idempotent: blobs that
 * are already there are not copied again. Returns the images it registered.
 */
export async function preloadImage(lab: Lab, host: string, tarPath: string, namespace?: string): Promise<ImageInfo[]> {
  const tar = path.resolve(tarPath);
  if (!existsSync(tar)) throw new Error(`${tar}: no such file`);
  const c = hostContainerd(lab, host);
  await waitContainerd(lab, host, namespace);
  const rt = new ContainerdRuntime({ socket: c.socket, namespace: namespace ?? c.namespace });
  try {
    return await rt.loadImage(tar);
  } finally {
    rt.close();
  }
}

/** preloadImage on several hosts (default: all), concurrently. */
export async function preloadImageAll(lab: Lab, tarPath: string, opts: { hosts?: string[]; namespace?: string } = {}): Promise<Record<string, ImageInfo[]>> {
  const hosts = opts.hosts ?? lab.hosts();
  const loaded = await Promise.all(hosts.map((h) => preloadImage(lab, h, tarPath, opts.namespace)));
  return Object.fromEntries(hosts.map((h, i) => [h, loaded[i]!]));
}

/**
 * The busybox test image (deploy/images/busybox.ts, shoal.local/busybox:1) as
 * an OCI tarball, built once into `file` (default
 * /var/lib/shoal-images/busybox.tar, where deploy/up.sh puts it too): the
 * build is deterministic, so a cached tarball is the same image.
 */
export function busyboxTarball(file = DEFAULT_OUT): string {
  if (!existsSync(file)) writeImage(buildBusyboxImage({ name: BUSYBOX_IMAGE }), file);
  return file;
}
