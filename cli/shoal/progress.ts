// Waiting for a service to converge, shown as docker shows it:
//
//   overall progress: 3 out of 6 tasks
//   1/6: running   [==================================================>]
//   2/6: preparing [=================================>                 ]
//   3/6: pending   no node satisfies node.labels.zone==eu: 3 nodes checked
//   verify: Service converged
//
// Convergence is a pure state machine (observe() over snapshots of the service and its tasks);
// ProgressWriter draws its frames (in place on a terminal, changed lines only otherwise) and
// waitForConvergence() drives both by polling.
import type { shoal } from '../../proto/gen/api.js';
import { api } from '../../proto/services.js';
import { templateChanges } from '../../proto/templatechange.js';
import { isJob, modeOf, newestFirst, schedulingReason, stateName, taskName, truncId, type ModeName } from './views.js';

type Service = shoal.api.Service.$Properties;
type Task = shoal.api.Task.$Properties;
type Counts = shoal.api.IServiceCounts;

const S = api.TaskState;
const R = api.RestartCondition;
const U = api.UpdateState;
const UPDATE_WORDS: Record<number, string> = {
  [U.UPDATE_UNKNOWN]: 'none', [U.UPDATE_UPDATING]: 'updating', [U.UPDATE_PAUSED]: 'paused', [U.UPDATE_COMPLETED]: 'completed',
  [U.UPDATE_ROLLBACK_STARTED]: 'rollback started', [U.UPDATE_ROLLBACK_PAUSED]: 'rollback paused', [U.UPDATE_ROLLBACK_COMPLETED]: 'rollback completed',
};
const n = (v: number | null | undefined) => Number(v ?? 0);

/** Above this many slots docker draws only the overall line; so do we (plus one line saying what is wrong, if anything). */
export const MAX_BARS = 20;
/** How long every task must stay running before the service counts as converged (docker's). */
export const STABLE_MS = 5_000;
/** How long every unfinished task may sit pending with a scheduling reason before giving up. */
export const PENDING_GRACE_MS = 5_000;
/**
 * Rejections in a row after which a slot is taken for stuck: a rejected task never started (no
 * such image, a bind source missing on the node), and retrying does not change that by itself.
 */
export const REJECT_LIMIT = 3;

export interface Observation {
  service: Service;
  /** The service's counts from ListServices, when known (global services: desired = eligible nodes). */
  counts?: Counts;
  /** Every task of the service, history included. */
  tasks: Task[];
  /** Node ID -> hostname (global services label their lines by node). */
  hostnames: Map<string, string>;
  now: number;
}

export interface Line {
  key: string;
  text: string;
  /** What a non-terminal display compares to decide whether the line changed (the text, minus countdowns). */
  sig: string;
}

export type Outcome = { kind: 'waiting' } | { kind: 'converged' } | { kind: 'failed'; message: string };

export interface Frame {
  lines: Line[];
  outcome: Outcome;
  done: number;
  total: number;
}

export interface ConvergenceOptions {
  stableMs?: number;
  pendingGraceMs?: number;
  /** What was done to the service, for the "cannot converge" message: created, scaled. */
  verb?: string;
  /**
   * Waiting for a rolling update (or a rollback) that the control API started: a slot is done
   * when its task is of the service's current template and running, and the service's update
   * status says when it is over (completed, paused, rolled back).
   */
  update?: { rollback: boolean };
}

const STEPS: Record<number, number> = {
  [S.TASK_NEW]: 1, [S.TASK_PENDING]: 3, [S.TASK_ASSIGNED]: 4, [S.TASK_ACCEPTED]: 5, [S.TASK_PREPARING]: 6,
  [S.TASK_READY]: 7, [S.TASK_STARTING]: 8, [S.TASK_RUNNING]: 9, [S.TASK_COMPLETE]: 9,
};

/** docker's bar: a state's step out of 9, 50 characters wide. */
export function bar(state: number): string {
  const pct = Math.min(50, Math.floor(Math.floor(((STEPS[state] ?? 0) / 9) * 100) / 2));
  return `[${'='.repeat(pct)}>${' '.repeat(50 - pct)}]`;
}

function policyWords(p: shoal.api.IRestartPolicy | null | undefined): string {
  const cond = ['any', 'none', 'on-failure', 'any'][p?.condition ?? 0] ?? 'any';
  const max = n(p?.maxAttempts);
  return `condition ${cond}${max ? `, max attempts ${max}` : ''}${n(p?.windowMs) ? `, window ${n(p?.windowMs) / 1000}s` : ''}`;
}

