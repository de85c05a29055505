// OCI image-spec documents (index, manifest, config) and the arithmetic around
// them: digests, layer chain IDs and platform matching. Docker's media types
// (schema 2) are accepted wherever the OCI ones are.
import { createHash } from 'node:crypto';

export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Annotation containerd (and `ctr import`) read for an image's full name. */
export const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';
/** OCI's own ref name annotation (usually just the tag). */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** The part of an image config a runtime reads. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
  };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: unknown[];
}

export function isIndex(mediaType: string): boolean {
  return mediaType === MT.ociIndex || mediaType === MT.dockerList;
}

export function isManifest(mediaType: string): boolean {
  return mediaType === MT.ociManifest || mediaType === MT.dockerManifest;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/**
 * Chain IDs of a layer stack (OCI image-spec, "Layer ChainID"): the first is
 * the first layer's diff ID, each next one sha256(previous + " " + diff ID).
 * containerd names committed snapshots by them.
 */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1]} ${d}`));
  return out;
}

/** This machine's platform in OCI terms. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { architecture: arch[process.arch] ?? process.arch, os: 'linux' };
}

/** Pick the manifest for `want` from an index (no platform given counts as a match). */
export function selectManifest(index: Index, want: Platform = hostPlatform()): Descriptor | undefined {
  const manifests = index.manifests.filter((d) => isManifest(d.mediaType) || isIndex(d.mediaType));
  return (
    manifests.find((d) => d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture) ??
    manifests.find((d) => !d.platform)
  );
}

export function parseJson<T>(what: string, data: Buffer): T {
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (e) {
    throw new Error(`${what}: not JSON (${(e as Error).message})`);
  }
}
