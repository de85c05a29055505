// Pulling from OCI / Docker registries (the distribution HTTP API v2):
// manifests by tag or digest with content negotiation, blobs streamed, bearer
// tokens fetched on a 401 challenge (and Basic auth where the registry asks for
// it), every document and blob checked against its digest.
import { createHash } from 'node:crypto';
import { isIndex, isManifest, parseJson, type Descriptor, type Index, type Manifest } from './oci.js';
import { parseRef, type ImageRef } from './reference.js';
import { ImageNotFoundError, shortLayerId, type ImagePullOptions, type PullProgress } from './runtime.js';

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Hosts spoken to over plain HTTP besides localhost, 127.0.0.0/8 and [::1] (host or host:port). */
  insecure?: string[];
  credentials?: (domain: string) => RegistryCredentials | undefined;
  /** Where credentials come from, for a refusal when there were none: "add the registry to FILE (`docker login` writes it)". */
  credentialsHint?: string;
  /** Whose credentials a refusal despite credentials names (default: "the username and password this node has for it"). */
  credentialsFrom?: string;
  /** Per request, until the response headers (default 30 s); bodies stream without a limit. */
  timeoutMs?: number;
}

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

/** Parse `Bearer realm="...",service="...",scope="..."`. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const sp = header.indexOf(' ');
  const scheme = (sp < 0 ? header : header.slice(0, sp)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(sp + 1).matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) params[m[1]!.toLowerCase()] = m[2] ?? m[3] ?? '';
  return { scheme, params };
}

function isLoopback(domain: string): boolean {
  const host = domain.startsWith('[') ? domain.slice(0, domain.indexOf(']') + 1) : domain.split(':')[0]!;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function sha256hex(): { update(b: Uint8Array): void; digest(): string } {
  const h = createHash('sha256');
  return { update: (b) => h.update(b), digest: () => `sha256:${h.digest('hex')}` };
}

export class RegistryClient {
  /** Authorization header per domain + repository. */
  private readonly auth = new Map<string, string>();

  constructor(private readonly opts: RegistryOptions = {}) {}

  baseUrl(domain: string): string {
    if (domain === 'docker.io') return 'https://registry-1.docker.io';
    const http = isLoopback(domain) || (this.opts.insecure ?? []).includes(domain);
    return `${http ? 'http' : 'https'}://${domain}`;
  }

  private async request(ref: ImageRef, path: string, accept?: string): Promise<Response> {
    const url = `${this.baseUrl(ref.domain)}/v2/${ref.path}/${path}`;
    const key = `${ref.domain}/${ref.path}`;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = {};
      if (accept) headers.accept = accept;
      const auth = this.auth.get(key);
      if (auth) headers.authorization = auth;
      let res: Response;
      try {
        res = await fetch(url, { headers, redirect: 'follow', signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000) });
      } catch (e) {
        const why = (e as Error).cause ? ((e as Error).cause as Error).message : (e as Error).message;
        throw new RegistryError(
          `cannot reach registry ${ref.domain} (GET ${url}: ${why}): check the image name and that this node can reach the registry, ` +
          'or load the image onto the hosts with `shoal image load`',
        );
      }
      if (res.status !== 401 || attempt > 0) return res;
      const challenge = res.headers.get('www-authenticate');
      await res.body?.cancel();
      if (!challenge) return res;
      this.auth.set(key, await this.authorize(ref, parseChallenge(challenge)));
    }
  }

  private async authorize(ref: ImageRef, ch: { scheme: string; params: Record<string, string> }): Promise<string> {
    const creds = this.opts.credentials?.(ref.domain);
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (ch.scheme === 'basic') {
      if (!basic) throw new RegistryError(`${ref.domain} wants a username and password${this.hint()}`, 401);
      return basic;
    }
    if (ch.scheme !== 'bearer' || !ch.params.realm) throw new RegistryError(`${ref.domain}: unsupported authentication challenge "${ch.scheme}"`, 401);
    const u = new URL(ch.params.realm);
    if (ch.params.service) u.searchParams.set('service', ch.params.service);
    u.searchParams.set('scope', `repository:${ref.path}:pull`);
    const res = await fetch(u, { headers: basic ? { authorization: basic } : {}, signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000) });
    if (!res.ok) throw new RegistryError(`${ref.domain}: token request to ${u.origin}${u.pathname} answered ${res.status}`, res.status);
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`${ref.domain}: token response without a token`);
    return `Bearer ${token}`;
  }

  /** `: <how to give credentials>`, when the caller said where they come from. */
  private hint(): string {
    return this.opts.credentialsHint ? `: ${this.opts.credentialsHint}` : '';
  }

  private async fail(ref: ImageRef, what: string, res: Response): Promise<never> {
    const text = (await res.text().catch(() => '')).trim().slice(0, 300);
    if (res.status === 404) throw new ImageNotFoundError(ref.name, `${what} not found in registry ${ref.domain}`);
    if (res.status === 401 || res.status === 403) {
      const had = this.opts.credentials?.(ref.domain) !== undefined;
      throw new ImageNotFoundError(ref.name, `registry ${ref.domain} refused ${what} (${res.status}): ${text}${had ? ` (with ${this.opts.credentialsFrom ?? 'the username and password this node has for it'})` : this.hint()}`);
    }
    throw new RegistryError(`registry ${ref.domain}: ${what}: HTTP ${res.status} ${text}`, res.status);
  }

  /** A manifest or index by tag or digest, its bytes checked against the digest. */
  async manifest(ref: ImageRef, reference: string): Promise<{ desc: Descriptor; data: Buffer }> {
    const res = await this.request(ref, `manifests/${reference}`, MANIFEST_ACCEPT);
    if (!res.ok) return this.fail(ref, `manifest ${reference}`, res);
    const data = Buffer.from(await res.arrayBuffer());
    const h = sha256hex();
    h.update(data);
    const digest = h.digest();
    if (reference.startsWith('sha256:') && digest !== reference) throw new RegistryError(`registry ${ref.domain}: manifest ${reference} has digest ${digest}`);
    const claimed = res.headers.get('docker-content-digest');
    if (claimed && claimed.startsWith('sha256:') && claimed !== digest) throw new RegistryError(`registry ${ref.domain}: manifest ${reference} is ${digest}, the registry says ${claimed}`);
    let mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    if (!isIndex(mediaType) && !isManifest(mediaType)) {
      mediaType = parseJson<{ mediaType?: string }>(`manifest ${reference}`, data).mediaType ?? '';
      if (!mediaType) {
        // An OCI document without mediaType: an index lists manifests, a manifest has a config.
        const doc = parseJson<Partial<Index & Manifest>>(`manifest ${reference}`, data);
        mediaType = doc.manifests ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json';
      }
    }
    if (!isIndex(mediaType) && !isManifest(mediaType)) throw new RegistryError(`registry ${ref.domain}: manifest ${reference} has unsupported type ${mediaType}`);
    return { desc: { mediaType, digest, size: data.length }, data };
  }

  /** A blob's bytes as a stream that fails at its end if size or digest are wrong. */
  async blob(ref: ImageRef, d: Descriptor): Promise<AsyncIterable<Uint8Array>> {
    const res = await this.request(ref, `blobs/${d.digest}`);
    if (!res.ok || !res.body) return this.fail(ref, `blob ${d.digest}`, res);
    const body = res.body;
    const domain = ref.domain;
    return (async function* () {
      const h = sha256hex();
      let size = 0;
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        size += chunk.byteLength;
        if (size > d.size) throw new RegistryError(`registry ${domain}: blob ${d.digest} is longer than ${d.size} bytes`);
        h.update(chunk);
        yield chunk;
      }
      const got = h.digest();
      if (size !== d.size || got !== d.digest) throw new RegistryError(`registry ${domain}: blob ${d.digest} arrived as ${got} (${size} bytes)`);
    })();
  }

  async blobBytes(ref: ImageRef, d: Descriptor): Promise<Buffer> {
    const parts: Uint8Array[] = [];
    for await (const c of await this.blob(ref, d)) parts.push(c);
    return Buffer.concat(parts);
  }
}