/**
 * Whether a task that ended will not be replaced under its restart policy (swarm's supervisor:
 * condition none never restarts, on-failure not after a success, and max attempts counts the
 * slot's earlier restarts, within the window if there is one). A job's completion is its success.
 */
export function restartGivesUp(t: Task, policy: shoal.api.IRestartPolicy | null | undefined, job: boolean): boolean {
  const state = t.status?.state;
  const failed = state === S.TASK_FAILED || state === S.TASK_REJECTED;
  const completed = state === S.TASK_COMPLETE;
  if (!failed && !completed) return false;
  if (job && completed) return false;
  const cond = policy?.condition || R.RESTART_ANY;
  if (cond === R.RESTART_NONE) return true;
  if (completed && cond === R.RESTART_ON_FAILURE) return true;
  const max = n(policy?.maxAttempts);
  if (max === 0) return false;
  const at = n(t.status?.timestamp);
  const window = n(policy?.windowMs);
  const attempts = (t.restartHistory ?? []).filter((h) => window === 0 || n(h) >= at - window).length;
  return attempts >= max;
}

interface Group {
  key: string;
  /** Slot number (replicated modes) or node ID (global modes). */
  slot: number;
  nodeId: string;
  /** The task that stands for the group: its newest still wanted, or its newest if it ended for good. */
  task: Task;
  /** Still wanted (desired state not past running, or complete for jobs). */
  live: boolean;
  /** How many of its latest ended tasks in a row were rejected, and the newest of them. */
  rejections: number;
  lastRejected?: Task;
  /** An earlier task of the group, of the same template, that failed or was rejected (the one `task` retries). */
  previousFailure?: Task;
}

function groupTasks(tasks: Task[], mode: ModeName): Group[] {
  const global = mode === 'global' || mode === 'global-job';
  const activeMax = isJob(mode) ? S.TASK_COMPLETE : S.TASK_RUNNING;
  const by = new Map<string, Task[]>();
  for (const t of tasks) {
    const key = global ? t.nodeId : String(n(t.slot));
    if (!key || key === '0') continue;
    let l = by.get(key);
    if (!l) by.set(key, (l = []));
    l.push(t);
  }
  const out: Group[] = [];
  for (const [key, list] of by) {
    list.sort(newestFirst);
    const current = list.find((t) => (t.desiredState ?? 0) <= activeMax);
    const latest = list[0]!;
    const st = latest.status?.state ?? 0;
    // Nothing wanted here any more: either it ended in failure (and may be replaced, or not), or
    // it was shut down on purpose (scaled down, node gone from a global service): not shown.
    const ended = st === S.TASK_FAILED || st === S.TASK_REJECTED || (!isJob(mode) && st === S.TASK_COMPLETE);
    if (!current && !(ended && (latest.desiredState ?? 0) < S.TASK_REMOVE)) continue;
    const task = current ?? latest;
    let rejections = 0;
    let lastRejected: Task | undefined;
    for (const t of list) {
      const ts = t.status?.state ?? 0;
      if (ts <= S.TASK_RUNNING) continue;
      if (ts !== S.TASK_REJECTED) break;
      rejections++;
      lastRejected ??= t;
    }
    const older = list.slice(list.indexOf(task) + 1);
    // Of the same template only: after an update, an old spec's failure says nothing of the new task.
    const previousFailure = older.find((t) => (t.status?.state === S.TASK_FAILED || t.status?.state === S.TASK_REJECTED) && templateChanges(t.spec, task.spec).length === 0);
    out.push({ key, slot: n(task.slot), nodeId: task.nodeId ?? '', task, live: !!current, rejections, lastRejected, previousFailure });
  }
  out.sort((a, b) => a.slot - b.slot || a.nodeId.localeCompare(b.nodeId));
  return out;
}

/** The state machine: feed it snapshots, it says what to draw and whether the wait is over. */
export class Convergence {
  private stableSince?: number;
  private pendingSince?: number;
  private readonly stableMs: number;
  private readonly pendingGraceMs: number;
  private readonly verb: string;
  private readonly update?: { rollback: boolean };
  /** Why the update being waited for was rolled back (the status says so only until the rollback ends). */
  private rolledBackWhy?: string;

  constructor(o: ConvergenceOptions = {}) {
    this.stableMs = o.stableMs ?? STABLE_MS;
    this.pendingGraceMs = o.pendingGraceMs ?? PENDING_GRACE_MS;
    this.verb = o.verb ?? 'created';
    this.update = o.update;
  }

