// Builds OCI image layouts (index.json, oci-layout, blobs/sha256/...) as one
// tarball, deterministically: fixed mtimes and owners, canonical JSON, so the
// same inputs give the same digests on every machine with the same Node.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { tar, type TarFile } from './tar.js';

export const FIXED_MTIME = 946684800; // 2000-01-01T00:00:00Z
const CREATED = new Date(FIXED_MTIME * 1000).toISOString().replace('.000Z', 'Z');

export interface ImageDefinition {
  /** Full image name, e.g. shoal.local/busybox:1 (goes into the index annotations). */
  name: string;
  /** Each layer's files, bottom layer first. */
  layers: TarFile[][];
  config?: {
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    User?: string;
    WorkingDir?: string;
    StopSignal?: string;
    Labels?: Record<string, string>;
  };
  /** gzip the layers (default true, like registries serve them). */
  gzip?: boolean;
  /** OCI architecture (default: this machine's). */
  architecture?: string;
}

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  data: Buffer;
}

export interface BuiltImage {
  name: string;
  manifest: Blob;
  config: Blob;
  layers: (Blob & { diffId: string })[];
  /** The OCI layout as a tarball. */
  tarball: Buffer;
}

export function digestOf(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function blob(mediaType: string, data: Buffer): Blob {
  return { mediaType, digest: digestOf(data), size: data.length, data };
}

function ociArch(): string {
  const m: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' };
  return m[process.arch] ?? process.arch;
}

const desc = (b: Blob): { mediaType: string; digest: string; size: number } => ({ mediaType: b.mediaType, digest: b.digest, size: b.size });

export function buildImage(def: ImageDefinition): BuiltImage {
  const gzip = def.gzip ?? true;
  const layers = def.layers.map((files) => {
    const raw = tar(files);
    const data = gzip ? gzipSync(raw, { level: 9 }) : raw;
    return { ...blob(gzip ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar', data), diffId: digestOf(raw) };
  });
  const c = def.config ?? {};
  const configJson = {
    created: CREATED,
    architecture: def.architecture ?? ociArch(),
    os: 'linux',
    config: {
      ...(c.User ? { User: c.User } : {}),
      Env: c.Env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      ...(c.Entrypoint ? { Entrypoint: c.Entrypoint } : {}),
      ...(c.Cmd ? { Cmd: c.Cmd } : {}),
      WorkingDir: c.WorkingDir ?? '/',
      ...(c.Labels ? { Labels: c.Labels } : {}),
      ...(c.StopSignal ? { StopSignal: c.StopSignal } : {}),
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: CREATED, created_by: 'shoal deploy/images' })),
  };
  const config = blob('application/vnd.oci.image.config.v1+json', Buffer.from(JSON.stringify(configJson)));
  const manifest = blob(
    'application/vnd.oci.image.manifest.v1+json',
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: desc(config), layers: layers.map(desc) })),
  );
  const tag = def.name.slice(def.name.lastIndexOf('/') + 1).split(':')[1] ?? 'latest';
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ ...desc(manifest), annotations: { 'io.containerd.image.name': def.name, 'org.opencontainers.image.ref.name': tag } }],
  };
  const file = (name: string, data: Buffer): TarFile => ({ name, type: 'file', mode: 0o644, mtime: FIXED_MTIME, data });
  const blobs = [...layers, config, manifest];
  const seen = new Set<string>();
  const tarball = tar([
    file('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }))),
    file('index.json', Buffer.from(JSON.stringify(index))),
    { name: 'blobs', type: 'dir', mode: 0o755, mtime: FIXED_MTIME },
    { name: 'blobs/sha256', type: 'dir', mode: 0o755, mtime: FIXED_MTIME },
    ...blobs.filter((b) => !seen.has(b.digest) && seen.add(b.digest)).map((b) => file(`blobs/sha256/${b.digest.slice(7)}`, b.data)),
  ]);
  return { name: def.name, manifest, config, layers, tarball };
}

/** Directories, files and symlinks for a layer, parents created as needed, sorted by path. */
export function layerFiles(entries: { path: string; data?: Buffer | string; mode?: number; symlink?: string }[]): TarFile[] {
  const out = new Map<string, TarFile>();
  const dir = (p: string, mode = 0o755): void => {
    const parts = p.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!out.has(d)) out.set(d, { name: d, type: 'dir', mode: i === parts.length ? mode : 0o755, mtime: FIXED_MTIME });
    }
  };
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '').replace(/\/+$/, '');
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
    if (parent) dir(parent);
    if (e.symlink !== undefined) out.set(path, { name: path, type: 'symlink', mode: 0o777, mtime: FIXED_MTIME, linkname: e.symlink });
    else if (e.data !== undefined) out.set(path, { name: path, type: 'file', mode: e.mode ?? 0o644, mtime: FIXED_MTIME, data: Buffer.from(e.data) });
    else {
      dir(path);
      out.set(path, { name: path, type: 'dir', mode: e.mode ?? 0o755, mtime: FIXED_MTIME });
    }
  }
  return [...out.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
