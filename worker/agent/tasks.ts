// The worker's task runner: turns the managers' assignments into containers
// with Swarm's worker semantics. One driver (an async loop) per task does every
// runtime call of that task, so no two operations ever meet on one container;
// assign() only records what the managers want and wakes the driver.
//
// Container id = task id, and every container carries shoal.task.id, so a
// restarted agent finds what runs (start()) and adopts it instead of starting
// a second copy. A task is never run twice: terminal states are final, and a
// task the managers saw starting whose container is gone is failed, not rerun.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { api, type Task, type TaskStatus } from '../../proto/services.js';
import { ContainerExistsError, ContainerNotFoundError, type ContainerInfo, type Runtime } from '../runtime/runtime.js';
import { LABEL_TASK_ID, TaskSpecError, logPathOf, pullAuthOf, toContainerSpec, type TaskContainer } from './containerspec.js';
import { hasCode } from './errorcodes.js';

const S = api.TaskState;
type State = TaskStatus['state'];

export interface TaskRunnerOptions {
  runtime: Runtime;
  nodeId: string;
  /** Task output goes to <logDir>/<taskId>.log. */
  logDir: string;
  /** Named volumes are <volumeDir>/<name>: local directories, created on demand, bind-mounted. */
  volumeDir: string;
  /** Called on every observed state change, in order per task. */
  report(update: { taskId: string; status: TaskStatus }): void;
  logger: { info(o: object, m?: string): void; warn(o: object, m?: string): void; debug(o: object, m?: string): void };
  /** Backoff of retries after transient runtime errors (default 200 ms doubling up to 10 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Where a task's driver is. `ended`: terminal, only cleanup left. */
type Phase = 'new' | 'fresh' | 'imaged' | 'created' | 'running' | 'ended';

/** A wakeup that is not lost when it fires while nobody waits. */
class Wake {
  private pending = false;
  private waiter?: () => void;
  private promise?: Promise<void>;

  fire(): void {
    this.pending = true;
    const w = this.waiter;
    this.waiter = this.promise = undefined;
    w?.();
  }

  /** Forget earlier wakeups: the caller is about to look at the state anyway. */
  clear(): void {
    this.pending = false;
  }

  wait(): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    this.promise ??= new Promise<void>((r) => (this.waiter = r));
    return this.promise;
  }

  /** Resolves after ms, or earlier on fire(). */
  async sleep(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.wait(), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }
}

interface Ctl {
  id: string;
  task: Task;
  /** The managers want it down (desiredState >= SHUTDOWN seen; never taken back). */
  stopWanted: boolean;
  /** Gone from the assignments: tear down and forget. */
  removed: boolean;
  phase: Phase;
  /** A container of this task may exist (teardown must remove it). */
  container: boolean;
  /** A container was created or adopted: statuses name it from then on. */
  hadContainer: boolean;
  /** The last reported status, else the managers' status at first sight. */
  known?: TaskStatus;
  spec?: TaskContainer;
  wake: Wake;
  backoffMs: number;
  done: Promise<void>;
  /** The runtime wait on the running container: kept across wake-ups (see watch()). */
  exitWait?: Promise<number>;
}

const terminal = (s: number | null | undefined): boolean => (s ?? 0) >= S.TASK_COMPLETE;

// gRPC codes that mean "try again": CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE.
const TRANSIENT_GRPC = new Set([1, 4, 8, 10, 14]);
const TRANSIENT_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAGAIN', 'EBUSY']);

/** The runtime is (briefly) unreachable or overloaded: retrying can help; anything else is about the task. */
export function isTransient(e: unknown): boolean {
  return hasCode(e, (c) => (typeof c === 'number' ? TRANSIENT_GRPC.has(c) : TRANSIENT_ERRNO.has(c)));
}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const vanished = (id: string): string => `container ${id} vanished (was it removed outside shoal?)`;

/** How many created task ids to remember (a task id seen again after its removal is never rerun). */
const CREATED_MEMORY = 10_000;

export class TaskRunner {
  private readonly rt: Runtime;
  private readonly logDir: string;
  private readonly volumeDir: string;
  private readonly tasks = new Map<string, Ctl>();
  /** Teardowns under way of tasks (or orphan containers) already forgotten, by id. */
  private readonly removing = new Map<string, Promise<void>>();
  /** Task ids whose container this instance created. */
  private readonly created = new Set<string>();
  /** Runtime waits in flight (watch()), aborted by stop(). */
  private readonly waits = new Set<AbortController>();
  /** The runtime's shoal containers as start() found them, until the first full assignment judges them. */
  private listing?: ContainerInfo[];
  /**
   * Ids of every container start() found (kept after the listing is judged):
   * a task id outside it that this instance never created has no container,
   * so discover() need not ask. (If one appears after all, create() finds it
   * exists and adopts it.)
   */
  private foundAtStart?: Set<string>;
  private ready: Promise<void> = Promise.resolve();
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly stopWake = new Wake();