  observe(o: Observation): Frame {
    const spec = o.service.spec;
    const mode = modeOf(spec);
    const job = isJob(mode);
    const global = mode === 'global' || mode === 'global-job';
    const groups = groupTasks(o.tasks, mode);

    let shown: Group[];
    let extra: Group[] = [];
    let total: number;
    if (mode === 'replicated' || mode === 'replicated-job') {
      total = mode === 'replicated' ? n(spec?.replicated?.replicas) : n(spec?.replicatedJob?.totalCompletions);
      shown = groups.slice(0, total);
      extra = groups.slice(total).filter((g) => g.live);
    } else {
      shown = groups;
      total = mode === 'global' ? (o.counts ? n(o.counts.desired) : groups.length) : Math.max(n(o.counts?.desired), groups.length);
    }

    const template = spec?.taskTemplate;
    const current = (t: Task) => !this.update || templateChanges(t.spec, template).length === 0;
    const isDone = (g: Group) => (job
      ? g.task.status?.state === S.TASK_COMPLETE
      : g.live && g.task.status?.state === S.TASK_RUNNING && current(g.task));
    const done = Math.min(total, shown.filter(isDone).length);

    const label = (g: Group, i: number) => (global ? (o.hostnames.get(g.nodeId) ?? truncId(g.nodeId)) : `${i + 1}/${total}`);
    const describe = (g: Group, i: number): Line => {
      const t = g.task;
      const state = t.status?.state ?? 0;
      const word = stateName(state);
      let msg = state === S.TASK_FAILED || state === S.TASK_REJECTED ? (t.status?.err || t.status?.message || '') : (schedulingReason(t) ?? '');
      // A retry that is not running yet: what went wrong last time.
      const prev = g.previousFailure;
      if (!msg && prev && state < S.TASK_RUNNING) msg = `last attempt ${stateName(prev.status?.state)}: ${prev.status?.err || prev.status?.message || `exit code ${n(prev.status?.exitCode)}`}`;
      if (msg) return { key: g.key, text: `${label(g, i)}: ${word.padEnd(8)} ${msg}`, sig: `${word} ${msg}` };
      return { key: g.key, text: `${label(g, i)}: ${word.padEnd(9)} ${bar(state)}`, sig: word };
    };

    // ---- outcome ----
    let outcome: Outcome = { kind: 'waiting' };
    let verify: Line | undefined;
    const policyOf = (t: Task) => t.spec?.restartPolicy ?? spec?.taskTemplate?.restartPolicy;
    // A task that ended and will not be replaced: the restart policy says so (the orchestrator
    // also writes its reason into a live task that it gave up on).
    const ended = (t: Task) => [S.TASK_FAILED, S.TASK_REJECTED, S.TASK_COMPLETE].includes(t.status?.state ?? 0) && !(job && t.status?.state === S.TASK_COMPLETE);
    const givenUp = shown.find((g) => restartGivesUp(g.task, policyOf(g.task), job) || (g.live && ended(g.task) && !!g.task.shutdownReason));
    if (givenUp) {
      const t = givenUp.task;
      const state = t.status?.state ?? 0;
      const why = state === S.TASK_COMPLETE
        ? `completed (exit code ${n(t.status?.exitCode)})`
        : `${stateName(state)} (${t.status?.err || t.status?.message || `exit code ${n(t.status?.exitCode)}`})`;
      const hint = state === S.TASK_COMPLETE ? '; a service\'s tasks are meant to keep running (for run-to-completion tasks use --mode replicated-job)' : '';
      outcome = {
        kind: 'failed',
        message: `the service cannot converge: task ${taskName(t)} ${why} and is not restarted: ${t.shutdownReason || `its restart policy (${policyWords(policyOf(t))}) gives up`}${hint}`,
      };
    }

    // Rejected again and again: the restart policy would retry for ever, to no avail.
    const rejected = outcome.kind === 'waiting' ? shown.find((g) => !isDone(g) && g.rejections >= REJECT_LIMIT) : undefined;
    if (rejected) {
      const t = rejected.task;
      const last = rejected.lastRejected ?? t;
      outcome = {
        kind: 'failed',
        message: `the service cannot converge: task ${taskName(t)} was rejected ${rejected.rejections} times in a row (${last.status?.err || last.status?.message || 'no reason given'}); `
          + `it is retried, but that will not fix it: fix the cause, or remove the service with \`shoal service rm ${spec?.name ?? ''}\``,
      };
    }

    const converged = done >= total && extra.length === 0 && (job ? total > 0 || shown.length === 0 : true);
    let rollbackLine: Line | undefined;
    if (this.update && outcome.kind === 'waiting') {
      // The managers say when a rolling update is over: its new tasks ran for the monitor period.
      const st = n(o.service.updateStatus?.state);
      const msg = o.service.updateStatus?.message ?? '';
      const name = spec?.name ?? '';
      // The update being waited for failed and rolled back (failure action rollback); it may be over
      // before the first look, and its message then says so.
      if (!this.update.rollback && (st === U.UPDATE_ROLLBACK_STARTED || st === U.UPDATE_ROLLBACK_PAUSED || st === U.UPDATE_ROLLBACK_COMPLETED)) {
        this.rolledBackWhy ??= msg.replace(/; rollback completed$/, '');
      }
      if (this.rolledBackWhy) rollbackLine = { key: 'rollback', text: `rollback: ${this.rolledBackWhy}`, sig: this.rolledBackWhy };
      if (st === U.UPDATE_PAUSED || st === U.UPDATE_ROLLBACK_PAUSED) {
        outcome = {
          kind: 'failed',
          message: `${msg}; see \`shoal service ps ${name}\`, then fix the spec and update again${st === U.UPDATE_PAUSED ? ` or go back with \`shoal service rollback ${name}\`` : ''}`,
        };
      } else if (st === U.UPDATE_ROLLBACK_COMPLETED && this.rolledBackWhy !== undefined) {
        outcome = { kind: 'failed', message: `the update was rolled back to the previous spec: ${this.rolledBackWhy.replace(/^update rolled back: /, '') || 'its new tasks failed'}` };
      } else if ((st === U.UPDATE_COMPLETED && !this.update.rollback) || (st === U.UPDATE_ROLLBACK_COMPLETED && this.update.rollback)) {
        outcome = { kind: 'converged' };
        verify = { key: 'verify', text: 'verify: Service converged', sig: 'converged' };
      } else if (this.update.rollback ? st < U.UPDATE_ROLLBACK_STARTED : st === U.UPDATE_UNKNOWN) {
        // Not what was started: someone else's update came in between; this wait would never end.
        outcome = { kind: 'failed', message: `another change of ${name} came in meanwhile (its update status: ${UPDATE_WORDS[st] ?? st}${msg ? `, ${msg}` : ''}); see \`shoal service inspect ${name}\`` };
      }
    } else if (outcome.kind === 'waiting') {
      if (converged && job && total > 0) {
        outcome = { kind: 'converged' };
        verify = { key: 'verify', text: 'job complete', sig: 'job complete' };
      } else if (converged) {
        // A service must hold still for a while (docker's verify step); so must a job with nothing to run.
        this.stableSince ??= o.now;
        const left = this.stableSince + this.stableMs - o.now;
        if (left <= 0 || (total === 0 && !global && !job)) {
          outcome = { kind: 'converged' };
          verify = { key: 'verify', text: job ? 'job complete' : 'verify: Service converged', sig: 'converged' };
        } else {
          verify = { key: 'verify', text: `verify: Waiting ${Math.ceil(left / 1000)} seconds to verify that tasks are stable...`, sig: 'waiting' };
        }
      } else {
        this.stableSince = undefined;
      }
    }

