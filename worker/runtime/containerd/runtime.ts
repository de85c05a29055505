// The containerd adapter of the Runtime interface: containerd's gRPC API on
// its unix socket, every object in one containerd namespace (default `shoal`),
// rootfs snapshots from the overlayfs snapshotter, processes run by the
// io.containerd.runc.v2 shim. The shim appends stdout and stderr to the task's
// log file itself (a file:// URI), so logging goes on while shoald restarts.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { containerd } from '../../../proto/gen/containerd.js';
import { ContainerdClient, DEFAULT_SOCKET, M, isAlreadyExists, isNotFound, isUnavailable } from './client.js';
import { CreateLease } from './createlease.js';
import { ExitEvents } from './exits.js';
import { ImageStore, type ResolvedImage } from './images.js';
import { installLogger, loggerUri } from './logger.js';
import { normalizeRef } from '../reference.js';
import { buildOciSpec, resolveUser, signalNumber, type OciSpec } from '../spec.js';
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

const Status = containerd.v1.types.Status;
type Process = containerd.v1.types.Process.$Properties;
type Container = containerd.services.containers.v1.Container.$Properties;
type MountProps = containerd.types.Mount.$Properties;

/** containerd's type URL for an OCI runtime spec carried as JSON in an Any. */
export const SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';

/** Labels the adapter keeps on each container for itself (stripped from ContainerInfo.labels). */
export const LABEL_PREFIX = 'shoal.runtime.';
const L_LOG = `${LABEL_PREFIX}log-path`;
const L_SIGNAL = `${LABEL_PREFIX}stop-signal`;
const L_GRACE = `${LABEL_PREFIX}stop-grace-ms`;

/** What stop() and remove() need of a container of ours: where its rootfs is, how it is stopped. */
interface OwnFacts {
  snapshotter?: string | null;
  snapshotKey?: string | null;
  signal: string;
  graceMs: number;
}

function ownFacts(c: Pick<Container, 'snapshotter' | 'snapshotKey' | 'labels'>): OwnFacts {
  return {
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
    signal: c.labels?.[L_SIGNAL] ?? 'SIGTERM',
    graceMs: Number(c.labels?.[L_GRACE] ?? DEFAULT_STOP_GRACE_MS),
  };
}

/** stopTask(): the kill found no process, so what the container is has to be looked up. */
const NO_PROCESS = Symbol('no process');
/** Ends stop()'s wait on the exit once it is no longer needed. */
const STOP_WAIT_DONE = new Error('stop: wait no longer needed');

/** Fetches missing images (worker/runtime/registry.ts: RegistryPuller). */
export interface Puller {
  /** Fetch the image into containerd's content store and register it under `name` (normalized), with this pull's own credentials if given. */
  pull(name: string, images: ImageStore, opts?: ImagePullOptions): Promise<void>;
}

export interface ContainerdRuntimeOptions {
  /** containerd's gRPC socket (default /run/containerd/containerd.sock). */
  socket?: string;
  /** containerd namespace of every object (default shoal). */
  namespace?: string;
  /** Default overlayfs. */
  snapshotter?: string;
  /** Default io.containerd.runc.v2. */
  runtimeName?: string;
  /** cgroup parent of every container (default /shoal): cgroups are <parent>/<id>. */
  cgroupParent?: string;
  /** Static init binary bind-mounted for `init: true` (default /usr/bin/tini-static from Debian's tini). */
  initPath?: string;
  /** Pulls images missing locally; without one ensureImage only finds loaded images. */
  puller?: Puller;
  /** Deadline of ordinary calls (default 60 s). */
  callTimeoutMs?: number;
  /** Where the runtime keeps its files (default /var/lib/shoal/runtime): the logger script. */
  stateDir?: string;
  /**
   * How output reaches the log file: `binary` (default) through the logger
   * script the shim runs; `file` has the shim write it, which loses the last
   * output of a process now and then.
   */
  logMode?: 'binary' | 'file';
}

function toDate(t: { seconds?: number | null; nanos?: number | null } | null | undefined): Date | undefined {
  if (!t || (!t.seconds && !t.nanos)) return undefined;
  return new Date(Number(t.seconds ?? 0) * 1000 + Math.floor(Number(t.nanos ?? 0) / 1e6));
}