  constructor(private readonly opts: TaskRunnerOptions) {
    this.rt = opts.runtime;
    // The runtime wants absolute paths (log files are opened by the shim, not by us).
    this.logDir = resolve(opts.logDir);
    this.volumeDir = resolve(opts.volumeDir);
  }

  async start(): Promise<void> {
    this.ready = this.learn();
    await this.ready;
  }

  private async learn(): Promise<void> {
    for (let backoff = this.minBackoff(); !this.stopped; backoff = this.nextBackoff(backoff)) {
      try {
        const all = await this.rt.list();
        this.foundAtStart = new Set(all.map((c) => c.id));
        this.listing = all.filter((c) => c.labels?.[LABEL_TASK_ID]);
        this.opts.logger.info({ containers: this.listing.length }, 'task runner: found task containers');
        return;
      } catch (e) {
        this.opts.logger.warn({ err: messageOf(e), retryMs: backoff }, 'task runner: cannot list containers');
        await this.stopWake.sleep(backoff);
      }
    }
  }

  assign(msg: { full: boolean; updated: Task[]; removed: string[] }): void {
    this.queue = this.queue
      .then(() => this.ready)
      .then(() => this.apply(msg))
      .catch((e: unknown) => this.opts.logger.warn({ err: messageOf(e) }, 'task runner: assignments not applied'));
  }

  statuses(): Map<string, TaskStatus> {
    const out = new Map<string, TaskStatus>();
    for (const [id, t] of this.tasks) if (t.known) out.set(id, { ...t.known });
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopWake.fire();
    // Containers live on without us: stop waiting for them.
    for (const ac of this.waits) ac.abort();
    for (const t of this.tasks.values()) t.wake.fire();
    await this.queue;
    await Promise.allSettled([...[...this.tasks.values()].map((t) => t.done), ...this.removing.values()]);
  }

  // --- assignments ----------------------------------------------------------------------------

  private apply(msg: { full: boolean; updated: Task[]; removed: string[] }): void {
    if (this.stopped) return;
    const assigned = new Set<string>();
    for (const task of msg.updated ?? []) {
      if (!task?.id) continue;
      assigned.add(task.id);
      this.upsert(task);
    }
    for (const id of msg.removed ?? []) this.forget(id);
    if (!msg.full) return;
    for (const id of [...this.tasks.keys()]) if (!assigned.has(id)) this.forget(id);
    // The first whole set after start() decides about the containers found: unassigned ones go.
    const found = this.listing;
    this.listing = undefined;
    for (const c of found ?? []) {
      const taskId = c.labels[LABEL_TASK_ID]!;
      if (assigned.has(taskId) || this.tasks.has(c.id) || this.removing.has(c.id)) continue;
      this.opts.logger.info({ task: taskId, container: c.id }, 'task runner: removing the container of an unassigned task');
      this.track(c.id, this.removeOrphan(c.id, taskId));
    }
  }

  private upsert(task: Task): void {
    const wantsStop = Number(task.desiredState ?? 0) >= S.TASK_SHUTDOWN;
    const t = this.tasks.get(task.id);
    if (t) {
      t.task = task;
      if (wantsStop && !t.stopWanted) {
        t.stopWanted = true;
        t.wake.fire();
      }
      return;
    }
    const known = task.status && task.status.state !== null && task.status.state !== undefined ? normalize(task.status) : undefined;
    const ctl: Ctl = {
      id: task.id,
      task,
      stopWanted: wantsStop,
      removed: false,
      phase: 'new',
      container: true, // until looked at
      hadContainer: false,
      known,
      wake: new Wake(),
      backoffMs: this.minBackoff(),
      done: Promise.resolve(),
    };
    this.tasks.set(task.id, ctl);
    ctl.done = this.drive(ctl);
  }

  private forget(id: string): void {
    const t = this.tasks.get(id);
    if (!t) return;
    this.tasks.delete(id);
    t.removed = true;
    t.wake.fire();
    this.track(id, t.done);
  }