export const isLayer = (d: Descriptor): boolean => /layer|rootfs\.diff/.test(d.mediaType);

/** The words of a layer's progress: while its bytes move, and once they all did. */
export interface ProgressWords {
  moving: string;
  done: string;
}

const DOWNLOAD: ProgressWords = { moving: 'Downloading', done: 'Download complete' };

/** A layer's bytes passed on, with `moving` as they arrive (at most every 100 ms) and `done` at the end. */
export async function* reporting(body: AsyncIterable<Uint8Array>, d: Descriptor, onProgress: (p: PullProgress) => void, words = DOWNLOAD): AsyncIterable<Uint8Array> {
  const id = shortLayerId(d.digest);
  let current = 0;
  let last = 0;
  onProgress({ id, status: words.moving, current, total: d.size });
  for await (const chunk of body) {
    current += chunk.byteLength;
    if (Date.now() - last >= 100) {
      last = Date.now();
      onProgress({ id, status: words.moving, current, total: d.size });
    }
    yield chunk;
  }
  onProgress({ id, status: words.done, current, total: d.size });
}

/** The part of the image store a pull writes to (containerd's ImageStore fits). */
export interface PullTarget {
  withLease<T>(purpose: string, fn: (lease: string) => Promise<T>): Promise<T>;
  ingest(
    d: Descriptor,
    source: {
      what: string;
      has(d: Descriptor, required: boolean): boolean;
      read(d: Descriptor): Promise<Buffer>;
      stream(d: Descriptor): Promise<AsyncIterable<Buffer | Uint8Array>>;
      present?(d: Descriptor): void;
    },
    lease: string,
  ): Promise<boolean>;
  putImage(name: string, target: Descriptor, lease?: string): Promise<void>;
}