function stateOf(p: Process | undefined): ContainerState {
  if (!p) return 'created';
  switch (p.status) {
    case Status.CREATED:
      return 'created';
    case Status.RUNNING:
      return 'running';
    case Status.PAUSED:
    case Status.PAUSING:
      return 'paused';
    case Status.STOPPED:
      return 'exited';
    default:
      return 'unknown';
  }
}

/** Directories of a snapshot's mounts that hold the image's files, topmost first. */
export function rootfsLayers(mounts: MountProps[]): string[] {
  const dirs: string[] = [];
  for (const m of mounts) {
    if (m.type === 'bind' && m.source) dirs.push(m.source);
    else if (m.type === 'overlay') {
      const opt = (k: string): string | undefined => (m.options ?? []).find((o) => o.startsWith(`${k}=`))?.slice(k.length + 1);
      const upper = opt('upperdir');
      if (upper) dirs.push(upper);
      dirs.push(...(opt('lowerdir')?.split(':') ?? []));
    }
  }
  return dirs;
}

const topOf = (img: ResolvedImage): string => img.chain[img.chain.length - 1]!;

function readFromLayers(dirs: string[], file: string): string {
  for (const d of dirs) {
    try {
      return readFileSync(join(d, file), 'utf8');
    } catch {
      // not in this layer
    }
  }
  return '';
}

/**
 * An image found present and unpacked is trusted for this long without asking containerd again:
 * a service's tasks arrive together, and each would otherwise look the image up twice (ensureImage,
 * then create). A tag moved meanwhile is seen once this passes; a snapshot collected meanwhile is
 * noticed by create, which then looks again.
 */
const IMAGE_FRESH_MS = 2_000;

export class ContainerdRuntime implements Runtime {
  readonly client: ContainerdClient;
  readonly images: ImageStore;
  private readonly snapshotter: string;
  private readonly runtimeName: string;
  private readonly pulls = new Map<string, Promise<void>>();
  private readonly freshImages = new Map<string, { img: Promise<ResolvedImage>; until: number }>();
  /** Containers create() just made, with their rootfs mounts: start() needs no lookups for them. */
  private readonly justCreated = new Map<string, { mounts: MountProps[]; logPath: string; own: OwnFacts }>();
  /**
   * Containers this client started, with what stop() would otherwise look up: stop() goes straight
   * to the kill (a scale-down's stop + remove makes 4 calls instead of 6). Should the task be gone
   * meanwhile (exited, or removed by another client), the kill finds nothing and stop() looks.
   */
  private readonly justStarted = new Map<string, OwnFacts>();
  /**
   * Containers stop() just saw end, with where their rootfs is: remove() needs no lookups for them.
   * Should the task have been started again meanwhile, containerd refuses to delete it and
   * remove() takes the careful path.
   */
  private readonly justStopped = new Map<string, OwnFacts>();
  /** Exits from containerd's event stream: wait() needs no call per container. */
  private readonly exits: ExitEvents;
  /** Keeps new rootfs snapshots from collection until their container holds them. */
  private readonly createLease: CreateLease;

  constructor(private readonly opts: ContainerdRuntimeOptions = {}) {
    this.client = new ContainerdClient(opts.socket ?? DEFAULT_SOCKET, opts.namespace ?? 'shoal', opts.callTimeoutMs ?? 60_000);
    this.snapshotter = opts.snapshotter ?? 'overlayfs';
    this.runtimeName = opts.runtimeName ?? 'io.containerd.runc.v2';
    this.images = new ImageStore(this.client, this.snapshotter);
    this.exits = new ExitEvents(this.client, (id) => this.exitOf(id), (id, signal) => this.waitCall(id, signal));
    this.createLease = new CreateLease(this.client);
  }

  /** Event streams confirmed live so far: one while containerd stays up (tests read it). */
  get exitStreamGeneration(): number {
    return this.exits.generation;
  }

  get endpoint(): string {
    return `containerd at ${this.client.socketPath}`;
  }

  async ping(): Promise<string> {
    const v = await this.client.call(M.version, {}, { timeoutMs: 5_000 });
    return v.version;
  }

  // --- images ---------------------------------------------------------------------------------