  /** A teardown of a forgotten id: a task assigned again with that id waits for it. */
  private track(id: string, p: Promise<void>): void {
    const done: Promise<void> = p.finally(() => {
      if (this.removing.get(id) === done) this.removing.delete(id);
    });
    this.removing.set(id, done);
  }

  // --- the driver -----------------------------------------------------------------------------

  private async drive(t: Ctl): Promise<void> {
    await this.removing.get(t.id);
    while (!this.stopped) {
      t.wake.clear();
      try {
        if (t.removed) {
          await this.teardown(t);
          return;
        }
        await this.step(t);
        t.backoffMs = this.minBackoff();
      } catch (e) {
        this.opts.logger.warn(
          { task: t.id, phase: t.phase, err: messageOf(e), transient: isTransient(e), retryMs: t.backoffMs },
          'task runner: runtime call failed, retrying',
        );
        await t.wake.sleep(t.backoffMs);
        t.backoffMs = this.nextBackoff(t.backoffMs);
      }
    }
  }

  private async step(t: Ctl): Promise<void> {
    if (t.phase === 'new') return this.discover(t);
    if (t.phase === 'ended') {
      if (t.stopWanted && t.container) {
        await this.rt.remove(t.id);
        t.container = false;
        this.opts.logger.debug({ task: t.id }, 'task runner: container removed');
      }
      await t.wake.wait();
      return;
    }
    if (t.stopWanted) return this.shutdown(t);
    switch (t.phase) {
      case 'fresh':
        return this.prepare(t);
      case 'imaged':
        return this.create(t);
      case 'created':
        return this.startContainer(t);
      case 'running':
        return this.watch(t);
    }
  }

  /** First sight: is there a container already, and may the task run at all? */
  private async discover(t: Ctl): Promise<void> {
    const managers = t.known?.state ?? S.TASK_NEW;
    if (managers < S.TASK_ACCEPTED && !t.stopWanted && !this.created.has(t.id) && this.foundAtStart && !this.foundAtStart.has(t.id)) {
      // A task new to this node: nothing to look for (a runtime call, and an error, per task saved).
      t.container = false;
      t.phase = 'fresh';
      return;
    }
    const info = await this.rt.inspect(t.id);
    t.container = info !== undefined;
    if (terminal(managers)) {
      // Over for the managers: never run again. A container still running would be a leak.
      t.phase = 'ended';
      t.hadContainer = t.container;
      if (info && info.state !== 'exited' && info.state !== 'created') {
        this.opts.logger.warn({ task: t.id }, 'task runner: stopping the container of a task the managers consider ended');
        await this.rt.stop(t.id, this.stopOptions(t)).catch((e: unknown) => {
          if (!(e instanceof ContainerNotFoundError)) throw e;
        });
      }
      return;
    }
    if (info) return this.adopt(t, info);
    if (t.stopWanted) {
      this.report(t, { state: S.TASK_SHUTDOWN, message: 'shutdown' });
      t.phase = 'ended';
    } else if (this.created.has(t.id)) {
      this.fail(t, `task ${t.id} already ran on this node and its container was removed`);
    } else if (managers >= S.TASK_STARTING) {
      this.fail(t, vanished(t.id), t.id);
    } else {
      t.phase = 'fresh';
    }
  }

  /** Take over a container made earlier (by a previous agent, or a create that looked failed). */
  private adopt(t: Ctl, info: ContainerInfo): void {
    t.container = t.hadContainer = true;
    this.opts.logger.info({ task: t.id, state: info.state }, 'task runner: adopting the existing container');
    if (info.state === 'exited') return this.exited(t, info.exitCode ?? 0);
    if (info.state === 'created') {
      // Never started, unless the managers saw it run (then its end is unknown).
      if ((t.known?.state ?? 0) >= S.TASK_RUNNING) return this.fail(t, `container ${t.id} was found stopped without an exit status`, t.id);
      this.report(t, { state: S.TASK_READY, message: 'prepared' });
      t.phase = 'created';
      return;
    }
    this.report(t, { state: S.TASK_RUNNING, message: 'started' });
    t.phase = 'running';
  }

