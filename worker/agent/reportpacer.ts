// When the agent sends the task states it has queued. Each report costs the
// managers a raft entry (written, replicated, applied three times), and a
// burst of starts passes every task through accepted, preparing, ready and
// starting within a second or two, on cores the containers being started need
// too; a burst of stops likewise ends in a report per flush. So while any task
// is on its way to running, or to its end after a stop was asked, reports are
// held (up to holdMaxMs after the oldest unsent one) and go out together; once
// none is, they go after quietMs. Pure: the session owns the timer.
import { api } from '../../proto/services.js';

const RUNNING = api.TaskState.TASK_RUNNING;
const COMPLETE = api.TaskState.TASK_COMPLETE;
const SHUTDOWN = api.TaskState.TASK_SHUTDOWN;

export interface PacerOptions {
  /** Delay when no task is on its way to running (default 40 ms: states of one step, one report). */
  quietMs?: number;
  /** Longest a queued report waits while tasks start (default 1 s). */
  holdMaxMs?: number;
}

export class ReportPacer {
  private readonly transit = new Set<string>();
  /** When the oldest unsent report was queued; undefined when none is. */
  private since: number | undefined;
  private readonly quietMs: number;
  private readonly holdMaxMs: number;

  constructor(opts: PacerOptions = {}, private readonly now: () => number = Date.now) {
    this.quietMs = opts.quietMs ?? 40;
    this.holdMaxMs = opts.holdMaxMs ?? 1_000;
  }

  /** A state was queued for sending. */
  queued(taskId: string, state: number): void {
    if (state < RUNNING) this.transit.add(taskId);
    else this.transit.delete(taskId);
    this.since ??= this.now();
  }

  /**
   * An assignment came: a task the managers want stopped (desired state shutdown or beyond) that
   * has not ended as they know it will report its end soon. Its state queued next (shutdown,
   * complete, failed) ends that.
   */
  assigned(taskId: string, desiredState: number, knownState: number): void {
    if (desiredState >= SHUTDOWN && knownState < COMPLETE) this.transit.add(taskId);
  }

  /** The task is no longer this node's: it will not reach running here. */
  forget(taskId: string): void {
    this.transit.delete(taskId);
  }

  /** A full assignment set: tasks outside it are forgotten. */
  retain(taskIds: ReadonlySet<string>): void {
    for (const id of this.transit) if (!taskIds.has(id)) this.transit.delete(id);
  }

  /** What was queued went out; reports queued meanwhile (still pending) start a new wait. */
  sent(stillPending: boolean): void {
    this.since = stillPending ? this.now() : undefined;
  }

  /** Milliseconds from now until the queued reports should go. */
  delay(): number {
    if (this.transit.size === 0) return this.quietMs;
    return Math.max(this.quietMs, (this.since ?? this.now()) + this.holdMaxMs - this.now());
  }

  /** Tasks on their way to running (tests read it). */
  get inTransit(): number {
    return this.transit.size;
  }
}
