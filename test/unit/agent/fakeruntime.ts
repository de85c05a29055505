// An in-memory Runtime for the task runner's tests: containers whose exits the
// test decides, injectable failures, holds that pause an operation, a log of
// calls, and a check that no two operations ever run on one container at once.
import {
  ContainerExistsError,
  ContainerNotFoundError,
  ImageNotFoundError,
  type ContainerInfo,
  type ContainerSpec,
  type ContainerState,
  type ImageInfo,
  type ListedImage,
  type ImagePullOptions,
  type Runtime,
  type StopOptions,
} from '../../../worker/runtime/runtime.js';

type Op = 'ensureImage' | 'create' | 'start' | 'wait' | 'stop' | 'remove' | 'list' | 'inspect';

interface FakeContainer {
  spec: ContainerSpec;
  state: ContainerState;
  exitCode?: number;
  pid: number;
  exited: Array<(code: number) => void>;
}

/** The error gRPC gives when containerd is down. */
export const unavailable = (): Error => Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 });

export class FakeRuntime implements Runtime {
  readonly images = new Set<string>(['shoal.local/busybox:1']);
  readonly containers = new Map<string, FakeContainer>();
  /** Every call, as "op id". */
  readonly calls: string[] = [];
  /** Operations that met another operation on the same container. */
  readonly overlaps: string[] = [];
  /** Exit code a stop() produces (the process's answer to its stop signal). */
  stopExitCode = 143;
  readonly stopOptions: StopOptions[] = [];
  private readonly busy = new Map<string, string>();
  private readonly failures = new Map<Op, Array<() => Error>>();
  private readonly holds = new Map<Op, Promise<void>>();
  private nextPid = 1000;

  /** The next calls of op throw these errors (made lazily: a factory may change state first). */
  failNext(op: Op, ...errors: Array<() => Error>): void {
    this.failures.set(op, [...(this.failures.get(op) ?? []), ...errors]);
  }

  /** Calls of op wait until the returned function is called. */
  hold(op: Op): () => void {
    let release!: () => void;
    this.holds.set(op, new Promise<void>((r) => (release = r)));
    return () => {
      this.holds.delete(op);
      release();
    };
  }

  count(op: Op, id?: string): number {
    return this.calls.filter((c) => c === (id ? `${op} ${id}` : op) || (!id && c.startsWith(`${op} `))).length;
  }

  /** A container made behind the runner's back (a previous agent, or someone else). */
  addContainer(spec: ContainerSpec, state: ContainerState, exitCode?: number): void {
    this.containers.set(spec.id, { spec, state, exitCode, pid: state === 'running' ? this.nextPid++ : 0, exited: [] });
  }

  /** The container's process ends with code. */
  exit(id: string, code: number): void {
    const c = this.containers.get(id);
    if (!c || c.state !== 'running') throw new Error(`fake: ${id} is not running`);
    this.end(c, code);
  }

  private end(c: FakeContainer, code: number): void {
    c.state = 'exited';
    c.exitCode = code;
    c.pid = 0;
    for (const w of c.exited.splice(0)) w(code);
  }

  private async enter(op: Op, id: string): Promise<() => void> {
    this.calls.push(`${op} ${id}`);
    // wait() only watches (containerd's stop waits alongside it too); every other call changes or reads state.
    const watched = id !== '' && op !== 'wait';
    const other = this.busy.get(id);
    if (watched && other) this.overlaps.push(`${op} during ${other} on ${id}`);
    if (watched) this.busy.set(id, op);
    const leave = (): void => {
      if (this.busy.get(id) === op) this.busy.delete(id);
    };
    try {
      await this.holds.get(op);
      // A turn of the event loop, so that overlapping calls would really overlap.
      await new Promise((r) => setImmediate(r));
      const f = this.failures.get(op)?.shift();
      if (f) throw f();
    } catch (e) {
      leave();
      throw e;
    }
    return leave;
  }

  private get(id: string): FakeContainer {
    const c = this.containers.get(id);
    if (!c) throw new ContainerNotFoundError(id);
    return c;
  }

  readonly endpoint = 'fake runtime';

  async ping(): Promise<string> {
    return 'fake';
  }

