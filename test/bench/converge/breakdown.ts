// Where a step's time goes, from shoald's own debug lines (with --debug-logs,
// shoald runs with --log-level debug): the leader's orchestration passes and
// each agent's task state changes (`task runner: task state`, one line per
// state a task reaches, stamped by pino in ms), placed on the step's clock.
import { logText } from './observe.js';

interface Line {
  time: number;
  host: string;
  msg: string;
  state?: string;
  task?: string;
  created?: number;
  removed?: number;
  updated?: number;
  assigned?: number;
  ms?: number;
}

/** Milestones of one state: how many tasks reached it in the window, first and last (ms after the step began). */
export interface Span {
  n: number;
  first: number;
  last: number;
}

export interface Breakdown {
  /** Leader: every orchestration pass. */
  passes: Span;
  /** How many of them wrote something, and the wall time spent in all of them (ms). */
  passesWrote: number;
  passMs: number;
  states: Record<string, Span>;
  /** Stops asked of the runtime: `task runner: stopping the container`. */
  stopping: Span;
  /** Containers deleted: `task runner: container removed` (after a stop the managers asked for) or `task runner: task removed` (unassigned). */
  removed: Span;
}

/** Reads shoald's JSON log lines stamped within [from, to] (epoch ms). */
export function readLines(files: Record<string, string>, from: number, to: number): Line[] {
  const out: Line[] = [];
  for (const [host, f] of Object.entries(files)) {
    const text = logText(f);
    for (const raw of text.split('\n')) {
      if (!raw.startsWith('{')) continue;
      try {
        const l = JSON.parse(raw) as Line;
        if (l.time >= from && l.time <= to) out.push({ ...l, host });
      } catch {
        // a torn last line
      }
    }
  }
  return out;
}

function span(times: number[]): Span {
  return times.length ? { n: times.length, first: Math.min(...times), last: Math.max(...times) } : { n: 0, first: NaN, last: NaN };
}

export function breakdown(lines: Line[], t0: number): Breakdown {
  const passes = lines.filter((l) => l.msg === 'orchestration pass');
  const wrote = passes.filter((l) => (l.created ?? 0) + (l.removed ?? 0) + (l.updated ?? 0) + (l.assigned ?? 0) > 0);
  const byState = new Map<string, number[]>();
  for (const l of lines) {
    if (l.msg !== 'task runner: task state' || !l.state) continue;
    const s = l.state.replace(/^TASK_/, '');
    byState.set(s, [...(byState.get(s) ?? []), l.time - t0]);
  }
  return {
    passes: span(passes.map((l) => l.time - t0)),
    passesWrote: wrote.length,
    passMs: passes.reduce((sum, l) => sum + (l.ms ?? 0), 0),
    states: Object.fromEntries([...byState].map(([s, ts]) => [s, span(ts)])),
    stopping: span(lines.filter((l) => l.msg === 'task runner: stopping the container').map((l) => l.time - t0)),
    removed: span(lines.filter((l) => l.msg === 'task runner: container removed' || l.msg === 'task runner: task removed').map((l) => l.time - t0)),
  };
}

const s = (ms: number): string => (Number.isFinite(ms) ? `+${(ms / 1000).toFixed(2)}` : '-');

/** One line: "orchestration +0.41..+0.52 s (2); ACCEPTED 50 +0.60..+1.10; ...". */
export function describe(b: Breakdown): string {
  const parts: string[] = [];
  if (b.passes.n) parts.push(`leader orchestration passes ${s(b.passes.first)}..${s(b.passes.last)} s (${b.passes.n}, ${b.passesWrote} writing; ${b.passMs.toFixed(0)} ms in all)`);
  if (b.stopping.n) parts.push(`stopping ${b.stopping.n} ${s(b.stopping.first)}..${s(b.stopping.last)}`);
  for (const st of ['ACCEPTED', 'PREPARING', 'READY', 'STARTING', 'RUNNING', 'SHUTDOWN', 'FAILED', 'REJECTED']) {
    const x = b.states[st];
    if (x?.n) parts.push(`${st} ${x.n} ${s(x.first)}..${s(x.last)}`);
  }
  if (b.removed.n) parts.push(`removed ${b.removed.n} ${s(b.removed.first)}..${s(b.removed.last)}`);
  return parts.join('; ') || '(no debug lines: run with --debug-logs)';
}