    // Every unfinished task waits for a node that fits: say why, and give up after a grace period.
    const unfinished = shown.filter((g) => !isDone(g));
    // Slots without a task yet mean the orchestrator has work left (a job's tasks come in waves).
    const missing = job ? 0 : Math.max(0, total - shown.length);
    const reasons = unfinished.map((g) => schedulingReason(g.task));
    const stuck = outcome.kind === 'waiting' && unfinished.length > 0 && missing === 0
      && reasons.every((r) => r !== undefined) && unfinished.every((g) => n(g.task.notBefore) <= o.now);
    if (stuck) {
      this.pendingSince ??= o.now;
      if (o.now - this.pendingSince >= this.pendingGraceMs) {
        outcome = {
          kind: 'failed',
          message: `the service is ${this.verb} but cannot converge: ${reasons[0]}; it stays pending until a node fits (use --detach to not wait)`,
        };
      }
    } else {
      this.pendingSince = undefined;
    }

    const rollingBack = this.update && (this.update.rollback || rollbackLine) ? 'rolling back update: ' : '';
    const header: Line = job
      ? { key: 'header', text: `job progress: ${done} out of ${total} complete`, sig: `${done}/${total}` }
      : { key: 'header', text: `overall progress: ${rollingBack}${done} out of ${total} tasks`, sig: `${rollingBack}${done}/${total}` };
    let lines = shown.map(describe);
    if (shown.length > MAX_BARS) {
      // Too many to draw: the first one that says what is wrong, if any.
      const bad = lines.find((l) => !l.text.includes('[')) ?? undefined;
      lines = bad ? [bad] : [];
    }
    return { lines: [...(rollbackLine ? [rollbackLine] : []), header, ...lines, ...(verify ? [verify] : [])], outcome, done, total };
  }
}

