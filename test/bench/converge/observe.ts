// What the converge bench watches while a step runs, all from outside shoal's
// own convergence logic:
//  - containers, straight from the hosts' containerds (ServicesCluster.containersOn,
//    every host in parallel, one round every ~100 ms), counted by a label;
//  - node states, from a manager's ListNodes (the call behind `node ls`), made
//    in this process over the manager's unix socket: a CLI process every
//    250 ms would itself load the 2 cores the bench measures;
//  - raft elections and nodes marked down, from the lines shoald logs
//    (`<id> became leader at term N`, `became pre-candidate`, `node marked down`).
import { readFileSync } from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { call, localClient } from '../../../proto/client.js';
import { ControlService, api } from '../../../proto/services.js';
import type { HostContainer, ServicesCluster } from '../../system/services/harness.js';
import type { EventTimes } from './events.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Containers per host matching a label value (e.g. shoal.service.name=web). */
export interface Count {
  running: number;
  all: number;
  perHost: Record<string, { running: number; all: number }>;
}

export function countOf(lists: Record<string, HostContainer[]>, match: (c: HostContainer) => boolean): Count {
  const perHost: Count['perHost'] = {};
  let running = 0;
  let all = 0;
  for (const [h, cs] of Object.entries(lists)) {
    const mine = cs.filter(match);
    const r = mine.filter((c) => c.state === 'running').length;
    perHost[h] = { running: r, all: mine.length };
    running += r;
    all += mine.length;
  }
  return { running, all, perHost };
}

export const byService = (name: string) => (c: HostContainer): boolean => c.labels['shoal.service.name'] === name;

export interface PollResult {
  /** From t0 until the event that completed the step (with `exact`), else until the poll round that saw the condition returned. */
  ms: number;
  /** From t0 until the poll round that saw the condition returned. */
  polledMs: number;
  /** With `exact`: whether ms comes from the events (false: some container had no event; ms is polledMs). */
  exact?: boolean;
  /** With `exact` false: the containers without an event, and how many were looked for. */
  noEvent?: { ids: string[]; of: number };
  /** With `exact` and kind delete: ms after t0 of the last exit among the deleted containers. */
  exitedMs?: number;
  /** With `exact`: per host, ms after t0 of its last event of the step's kind (where the time went). */
  perHostMs?: Record<string, number>;
  /** With `exact` and kind delete: per host, ms after t0 of its last exit among the containers gone. */
  exitPerHostMs?: Record<string, number>;
  /** With `exact`: how the step's events spread out (ms after t0: first, median, last), per kind. */
  spread?: Partial<Record<'start' | 'exit' | 'delete', Spread>>;
  /** With `exact` and kind delete: per container, ms from its exit to its task's delete, and from that to the container's delete. */
  gaps?: { exitToTaskDelete?: Spread; taskDeleteToDelete?: Spread };
  rounds: number;
  last: Count;
}

/**
 * Time a step by containerd's events: `start`, the last start among the matching containers
 * running at the end that were not there before; `delete`, the last delete among those there
 * before and gone at the end (and the last exit among them).
 */
export interface Exact {
  events: EventTimes;
  kind: 'start' | 'delete';
  /** Ids of the matching containers before the step. */
  before: ReadonlySet<string>;
  /** Date.now() at t0. */
  sinceWall: number;
}

/** Ids of the containers matching, over all hosts' lists. */
export async function matchingIds(c: ServicesCluster, hosts: string[], match: (x: HostContainer) => boolean): Promise<Set<string>> {
  const lists = await Promise.all(hosts.map((h) => c.containersOn(h)));
  return new Set(lists.flat().filter(match).map((x) => x.id));
}

/**
 * Poll the containerds of `hosts` (in parallel, a round every `everyMs`, never
 * two rounds at once) until `done` accepts the count of matching containers.
 * The time is taken when the satisfying round returned (an upper bound: the
 * state held somewhere within that round).
 */
