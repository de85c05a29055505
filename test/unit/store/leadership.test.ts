// LeadershipGate against a fake raft event source.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { LeadershipGate } from '../../../manager/store/index.js';

class FakeSource extends EventEmitter {
  leader = false;
  barrierCalls = 0;
  barrier: () => Promise<void> = () => Promise.resolve();

  isLeader(): boolean {
    return this.leader;
  }

  readBarrier(): Promise<void> {
    this.barrierCalls++;
    return this.barrier();
  }

  set(leader: boolean): void {
    this.leader = leader;
    this.emit('state', { lead: leader ? 1 : 2, state: leader ? 2 : 0, term: 1 });
  }
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

/** A task that records its lifetime and runs until aborted. */
function recorder(log: string[], name: string, stopDelayMs = 0) {
  let live = 0;
  let maxLive = 0;
  const signals: AbortSignal[] = [];
  const task = async (signal: AbortSignal) => {
    signals.push(signal);
    live++;
    maxLive = Math.max(maxLive, live);
    log.push(`${name} start`);
    await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
    await tick(stopDelayMs);
    log.push(`${name} stop`);
    live--;
  };
  return { task, signals, get maxLive() { return maxLive; } };
}

describe('LeadershipGate', () => {
  it('runs tasks while leading and aborts them the moment leadership is lost', async () => {
    const src = new FakeSource();
    const gate = new LeadershipGate(src);
    const log: string[] = [];
    const a = recorder(log, 'a');
    const b = recorder(log, 'b');
    gate.add('a', a.task);
    gate.add('b', b.task);
    gate.start();
    await gate.settled();
    expect(log).toEqual([]);
    expect(gate.leading).toBe(false);

    src.set(true);
    await gate.settled();
    expect(gate.leading).toBe(true);
    expect(log).toEqual(['a start', 'b start']);
    expect(src.barrierCalls).toBe(1);

    src.set(false);
    // Synchronously, before any await: a deposed leader must stop acting now.
    expect(a.signals[0]!.aborted && b.signals[0]!.aborted).toBe(true);
    expect(gate.leading).toBe(false);
    await gate.settled();
    expect(log).toEqual(['a start', 'b start', 'a stop', 'b stop']);

    src.set(true);
    await gate.settled();
    expect(a.signals).toHaveLength(2);
    expect(a.signals[1]!.aborted).toBe(false);
    await gate.stop();
    expect(a.signals[1]!.aborted).toBe(true);
    expect(log.slice(-2)).toEqual(['a stop', 'b stop']);
  });

  it('starts tasks only after the read barrier, and not at all if leadership ends first', async () => {
    const src = new FakeSource();
    let release!: () => void;
    src.barrier = () => new Promise((r) => { release = r; });
    const gate = new LeadershipGate(src);
    const log: string[] = [];
    gate.add('a', recorder(log, 'a').task);
    gate.start();
    src.set(true);
    await tick(5);
    expect(log).toEqual([]);
    expect(gate.leading).toBe(false);
    src.set(false);
    release();
    await gate.settled();
    expect(log).toEqual([]);

    src.barrier = () => Promise.resolve();
    src.set(true);
    await gate.settled();
    expect(log).toEqual(['a start']);
    await gate.stop();
  });

  it('never runs two generations at once: a new term waits for the old tasks to return', async () => {
    const src = new FakeSource();
    const gate = new LeadershipGate(src);
    const log: string[] = [];
    const a = recorder(log, 'a', 30);
    gate.add('a', a.task);
    gate.start();
    src.set(true);
    await gate.settled();
    src.set(false);
    src.set(true);
    await tick(5);
    expect(log).toEqual(['a start']);
    await gate.settled();
    expect(log).toEqual(['a start', 'a stop', 'a start']);
    expect(a.maxLive).toBe(1);
    await gate.stop();
  });

  it('restarts a task that fails while still leading, and reports the error', async () => {
    const src = new FakeSource();
    const errors: string[] = [];
    const gate = new LeadershipGate(src, { restartDelayMs: 5, onError: (name, e) => errors.push(`${name}: ${(e as Error).message}`) });
    let runs = 0;
    gate.add('flaky', async (signal) => {
      runs++;
      if (runs < 3) throw new Error(`boom ${runs}`);
      await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
    });
    src.leader = true;
    gate.start();
    await tick(50);
    expect(runs).toBe(3);
    expect(errors).toEqual(['flaky: boom 1', 'flaky: boom 2']);
    await gate.stop();
  });

  it('retries a failing read barrier while leading', async () => {
    const src = new FakeSource();
    let fails = 2;
    src.barrier = () => (fails-- > 0 ? Promise.reject(new Error('no quorum yet')) : Promise.resolve());
    const errors: string[] = [];
    const gate = new LeadershipGate(src, { restartDelayMs: 5, onError: (name) => errors.push(name) });
    const log: string[] = [];
    gate.add('a', recorder(log, 'a').task);
    src.leader = true;
    gate.start();
    await tick(50);
    await gate.settled();
    expect(errors).toEqual(['readBarrier', 'readBarrier']);
    expect(log).toEqual(['a start']);
    await gate.stop();
  });

  it('a task added while leading starts at once; its disposer stops only it', async () => {
    const src = new FakeSource();
    const gate = new LeadershipGate(src);
    const log: string[] = [];
    const a = recorder(log, 'a');
    gate.add('a', a.task);
    src.leader = true;
    gate.start();
    await gate.settled();
    const remove = gate.add('b', recorder(log, 'b').task);
    expect(log).toEqual(['a start', 'b start']);
    expect(() => gate.add('b', async () => {})).toThrow(/already registered/);
    await remove();
    expect(log).toEqual(['a start', 'b start', 'b stop']);
    expect(a.signals[0]!.aborted).toBe(false);
    src.set(false);
    src.set(true);
    await gate.settled();
    expect(log).toEqual(['a start', 'b start', 'b stop', 'a stop', 'a start']);
    await gate.stop();
  });
});