/** Draws frames: on a terminal in place (cursor up, clear line); otherwise a line when it changed. */
export class ProgressWriter {
  private drawn = 0;
  private last = '';
  private readonly seen = new Map<string, string>();

  constructor(
    private readonly write: (s: string) => void,
    private readonly tty: boolean,
    private readonly columns = 0,
  ) {}

  draw(lines: Line[]): void {
    if (!this.tty) {
      let s = '';
      for (const l of lines) {
        if (this.seen.get(l.key) === l.sig) continue;
        this.seen.set(l.key, l.sig);
        s += `${l.text}\n`;
      }
      if (s) this.write(s);
      return;
    }
    // Longer lines would wrap and throw the cursor arithmetic off.
    const fit = (t: string) => (this.columns > 1 && t.length >= this.columns ? t.slice(0, this.columns - 1) : t);
    const frame = lines.map((l) => fit(l.text)).join('\n');
    if (this.drawn > 0 && frame === this.last) return; // nothing changed: no flicker
    this.last = frame;
    let s = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const l of lines) s += `\r\x1b[2K${fit(l.text)}\n`;
    const stale = this.drawn - lines.length;
    if (stale > 0) s += `${'\r\x1b[2K\n'.repeat(stale)}\x1b[${stale}A`;
    this.drawn = lines.length;
    this.write(s);
  }
}

export interface Snapshot {
  service: Service;
  counts?: Counts;
  tasks: Task[];
}

export interface WaitOptions extends ConvergenceOptions {
  /** The service's name, for messages. */
  name: string;
  /** The service and its tasks now; undefined when the service is gone. */
  fetch(): Promise<Snapshot | undefined>;
  /** Hostnames of these node IDs (those it does not know are left out). */
  hostnames(ids: string[]): Promise<Map<string, string>>;
  write(s: string): void;
  tty: boolean;
  columns?: number;
  intervalMs?: number;
  /** Aborting stops the wait (Ctrl-C): the result is then 'interrupted'. */
  signal?: AbortSignal;
  now?: () => number;
  /** Give up after this long without a successful fetch. */
  unreachableMs?: number;
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Polls until the service converges ('converged'), the wait is aborted ('interrupted'), or it
 * cannot converge (throws, after drawing the last frame, with the reason).
 */
export async function waitForConvergence(o: WaitOptions): Promise<'converged' | 'interrupted'> {
  const now = o.now ?? Date.now;
  const conv = new Convergence(o);
  const writer = new ProgressWriter(o.write, o.tty, o.columns);
  const hostnames = new Map<string, string>();
  let lastOk = now();
  while (!o.signal?.aborted) {
    let snap: Snapshot | undefined;
    try {
      snap = await o.fetch();
      lastOk = now();
    } catch (e) {
      // A leader change or a slow manager: keep trying for a while.
      if (now() - lastOk >= (o.unreachableMs ?? 15_000)) throw e;
      await pause(o.intervalMs ?? 250, o.signal);
      continue;
    }
    if (o.signal?.aborted) break;
    if (!snap) throw new Error(`service ${o.name} was removed while waiting for it to converge`);
    const mode = modeOf(snap.service.spec);
    if (mode === 'global' || mode === 'global-job') {
      const unknown = [...new Set(snap.tasks.map((t) => t.nodeId ?? '').filter((id) => id !== '' && !hostnames.has(id)))];
      if (unknown.length > 0) {
        try {
          for (const [id, h] of await o.hostnames(unknown)) hostnames.set(id, h);
        } catch {
          // Lines fall back to node IDs.
        }
      }
    }
    const frame = conv.observe({ ...snap, hostnames, now: now() });
    writer.draw(frame.lines);
    if (frame.outcome.kind === 'converged') return 'converged';
    if (frame.outcome.kind === 'failed') throw new Error(frame.outcome.message);
    await pause(o.intervalMs ?? 250, o.signal);
  }
  return 'interrupted';
}
