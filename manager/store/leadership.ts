// LeadershipGate: runs leader-only work (orchestrators, scheduler, allocator,
// dispatcher) exactly while this member leads. Abort happens synchronously on
// the state event that reports the loss, so a deposed leader stops acting at
// once; a new period starts only after the previous one's tasks have all
// returned, so two generations never run side by side in one process.
import type { RaftNode } from '../raft/node/index.js';

/** What the gate needs of raft: RaftNode fits; tests pass a fake. */
export interface LeadershipSource {
  on(event: 'state', listener: () => void): unknown;
  off(event: 'state', listener: () => void): unknown;
  isLeader(): boolean;
  /**
   * Resolves once this member has applied everything committed before the call.
   * A new leader may not yet have applied entries of earlier terms; leader-only
   * code reading the store before then would act on a stale view (e.g. create
   * a task that already exists), so tasks start only after this resolves.
   */
  readBarrier?(): Promise<void>;
}

/**
 * Runs while leading; must return (or reject) promptly once `signal` aborts.
 * Returning early ends it for this leadership period; rejecting restarts it.
 */
export type LeaderTask = (signal: AbortSignal) => void | Promise<void>;

export interface LeadershipGateOptions {
  /** A task that fails while still leading is restarted after this delay. Default 1000 ms. */
  restartDelayMs?: number;
  /** Failed tasks and barrier errors (the gate itself never throws them). */
  onError?: (name: string, err: unknown) => void;
}

// Compile-time check that RaftNode is a LeadershipSource.
type _RaftNodeFits = RaftNode extends LeadershipSource ? true : never;
const _raftNodeFits: _RaftNodeFits = true;
void _raftNodeFits;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** One span of leadership: its tasks share an abort signal. */
class Period {
  readonly ac = new AbortController();
  readonly runs = new Map<string, { ac: AbortController; done: Promise<void> }>();
  started = false;
}

export class LeadershipGate {
  private readonly tasks = new Map<string, LeaderTask>();
  private readonly restartDelayMs: number;
  private readonly onError: (name: string, err: unknown) => void;
  private desired = false;
  private attached = false;
  private period: Period | undefined;
  private loop: Promise<void> | undefined;
  private readonly listener = () => this.onState();

  constructor(private readonly source: LeadershipSource, opts: LeadershipGateOptions = {}) {
    this.restartDelayMs = opts.restartDelayMs ?? 1000;
    this.onError = opts.onError ?? (() => {});
  }

  /** Register a task; it starts now if this member is already leading. Returns a function that stops and removes it. */
  add(name: string, task: LeaderTask): () => Promise<void> {
    if (this.tasks.has(name)) throw new Error(`leader task "${name}" already registered`);
    this.tasks.set(name, task);
    const p = this.period;
    if (p?.started && !p.ac.signal.aborted) this.launch(p, name, task);
    return async () => {
      if (this.tasks.get(name) !== task) return;
      this.tasks.delete(name);
      const run = this.period?.runs.get(name);
      if (run) {
        run.ac.abort();
        await run.done;
      }
    };
  }

  /** Follow the source's state events (and act on its current state). */
  start(): void {
    if (this.attached) return;
    this.attached = true;
    this.source.on('state', this.listener);
    this.onState();
  }

  /** Stop following, abort running tasks and wait for them to return. */
  async stop(): Promise<void> {
    if (this.attached) this.source.off('state', this.listener);
    this.attached = false;
    this.desired = false;
    this.period?.ac.abort();
    this.kick();
    await this.settled();
  }

  /** True while tasks of a leadership period are running (after the barrier). */
  get leading(): boolean {
    return this.period !== undefined && this.period.started && !this.period.ac.signal.aborted;
  }

  /** Resolves when the gate has caught up with the latest state event. */
  async settled(): Promise<void> {
    while (this.loop) await this.loop;
  }

  private onState(): void {
    const leader = this.attached && this.source.isLeader();
    if (leader === this.desired) return;
    this.desired = leader;
    if (!leader) this.period?.ac.abort();
    this.kick();
  }

  private kick(): void {
    if (this.loop) return;
    this.loop = this.reconcile().finally(() => {
      this.loop = undefined;
      // A state change that raced with the loop's last check.
      if (this.needsWork()) this.kick();
    });
  }

  private needsWork(): boolean {
    const p = this.period;
    if (p) return p.ac.signal.aborted || !this.desired;
    return this.desired;
  }

  private async reconcile(): Promise<void> {
    while (this.needsWork()) {
      const p = this.period;
      if (p) {
        p.ac.abort();
        await Promise.all([...p.runs.values()].map((r) => r.done));
        this.period = undefined;
        continue;
      }
      const np = new Period();
      this.period = np;
      await this.barrier(np.ac.signal);
      if (np.ac.signal.aborted) continue;
      np.started = true;
      for (const [name, task] of this.tasks) this.launch(np, name, task);
    }
  }

  private async barrier(signal: AbortSignal): Promise<void> {
    if (!this.source.readBarrier) return;
    while (!signal.aborted) {
      try {
        // Raced with the abort: a barrier stuck on a lost quorum must not delay the next term.
        await Promise.race([this.source.readBarrier(), new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }))]);
        return;
      } catch (e) {
        // Usually leadership lost (the state event aborts us) or a slow quorum: try again while still leader.
        this.onError('readBarrier', e);
        await sleep(this.restartDelayMs, signal);
      }
    }
  }

  private launch(p: Period, name: string, task: LeaderTask): void {
    const ac = new AbortController();
    const signal = AbortSignal.any([p.ac.signal, ac.signal]);
    const done = (async () => {
      while (!signal.aborted) {
        try {
          await task(signal);
          return;
        } catch (e) {
          if (signal.aborted) return;
          this.onError(name, e);
          await sleep(this.restartDelayMs, signal);
        }
      }
    })();
    p.runs.set(name, { ac, done });
  }
}
