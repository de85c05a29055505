// ReportPacer: when the agent sends queued task states. Reports wait while any
// task is on its way to running (bounded), and go soon once none is.
import { describe, expect, it } from 'vitest';
import { api } from '../../../proto/services.js';
import { ReportPacer } from '../../../worker/agent/reportpacer.js';

const S = api.TaskState;

describe('ReportPacer', () => {
  const cases: Array<{ name: string; steps: Array<[at: number, task: string, state: number]>; now: number; delay: number }> = [
    { name: 'a task running: the quiet delay', steps: [[0, 'a', S.TASK_RUNNING]], now: 0, delay: 40 },
    { name: 'a task preparing: held up to the bound', steps: [[0, 'a', S.TASK_PREPARING]], now: 0, delay: 1_000 },
    { name: 'held from the oldest queued report', steps: [[0, 'a', S.TASK_ACCEPTED], [600, 'b', S.TASK_ACCEPTED]], now: 600, delay: 400 },
    { name: 'past the bound: never less than the quiet delay', steps: [[0, 'a', S.TASK_STARTING]], now: 5_000, delay: 40 },
    { name: 'the last task in transit reaches running: quiet again', steps: [[0, 'a', S.TASK_READY], [0, 'b', S.TASK_READY], [300, 'a', S.TASK_RUNNING], [310, 'b', S.TASK_RUNNING]], now: 310, delay: 40 },
    { name: 'one of two still starting: still held', steps: [[0, 'a', S.TASK_READY], [0, 'b', S.TASK_READY], [300, 'a', S.TASK_RUNNING]], now: 300, delay: 700 },
    { name: 'a failure ends the wait like running does', steps: [[0, 'a', S.TASK_STARTING], [100, 'a', S.TASK_FAILED]], now: 100, delay: 40 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      let t = 0;
      const p = new ReportPacer({ quietMs: 40, holdMaxMs: 1_000 }, () => t);
      for (const [at, task, state] of c.steps) {
        t = at;
        p.queued(task, state);
      }
      t = c.now;
      expect(p.delay()).toBe(c.delay);
    });
  }

  it('sent(): the next wait counts from reports queued after it', () => {
    let t = 0;
    const p = new ReportPacer({ quietMs: 40, holdMaxMs: 1_000 }, () => t);
    p.queued('a', S.TASK_PREPARING);
    t = 1_000;
    p.sent(false);
    t = 1_500;
    p.queued('a', S.TASK_STARTING);
    expect(p.delay()).toBe(1_000);
    t = 1_800;
    p.sent(true); // more came while sending
    expect(p.delay()).toBe(1_000);
  });

  it('a burst of stops: reports held until the last task asked to stop has ended', () => {
    let t = 0;
    const p = new ReportPacer({ quietMs: 40, holdMaxMs: 1_000 }, () => t);
    p.assigned('a', S.TASK_SHUTDOWN, S.TASK_RUNNING);
    p.assigned('b', S.TASK_SHUTDOWN, S.TASK_RUNNING);
    p.assigned('c', S.TASK_SHUTDOWN, S.TASK_COMPLETE); // already ended: nothing more to come
    p.assigned('d', S.TASK_RUNNING, S.TASK_RUNNING); // not asked to stop
    expect(p.inTransit).toBe(2);
    t = 200;
    p.queued('a', S.TASK_SHUTDOWN);
    expect(p.delay()).toBe(1_000);
    t = 300;
    p.queued('b', S.TASK_FAILED);
    expect(p.delay()).toBe(40);
  });

  it('tasks taken away (removed, or missing from a full set) no longer hold reports', () => {
    const p = new ReportPacer();
    p.queued('a', S.TASK_ACCEPTED);
    p.queued('b', S.TASK_ACCEPTED);
    p.queued('c', S.TASK_ACCEPTED);
    p.forget('a');
    expect(p.inTransit).toBe(2);
    p.retain(new Set(['b']));
    expect(p.inTransit).toBe(1);
    p.forget('b');
    expect(p.delay()).toBe(40);
  });
});