export async function pollContainers(
  c: ServicesCluster, hosts: string[], match: (x: HostContainer) => boolean, done: (n: Count) => boolean,
  opts: { t0: number; timeoutMs: number; what: string; everyMs?: number; signal?: AbortSignal; onRound?: (n: Count, ms: number) => void; exact?: Exact },
): Promise<PollResult> {
  // With events to time by, polling only tells when to look: less often, less load on the hosts.
  const every = opts.everyMs ?? (opts.exact ? 250 : 100);
  let rounds = 0;
  let last: Count = { running: 0, all: 0, perHost: {} };
  let lastErr = '';
  for (;;) {
    if (opts.signal?.aborted) throw new Error(`stopped waiting for ${opts.what}`);
    const start = performance.now();
    try {
      const lists = await Promise.all(hosts.map((h) => c.containersOn(h)));
      rounds++;
      last = countOf(Object.fromEntries(hosts.map((h, i) => [h, lists[i]!])), match);
      opts.onRound?.(last, performance.now() - opts.t0);
      if (done(last)) {
        const polledMs = performance.now() - opts.t0;
        // A listing can see a task running before its event has reached us: give the events a moment.
        const final = lists.flat().filter(match);
        let ex = exactTimes(opts.exact, final, polledMs);
        for (const until = performance.now() + EVENT_GRACE_MS; ex.exact === false && performance.now() < until;) {
          await sleep(20);
          ex = exactTimes(opts.exact, final, polledMs);
        }
        return { ...ex, polledMs, rounds, last };
      }
      lastErr = '';
    } catch (e) {
      lastErr = (e as Error).message;
    }
    if (performance.now() - opts.t0 > opts.timeoutMs) {
      throw new Error(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${opts.what}; last seen ${last.running} running / ${last.all} containers ${JSON.stringify(last.perHost)}${lastErr ? `; ${lastErr}` : ''}`);
    }
    await sleep(Math.max(0, every - (performance.now() - start)));
  }
}

export interface Spread {
  first: number;
  median: number;
  last: number;
}

function spreadOf(sorted: number[]): Spread | undefined {
  return sorted.length ? { first: sorted[0]!, median: sorted[Math.floor((sorted.length - 1) / 2)]!, last: sorted[sorted.length - 1]! } : undefined;
}

/** How long a step waits, once listed done, for containerd events still on their way. */
const EVENT_GRACE_MS = 2_000;

/** A step's time from the events, given the matching containers listed at its end (exported for tests). */
export function exactTimes(x: Exact | undefined, final: HostContainer[], polledMs: number): Pick<PollResult, 'ms' | 'exact' | 'exitedMs' | 'noEvent' | 'perHostMs' | 'exitPerHostMs' | 'spread' | 'gaps'> {
  if (!x) return { ms: polledMs };
  if (x.kind === 'start') {
    const fresh = final.filter((c) => c.state === 'running' && !x.before.has(c.id)).map((c) => c.id);
    const t = x.events.latest('start', fresh, x.sinceWall);
    const perHostMs = x.events.latestPerHost?.('start', fresh, x.sinceWall);
    const spread = x.events.times && { start: spreadOf(x.events.times('start', fresh, x.sinceWall)) };
    return t.ms === undefined ? { ms: polledMs, exact: false, noEvent: { ids: t.missing, of: fresh.length } } : { ms: t.ms, exact: true, perHostMs, spread };
  }
  const present = new Set(final.map((c) => c.id));
  const gone = [...x.before].filter((id) => !present.has(id));
  const t = x.events.latest('delete', gone, x.sinceWall);
  const exited = x.events.latest('exit', gone, x.sinceWall).ms;
  const perHostMs = x.events.latestPerHost?.('delete', gone, x.sinceWall);
  const exitPerHostMs = x.events.latestPerHost?.('exit', gone, x.sinceWall);
  const spread = x.events.times && { exit: spreadOf(x.events.times('exit', gone, x.sinceWall)), delete: spreadOf(x.events.times('delete', gone, x.sinceWall)) };
  const gaps = x.events.gaps && {
    exitToTaskDelete: spreadOf(x.events.gaps('exit', 'taskDelete', gone, x.sinceWall)),
    taskDeleteToDelete: spreadOf(x.events.gaps('taskDelete', 'delete', gone, x.sinceWall)),
  };
  return t.ms === undefined ? { ms: polledMs, exact: false, exitedMs: exited, noEvent: { ids: t.missing, of: gone.length } } : { ms: t.ms, exact: true, exitedMs: exited, perHostMs, exitPerHostMs, spread, gaps };
}

// ---- node states ----------------------------------------------------------------------------

const STATE: Record<number, string> = {
  [api.NodeState.NODE_UNKNOWN]: 'unknown', [api.NodeState.NODE_DOWN]: 'down',
  [api.NodeState.NODE_READY]: 'ready', [api.NodeState.NODE_DISCONNECTED]: 'disconnected',
};

/** A node seen in a state other than ready, while a window was open. */
export interface NotReady {
  window: string;
  host: string;
  state: string;
  atMs: number;
  message: string;
}

/**
 * Polls ListNodes every `everyMs` on one manager's socket (switchable, for
 * when that manager is killed) and records every node seen not ready inside
 * an open window. `expect` names hosts whose non-ready state is expected in
 * the window (the host the bench killed).
 */
export class NodeWatcher {
  private client?: grpc.Client;
  private socket = '';
  private stopped = false;
  private loop?: Promise<void>;
  private window?: { name: string; t0: number; expect: Set<string> };
  readonly seen: NotReady[] = [];
  /** When each host was first seen down in the current window (ms from its start). */
  firstDown = new Map<string, number>();
  polls = 0;
  failures = 0;

  constructor(private readonly everyMs = 250) {}

  use(socket: string): void {
    if (socket === this.socket) return;
    this.client?.close();
    this.socket = socket;
    this.client = localClient(socket);
  }

  start(): void {
    this.loop ??= this.run();
  }

  open(name: string, expect: string[] = []): void {
    this.window = { name, t0: performance.now(), expect: new Set(expect) };
    this.firstDown = new Map();
  }

  close(): void {
    this.window = undefined;
  }

  /** Not-ready sightings of hosts not expected to be down, in windows whose name passes the filter. */
  falseDowns(filter: (window: string) => boolean = () => true): NotReady[] {
    return this.seen.filter((s) => filter(s.window));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.client?.close();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const start = performance.now();
      const w = this.window;
      if (w && this.client) {
        try {
          const res = await call(this.client, ControlService.listNodes, {} as never, 2_000);
          this.polls++;
          for (const n of res.nodes ?? []) {
            const host = n.description?.hostname || n.id || '?';
            const state = STATE[Number(n.status?.state ?? 0)] ?? String(n.status?.state);
            if (state === 'ready') continue;
            const at = performance.now() - w.t0;
            if (state === 'down' && !this.firstDown.has(host)) this.firstDown.set(host, at);
            if (w.expect.has(host)) continue;
            const prev = this.seen.find((s) => s.window === w.name && s.host === host && s.state === state);
            if (!prev) this.seen.push({ window: w.name, host, state, atMs: at, message: n.status?.message ?? '' });
          }
        } catch {
          this.failures++; // no leader for a moment, or the manager is the one killed
        }
      }
      await sleep(Math.max(0, this.everyMs - (performance.now() - start)));
    }
  }
}

// ---- daemon logs ------------------------------------------------------------------------------

/** A log file's text; '' when it is not there (a host whose daemon never started). */
export function logText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export interface LogCounts {
  /** `became leader at term N` lines, all hosts. */
  leaders: number;
  /** `became pre-candidate` / `became candidate` lines: election attempts, won or not. */
  preCandidates: number;
  candidates: number;
  /** `node marked down` lines (the leader's dispatcher). */
  markedDown: number;
  /** Highest term named in those lines. */
  maxTerm: number;
}

/** Counts the raft and dispatcher lines of interest in the given shoald logs. */
export function scanLogs(files: string[]): LogCounts {
  const out: LogCounts = { leaders: 0, preCandidates: 0, candidates: 0, markedDown: 0, maxTerm: 0 };
  for (const f of files) {
    const text = logText(f);
    for (const m of text.matchAll(/became (leader|pre-candidate|candidate) at term (\d+)/g)) {
      if (m[1] === 'leader') out.leaders++;
      else if (m[1] === 'candidate') out.candidates++;
      else out.preCandidates++;
      out.maxTerm = Math.max(out.maxTerm, Number(m[2]));
    }
    out.markedDown += (text.match(/node marked down/g) ?? []).length;
  }
  return out;
}

export function diffLogs(a: LogCounts, b: LogCounts): LogCounts {
  return {
    leaders: b.leaders - a.leaders, preCandidates: b.preCandidates - a.preCandidates, candidates: b.candidates - a.candidates,
    markedDown: b.markedDown - a.markedDown, maxTerm: b.maxTerm - a.maxTerm,
  };
}

/** A line of interest from a shoald log: raft role changes, nodes marked down, sessions lost. */
export interface LogEvent {
  /** Epoch ms (pino's stamp). */
  time: number;
  host: string;
  msg: string;
  node?: string;
}

const EVENT_RE = /became (leader|candidate|pre-candidate)|stepped down|node marked down|quorum|session ended|session with the leader|heartbeat failed/;

/** The lines of interest stamped within [from, to], oldest first. */
export function logEvents(files: Record<string, string>, from: number, to: number): LogEvent[] {
  const out: LogEvent[] = [];
  for (const [host, f] of Object.entries(files)) {
    const text = logText(f);
    for (const raw of text.split('\n')) {
      if (!raw.startsWith('{') || !EVENT_RE.test(raw)) continue;
      try {
        const l = JSON.parse(raw) as { time: number; msg?: string; node?: string; err?: string };
        if (l.time < from || l.time > to || !l.msg || !EVENT_RE.test(l.msg)) continue;
        out.push({ time: l.time, host, msg: l.err ? `${l.msg} (${l.err})` : l.msg, ...(l.node ? { node: l.node } : {}) });
      } catch {
        // a torn last line
      }
    }
  }
  return out.sort((a, b) => a.time - b.time);
}
