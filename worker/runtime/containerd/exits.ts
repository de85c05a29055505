// Task exits from containerd's event stream: one Subscribe per runtime instead
// of one Wait call per running container (each of which also holds a call into
// that container's shim).
//
// A stream only reports what happens after containerd registered it, and
// nothing says when that was. So this client publishes a marker event of its
// own until it comes back: from then on (one "generation" of the stream) every
// exit is seen. A container started during a live generation needs nothing
// more. Any other wait (a container adopted after a restart, or one started
// while the stream was down) looks the task up once after registering, so an
// exit between the two is not lost; so does every wait when a broken stream
// comes back.
//
// Should the marker not come back within a few seconds (or containerd not
// offer the event service), waits fall back to a Wait call each until it does.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { containerd } from '../../../proto/gen/containerd.js';
import { M, isNotFound, isUnavailable, type ContainerdClient } from './client.js';
import { ContainerNotFoundError } from '../runtime.js';

type Envelope = containerd.services.events.v1.Envelope;
const TaskExit = containerd.services.events.v1.TaskExit;

export const EXIT_TOPIC = '/tasks/exit';
const MARKER_TOPIC = '/shoal/exits-subscribed';
const MARKER_TYPE = 'shoal.runtime.ExitsSubscribed';
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2_000;
/** A stream whose marker has not come back by then is not relied on (waits use Wait calls). */
const CONFIRM_TIMEOUT_MS = 5_000;

/** The task's exit status once it has exited, 'running' before; ContainerNotFoundError when it has no task. */
export type ExitLookup = (id: string) => Promise<number | 'running'>;
/** A wait of its own for one container (containerd's task Wait): the fallback. */
export type WaitCall = (id: string, signal?: AbortSignal) => Promise<number>;

interface Waiter {
  resolve(code: number): void;
  reject(e: unknown): void;
}

interface Watched {
  /** The stream generation under which this container's exit cannot be missed (0: not known). */
  gen: number;
  exit?: number;
  pid?: number;
  /** When its current run was asked to start (ms): an exit stamped earlier belongs to a previous run. */
  startedAt?: number;
  waiters: Set<Waiter>;
}

export class ExitEvents {
  /** Generation of the live stream; 0 while none is known to be live. */
  private gen = 0;
  private lastGen = 0;
  private stream: grpc.ClientReadableStream<Envelope> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = RETRY_MIN_MS;
  private closed = false;
  /** The stream cannot be relied on (no marker back, or no event service): waits use waitCall. */
  private fallback = false;
  private readonly watched = new Map<string, Watched>();
  private readonly liveWaiters = new Set<() => void>();

  private readonly confirmTimeoutMs: number;

  constructor(
    private readonly client: Pick<ContainerdClient, 'namespace' | 'stream' | 'call'>,
    private readonly lookup: ExitLookup,
    private readonly waitCall: WaitCall,
    opts: { confirmTimeoutMs?: number } = {},
  ) {
    this.confirmTimeoutMs = opts.confirmTimeoutMs ?? CONFIRM_TIMEOUT_MS;
  }

  /** True while waits go through Wait calls instead of the stream (tests read it). */
  get fallingBack(): boolean {
    return this.fallback;
  }

  /** Streams opened and confirmed live so far (tests read it). */
  get generation(): number {
    return this.lastGen;
  }

  /** Before a container's task is started: its exit is recorded from now on. */
  starting(id: string): void {
    this.connect();
    const w = this.entry(id);
    w.exit = undefined;
    w.pid = undefined;
    w.startedAt = Date.now();
    w.gen = this.gen;
  }

  /** The started process: an exit of another pid is not this run's. */
  started(id: string, pid: number): void {
    const w = this.watched.get(id);
    if (w && pid) w.pid = pid;
  }

  /** The container is gone: nothing more to wait for. */
  forget(id: string): void {
    const w = this.watched.get(id);
    if (!w) return;
    this.watched.delete(id);
    for (const x of w.waiters) x.reject(new ContainerNotFoundError(id));
  }

  /** The exit status of the container's task, once it exits. */
  async wait(id: string, signal?: AbortSignal): Promise<number> {
    this.connect();
    await this.live(signal);
    if (this.fallback) return this.waitCall(id, signal);
    const w = this.entry(id);
    if (w.exit !== undefined) return w.exit;
    return new Promise<number>((resolve, reject) => {
      const done = (): void => {
        w.waiters.delete(waiter);
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        resolve: (code) => (done(), resolve(code)),
        reject: (e) => (done(), reject(e)),
      };
      const onAbort = (): void => waiter.reject(signal!.reason ?? new Error('wait aborted'));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      w.waiters.add(waiter);
      if (w.gen === 0 || w.gen !== this.gen) this.verify(id, w);
    });
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stream?.cancel();
    this.stream = undefined;
    this.gen = 0;
    const err = new Error('containerd runtime closed');
    for (const w of this.watched.values()) for (const x of w.waiters) x.reject(err);
    this.watched.clear();
    this.releaseLiveWaiters();
  }

  // ---- the stream ----

  private entry(id: string): Watched {
    let w = this.watched.get(id);
    if (!w) this.watched.set(id, (w = { gen: 0, waiters: new Set() }));
    return w;
  }