/** Whose credentials a refusal names when the pull came with its own. */
export const SERVICE_CREDENTIALS = 'the username and password the service carries (service create --with-registry-auth)';

export class RegistryPuller {
  readonly client: RegistryClient;

  constructor(private readonly opts: RegistryOptions = {}) {
    this.client = new RegistryClient(opts);
  }

  /**
   * Fetch `name` (normalized reference) with everything this platform needs, and register it.
   * `credentials`: this pull's own, instead of the node's (its tokens are not kept for others);
   * `onProgress`: told of each layer's Downloading, Download complete or Already exists.
   */
  async pull(name: string, store: PullTarget, opts: ImagePullOptions = {}): Promise<void> {
    const { credentials, onProgress } = opts;
    const ref = parseRef(name);
    const client = credentials ? new RegistryClient({ ...this.opts, credentials: () => credentials, credentialsFrom: SERVICE_CREDENTIALS }) : this.client;
    const top = await client.manifest(ref, ref.digest ?? ref.tag ?? 'latest');
    const docs = new Map<string, Buffer>([[top.desc.digest, top.data]]);
    const source = {
      what: `${ref.domain}/${ref.path}`,
      // Other platforms' manifests are not fetched.
      has: (d: Descriptor, required: boolean) => required || docs.has(d.digest),
      read: async (d: Descriptor): Promise<Buffer> => {
        const known = docs.get(d.digest);
        if (known) return known;
        const data = isIndex(d.mediaType) || isManifest(d.mediaType) ? (await client.manifest(ref, d.digest)).data : await client.blobBytes(ref, d);
        docs.set(d.digest, data);
        return data;
      },
      stream: async (d: Descriptor) => (onProgress && isLayer(d) ? reporting(await client.blob(ref, d), d, onProgress) : client.blob(ref, d)),
      present: (d: Descriptor) => {
        if (isLayer(d)) onProgress?.({ id: shortLayerId(d.digest), status: 'Already exists' });
      },
    };
    await store.withLease('pull', async (lease) => {
      await store.ingest(top.desc, source, lease);
      await store.putImage(ref.name, top.desc, lease);
    });
  }
}