  private async prepare(t: Ctl): Promise<void> {
    this.report(t, { state: S.TASK_ACCEPTED, message: 'accepted' });
    this.report(t, { state: S.TASK_PREPARING, message: 'preparing' });
    let auth;
    try {
      t.spec = toContainerSpec(t.task, { nodeId: this.opts.nodeId, logDir: this.logDir, volumeDir: this.volumeDir });
      auth = pullAuthOf(t.task);
    } catch (e) {
      if (e instanceof TaskSpecError) return this.reject(t, e.message);
      throw e;
    }
    try {
      await this.rt.ensureImage(t.spec.spec.image, auth);
    } catch (e) {
      if (isTransient(e)) throw e;
      return this.reject(t, messageOf(e));
    }
    t.phase = 'imaged';
  }

  private async create(t: Ctl): Promise<void> {
    const { spec, volumeDirs } = t.spec!;
    try {
      for (const d of volumeDirs) mkdirSync(d, { recursive: true });
    } catch (e) {
      return this.reject(t, `volume: ${messageOf(e)}`);
    }
    try {
      await this.rt.create(spec);
    } catch (e) {
      if (e instanceof ContainerExistsError) {
        const info = await this.rt.inspect(t.id);
        if (!info) throw e; // removed meanwhile: try again
        return this.adopt(t, info);
      }
      if (isTransient(e)) throw e;
      return this.reject(t, messageOf(e));
    }
    this.remember(t.id);
    t.container = t.hadContainer = true;
    this.report(t, { state: S.TASK_READY, message: 'prepared' });
    t.phase = 'created';
  }

  private async startContainer(t: Ctl): Promise<void> {
    this.report(t, { state: S.TASK_STARTING, message: 'starting' });
    try {
      await this.rt.start(t.id);
    } catch (e) {
      if (e instanceof ContainerNotFoundError) {
        t.container = false;
        return this.fail(t, vanished(t.id));
      }
      if (isTransient(e)) throw e;
      return this.fail(t, `starting container failed: ${messageOf(e)}`);
    }
    this.report(t, { state: S.TASK_RUNNING, message: 'started' });
    t.phase = 'running';
  }

  /** Wait for the exit, or for the managers (or stop()) to want something else. */
  private async watch(t: Ctl): Promise<void> {
    // One wait per run of the container, kept when a wake-up (a stop, a
    // removal) interrupts: the stop that follows ends it with the exit it
    // causes. Cancelling it instead costs a failed call, and grpc-js an error
    // with two stack traces, per task stopped.
    t.exitWait ??= this.waitForExit(t.id);
    const woken = t.wake.wait().then(() => 'woken' as const);
    let code: number | 'woken';
    try {
      code = await Promise.race([t.exitWait, woken]);
    } catch (e) {
      t.exitWait = undefined;
      if (this.stopped) return; // stop() ended the wait
      if (e instanceof ContainerNotFoundError) {
        t.container = false;
        return this.fail(t, vanished(t.id));
      }
      if (isTransient(e)) throw e;
      // No process to wait for: look at what is there instead.
      const info = await this.rt.inspect(t.id);
      if (!info) {
        t.container = false;
        return this.fail(t, vanished(t.id));
      }
      if (info.state !== 'exited') throw e;
      code = info.exitCode ?? 0;
    }
    if (code === 'woken') return;
    t.exitWait = undefined;
    this.exited(t, code);
  }

  /** A runtime wait that ends with the container's exit, or when the runner stops. */
  private waitForExit(id: string): Promise<number> {
    const ac = new AbortController();
    this.waits.add(ac);
    const p = this.rt.wait(id, ac.signal).finally(() => this.waits.delete(ac));
    // Nobody may be listening by the time it ends (the task was stopped meanwhile).
    p.catch(() => undefined);
    return p;
  }

  private exited(t: Ctl, code: number): void {
    if (code === 0) this.report(t, { state: S.TASK_COMPLETE, message: 'finished', exitCode: 0 });
    else this.fail(t, `task: non-zero exit (${code})`, undefined, code);
  }

  private async shutdown(t: Ctl): Promise<void> {
    let code: number | undefined;
    if (t.container) {
      this.opts.logger.debug({ task: t.id }, 'task runner: stopping the container');
      try {
        code = await this.rt.stop(t.id, this.stopOptions(t));
      } catch (e) {
        if (!(e instanceof ContainerNotFoundError)) throw e;
        t.container = false;
      }
    }
    this.report(t, { state: S.TASK_SHUTDOWN, message: 'shutdown', exitCode: code ?? 0 });
    t.phase = 'ended';
    // The 'ended' step removes the container.
  }

  /** Removed from the assignments: no container, no log, nothing reported. */
  private async teardown(t: Ctl): Promise<void> {
    if (t.container) await this.removeContainer(t.id);
    t.container = false;
    this.removeFiles(t.id);
    this.opts.logger.debug({ task: t.id }, 'task runner: task removed');
  }

