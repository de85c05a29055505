// OCI image layout tarball -> the archive `docker load` (POST /images/load)
// takes. Docker 20.10 only loads `docker save` archives: manifest.json
// ([{Config, RepoTags, Layers}]), the config as <hex>.json and each layer as
// <hex>/layer.tar. The conversion streams: the layout is indexed (tar.ts), the
// small documents are read and checked against their digests, and the layer
// blobs go from the source file into the request as they are; the engine
// decompresses gzip layers itself and checks each against the config's
// diff_ids. Layer digests are checked while streaming; a mismatch aborts the
// upload, so the engine loads nothing.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import {
  ANNOTATION_IMAGE_NAME,
  ANNOTATION_REF_NAME,
  MT,
  isIndex,
  isManifest,
  parseJson,
  selectManifest,
  sha256,
  type Descriptor,
  type ImageConfig,
  type Index,
  type Manifest,
} from '../oci.js';
import { parseRef } from '../reference.js';
import { indexImageTar, readTarEntry, type TarEntry } from '../tar.js';

const LAYER_TYPES: string[] = [MT.ociLayer, MT.ociLayerGzip, MT.dockerLayer, MT.dockerLayerGzip, 'application/vnd.oci.image.layer.nondistributable.v1.tar', 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'];

/** One image of the layout, ready to load. */
export interface LoadImage {
  /** Normalized names (from the annotations or the caller). */
  names: string[];
  manifestDigest: string;
  /** The config's digest: the engine's image ID. */
  configDigest: string;
  config: Buffer;
  layers: Descriptor[];
}

export interface LoadPlan {
  path: string;
  images: LoadImage[];
  entries: Map<string, TarEntry>;
}

/** `docker load` tags only name:tag references: a name with a digest keeps its tag, a digest-only name none. */
export function repoTag(name: string): string | undefined {
  const r = parseRef(name);
  return r.tag ? `${r.domain}/${r.path}:${r.tag}` : undefined;
}

/** Read and check what the layout holds: names, manifests, configs, layer descriptors. */
export async function planLoad(path: string, nameOverride?: string): Promise<LoadPlan> {
  const entries = await indexImageTar(path);
  const indexEntry = entries.get('index.json');
  if (!indexEntry) {
    const docker = entries.has('manifest.json') ? ' (it looks like a `docker save` archive; give an OCI image layout)' : '';
    throw new Error(`${path}: no index.json, not an OCI image layout${docker}`);
  }
  const blobEntry = (d: Descriptor): TarEntry => {
    const e = entries.get(`blobs/${d.digest.replace(':', '/')}`);
    if (!e) throw new Error(`${path}: blob ${d.digest} is missing`);
    if (e.size !== d.size) throw new Error(`${path}: blob ${d.digest} has ${e.size} bytes, its descriptor says ${d.size}`);
    return e;
  };
  const readBlob = async (d: Descriptor): Promise<Buffer> => {
    const data = await readTarEntry(path, blobEntry(d));
    if (sha256(data) !== d.digest) throw new Error(`${path}: blob ${d.digest} does not match its digest`);
    return data;
  };

  const top = parseJson<Index>(`${path}: index.json`, await readTarEntry(path, indexEntry));
  if (!Array.isArray(top.manifests) || top.manifests.length === 0) throw new Error(`${path}: index.json lists no manifests`);
  const byManifest = new Map<string, LoadImage>();
  for (const d of top.manifests) {
    let name = d.annotations?.[ANNOTATION_IMAGE_NAME];
    const refName = d.annotations?.[ANNOTATION_REF_NAME];
    if (!name && refName && /[/:]/.test(refName)) name = refName;
    if (nameOverride && top.manifests.length === 1) name = nameOverride;
    if (!name) continue;
    const normalized = parseRef(name).name;

    // A nested index (multi-platform image): this machine's manifest.
    let desc = d;
    for (let depth = 0; isIndex(desc.mediaType); depth++) {
      if (depth > 4) throw new Error(`${path}: ${name}: indexes nested too deep`);
      const sub = parseJson<Index>(`${path}: index ${desc.digest}`, await readBlob(desc));
      const pick = selectManifest(sub);
      if (!pick) throw new Error(`${path}: ${name}: no manifest for this platform in index ${desc.digest}`);
      desc = pick;
    }
    if (!isManifest(desc.mediaType)) throw new Error(`${path}: ${name}: ${desc.mediaType} is not an image manifest`);
    const known = byManifest.get(desc.digest);
    if (known) {
      if (!known.names.includes(normalized)) known.names.push(normalized);
      continue;
    }
    const manifest = parseJson<Manifest>(`${path}: manifest ${desc.digest}`, await readBlob(desc));
    const config = await readBlob(manifest.config);
    const cfg = parseJson<ImageConfig>(`${path}: config ${manifest.config.digest}`, config);
    const diffIds = cfg.rootfs?.diff_ids ?? [];
    if (diffIds.length !== manifest.layers.length) {
      throw new Error(`${path}: ${name}: the config lists ${diffIds.length} layers, the manifest ${manifest.layers.length}`);
    }
    for (const l of manifest.layers) {
      if (!LAYER_TYPES.includes(l.mediaType)) {
        throw new Error(`${path}: ${name}: layer ${l.digest} is ${l.mediaType}; the Docker Engine 20.10 loads only tar and tar+gzip layers`);
      }
      blobEntry(l); // present, right size
    }
    byManifest.set(desc.digest, { names: [normalized], manifestDigest: desc.digest, configDigest: manifest.config.digest, config, layers: manifest.layers });
  }
  if (byManifest.size === 0) throw new Error(`${path}: no image name in index.json annotations; pass one`);
  return { path, images: [...byManifest.values()], entries };
}

// --- the docker save archive ----------------------------------------------------------------------

const BLOCK = 512;

function putString(buf: Buffer, at: number, len: number, s: string): void {
  buf.write(s, at, Math.min(len, Buffer.byteLength(s)), 'utf8');
}

function putOctal(buf: Buffer, at: number, len: number, n: number): void {
  const digits = n.toString(8);
  if (digits.length <= len - 1) {
    putString(buf, at, len, digits.padStart(len - 1, '0'));
    return;
  }
  // GNU base-256 for what does not fit (files of 8 GiB and more).
  buf[at] = 0x80;
  let v = BigInt(n);
  for (let i = len - 1; i > 0; i--) {
    buf[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

/** A ustar header of a regular file (names here are short: <64 hex>/layer.tar at most). */
export function tarHeader(name: string, size: number, mode = 0o644): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const h = Buffer.alloc(BLOCK);
  putString(h, 0, 100, name);
  putOctal(h, 100, 8, mode);
  putOctal(h, 108, 8, 0);
  putOctal(h, 116, 8, 0);
  putOctal(h, 124, 12, size);
  putOctal(h, 136, 12, 946684800);
  h.fill(0x20, 148, 156);
  h[156] = 0x30; // '0': regular file
  putString(h, 257, 6, 'ustar');
  putString(h, 263, 2, '00');
  let sum = 0;
  for (const b of h) sum += b;
  putString(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest ? BLOCK - rest : 0);
}

/** The manifest.json of the archive for a plan. */
export function saveManifest(plan: LoadPlan): { Config: string; RepoTags: string[]; Layers: string[] }[] {
  return plan.images.map((img) => ({
    Config: `${img.configDigest.slice(7)}.json`,
    RepoTags: img.names.map(repoTag).filter((t): t is string => t !== undefined),
    Layers: img.layers.map((l) => `${l.digest.slice(7)}/layer.tar`),
  }));
}

async function* archive(plan: LoadPlan): AsyncGenerator<Buffer> {
  const file = function* (name: string, data: Buffer): Generator<Buffer> {
    yield tarHeader(name, data.length);
    yield data;
    yield padding(data.length);
  };
  yield* file('manifest.json', Buffer.from(JSON.stringify(saveManifest(plan))));
  const written = new Set<string>();
  for (const img of plan.images) {
    const configName = `${img.configDigest.slice(7)}.json`;
    if (!written.has(configName)) {
      written.add(configName);
      yield* file(configName, img.config);
    }
    for (const l of img.layers) {
      const name = `${l.digest.slice(7)}/layer.tar`;
      if (written.has(name)) continue;
      written.add(name);
      const e = plan.entries.get(`blobs/${l.digest.replace(':', '/')}`)!;
      yield tarHeader(name, e.size);
      const hash = createHash('sha256');
      if (e.size > 0) {
        for await (const chunk of createReadStream(plan.path, { start: e.offset, end: e.offset + e.size - 1, highWaterMark: 1024 * 1024 })) {
          hash.update(chunk as Buffer);
          yield chunk as Buffer;
        }
      }
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== l.digest) throw new Error(`${plan.path}: layer ${l.digest} does not match its digest (got ${got})`);
      yield padding(e.size);
    }
  }
  yield Buffer.alloc(2 * BLOCK);
}

/** The docker save archive of a plan, as a stream; it errors (and so aborts an upload) on a bad layer. */
export function saveArchive(plan: LoadPlan): Readable {
  return Readable.from(archive(plan), { objectMode: false });
}

// --- registries -----------------------------------------------------------------------------------

/** The part of GET /info's RegistryConfig that decides HTTPS or plain HTTP. */
export interface EngineRegistryConfig {
  InsecureRegistryCIDRs?: string[] | null;
  IndexConfigs?: Record<string, { Secure?: boolean }> | null;
}

function ipv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function inCidr(ip: number, cidr: string): boolean {
  const [net, bits] = cidr.split('/');
  const base = ipv4(net ?? '');
  const n = Number(bits);
  if (base === undefined || !Number.isInteger(n) || n < 0 || n > 32) return false;
  const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
  return ((ip & mask) >>> 0) === ((base & mask) >>> 0);
}

/**
 * Will the engine talk plain HTTP to this registry (host[:port])? The
 * engine's rule: a registry listed by name decides; otherwise its address
 * inside one of the insecure CIDRs (127.0.0.0/8 by default). A host name the
 * engine would have to resolve first gives undefined: not known here.
 */
export function engineTreatsInsecure(rc: EngineRegistryConfig, domain: string): boolean | undefined {
  const listed = rc.IndexConfigs?.[domain];
  if (listed && typeof listed.Secure === 'boolean') return !listed.Secure;
  const host = domain.startsWith('[') ? domain.slice(1, domain.indexOf(']')) : domain.replace(/:\d+$/, '');
  const ip = host === 'localhost' ? ipv4('127.0.0.1') : ipv4(host);
  if (ip === undefined) return undefined;
  return (rc.InsecureRegistryCIDRs ?? []).some((c) => inCidr(ip, c));
}
