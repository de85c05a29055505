// How the converge bench times a step from containerd's events: which
// containers count, which event ends the step, and when it falls back to the
// poll's time. No containerd here: events are recorded by hand.
import { describe, expect, it } from 'vitest';
import type { ContainerState } from '../../../worker/runtime/runtime.js';
import type { ServicesCluster } from '../../system/services/harness.js';
import { ContainerEvents, type EventKind } from './events.js';
import { exactTimes } from './observe.js';
import { breakdown, describe as describeBreakdown } from './breakdown.js';

const T0 = 1_700_000_000_000;
const ctr = (id: string, state: ContainerState = 'running') => ({ id, state, labels: {}, image: 'img', pid: 1 });

function eventsOf(rows: Array<[kind: EventKind, id: string, atMs: number, host?: string]>): ContainerEvents {
  const ev = new ContainerEvents({} as ServicesCluster, []);
  for (const [kind, id, at, host] of rows) ev.record(kind, id, T0 + at, host);
  return ev;
}

describe('ContainerEvents.latest', () => {
  const ev = eventsOf([['start', 'a', 100], ['start', 'b', 250], ['start', 'old', -50], ['start', 'a', 120]]);

  it.each([
    { ids: ['a', 'b'], want: { ms: 250, missing: [] } },
    { ids: ['a'], want: { ms: 120, missing: [] } },
    { ids: ['a', 'c'], want: { missing: ['c'] } },
    { ids: ['old'], want: { missing: ['old'] } }, // before the step began
    { ids: [], want: { missing: [] } }, // nothing to time by
  ])('$ids -> $want', ({ ids, want }) => {
    expect(ev.latest('start', ids, T0)).toEqual(want);
  });

  it('keeps the kinds apart', () => {
    expect(ev.latest('delete', ['a'], T0)).toEqual({ missing: ['a'] });
  });
});

describe('ContainerEvents.latestPerHost', () => {
  const ev = eventsOf([['start', 'a', 100, 'h1'], ['start', 'b', 250, 'h1'], ['start', 'c', 180, 'h2'], ['start', 'old', -50, 'h3'], ['start', 'nohost', 90]]);

  it.each([
    { ids: ['a', 'b', 'c'], want: { h1: 250, h2: 180 } },
    { ids: ['a', 'c'], want: { h1: 100, h2: 180 } },
    { ids: ['old', 'nohost', 'missing'], want: {} }, // before the step, no host known, no event
  ])('$ids -> $want', ({ ids, want }) => {
    expect(ev.latestPerHost('start', ids, T0)).toEqual(want);
  });
});

describe('ContainerEvents.times', () => {
  const ev = eventsOf([['exit', 'c', 700], ['exit', 'a', 100], ['exit', 'b', 400], ['exit', 'old', -20], ['start', 'a', 50]]);

  it.each([
    { ids: ['a', 'b', 'c'], want: [100, 400, 700] }, // sorted, whatever the order of the ids or the events
    { ids: ['c', 'old', 'missing'], want: [700] }, // before the step, or no event: left out
    { ids: [], want: [] },
  ])('$ids -> $want', ({ ids, want }) => {
    expect(ev.times('exit', ids, T0)).toEqual(want);
  });
});

describe('ContainerEvents.gaps', () => {
  const ev = eventsOf([
    ['exit', 'a', 100], ['taskDelete', 'a', 400],
    ['exit', 'b', 200], ['taskDelete', 'b', 250],
    ['exit', 'c', 300], // not deleted yet
    ['exit', 'old', -100], ['taskDelete', 'old', 50], // exited before the step
  ]);

  it.each([
    { ids: ['a', 'b', 'c'], want: [50, 300] }, // per container, sorted; one without both events is left out
    { ids: ['old'], want: [] },
    { ids: [], want: [] },
  ])('$ids -> $want', ({ ids, want }) => {
    expect(ev.gaps('exit', 'taskDelete', ids, T0)).toEqual(want);
  });
});

describe('exactTimes', () => {
  it('a create or scale-up ends at the last start of the containers new since the step began', () => {
    const events = eventsOf([['start', 'n1', 300, 'h1'], ['start', 'n2', 410, 'h2'], ['start', 'old1', -5_000, 'h1']]);
    const final = [ctr('old1'), ctr('n1'), ctr('n2'), ctr('n3', 'created')];
    expect(exactTimes({ events, kind: 'start', before: new Set(['old1']), sinceWall: T0 }, final, 500)).toEqual({
      ms: 410, exact: true, perHostMs: { h1: 300, h2: 410 }, spread: { start: { first: 300, median: 300, last: 410 } },
    });
  });

  it('a scale-down ends at the last delete of the containers gone, and says when the last of them exited', () => {
    const events = eventsOf([
      ['exit', 'g1', 200, 'h1'], ['exit', 'g2', 350, 'h1'], ['taskDelete', 'g1', 300, 'h1'], ['taskDelete', 'g2', 800, 'h1'],
      ['delete', 'g1', 600, 'h1'], ['delete', 'g2', 900, 'h1'], ['exit', 'kept', 100, 'h2'],
    ]);
    const r = exactTimes({ events, kind: 'delete', before: new Set(['g1', 'g2', 'kept']), sinceWall: T0 }, [ctr('kept')], 1_000);
    expect(r).toEqual({
      ms: 900, exact: true, exitedMs: 350, perHostMs: { h1: 900 }, exitPerHostMs: { h1: 350 },
      spread: { exit: { first: 200, median: 200, last: 350 }, delete: { first: 600, median: 600, last: 900 } },
      gaps: { exitToTaskDelete: { first: 100, median: 100, last: 450 }, taskDeleteToDelete: { first: 100, median: 100, last: 300 } },
    });
  });

  it('falls back to the poll time and names the containers without an event', () => {
    const events = eventsOf([['start', 'n1', 300]]);
    const r = exactTimes({ events, kind: 'start', before: new Set(), sinceWall: T0 }, [ctr('n1'), ctr('n2')], 500);
    expect(r).toEqual({ ms: 500, exact: false, noEvent: { ids: ['n2'], of: 2 } });
  });

  it('without events, the poll time is the time', () => {
    expect(exactTimes(undefined, [ctr('x')], 700)).toEqual({ ms: 700 });
  });
});

describe('breakdown of shoald debug lines', () => {
  const T = 1_000_000;
  const pass = (dt: number, ms: number, wrote = 0) => ({ time: T + dt, host: 'host1', msg: 'orchestration pass', created: wrote, removed: 0, updated: 0, assigned: 0, ms });
  it('counts every pass, those that wrote, and the time in them', () => {
    const b = breakdown([pass(50, 3.5, 90), pass(60, 1.2), pass(80, 0.8), { time: T + 500, host: 'host4', msg: 'task runner: task state', state: 'TASK_SHUTDOWN' }], T);
    expect(b.passes).toEqual({ n: 3, first: 50, last: 80 });
    expect([b.passesWrote, b.passMs]).toEqual([1, 5.5]);
    expect(describeBreakdown(b)).toBe('leader orchestration passes +0.05..+0.08 s (3, 1 writing; 6 ms in all); SHUTDOWN 1 +0.50..+0.50');
  });
});