  private async removeOrphan(containerId: string, taskId: string): Promise<void> {
    for (let backoff = this.minBackoff(); !this.stopped; backoff = this.nextBackoff(backoff)) {
      try {
        await this.removeContainer(containerId);
        this.removeFiles(taskId);
        return;
      } catch (e) {
        this.opts.logger.warn({ container: containerId, err: messageOf(e), retryMs: backoff }, 'task runner: cannot remove an unassigned container');
        await this.stopWake.sleep(backoff);
      }
    }
  }

  /** Stop with the grace period the container was made with, then delete it. */
  private async removeContainer(id: string): Promise<void> {
    try {
      await this.rt.stop(id);
    } catch (e) {
      if (!(e instanceof ContainerNotFoundError)) throw e;
    }
    await this.rt.remove(id);
  }

  /** The log, and the anonymous volumes (<taskId>-<n>): they belong to the task alone. */
  private removeFiles(taskId: string): void {
    try {
      rmSync(logPathOf(this.logDir, taskId), { force: true });
      for (const d of existsSync(this.volumeDir) ? readdirSync(this.volumeDir) : []) {
        if (d.startsWith(`${taskId}-`) && /^\d+$/.test(d.slice(taskId.length + 1))) rmSync(join(this.volumeDir, d), { recursive: true, force: true });
      }
    } catch (e) {
      this.opts.logger.warn({ task: taskId, err: messageOf(e) }, 'task runner: cannot delete the files of a removed task');
    }
  }

  private stopOptions(t: Ctl): { graceMs?: number } {
    const g = t.task.spec?.container?.stopGracePeriodMs;
    return g === null || g === undefined ? {} : { graceMs: Number(g) };
  }

  // --- reporting ------------------------------------------------------------------------------

  private reject(t: Ctl, err: string): void {
    this.report(t, { state: S.TASK_REJECTED, message: 'rejected', err });
    t.phase = 'ended';
  }

  private fail(t: Ctl, err: string, containerId?: string, exitCode = 0): void {
    this.report(t, { state: S.TASK_FAILED, message: 'failed', err, exitCode, containerId });
    t.phase = 'ended';
  }

  /** Report forward moves only: never back, never out of a terminal state, never the same twice. */
  private report(t: Ctl, s: { state: State; message: string; err?: string; exitCode?: number; containerId?: string }): void {
    const prev = t.known;
    if (prev && (terminal(prev.state) || s.state < prev.state)) return;
    const now = Date.now();
    const status = {
      state: s.state,
      message: s.message,
      err: s.err ?? '',
      exitCode: s.exitCode ?? 0,
      timestamp: now,
      containerId: s.containerId ?? (t.hadContainer ? t.id : ''),
      // Since when it runs, kept in what follows (a rolling update's monitor period counts from it).
      startedAt: Number(prev?.startedAt ?? 0) || (s.state === S.TASK_RUNNING ? now : 0),
    } as TaskStatus;
    if (prev && prev.state === status.state && prev.exitCode === status.exitCode && prev.err === status.err) return;
    t.known = status;
    this.opts.logger.debug({ task: t.id, state: api.TaskState[s.state], err: status.err || undefined }, 'task runner: task state');
    try {
      this.opts.report({ taskId: t.id, status: { ...status } });
    } catch (e) {
      this.opts.logger.warn({ task: t.id, err: messageOf(e) }, 'task runner: report failed');
    }
  }

  // --- small helpers --------------------------------------------------------------------------

  private remember(id: string): void {
    this.created.add(id);
    if (this.created.size > CREATED_MEMORY) this.created.delete(this.created.values().next().value!);
  }

  private minBackoff(): number {
    return this.opts.retryMinMs ?? 200;
  }

  private nextBackoff(ms: number): number {
    return Math.min(ms * 2, this.opts.retryMaxMs ?? 10_000);
  }
}

/** The managers' status as the runner keeps it (numbers may arrive as strings or Longs elsewhere). */
function normalize(s: NonNullable<Task['status']>): TaskStatus {
  return {
    state: Number(s.state ?? 0),
    message: s.message ?? '',
    err: s.err ?? '',
    exitCode: Number(s.exitCode ?? 0),
    timestamp: Number(s.timestamp ?? 0),
    containerId: s.containerId ?? '',
    startedAt: Number(s.startedAt ?? 0),
  } as TaskStatus;
}
