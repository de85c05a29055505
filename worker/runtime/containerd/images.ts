// Images in containerd: blobs into the content store (the streaming Write
// call), image records (name -> manifest or index descriptor), and unpacking a
// manifest's layers into committed snapshots named by chain ID (Prepare, diff
// Apply, Commit), the way containerd's own client does it.
//
// Garbage collection: containerd deletes whatever nothing references. The
// references are labels: an index names its manifests, a manifest its config
// and layers (containerd.io/gc.ref.content.*), the config the top snapshot
// (containerd.io/gc.ref.snapshot.<snapshotter>), and a committed snapshot its
// parent. While a load or unpack is under way everything it creates belongs to
// a lease, which expires by itself should shoal die halfway.
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { containerd } from '../../../proto/gen/containerd.js';
import { ContainerdClient, M, isAlreadyExists, isNotFound, type CallOptions } from './client.js';
import {
  ANNOTATION_IMAGE_NAME,
  ANNOTATION_REF_NAME,
  DIGEST_RE,
  chainIds,
  sha256,
  isIndex,
  isManifest,
  parseJson,
  selectManifest,
  type Descriptor,
  type ImageConfig,
  type Index,
  type Manifest,
} from '../oci.js';
import { indexImageTar, readTarEntry, type TarEntry } from '../tar.js';
import { normalizeRef } from '../reference.js';
import { ImageNotFoundError, shortLayerId, type ImageInfo, type ImageLoadOptions, type ListedImage } from '../runtime.js';
import { isLayer, reporting } from '../registry.js';

const WriteAction = containerd.services.content.v1.WriteAction;
const CHUNK = 1024 * 1024;

/** An image resolved down to the manifest for this platform. */
export interface ResolvedImage {
  name: string;
  target: Descriptor;
  manifestDigest: string;
  manifest: Manifest;
  config: ImageConfig;
  configDigest: string;
  /** Chain IDs of the layers, bottom first; the last names the image's rootfs snapshot. */
  chain: string[];
}

function toDescriptor(d: { mediaType?: string | null; digest?: string | null; size?: number | null; annotations?: Record<string, string> | null }): Descriptor {
  return { mediaType: d.mediaType ?? '', digest: d.digest ?? '', size: Number(d.size ?? 0), ...(d.annotations && Object.keys(d.annotations).length ? { annotations: d.annotations } : {}) };
}

export class ImageStore {
  private readonly resolved = new Map<string, ResolvedImage>();
  private readonly unpacking = new Map<string, Promise<void>>();

  constructor(
    private readonly c: ContainerdClient,
    readonly snapshotter: string,
  ) {}

  // --- leases ---------------------------------------------------------------------------------

  /** Run fn under a fresh lease that expires by itself after ttlMs; deleted afterwards. */
  async withLease<T>(purpose: string, fn: (lease: string) => Promise<T>, ttlMs = 3_600_000): Promise<T> {
    const id = `shoal-${purpose}-${randomUUID()}`;
    await this.c.call(M.leaseCreate, { id, labels: { 'containerd.io/gc.expire': new Date(Date.now() + ttlMs).toISOString() } });
    try {
      return await fn(id);
    } finally {
      // Nothing waits on the collection of what the lease no longer holds.
      await this.c.call(M.leaseDelete, { id, sync: false }).catch(() => undefined);
    }
  }

  // --- content --------------------------------------------------------------------------------

