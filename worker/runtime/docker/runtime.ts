// The Docker Engine adapter of the Runtime interface: the engine's HTTP API on
// its unix socket (through dockerode), one container per task named by the
// task's id, labelled shoal.runtime.ns=<namespace> so list() finds exactly
// shoal's. Images come from the engine's own store: pulled by the engine, or
// loaded from OCI layout tarballs converted on the fly (images.ts).
//
// Output: the engine keeps it in its json-file log; the adapter follows the
// log stream of every container it knows of and appends it to the task's
// logPath (`<time> <stdout|stderr> <text>` lines, or raw), remembering where it
// stands in logPath + '.pos' (logs.ts), so a restarted agent carries on where
// the last one stopped.
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import Docker from 'dockerode';
import { normalizeRef, parseRef } from '../reference.js';
import { SERVICE_CREDENTIALS, type RegistryCredentials } from '../registry.js';
import {
  CONTAINER_ID_RE,
  ContainerExistsError,
  ContainerNotFoundError,
  DEFAULT_STOP_GRACE_MS,
  ImageInUseError,
  ImageNotFoundError,
  containersOfImage,
  pullKey,
  type ContainerInfo,
  type ContainerSpec,
  type ContainerState,
  type ImageInfo,
  type ListedImage,
  type ImageLoadOptions,
  type ImagePullOptions,
  type PullProgress,
  type Runtime,
  type StopOptions,
} from '../runtime.js';
import { engineTreatsInsecure, planLoad, repoTag, saveArchive, type EngineRegistryConfig } from './images.js';
import { FrameDecoder, LogCursor, parsePosition, splitTimestamped, taggedLine, type LogPosition } from './logs.js';
import { L_GRACE, L_LOG, L_NS, L_SIGNAL, LABEL_PREFIX, canonicalSignal, createBody } from './spec.js';

export const DEFAULT_SOCKET = '/var/run/docker.sock';

export interface DockerRuntimeOptions {
  /** The engine's API socket (default /var/run/docker.sock). */
  socket?: string;
  /** Value of the shoal.runtime.ns label on every container; list() returns only those (default shoal). */
  labelNamespace?: string;
  /** Where the adapter keeps its files (default /var/lib/shoal/runtime): the manifest digests of loaded images. */
  stateDir?: string;
  /**
   * Registries (host[:port]) that speak plain HTTP. The engine decides that by
   * its own --insecure-registry list; a pull from one of these that the engine
   * would reach over HTTPS fails at once, saying how to configure dockerd.
   */
  insecureRegistries?: string[];
  /** Let the engine pull images missing locally (default true). */
  pull?: boolean;
  /** Credentials to give the engine for a pull from a registry (the engine's own `docker login` is not used). */
  credentials?: (domain: string) => RegistryCredentials | undefined;
  /** How to give credentials, said when a pull was refused without them. */
  credentialsHint?: string;
  /**
   * What logPath gets: `tagged` (default) one line per message,
   * `<UTC time, seconds> <stdout|stderr> <text>`, the format of the containerd
   * adapter's logger that worker/agent/logs.ts reads; `raw` only the bytes the
   * container wrote.
   */
  logFormat?: 'raw' | 'tagged';
  /** Told about trouble copying a container's output (default: a process warning). */
  onLogError?: (id: string, err: Error) => void;
}

type ContainerJSON = Docker.ContainerInspectInfo & { Config: { Labels?: Record<string, string> | null; Image: string } };
type ImageJSON = { Id: string; RepoDigests?: string[] | null; Config?: { StopSignal?: string } | null };

/** An engine answer that was not a success, or no answer at all. */
export class EngineError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

const CONNECT_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EACCES', 'ENOTSOCK', 'ETIMEDOUT']);

function statusOf(e: unknown): number | undefined {
  return (e as { status?: number; statusCode?: number }).status ?? (e as { statusCode?: number }).statusCode;
}

function isAbort(e: unknown): boolean {
  return (e as Error | undefined)?.name === 'AbortError';
}