  /** `fresh`: look again rather than trust the last look; `pull`: fetch from the registry even when present. */
  private image(ref: string, fresh: boolean | 'pull' = false, pullOpts?: ImagePullOptions): Promise<ResolvedImage> {
    const name = normalizeRef(ref);
    const known = this.freshImages.get(name);
    if (!fresh && known && known.until > Date.now()) return known.img;
    // Tasks of one service start together: they share one lookup (its failure is not kept).
    const img = this.lookUpImage(ref, name, fresh === 'pull', pullOpts);
    const entry = { img, until: Number.POSITIVE_INFINITY };
    this.freshImages.set(name, entry);
    img.then(
      () => (entry.until = Date.now() + IMAGE_FRESH_MS),
      () => this.freshImages.get(name) === entry && this.freshImages.delete(name),
    );
    return img;
  }

  private async lookUpImage(ref: string, name: string, pull: boolean, opts: ImagePullOptions = {}): Promise<ResolvedImage> {
    if (pull && !this.opts.puller) throw new Error(`cannot pull ${name}: pulling is not configured for ${this.endpoint}`);
    let img = pull ? undefined : await this.images.getImage(name);
    const puller = img ? undefined : this.opts.puller;
    // Layers this pull fetched: each is "Pull complete" once unpacked (present ones said "Already exists").
    const fetched: string[] = [];
    if (puller) {
      // Concurrent creates of one image share one pull (one per set of credentials).
      const key = pullKey(name, opts.credentials);
      let fetching = this.pulls.get(key);
      if (!fetching) {
        const tell = opts.onProgress;
        const onProgress = tell && ((p: PullProgress) => {
          if (p.status === 'Download complete') fetched.push(p.id);
          tell(p);
        });
        fetching = puller.pull(name, this.images, { ...opts, onProgress }).finally(() => this.pulls.delete(key));
        this.pulls.set(key, fetching);
      }
      await fetching;
      img = await this.images.getImage(name);
    }
    if (!img) {
      throw new ImageNotFoundError(ref, `no image named ${name} in containerd namespace "${this.client.namespace}"${this.opts.puller ? '' : ' and pulling is not configured'}`);
    }
    const r = await this.images.resolve(name, img.target);
    await this.images.unpack(r);
    for (const id of fetched) opts.onProgress?.({ id, status: 'Pull complete' });
    return r;
  }

  async ensureImage(ref: string, pullOpts?: ImagePullOptions): Promise<ImageInfo> {
    const r = await this.image(ref, false, pullOpts);
    return { name: r.name, digest: r.target.digest };
  }

  async pullImage(ref: string, pullOpts?: ImagePullOptions): Promise<ImageInfo> {
    const r = await this.image(ref, 'pull', pullOpts);
    return { name: r.name, digest: r.target.digest };
  }

  loadImage(tarPath: string, name?: string, opts?: ImageLoadOptions): Promise<ImageInfo[]> {
    this.freshImages.clear();
    return this.images.loadOciTar(tarPath, name, opts).finally(() => this.freshImages.clear());
  }

  async listImages(): Promise<ListedImage[]> {
    return (await this.images.listImages()).sort((a, b) => a.name.localeCompare(b.name));
  }

  async removeImage(ref: string, opts: { force?: boolean } = {}): Promise<ImageInfo> {
    const name = normalizeRef(ref);
    const img = await this.images.getImage(name);
    if (!img) throw new ImageNotFoundError(ref, `no image named ${name} in containerd namespace "${this.client.namespace}"`);
    if (!opts.force) {
      const users = containersOfImage(await this.list(), name);
      if (users.length) throw new ImageInUseError(name, users);
    }
    this.freshImages.delete(name);
    await this.images.deleteImage(name);
    return { name, digest: img.target.digest };
  }

  // --- containers -----------------------------------------------------------------------------

  /** The OCI spec create() would write, for a resolved image and snapshot mounts (exposed for tests). */
  specFor(spec: ContainerSpec, img: ResolvedImage, layers: string[]): OciSpec {
    const user = spec.user ?? img.config.config?.User;
    // Names need the image's passwd and group files; numeric users too, for HOME and supplementary groups.
    const u = resolveUser(user, readFromLayers(layers, 'etc/passwd'), readFromLayers(layers, 'etc/group'));
    let initPath: string | undefined;
    if (spec.init) {
      initPath = this.opts.initPath ?? '/usr/bin/tini-static';
      if (!existsSync(initPath)) throw new Error(`container ${spec.id}: init requested but ${initPath} is missing (apt-get install tini)`);
    }
    return buildOciSpec(spec, img.config, u, { cgroupParent: this.opts.cgroupParent, initPath });
  }