  /** The credentials each ensureImage came with (undefined: the node's own). */
  readonly pullAuths: Array<{ ref: string; auth?: ImagePullOptions }> = [];

  async ensureImage(ref: string, auth?: ImagePullOptions): Promise<ImageInfo> {
    this.pullAuths.push({ ref, auth });
    const leave = await this.enter('ensureImage', '');
    leave();
    if (!this.images.has(ref)) throw new ImageNotFoundError(ref, 'not in the fake runtime');
    return { name: ref, digest: 'sha256:0' };
  }

  async loadImage(): Promise<ImageInfo[]> {
    return [];
  }

  async listImages(): Promise<ListedImage[]> {
    return [...this.images].sort().map((name) => ({ name, digest: 'sha256:0', size: 0 }));
  }

  async pullImage(ref: string): Promise<ImageInfo> {
    return this.ensureImage(ref);
  }

  async removeImage(ref: string): Promise<ImageInfo> {
    if (!this.images.delete(ref)) throw new ImageNotFoundError(ref, 'not in the fake runtime');
    return { name: ref, digest: 'sha256:0' };
  }

  async create(spec: ContainerSpec): Promise<void> {
    const leave = await this.enter('create', spec.id);
    try {
      if (this.containers.has(spec.id)) throw new ContainerExistsError(spec.id);
      if (!this.images.has(spec.image)) throw new ImageNotFoundError(spec.image);
      this.addContainer(spec, 'created');
    } finally {
      leave();
    }
  }

  async start(id: string): Promise<number> {
    const leave = await this.enter('start', id);
    try {
      const c = this.get(id);
      if (c.state !== 'running') {
        c.state = 'running';
        c.pid = this.nextPid++;
      }
      return c.pid;
    } finally {
      leave();
    }
  }

  /** Waits ended by their caller's abort signal rather than by an exit. */
  abortedWaits = 0;

  async wait(id: string, signal?: AbortSignal): Promise<number> {
    const leave = await this.enter('wait', id);
    try {
      const c = this.get(id);
      if (c.state === 'exited') return c.exitCode ?? 0;
      if (c.state !== 'running') throw new Error(`container ${id} has no process`);
      return await new Promise<number>((resolve, reject) => {
        const onExit = (code: number): void => resolve(code);
        c.exited.push(onExit);
        signal?.addEventListener('abort', () => {
          this.abortedWaits++;
          c.exited.splice(c.exited.indexOf(onExit), 1);
          reject(Object.assign(new Error('1 CANCELLED: wait aborted'), { code: 1 }));
        }, { once: true });
      });
    } finally {
      leave();
    }
  }

  async stop(id: string, opts?: StopOptions): Promise<number | undefined> {
    const leave = await this.enter('stop', id);
    this.stopOptions.push(opts ?? {});
    try {
      const c = this.get(id);
      if (c.state === 'exited') return c.exitCode;
      if (c.state !== 'running') return undefined;
      this.end(c, this.stopExitCode);
      return this.stopExitCode;
    } finally {
      leave();
    }
  }

  async remove(id: string): Promise<void> {
    const leave = await this.enter('remove', id);
    const c = this.containers.get(id);
    if (c?.state === 'running') this.end(c, 137);
    this.containers.delete(id);
    leave();
  }

  async list(): Promise<ContainerInfo[]> {
    const leave = await this.enter('list', '');
    leave();
    return [...this.containers.values()].map((c) => this.info(c));
  }

  async inspect(id: string): Promise<ContainerInfo | undefined> {
    const leave = await this.enter('inspect', id);
    leave();
    const c = this.containers.get(id);
    return c && this.info(c);
  }

  private info(c: FakeContainer): ContainerInfo {
    return {
      id: c.spec.id,
      image: c.spec.image,
      labels: { ...(c.spec.labels ?? {}) },
      state: c.state,
      pid: c.pid,
      ...(c.state === 'exited' ? { exitCode: c.exitCode ?? 0 } : {}),
      logPath: c.spec.logPath,
      stopSignal: 'SIGTERM',
      stopGraceMs: c.spec.stopGraceMs ?? 10_000,
    };
  }

  close(): void {}
}