/** What the engine said, without dockerode's "(HTTP code 404) no such container -" preamble. */
function engineReason(e: unknown): string {
  const err = e as { json?: unknown; message?: string };
  const j = err.json;
  if (j && typeof j === 'object' && !Buffer.isBuffer(j) && typeof (j as { message?: unknown }).message === 'string') return (j as { message: string }).message.trim();
  if (typeof j === 'string' && j.trim()) return j.trim();
  if (Buffer.isBuffer(j) && j.length) return j.toString('utf8').trim();
  return (err.message ?? String(e)).replace(/^\(HTTP code \d+\)\s*[^-]*-\s*/, '').trim();
}

const live = (c: ContainerJSON): boolean => c.State.Running || c.State.Paused || c.State.Restarting;

function stateOf(c: ContainerJSON): ContainerState {
  switch (c.State.Status) {
    case 'created':
      return 'created';
    case 'running':
      return 'running';
    case 'paused':
      return 'paused';
    case 'exited':
    case 'dead':
      return 'exited';
    default:
      return 'unknown';
  }
}

function toDate(s: string | undefined): Date | undefined {
  if (!s || s.startsWith('0001-01-01')) return undefined;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(what)), ms)))]).finally(() => clearTimeout(timer));
}

/** Follows the newline-separated JSON messages of a pull or load answer: steps to onProgress; resolves with the first error message, if any. */
async function followStream(stream: NodeJS.ReadableStream, onProgress?: (p: PullProgress) => void): Promise<string | undefined> {
  let buf = '';
  let error: string | undefined;
  const take = (line: string): void => {
    const t = line.trim();
    if (!t || error) return;
    try {
      const m = JSON.parse(t) as { error?: string; errorDetail?: { message?: string }; status?: string; id?: string; progressDetail?: { current?: number; total?: number } };
      if (m.error || m.errorDetail?.message) error = (m.errorDetail?.message || m.error)!.trim();
      else if (onProgress && m.status) {
        const { current, total } = m.progressDetail ?? {};
        // The engine names layers by their 12-digit short id; other ids (the tag) belong to the image.
        onProgress({ id: /^[0-9a-f]{12}$/.test(m.id ?? '') ? m.id! : '', status: m.status, ...(total ? { current: current ?? 0, total } : {}) });
      }
    } catch {
      // progress output that is not JSON: ignore
    }
  };
  for await (const chunk of stream) {
    buf += chunk.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      take(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  take(buf);
  return error;
}

interface Follower {
  ac: AbortController;
  done: Promise<void>;
  /** Set when someone asked to follow while this one runs (a restart): look again before ending. */
  again: boolean;
}

interface LoadedRecord {
  /** The engine's image ID (the config digest). */
  id: string;
  /** The manifest digest from the OCI layout. */
  digest: string;
}

export class DockerRuntime implements Runtime {
  readonly docker: Docker;
  readonly socket: string;
  readonly namespace: string;
  private readonly stateDir: string;
  private readonly insecure: Set<string>;
  private readonly pulls = new Map<string, Promise<void>>();
  private readonly followers = new Map<string, Follower>();
  /** Full container ID -> the State.FinishedAt its output has been copied up to. */
  private readonly copied = new Map<string, string>();
  private loaded?: Record<string, LoadedRecord>;
  private registryConfig?: EngineRegistryConfig;
  private closed = false;

  constructor(private readonly opts: DockerRuntimeOptions = {}) {
    this.socket = opts.socket ?? DEFAULT_SOCKET;
    this.namespace = opts.labelNamespace ?? 'shoal';
    this.stateDir = opts.stateDir ?? '/var/lib/shoal/runtime';
    this.insecure = new Set(opts.insecureRegistries ?? []);
    // host: undefined, so that a DOCKER_HOST in the environment does not win over the socket.
    this.docker = new Docker({ socketPath: this.socket, host: undefined });
  }

  /** Run an engine call; failures become EngineErrors that say what was asked and what went wrong. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.engineError(what, e);
    }
  }

  private engineError(what: string, e: unknown): Error {
    if (e instanceof EngineError || isAbort(e)) return e as Error;
    const code = (e as { code?: string }).code;
    if (code && CONNECT_CODES.has(code)) {
      const why =
        code === 'EACCES'
          ? 'permission denied: run shoald as root or as a member of the docker group'
          : code === 'ENOENT'
            ? 'no such socket: is dockerd running, and is this the socket it listens on (option socket)?'
            : `${code}: is dockerd running?`;
      return new EngineError(`${what}: cannot reach the Docker Engine at ${this.socket}: ${why}`, undefined, code);
    }
    return new EngineError(`${what}: ${engineReason(e)}`, statusOf(e), code);
  }

  private isConnectionError(e: unknown): boolean {
    const code = (e as { code?: string }).code;
    return !!code && CONNECT_CODES.has(code) && code !== 'EACCES';
  }

  get endpoint(): string {
    return `docker at ${this.socket}`;
  }

  async ping(): Promise<string> {
    const v = await this.call('ping', () => this.docker.version());
    return v.Version;
  }

  // --- images -------------------------------------------------------------------------------------

  private async imageJSON(name: string): Promise<ImageJSON | undefined> {
    try {
      return (await this.docker.getImage(name).inspect()) as ImageJSON;
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw this.engineError(`image ${name}`, e);
    }
  }

  private loadedRecords(): Record<string, LoadedRecord> {
    if (!this.loaded) {
      try {
        this.loaded = JSON.parse(readFileSync(join(this.stateDir, 'docker-images.json'), 'utf8')) as Record<string, LoadedRecord>;
      } catch {
        this.loaded = {};
      }
    }
    return this.loaded;
  }

  private async saveLoaded(): Promise<void> {
    const file = join(this.stateDir, 'docker-images.json');
    mkdirSync(this.stateDir, { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(this.loadedRecords(), null, 1));
    await rename(tmp, file);
  }

  /**
   * The digest ImageInfo reports: the manifest digest, as the containerd
   * adapter does. A pulled image's comes from its RepoDigests; the engine does
   * not keep one for a loaded image, so loadImage() remembers it; else the
   * engine's image ID (the config digest) is the best there is.
   */
  private digestOf(name: string, img: ImageJSON): string {
    const r = parseRef(name);
    if (r.digest) return r.digest;
    const rec = this.loadedRecords()[name];
    if (rec && rec.id === img.Id) return rec.digest;
    for (const rd of img.RepoDigests ?? []) {
      try {
        const p = parseRef(rd);
        if (p.domain === r.domain && p.path === r.path && p.digest) return p.digest;
      } catch {
        // not a reference we can read
      }
    }
    return img.Id;
  }

  private async engineRegistries(): Promise<EngineRegistryConfig> {
    if (!this.registryConfig) {
      const info = (await this.call('engine info', () => this.docker.info())) as { RegistryConfig?: EngineRegistryConfig };
      this.registryConfig = info.RegistryConfig ?? {};
    }
    return this.registryConfig;
  }

  /**
   * Problems with the insecureRegistries option: registries the engine would
   * reach over HTTPS. Empty when the engine agrees (or cannot tell without
   * resolving a host name).
   */
  async checkRegistries(): Promise<string[]> {
    const rc = await this.engineRegistries();
    const out: string[] = [];
    for (const r of this.insecure) {
      if (engineTreatsInsecure(rc, r) === false) {
        out.push(
          `registry ${r} is listed as insecure (plain HTTP) but the Docker Engine at ${this.socket} would use HTTPS for it: ` +
            `start dockerd with --insecure-registry ${r} (or list it under "insecure-registries" in /etc/docker/daemon.json) and restart it`,
        );
      }
    }
    return out;
  }

  /** `opts.credentials`: this pull's own (a service's), instead of the node's. */
  private async pull(name: string, ref: string, opts: ImagePullOptions = {}): Promise<void> {
    const own = opts.credentials;
    const domain = parseRef(name).domain;
    if (this.insecure.has(domain)) {
      const problems = (await this.checkRegistries()).filter((p) => p.startsWith(`registry ${domain} `));
      if (problems.length) throw new ImageNotFoundError(ref, problems[0]);
    }
    let error: string | undefined;
    try {
      const creds = own ?? this.opts.credentials?.(domain);
      // As the X-Registry-Auth header (the two-argument form): in the options it would also go into the URL.
      const stream = creds
        ? await this.docker.createImage({ username: creds.username, password: creds.password, serveraddress: domain }, { fromImage: name })
        : await this.docker.createImage({ fromImage: name });
      error = await followStream(stream, opts.onProgress);
    } catch (e) {
      const err = this.engineError(`pull ${name}`, e);
      if (err instanceof EngineError && err.code) throw err; // the engine itself is unreachable
      error = engineReason(e);
    }
    if (error) {
      const hint = /HTTP response to HTTPS client/.test(error)
        ? ` (the registry speaks plain HTTP: start dockerd with --insecure-registry ${domain} and list it in insecureRegistries)`
        : !/unauthorized|authentication required|no basic auth credentials/i.test(error)
          ? ''
          : own
            ? ` (with ${SERVICE_CREDENTIALS})`
            : this.opts.credentialsHint && !this.opts.credentials?.(domain)
              ? ` (${this.opts.credentialsHint})`
              : '';
      throw new ImageNotFoundError(ref, `not in the Docker Engine and its pull failed: ${error}${hint}`);
    }
  }

  /** The image present in the engine (pulled when missing and pulling is on). */
  private async image(ref: string, pullOpts?: ImagePullOptions): Promise<{ name: string; img: ImageJSON }> {
    const name = normalizeRef(ref);
    let img = await this.imageJSON(name);
    if (!img) {
      if (this.opts.pull === false) throw new ImageNotFoundError(ref, `no image named ${name} in the Docker Engine, and pulling is turned off`);
      // Concurrent creates of one image share one pull (one per set of credentials).
      const key = pullKey(name, pullOpts?.credentials);
      let p = this.pulls.get(key);
      if (!p) {
        p = this.pull(name, ref, pullOpts).finally(() => this.pulls.delete(key));
        this.pulls.set(key, p);
      }
      await p;
      img = await this.imageJSON(name);
      if (!img) throw new ImageNotFoundError(ref, `the Docker Engine pulled ${name} but does not show it`);
    }
    return { name, img };
  }

  async ensureImage(ref: string, pullOpts?: ImagePullOptions): Promise<ImageInfo> {
    const { name, img } = await this.image(ref, pullOpts);
    return { name, digest: this.digestOf(name, img) };
  }

  async pullImage(ref: string, pullOpts?: ImagePullOptions): Promise<ImageInfo> {
    const name = normalizeRef(ref);
    if (this.opts.pull === false) throw new ImageNotFoundError(ref, 'pulling is turned off for this runtime');
    await this.pull(name, ref, pullOpts);
    const img = await this.imageJSON(name);
    if (!img) throw new ImageNotFoundError(ref, `the Docker Engine pulled ${name} but does not show it`);
    return { name, digest: this.digestOf(name, img) };
  }

  async listImages(): Promise<ListedImage[]> {
    const list = (await this.call('image list', () => this.docker.listImages())) as Array<ImageJSON & { RepoTags?: string[] | null; Size?: number }>;
    const out: ListedImage[] = [];
    for (const img of list) {
      for (const tag of img.RepoTags ?? []) {
        if (tag === '<none>:<none>') continue;
        const name = normalizeRef(tag);
        out.push({ name, digest: this.digestOf(name, img), size: Number(img.Size ?? 0) });
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async removeImage(ref: string, opts: { force?: boolean } = {}): Promise<ImageInfo> {
    const name = normalizeRef(ref);
    const img = await this.imageJSON(name);
    if (!img) throw new ImageNotFoundError(ref, `no image named ${name} in the Docker Engine`);
    if (!opts.force) {
      const users = containersOfImage(await this.list(), name);
      if (users.length) throw new ImageInUseError(name, users);
    }
    const info = { name, digest: this.digestOf(name, img) };
    // The engine untags the name; the image's layers go with its last name. It refuses
    // (409) while a container outside shoal's namespace uses it, unless forced.
    await this.call(`remove image ${name}`, () => this.docker.getImage(name).remove({ force: !!opts.force }));
    const records = this.loadedRecords();
    if (records[name]) {
      delete records[name];
      await this.saveLoaded();
    }
    return info;
  }

  async loadImage(tarPath: string, name?: string, opts: ImageLoadOptions = {}): Promise<ImageInfo[]> {
    const plan = await planLoad(tarPath, name);
    const body = saveArchive(plan);
    const ac = new AbortController();
    let sourceError: Error | undefined;
    body.on('error', (e: Error) => {
      sourceError = e;
      ac.abort();
    });
    let error: string | undefined;
    try {
      // Not quiet: the engine then says Loading layer with its byte counts.
      const res = await this.docker.loadImage(body, { quiet: !opts.onProgress, abortSignal: ac.signal });
      error = await followStream(res, opts.onProgress);
    } catch (e) {
      if (sourceError) throw sourceError;
      throw this.engineError(`load ${tarPath}`, e);
    }
    if (sourceError) throw sourceError;
    if (error) throw new EngineError(`load ${tarPath}: the Docker Engine refused the image: ${error}`);

    const out: ImageInfo[] = [];
    const records = this.loadedRecords();
    for (const img of plan.images) {
      for (const n of img.names) {
        const tag = repoTag(n);
        if (tag) {
          const got = await this.imageJSON(n);
          if (!got) throw new EngineError(`load ${tarPath}: the Docker Engine loaded the image but does not show ${n}`);
          if (got.Id !== img.configDigest) throw new EngineError(`load ${tarPath}: ${n} is ${got.Id} in the Docker Engine, expected ${img.configDigest}`);
          records[n] = { id: img.configDigest, digest: img.manifestDigest };
        }
        out.push({ name: n, digest: img.manifestDigest });
      }
    }
    await this.saveLoaded();
    return out;
  }

  // --- containers ---------------------------------------------------------------------------------

  private checkId(id: string): void {
    if (!CONTAINER_ID_RE.test(id)) throw new Error(`invalid container id "${id}"`);
  }

  /**
   * The container named `id` if it is ours. The engine resolves a name it does
   * not know as an ID prefix, and names are global to the engine: both are
   * ruled out here, so no call ever touches a container outside the namespace.
   */
  private async own(id: string): Promise<ContainerJSON | undefined> {
    this.checkId(id);
    const c = await this.byId(id);
    if (!c || c.Name !== `/${id}` || c.Config.Labels?.[L_NS] !== this.namespace) return undefined;
    return c;
  }

  private async byId(ref: string): Promise<ContainerJSON | undefined> {
    try {
      return (await this.docker.getContainer(ref).inspect()) as ContainerJSON;
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw this.engineError(`inspect container ${ref}`, e);
    }
  }

  async create(spec: ContainerSpec): Promise<void> {
    // Refuse a bad spec before any pull.
    createBody(spec, { namespace: this.namespace, image: spec.image });
    const { name: image, img } = await this.image(spec.image);
    const { name, body } = createBody(spec, { namespace: this.namespace, image, imageStopSignal: img.Config?.StopSignal || undefined });
    try {
      await new Promise((resolve, reject) =>
        this.docker.modem.dial(
          {
            path: '/containers/create?',
            method: 'POST',
            options: { _query: { name }, _body: body },
            statusCodes: { 200: true, 201: true, 400: 'bad parameter', 404: 'no such image', 409: 'conflict', 500: 'server error' },
          },
          (err, data) => (err ? reject(err) : resolve(data)),
        ),
      );
    } catch (e) {
      const status = statusOf(e);
      if (status === 409) throw new ContainerExistsError(spec.id);
      if (status === 404) throw new ImageNotFoundError(spec.image, engineReason(e));
      throw this.engineError(`container ${spec.id}: the Docker Engine refused to create it`, e);
    }
  }

  async start(id: string): Promise<number> {
    const c = await this.own(id);
    if (!c) throw new ContainerNotFoundError(id);
    if (live(c)) {
      this.adopt(c);
      return c.State.Pid ?? 0;
    }
    const logPath = c.Config.Labels?.[L_LOG];
    if (!logPath) throw new Error(`container ${id} has no ${L_LOG} label: it was not created by this adapter`);
    try {
      mkdirSync(dirname(logPath), { recursive: true });
      closeSync(openSync(logPath, 'a'));
    } catch (e) {
      throw new Error(`container ${id}: cannot open its log file ${logPath}: ${(e as Error).message}`);
    }
    try {
      await this.docker.getContainer(c.Id).start();
    } catch (e) {
      if (statusOf(e) !== 304) {
        const reason = engineReason(e);
        const hint = (c.HostConfig as { Init?: boolean } | undefined)?.Init && /docker-init/.test(reason) ? ' (init needs docker-init: on Debian it comes with the tini package)' : '';
        throw this.engineError(`container ${id}: the Docker Engine could not start it`, Object.assign(new Error(reason + hint), { statusCode: statusOf(e) }));
      }
    }
    const now = (await this.byId(c.Id)) ?? c;
    this.follow(now.Id, id, logPath, true);
    // A process that has already ended shows no PID any more.
    return now.State.Pid ?? 0;
  }

  async wait(id: string, signal?: AbortSignal): Promise<number> {
    const c = await this.own(id);
    if (!c) throw new ContainerNotFoundError(id);
    if (c.State.Status === 'created') throw new Error(`container ${id} has not been started: there is no process to wait for`);
    this.adopt(c);
    return this.waitFor(id, c.Id, signal);
  }

  /** The engine's wait (condition not-running), again after the engine went away and came back. */
  private async waitFor(id: string, fullId: string, signal?: AbortSignal): Promise<number> {
    for (let backoff = 100; ; backoff = Math.min(backoff * 2, 2_000)) {
      try {
        const r = (await this.docker.getContainer(fullId).wait({ condition: 'not-running', abortSignal: signal })) as { StatusCode: number; Error?: { Message?: string } | null };
        if (r.Error?.Message) throw new EngineError(`wait for container ${id}: ${r.Error.Message}`);
        return r.StatusCode;
      } catch (e) {
        if (statusOf(e) === 404) throw new ContainerNotFoundError(id);
        if (signal?.aborted || isAbort(e)) throw e;
        if (!this.isConnectionError(e)) throw this.engineError(`wait for container ${id}`, e);
      }
      await abortableSleep(backoff, signal);
      if (signal?.aborted) throw Object.assign(new Error('wait aborted'), { name: 'AbortError' });
    }
  }

  private async kill(fullId: string, signal: string): Promise<void> {
    try {
      await this.docker.getContainer(fullId).kill({ signal });
    } catch (e) {
      // 409: not running (any more); 404: gone.
      const s = statusOf(e);
      if (s !== 409 && s !== 404) throw this.engineError(`kill ${fullId.slice(0, 12)} with ${signal}`, e);
    }
  }

  async stop(id: string, opts: StopOptions = {}): Promise<number | undefined> {
    const c = await this.own(id);
    if (!c) throw new ContainerNotFoundError(id);
    if (c.State.Status === 'created') return undefined;
    if (!live(c)) return c.State.ExitCode;
    const labels = c.Config.Labels ?? {};
    const sig = canonicalSignal(opts.signal ?? labels[L_SIGNAL] ?? 'SIGTERM');
    const grace = opts.graceMs ?? Number(labels[L_GRACE] ?? DEFAULT_STOP_GRACE_MS);
    const ac = new AbortController();
    const exited = this.waitFor(id, c.Id, ac.signal);
    exited.catch(() => undefined);
    try {
      await this.kill(c.Id, sig);
      if (sig !== 'SIGKILL') {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), grace)))]);
        clearTimeout(timer);
        if (!timedOut) return await exited;
        await this.kill(c.Id, 'SIGKILL');
      }
      return await timeout(exited, 30_000, `container ${id} did not exit after SIGKILL`);
    } finally {
      ac.abort();
    }
  }

  async remove(id: string): Promise<void> {
    const c = await this.own(id);
    if (!c) return;
    if (live(c)) {
      await this.kill(c.Id, 'SIGKILL');
      const ac = new AbortController();
      await timeout(this.waitFor(id, c.Id, ac.signal), 10_000, 'exit').catch(() => undefined);
      ac.abort();
    }
    // Let the copier take the last output before the engine deletes its log.
    const f = this.followers.get(c.Id);
    if (f) {
      await timeout(f.done, 2_000, 'log copy').catch(() => undefined);
      f.ac.abort();
    }
    try {
      await this.docker.getContainer(c.Id).remove({ force: true, v: true });
    } catch (e) {
      const s = statusOf(e);
      if (s === 409) {
        // Removal already under way (another remove()): wait for it to finish.
        for (let i = 0; i < 100 && (await this.byId(c.Id)); i++) await abortableSleep(100);
      } else if (s !== 404) throw this.engineError(`remove container ${id}`, e);
    }
    this.copied.delete(c.Id);
    const logPath = c.Config.Labels?.[L_LOG];
    if (logPath) {
      const pos = readPosition(logPath);
      if (pos?.container === c.Id) await rm(`${logPath}.pos`, { force: true });
    }
  }

  private info(c: ContainerJSON): ContainerInfo {
    const own = c.Config.Labels ?? {};
    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(own)) if (!k.startsWith(LABEL_PREFIX)) labels[k] = v;
    const state = stateOf(c);
    return {
      id: c.Name.replace(/^\//, ''),
      image: c.Config.Image,
      labels,
      state,
      pid: live(c) ? (c.State.Pid ?? 0) : 0,
      ...(state === 'exited' ? { exitCode: c.State.ExitCode, exitedAt: toDate(c.State.FinishedAt) } : {}),
      createdAt: toDate(c.Created),
      logPath: own[L_LOG],
      stopSignal: own[L_SIGNAL] ?? 'SIGTERM',
      stopGraceMs: Number(own[L_GRACE] ?? DEFAULT_STOP_GRACE_MS),
    };
  }

  /** Every container of the namespace. Also (re)starts copying the output of those whose output is not all copied. */
  async list(): Promise<ContainerInfo[]> {
    const summaries = await this.call('list containers', () => this.docker.listContainers({ all: true, filters: { label: [`${L_NS}=${this.namespace}`] } }));
    const out: ContainerInfo[] = [];
    // A few inspects at a time: list's summaries lack PIDs and exit codes.
    for (let i = 0; i < summaries.length; i += 8) {
      const batch = await Promise.all(summaries.slice(i, i + 8).map((s) => this.byId(s.Id)));
      for (const c of batch) {
        if (!c || c.Config.Labels?.[L_NS] !== this.namespace) continue;
        this.adopt(c);
        out.push(this.info(c));
      }
    }
    return out;
  }

  async inspect(id: string): Promise<ContainerInfo | undefined> {
    if (!CONTAINER_ID_RE.test(id)) return undefined;
    const c = await this.own(id);
    if (!c) return undefined;
    this.adopt(c);
    return this.info(c);
  }

  /** Stops copying output (a later DockerRuntime resumes it); the engine connection needs no closing. */
  close(): void {
    this.closed = true;
    for (const f of this.followers.values()) f.ac.abort();
  }

  // --- output -------------------------------------------------------------------------------------

  /** Copy the container's output unless it is all copied already. */
  private adopt(c: ContainerJSON): void {
    const logPath = c.Config.Labels?.[L_LOG];
    if (!logPath || c.State.Status === 'created') return;
    if (!live(c) && this.copied.get(c.Id) === c.State.FinishedAt) return;
    this.follow(c.Id, c.Name.replace(/^\//, ''), logPath, false);
  }

  private follow(fullId: string, id: string, logPath: string, restarted: boolean): void {
    if (this.closed) return;
    const running = this.followers.get(fullId);
    if (running) {
      if (restarted) running.again = true;
      return;
    }
    if (restarted) this.copied.delete(fullId);
    const f: Follower = { ac: new AbortController(), again: false, done: Promise.resolve() };
    f.done = this.copy(fullId, id, logPath, f).finally(() => {
      if (this.followers.get(fullId) === f) this.followers.delete(fullId);
    });
    this.followers.set(fullId, f);
  }

  private logError(id: string, err: Error): void {
    if (this.opts.onLogError) this.opts.onLogError(id, err);
    else process.emitWarning(`shoal docker runtime: copying the output of container ${id}: ${err.message}`);
  }

  private async copy(fullId: string, id: string, logPath: string, f: Follower): Promise<void> {
    const signal = f.ac.signal;
    const posPath = `${logPath}.pos`;
    let pos = readPosition(logPath);
    if (pos && pos.container !== fullId) pos = undefined;
    const cursor = new LogCursor(pos);
    const tagged = (this.opts.logFormat ?? 'tagged') === 'tagged';
    let fh: FileHandle | undefined;
    let lastError = '';
    try {
      for (let backoff = 100; !signal.aborted; ) {
        try {
          const c = await this.byId(fullId);
          if (!c) return;
          if (!live(c) && pos?.finishedAt === c.State.FinishedAt && !f.again) {
            this.copied.set(fullId, c.State.FinishedAt);
            return;
          }
          f.again = false;
          if (!fh) {
            mkdirSync(dirname(logPath), { recursive: true });
            fh = await open(logPath, 'a');
          }
          const since = cursor.since;
          const stream = await this.docker.getContainer(fullId).logs({ follow: true, stdout: true, stderr: true, timestamps: true, ...(since ? { since } : {}), abortSignal: signal });
          const frames = new FrameDecoder();
          for await (const chunk of stream) {
            const parts: Buffer[] = [];
            for (const fr of frames.push(chunk as Buffer)) {
              const { time, line } = splitTimestamped(fr.data);
              if (cursor.accept(time)) parts.push(tagged ? taggedLine(time, fr.stream, line) : line);
            }
            if (parts.length) {
              await fh.write(Buffer.concat(parts));
              pos = { container: fullId, ...cursor.position! };
              await writePosition(posPath, pos);
            }
          }
          lastError = '';
          // The stream ends when the container stops (or the engine goes away).
          const now = await this.byId(fullId);
          if (!now) return;
          if (!live(now) && !f.again) {
            pos = { container: fullId, ...(cursor.position ?? { since: '0.000000000', count: 0 }), finishedAt: now.State.FinishedAt };
            await writePosition(posPath, pos);
            this.copied.set(fullId, now.State.FinishedAt);
            return;
          }
          if (f.again) continue;
          // Still running, but the stream ended: the engine restarted, say. Look again soon.
          backoff = 100;
        } catch (e) {
          if (signal.aborted || isAbort(e)) return;
          if (statusOf(e) === 404) return;
          const msg = (e as Error).message;
          if (msg !== lastError) this.logError(id, e instanceof Error ? e : new Error(msg));
          lastError = msg;
        }
        await abortableSleep(backoff, signal);
        backoff = Math.min(backoff * 2, 5_000);
      }
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }
}

function readPosition(logPath: string): LogPosition | undefined {
  try {
    return parsePosition(readFileSync(`${logPath}.pos`, 'utf8'));
  } catch {
    return undefined;
  }
}

async function writePosition(posPath: string, pos: LogPosition): Promise<void> {
  const tmp = `${posPath}.tmp`;
  await writeFile(tmp, JSON.stringify(pos));
  await rename(tmp, posPath);
}