  async create(spec: ContainerSpec): Promise<void> {
    if (!CONTAINER_ID_RE.test(spec.id)) throw new Error(`invalid container id "${spec.id}"`);
    if (!isAbsolute(spec.logPath)) throw new Error(`container ${spec.id}: logPath must be absolute`);
    for (const k of Object.keys(spec.labels ?? {})) if (k.startsWith(LABEL_PREFIX)) throw new Error(`label ${k}: the ${LABEL_PREFIX} prefix is reserved`);
    const stopSignal = spec.stopSignal;
    if (stopSignal) signalNumber(stopSignal); // reject bad names now, not at stop time
    let img = await this.image(spec.image);
    await this.createLease.use(
      async (lease) => {
        const prepare = () => this.client.call(M.snapshotPrepare, { snapshotter: this.snapshotter, key: spec.id, parent: topOf(img) }, { lease });
        let prep;
        try {
          prep = await prepare().catch(async (e: unknown) => {
            // The image's snapshot went away since we last looked (removed, collected): look again.
            if (!isNotFound(e)) throw e;
            img = await this.image(spec.image, true);
            return prepare();
          });
        } catch (e) {
          if (!isAlreadyExists(e)) throw e;
          if (await this.exists(spec.id)) throw new ContainerExistsError(spec.id);
          // A rootfs left behind by a create that died halfway.
          await this.client.call(M.snapshotRemove, { snapshotter: this.snapshotter, key: spec.id });
          prep = await prepare();
        }
        try {
          const oci = this.specFor(spec, img, rootfsLayers(prep.mounts ?? []));
          const labels: Record<string, string> = {
            ...(spec.labels ?? {}),
            [L_LOG]: spec.logPath,
            [L_SIGNAL]: stopSignal ?? img.config.config?.StopSignal ?? 'SIGTERM',
            [L_GRACE]: String(spec.stopGraceMs ?? DEFAULT_STOP_GRACE_MS),
          };
          await this.client.call(
            M.containerCreate,
            {
              container: {
                id: spec.id,
                labels,
                image: img.name,
                runtime: { name: this.runtimeName },
                spec: { typeUrl: SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(oci)) },
                snapshotter: this.snapshotter,
                snapshotKey: spec.id,
              },
            },
            { lease },
          );
          this.justCreated.set(spec.id, { mounts: prep.mounts ?? [], logPath: spec.logPath, own: ownFacts({ snapshotter: this.snapshotter, snapshotKey: spec.id, labels }) });
        } catch (e) {
          await this.client.call(M.snapshotRemove, { snapshotter: this.snapshotter, key: spec.id }).catch(() => undefined);
          if (isAlreadyExists(e)) throw new ContainerExistsError(spec.id);
          throw e;
        }
      },
    );
  }

  private async exists(id: string): Promise<boolean> {
    return (await this.getContainer(id)) !== undefined;
  }

  private async getContainer(id: string): Promise<Container | undefined> {
    try {
      return (await this.client.call(M.containerGet, { id })).container ?? undefined;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  private async getTask(id: string): Promise<Process | undefined> {
    try {
      return (await this.client.call(M.taskGet, { containerId: id })).process ?? undefined;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  private async deleteTask(id: string): Promise<void> {
    try {
      await this.client.call(M.taskDelete, { containerId: id });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  async start(id: string): Promise<number> {
    this.justStopped.delete(id);
    this.justStarted.delete(id);
    const fresh = this.justCreated.get(id);
    if (fresh) {
      this.justCreated.delete(id);
      // A container create() made a moment ago: its task straight from the mounts create got.
      const pid = await this.createTask(id, fresh.mounts, fresh.logPath).then(() => this.startTask(id)).catch((e: unknown) => {
        // Changed since create (removed, or started by someone else): the careful path decides.
        if (isNotFound(e) || isAlreadyExists(e)) return undefined;
        throw e;
      });
      if (pid !== undefined) {
        this.justStarted.set(id, fresh.own);
        return pid;
      }
    }
    const c = await this.getContainer(id);
    if (!c) throw new ContainerNotFoundError(id);
    const t = await this.getTask(id);
    if (t?.status === Status.RUNNING || t?.status === Status.PAUSED) return t.pid ?? 0;
    if (t && t.status !== Status.CREATED) await this.deleteTask(id);
    if (!t || t.status !== Status.CREATED) {
      const logPath = c.labels?.[L_LOG];
      if (!logPath) throw new Error(`container ${id} has no log path label`);
      const { mounts } = await this.client.call(M.snapshotMounts, { snapshotter: c.snapshotter || this.snapshotter, key: c.snapshotKey || id });
      await this.createTask(id, mounts ?? [], logPath);
    }
    const pid = await this.startTask(id);
    this.justStarted.set(id, ownFacts(c));
    return pid;
  }

  private async createTask(id: string, rootfs: MountProps[], logPath: string): Promise<void> {
    mkdirSync(dirname(logPath), { recursive: true });
    const uri = this.logUri(logPath);
    await this.client.call(M.taskCreate, { containerId: id, rootfs, stdout: uri, stderr: uri, terminal: false });
  }

  /** Start a created task; one that cannot start is deleted again. */
  private async startTask(id: string): Promise<number> {
    this.exits.starting(id);
    try {
      const pid = (await this.client.call(M.taskStart, { containerId: id })).pid ?? 0;
      this.exits.started(id, pid);
      return pid;
    } catch (e) {
      await this.deleteTask(id).catch(() => undefined);
      throw e;
    }
  }

  private loggerReady = false;

  private logUri(logPath: string): string {
    if (this.opts.logMode === 'file') return pathToFileURL(logPath).href;
    const logger = join(this.opts.stateDir ?? '/var/lib/shoal/runtime', 'shoal-logger');
    if (!this.loggerReady) {
      installLogger(logger);
      this.loggerReady = true;
    }
    return loggerUri(logger, logPath);
  }

  wait(id: string, signal?: AbortSignal): Promise<number> {
    // Outlives containerd restarts: the shim keeps the process, and the event stream comes back.
    return this.exits.wait(id, signal);
  }

  /** One task Wait, for when the event stream cannot be relied on; retried while containerd restarts. */
  private async waitCall(id: string, signal?: AbortSignal): Promise<number> {
    for (let backoff = 100; ; backoff = Math.min(backoff * 2, 2_000)) {
      try {
        return (await this.client.call(M.taskWait, { containerId: id }, { timeoutMs: 0, signal })).exitStatus;
      } catch (e) {
        if (isNotFound(e)) throw new ContainerNotFoundError(id);
        if (!isUnavailable(e) || signal?.aborted) throw e;
      }
      await new Promise((r) => setTimeout(r, backoff));
    }
  }

  /** For the exit stream's look-ups: the exit status of a stopped task, 'running' otherwise. */
  private async exitOf(id: string): Promise<number | 'running'> {
    const t = await this.getTask(id);
    if (!t) throw new ContainerNotFoundError(id);
    return t.status === Status.STOPPED ? t.exitStatus ?? 0 : 'running';
  }

  /** Signals the task's process (all: every process of it); false when it has none any more. */
  private async kill(id: string, sig: number, all: boolean): Promise<boolean> {
    try {
      await this.client.call(M.taskKill, { containerId: id, signal: sig, all });
      return true;
    } catch (e) {
      // The process is already gone.
      if (!isNotFound(e)) throw e;
      return false;
    }
  }

  async stop(id: string, opts: StopOptions = {}): Promise<number | undefined> {
    this.justStopped.delete(id);
    const started = this.justStarted.get(id);
    this.justStarted.delete(id);
    if (started) {
      // Started by this client: nothing to look up unless the kill finds no process.
      const code = await this.stopTask(id, started, 'running', opts);
      if (code !== NO_PROCESS) return code;
    }
    const c = await this.getContainer(id);
    if (!c) throw new ContainerNotFoundError(id);
    const t = await this.getTask(id);
    if (!t) return undefined;
    const own = ownFacts(c);
    if (t.status === Status.STOPPED) {
      this.justStopped.set(id, own);
      return t.exitStatus ?? 0;
    }
    const code = await this.stopTask(id, own, t.status === Status.CREATED ? 'created' : 'looked-up', opts);
    // Only a stop that did not look first can find no process.
    return code === NO_PROCESS ? undefined : code;
  }

  /**
   * Kill the task, gracefully unless it never started, and wait for its exit. `running`: believed
   * running without a look-up; should the kill find no process, NO_PROCESS says to look.
   */
  private async stopTask(id: string, own: OwnFacts, state: 'running' | 'looked-up' | 'created', opts: StopOptions): Promise<number | typeof NO_PROCESS> {
    const ended = (code: number): number => {
      this.justStopped.set(id, own);
      return code;
    };
    const sig = signalNumber(opts.signal ?? own.signal);
    const grace = opts.graceMs ?? own.graceMs;
    const ac = new AbortController();
    const exited = this.wait(id, ac.signal);
    exited.catch(() => undefined);
    try {
      if (state === 'created') {
        // Never started: there is nothing to be graceful with.
        await this.kill(id, 9, true);
      } else {
        if (!(await this.kill(id, sig, false)) && state === 'running') return NO_PROCESS;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), grace)))]);
        clearTimeout(timer);
        if (!timedOut) return ended(await exited);
        await this.kill(id, 9, true);
      }
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        exited,
        new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`container ${id} did not exit after SIGKILL`)), 30_000))),
      ]);
      clearTimeout(timer);
      return ended(code);
    } finally {
      // A reason of our own: abort() would build a DOMException (and its stack) per stop.
      ac.abort(STOP_WAIT_DONE);
    }
  }

  async remove(id: string): Promise<void> {
    this.justCreated.delete(id);
    this.justStarted.delete(id);
    const stopped = this.justStopped.get(id);
    this.justStopped.delete(id);
    // Right after stop() nothing needs looking up, unless the task runs again meanwhile: containerd
    // then refuses the delete ("cannot delete a running process", as UNKNOWN) and we look.
    if (stopped && (await this.deleteTask(id).then(() => true, () => false))) return this.deleteContainer(id, stopped);
    const c = await this.getContainer(id);
    const t = await this.getTask(id);
    if (t && t.status !== Status.STOPPED) await this.stop(id, { signal: 'SIGKILL', graceMs: 0 }).catch(() => undefined);
    if (t) await this.deleteTask(id);
    await this.deleteContainer(id, c ?? undefined);
  }

  /** Once the container has no task: its record (when there is one) and its rootfs snapshot. */
  private async deleteContainer(id: string, c: Pick<Container, 'snapshotter' | 'snapshotKey'> | undefined): Promise<void> {
    if (c) {
      try {
        await this.client.call(M.containerDelete, { id });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    try {
      await this.client.call(M.snapshotRemove, { snapshotter: c?.snapshotter || this.snapshotter, key: c?.snapshotKey || id });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    this.exits.forget(id);
  }

  private info(c: Container, t: Process | undefined): ContainerInfo {
    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(c.labels ?? {})) if (!k.startsWith(LABEL_PREFIX)) labels[k] = v;
    const state = stateOf(t);
    const stop = ownFacts(c);
    return {
      id: c.id ?? '',
      image: c.image ?? '',
      labels,
      state,
      pid: t?.pid ?? 0,
      ...(state === 'exited' ? { exitCode: t!.exitStatus ?? 0, exitedAt: toDate(t!.exitedAt) } : {}),
      createdAt: toDate(c.createdAt),
      logPath: c.labels?.[L_LOG],
      stopSignal: stop.signal,
      stopGraceMs: stop.graceMs,
    };
  }

  async list(): Promise<ContainerInfo[]> {
    const [cs, ts] = await Promise.all([this.client.call(M.containerList, { filters: [] }), this.client.call(M.taskList, { filter: '' })]);
    const tasks = new Map((ts.tasks ?? []).map((t) => [t.containerId || t.id || '', t]));
    return (cs.containers ?? []).map((c) => this.info(c, tasks.get(c.id ?? '')));
  }

  async inspect(id: string): Promise<ContainerInfo | undefined> {
    const c = await this.getContainer(id);
    if (!c) return undefined;
    return this.info(c, await this.getTask(id));
  }

  close(): void {
    this.exits.close();
    // The create lease is left to expire: the client closes now, and whatever it held is referenced by containers by then.
    this.client.close();
  }
}