  async hasBlob(digest: string): Promise<boolean> {
    try {
      await this.c.call(M.contentInfo, { digest });
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  async readBlob(digest: string, o: CallOptions = {}): Promise<Buffer> {
    const parts = await this.c.collect(M.contentRead, { digest }, o);
    return Buffer.concat(parts.map((p) => p.data ?? new Uint8Array()));
  }

  /**
   * Stream a blob into the content store; containerd checks size and digest
   * when it commits. Already present content is not written again.
   */
  async writeBlob(desc: Descriptor, source: AsyncIterable<Buffer | Uint8Array>, lease: string): Promise<void> {
    if (!DIGEST_RE.test(desc.digest)) throw new Error(`unsupported digest "${desc.digest}"`);
    const stream = this.c.bidi(M.contentWrite, { lease, timeoutMs: 30 * 60_000 });
    const ref = `shoal-${desc.digest}`;
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (res: { action: number }) => {
        if (res.action === WriteAction.COMMIT) {
          stream.end();
          resolve();
        }
      });
      stream.on('error', (e: unknown) => (isAlreadyExists(e) ? resolve() : reject(e)));
      stream.on('end', () => reject(new Error(`content write of ${desc.digest} ended without a commit`)));
    });
    const send = (m: containerd.services.content.v1.WriteContentRequest.$Properties): Promise<void> =>
      new Promise((resolve) => {
        if (stream.write(m)) resolve();
        else stream.once('drain', () => resolve());
      });
    let offset = 0;
    let pending: Buffer | undefined;
    try {
      for await (const chunk of source) {
        let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (pending) {
          buf = Buffer.concat([pending, buf]);
          pending = undefined;
        }
        while (buf.length >= CHUNK) {
          await Promise.race([send({ action: WriteAction.WRITE, ref, total: desc.size, expected: desc.digest, offset, data: buf.subarray(0, CHUNK) }), done]);
          offset += CHUNK;
          buf = buf.subarray(CHUNK);
        }
        if (buf.length) pending = Buffer.from(buf);
      }
      if (pending) {
        await Promise.race([send({ action: WriteAction.WRITE, ref, total: desc.size, expected: desc.digest, offset, data: pending }), done]);
        offset += pending.length;
      }
      if (offset !== desc.size) throw new Error(`blob ${desc.digest}: got ${offset} bytes, expected ${desc.size}`);
      await send({ action: WriteAction.COMMIT, ref, total: desc.size, expected: desc.digest, offset });
      await done;
    } catch (e) {
      stream.cancel();
      done.catch(() => undefined);
      throw e;
    }
  }

  /** Set (merge) labels on a blob. */
  async labelBlob(digest: string, labels: Record<string, string>): Promise<void> {
    const keys = Object.keys(labels);
    if (!keys.length) return;
    await this.c.call(M.contentUpdate, { info: { digest, labels }, updateMask: { paths: keys.map((k) => `labels.${k}`) } });
  }

  // --- image records --------------------------------------------------------------------------

  async getImage(name: string): Promise<{ name: string; target: Descriptor } | undefined> {
    try {
      const r = await this.c.call(M.imageGet, { name });
      return { name, target: toDescriptor(r.image?.target ?? {}) };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async putImage(name: string, target: Descriptor, lease?: string): Promise<void> {
    const image = { name, target: { mediaType: target.mediaType, digest: target.digest, size: target.size } };
    try {
      await this.c.call(M.imageCreate, { image }, { lease });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
      await this.c.call(M.imageUpdate, { image, updateMask: { paths: ['target'] } }, { lease });
    }
  }

  async listImages(): Promise<ListedImage[]> {
    const r = await this.c.call(M.imageList, { filters: [] });
    return Promise.all((r.images ?? []).map(async (i) => {
      const name = i.name ?? '';
      const target = toDescriptor(i.target ?? {});
      // Resolving reads the image's documents (cached by digest); content missing (a pull cut
      // short, say) makes the size unknown, not the listing fail.
      const size = await this.resolve(name, target).then(
        (img) => img.manifest.config.size + img.manifest.layers.reduce((sum, l) => sum + l.size, 0),
        () => 0,
      );
      return { name, digest: target.digest, size };
    }));
  }

  async deleteImage(name: string): Promise<void> {
    try {
      await this.c.call(M.imageDelete, { name, sync: false });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  // --- resolving ------------------------------------------------------------------------------

  /** Follow an image's target down to this platform's manifest and its config (cached by digest). */
  async resolve(name: string, target: Descriptor): Promise<ResolvedImage> {
    const hit = this.resolved.get(target.digest);
    if (hit) return hit.name === name ? hit : { ...hit, name, target };
    let desc = target;
    for (let depth = 0; isIndex(desc.mediaType); depth++) {
      if (depth > 4) throw new Error(`image ${name}: indexes nested too deep`);
      const index = parseJson<Index>(`image ${name}: index ${desc.digest}`, await this.readBlob(desc.digest));
      const pick = selectManifest(index);
      if (!pick) throw new Error(`image ${name}: no manifest for this platform in ${desc.digest}`);
      desc = pick;
    }
    if (!isManifest(desc.mediaType)) throw new Error(`image ${name}: unsupported media type ${desc.mediaType}`);
    const manifest = parseJson<Manifest>(`image ${name}: manifest ${desc.digest}`, await this.readBlob(desc.digest));
    const config = parseJson<ImageConfig>(`image ${name}: config ${manifest.config.digest}`, await this.readBlob(manifest.config.digest));
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== manifest.layers.length) {
      throw new Error(`image ${name}: config lists ${diffIds.length} layers, manifest ${manifest.layers.length}`);
    }
    const r: ResolvedImage = { name, target, manifestDigest: desc.digest, manifest, config, configDigest: manifest.config.digest, chain: chainIds(diffIds) };
    this.resolved.set(target.digest, r);
    return r;
  }

  /** The image by (normalized) name, resolved; ImageNotFoundError when containerd has no such image. */
  async find(ref: string): Promise<ResolvedImage> {
    const name = normalizeRef(ref);
    const img = await this.getImage(name);
    if (!img) throw new ImageNotFoundError(ref, `no image named ${name} in containerd namespace "${this.c.namespace}"`);
    return this.resolve(name, img.target);
  }

  // --- unpacking ------------------------------------------------------------------------------

  async hasSnapshot(key: string): Promise<boolean> {
    try {
      await this.c.call(M.snapshotStat, { snapshotter: this.snapshotter, key });
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /** Make sure the image's layers are committed snapshots (concurrent callers share the work). */
  unpack(img: ResolvedImage): Promise<void> {
    const top = img.chain[img.chain.length - 1] ?? '';
    const running = this.unpacking.get(top);
    if (running) return running;
    const p = this.doUnpack(img).finally(() => this.unpacking.delete(top));
    this.unpacking.set(top, p);
    return p;
  }

  private async doUnpack(img: ResolvedImage): Promise<void> {
    const { chain } = img;
    if (!chain.length) throw new Error(`image ${img.name} has no layers`);
    const top = chain[chain.length - 1]!;
    if (await this.hasSnapshot(top)) return;
    await this.withLease('unpack', async (lease) => {
      // Find the deepest layer already there, then apply the rest on top of it.
      let start = chain.length - 1;
      while (start > 0 && !(await this.hasSnapshot(chain[start - 1]!))) start--;
      for (let i = start; i < chain.length; i++) {
        const layer = img.manifest.layers[i]!;
        const key = `shoal-extract-${randomUUID()}-${chain[i]}`;
        const prep = await this.c.call(M.snapshotPrepare, { snapshotter: this.snapshotter, key, parent: i > 0 ? chain[i - 1] : '' }, { lease });
        try {
          const applied = await this.c.call(
            M.diffApply,
            { diff: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size }, mounts: prep.mounts },
            { lease, timeoutMs: 30 * 60_000 },
          );
          const want = img.config.rootfs.diff_ids[i];
          if (applied.applied?.digest !== want) {
            throw new Error(`image ${img.name}: layer ${layer.digest} unpacked to ${applied.applied?.digest}, config says ${want}`);
          }
          await this.c.call(M.snapshotCommit, { snapshotter: this.snapshotter, name: chain[i], key }, { lease });
        } catch (e) {
          await this.c.call(M.snapshotRemove, { snapshotter: this.snapshotter, key }).catch(() => undefined);
          // Someone else committed the same layer meanwhile: theirs is as good as ours.
          if (!isAlreadyExists(e)) throw e;
        }
      }
      await this.labelBlob(img.configDigest, { [`containerd.io/gc.ref.snapshot.${this.snapshotter}`]: top });
    });
  }

  // --- ingesting an image tree ---------------------------------------------------------------

  /**
   * Store a manifest or index and everything under it from `source`, labelled
   * for the garbage collector. What this platform needs is required; other
   * platforms' manifests are stored only if the source has them at hand.
   * Returns false when an optional part was skipped.
   */
  async ingest(d: Descriptor, source: BlobSource, lease: string, required = true, depth = 0): Promise<boolean> {
    if (depth > 4) throw new Error(`${source.what}: indexes nested too deep`);
    if (!source.has(d, required)) {
      if (required) throw new Error(`${source.what}: blob ${d.digest} (${d.mediaType}) is missing`);
      return false;
    }
    if (isIndex(d.mediaType) || isManifest(d.mediaType)) {
      const data = await source.read(d);
      const labels: Record<string, string> = {};
      if (isIndex(d.mediaType)) {
        const idx = parseJson<Index>(`${source.what}: index ${d.digest}`, data);
        const mine = selectManifest(idx);
        let n = 0;
        for (const m of idx.manifests) {
          if (await this.ingest(m, source, lease, required && m === mine, depth + 1)) labels[`containerd.io/gc.ref.content.m.${n++}`] = m.digest;
        }
      } else {
        const man = parseJson<Manifest>(`${source.what}: manifest ${d.digest}`, data);
        if (await this.ingest(man.config, source, lease, required, depth + 1)) labels['containerd.io/gc.ref.content.config'] = man.config.digest;
        for (const [i, l] of man.layers.entries()) {
          if (await this.ingest(l, source, lease, required, depth + 1)) labels[`containerd.io/gc.ref.content.l.${i}`] = l.digest;
        }
      }
      if (!(await this.hasBlob(d.digest))) await this.writeBlob(d, (async function* () { yield data; })(), lease);
      await this.labelBlob(d.digest, labels);
      return true;
    }
    if (!(await this.hasBlob(d.digest))) await this.writeBlob(d, await source.stream(d), lease);
    else source.present?.(d);
    return true;
  }

  // --- loading an OCI layout tarball ----------------------------------------------------------

  async loadOciTar(path: string, nameOverride?: string, opts: ImageLoadOptions = {}): Promise<ImageInfo[]> {
    const entries = await indexImageTar(path);
    const indexEntry = entries.get('index.json');
    if (!indexEntry) {
      const docker = entries.has('manifest.json') ? ' (it looks like a `docker save` archive; only OCI layouts are supported)' : '';
      throw new Error(`${path}: no index.json, not an OCI image layout${docker}`);
    }
    const top = parseJson<Index>(`${path}: index.json`, await readTarEntry(path, indexEntry));
    if (!Array.isArray(top.manifests) || top.manifests.length === 0) throw new Error(`${path}: index.json lists no manifests`);
    const blob = (digest: string): TarEntry | undefined => entries.get(`blobs/${digest.replace(':', '/')}`);
    const entryOf = (d: Descriptor): TarEntry => {
      const e = blob(d.digest);
      if (!e) throw new Error(`${path}: blob ${d.digest} is missing`);
      if (e.size !== d.size) throw new Error(`${path}: blob ${d.digest} has ${e.size} bytes, its descriptor says ${d.size}`);
      return e;
    };
    const source: BlobSource = {
      what: path,
      has: (d) => blob(d.digest) !== undefined,
      read: async (d) => {
        const data = await readTarEntry(path, entryOf(d));
        if (sha256(data) !== d.digest) throw new Error(`${path}: blob ${d.digest} does not match its digest`);
        return data;
      },
      stream: async (d) => {
        const e = entryOf(d);
        const body: AsyncIterable<Uint8Array> = e.size ? createReadStream(path, { start: e.offset, end: e.offset + e.size - 1, highWaterMark: CHUNK }) : (async function* () {})();
        return opts.onProgress && isLayer(d) ? reporting(body, d, opts.onProgress, LOADING) : body;
      },
      present: (d) => {
        if (isLayer(d)) opts.onProgress?.({ id: shortLayerId(d.digest), status: 'Already exists' });
      },
    };

    const named: { name: string; desc: Descriptor }[] = [];
    for (const d of top.manifests) {
      let name = d.annotations?.[ANNOTATION_IMAGE_NAME];
      const refName = d.annotations?.[ANNOTATION_REF_NAME];
      if (!name && refName && /[/:]/.test(refName)) name = refName;
      if (nameOverride && top.manifests.length === 1) name = nameOverride;
      if (name) named.push({ name: normalizeRef(name), desc: d });
    }
    if (!named.length) throw new Error(`${path}: no image name in index.json annotations; pass one`);

    return this.withLease('load', async (lease) => {
      const out: ImageInfo[] = [];
      for (const { name, desc } of named) {
        await this.ingest(desc, source, lease);
        const target: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
        await this.putImage(name, target, lease);
        await this.unpack(await this.resolve(name, target));
        out.push({ name, digest: desc.digest });
      }
      return out;
    });
  }
}

/** `image load`'s words for a layer, as Docker's load says them. */
const LOADING = { moving: 'Loading layer', done: 'Load complete' };

/** Where ingest() gets blobs from: a tarball, a registry. */
export interface BlobSource {
  /** For messages. */
  what: string;
  /** Can the source give this blob? (`required`: this platform needs it.) */
  has(d: Descriptor, required: boolean): boolean;
  /** A small document (manifest, index), digest checked. */
  read(d: Descriptor): Promise<Buffer>;
  /** A blob's bytes; containerd checks size and digest on commit. */
  stream(d: Descriptor): Promise<AsyncIterable<Buffer | Uint8Array>>;
  /** Told of a blob the store has already (so not streamed). */
  present?(d: Descriptor): void;
}