  private live(signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new Error('containerd runtime closed'));
    if (this.gen !== 0 || this.fallback) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.liveWaiters.delete(ready);
        reject(signal!.reason ?? new Error('wait aborted'));
      };
      const ready = (): void => {
        signal?.removeEventListener('abort', onAbort);
        if (this.closed) reject(new Error('containerd runtime closed'));
        else resolve();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.liveWaiters.add(ready);
    });
  }

  private connect(): void {
    if (this.closed || this.stream || this.retryTimer) return;
    const ns = this.client.namespace;
    const nonce = randomUUID();
    const s = this.client.stream(M.eventsSubscribe, {
      filters: [`topic=="${EXIT_TOPIC}",namespace=="${ns}"`, `topic=="${MARKER_TOPIC}",namespace=="${ns}"`],
    });
    this.stream = s;
    let confirmed = false;
    const unconfirmed = setTimeout(() => {
      if (!confirmed && this.stream === s) this.fallBack();
    }, this.confirmTimeoutMs);
    unconfirmed.unref();
    s.on('data', (env: Envelope) => {
      if (env.topic === EXIT_TOPIC) {
        this.onExit(env);
      } else if (!confirmed && env.topic === MARKER_TOPIC && Buffer.from(env.event?.value ?? []).toString() === nonce) {
        confirmed = true;
        clearTimeout(unconfirmed);
        this.retryMs = RETRY_MIN_MS;
        this.fallback = false;
        this.becameLive();
      }
    });
    const ended = (e?: grpc.ServiceError): void => {
      clearTimeout(unconfirmed);
      if (this.stream !== s) return;
      this.stream = undefined;
      this.gen = 0;
      // A containerd without the event service (or that refuses us it) will not grow one.
      if (e?.code === grpc.status.UNIMPLEMENTED || e?.code === grpc.status.PERMISSION_DENIED) this.fallBack();
      if (this.closed) return;
      // Reconnect at once while someone waits; backoff only against a containerd that is down.
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.connect();
      }, this.retryMs);
      this.retryTimer.unref();
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    };
    s.on('error', ended);
    s.on('end', ended);
    void this.announce(s, nonce, () => confirmed);
  }

  /** Publish the marker until the stream delivers it (the Subscribe may register after a first Publish). */
  private async announce(s: grpc.ClientReadableStream<Envelope>, nonce: string, confirmed: () => boolean): Promise<void> {
    for (let ms = 20; !confirmed() && this.stream === s; ms = Math.min(ms * 2, 1_000)) {
      try {
        await this.client.call(M.eventsPublish, { topic: MARKER_TOPIC, event: { typeUrl: MARKER_TYPE, value: Buffer.from(nonce) } }, { timeoutMs: 5_000 });
      } catch (e) {
        // containerd down: the stream breaks too, and its retry starts over.
        if (!isUnavailable(e)) s.cancel();
        return;
      }
      await new Promise((r) => setTimeout(r, ms));
    }
  }

  /** Waits held until the stream is live go on (to the stream, the fallback, or a closed error). */
  private releaseLiveWaiters(): void {
    for (const r of this.liveWaiters) r();
    this.liveWaiters.clear();
  }

  private fallBack(): void {
    this.fallback = true;
    this.releaseLiveWaiters();
  }

  private becameLive(): void {
    this.gen = ++this.lastGen;
    this.releaseLiveWaiters();
    // Exits while no stream was live are not known: look again for whoever waits.
    for (const [id, w] of this.watched) if (w.waiters.size > 0 && w.gen !== this.gen) this.verify(id, w);
  }

  private onExit(env: Envelope): void {
    if (!env.event?.value) return;
    const ev = TaskExit.decode(env.event.value);
    const id = ev.containerId;
    // Exec processes exit too; only the init process (id == container id) ends the task.
    if (!id || (ev.id && ev.id !== id)) return;
    const w = this.watched.get(id);
    if (!w || w.exit !== undefined) return;
    if (w.pid && ev.pid && ev.pid !== w.pid) return;
    const at = ev.exitedAt ? Number(ev.exitedAt.seconds) * 1000 + Math.floor((ev.exitedAt.nanos ?? 0) / 1e6) : undefined;
    if (w.startedAt !== undefined && at !== undefined && at + 1 < w.startedAt) return; // a previous run's
    this.settle(w, ev.exitStatus ?? 0);
  }

  private settle(w: Watched, code: number): void {
    w.exit = code;
    for (const x of [...w.waiters]) x.resolve(code);
  }

  private verify(id: string, w: Watched): void {
    const gen = this.gen;
    this.lookup(id).then(
      (r) => {
        if (r !== 'running') {
          if (w.exit === undefined) this.settle(w, r);
        } else if (gen !== 0 && gen === this.gen && w.gen !== gen) {
          w.gen = gen;
        }
      },
      (e: unknown) => {
        // containerd unreachable: the stream breaks as well, and looks again once it is back.
        if (isUnavailable(e)) return;
        if (e instanceof ContainerNotFoundError || isNotFound(e)) {
          if (this.watched.get(id) === w) this.watched.delete(id);
          for (const x of [...w.waiters]) x.reject(new ContainerNotFoundError(id));
          return;
        }
        for (const x of [...w.waiters]) x.reject(e);
      },
    );
  }
}
