// The chaos soak's fault schedule: replayable from its seed, and the faults
// that hold together always leave the managers a quorum.
import { describe, expect, it } from 'vitest';
import { chaosSchedule, describeFault, quorumHolds, type Fault, type Round } from '../../system/services/chaos.js';

const hosts = ['host1', 'host2', 'host3', 'host4', 'host5'];
const managers = ['host1', 'host2', 'host3'];
const schedule = (seed: number, rounds = 200): Round[] => chaosSchedule({ seed, rounds, hosts, managers });

describe('chaosSchedule', () => {
  it('gives the same rounds for the same seed, other rounds for another', () => {
    expect(schedule(7)).toEqual(schedule(7));
    expect(schedule(7)).not.toEqual(schedule(8));
  });

  it.each([1, 2, 3, 42, 1974407258])('seed %i: the faults that hold together leave a quorum, and at most two hold at once', (seed) => {
    const rounds = schedule(seed);
    for (let i = 0; i < rounds.length; i++) {
      const lingering = i > 0 && rounds[i - 1]!.linger ? [rounds[i - 1]!.fault] : [];
      expect(quorumHolds([...lingering, rounds[i]!.fault], managers), `round ${i}`).toBe(true);
      if (lingering.length) expect(rounds[i]!.linger, `round ${i}: two faults lingering`).toBe(false);
    }
  });

  const f = {
    kill: (host: string): Fault => ({ kind: 'shoald', host }),
    box: (host: string): Fault => ({ kind: 'host', host }),
    cut: (a: string, b: string): Fault => ({ kind: 'partition', a, b }),
    runtime: (host: string): Fault => ({ kind: 'runtime', host }),
    leader: { kind: 'leader' } as Fault,
  };
  it.each([
    ['no fault', [], true],
    ['a worker killed', [f.kill('host4')], true],
    ['one manager killed', [f.kill('host1')], true],
    ['two managers killed', [f.kill('host1'), f.box('host2')], false],
    ['the leader killed', [f.leader], true],
    ['the leader and another manager killed', [f.leader, f.kill('host3')], false],
    ['two managers cut apart', [f.cut('host1', 'host2')], true],
    ['one manager cut from both others', [f.cut('host1', 'host2'), f.cut('host1', 'host3')], true],
    ['two managers cut apart, the third killed', [f.cut('host1', 'host2'), f.kill('host3')], false],
    ['the leader killed, two managers cut apart', [f.leader, f.cut('host2', 'host3')], false],
    ['a containerd killed, two managers cut apart', [f.runtime('host3'), f.cut('host1', 'host2')], true],
    ['a manager drained, another killed', [{ kind: 'drain', host: 'host1' }, f.kill('host2')], true],
  ])('quorum with %s: %s', (_, faults, holds) => {
    expect(quorumHolds(faults as Fault[], managers)).toBe(holds);
  });

  it('keeps every value in its range and uses every kind of fault', () => {
    const rounds = schedule(99, 500);
    for (const r of rounds) {
      expect(r.holdMs).toBeGreaterThanOrEqual(300);
      expect(r.holdMs).toBeLessThanOrEqual(4_000);
      expect(r.pauseMs).toBeGreaterThanOrEqual(0);
      expect(r.pauseMs).toBeLessThanOrEqual(2_500);
      expect(r.scales).toHaveLength(r.askOn.length);
      for (const n of r.scales) expect(n >= 0 && n <= 24 && Number.isInteger(n)).toBe(true);
      for (const k of r.askOn) expect(k >= 0 && k < managers.length).toBe(true);
      if (r.updateOn !== undefined) expect(r.updateOn >= 0 && r.updateOn < managers.length).toBe(true);
      if (r.fault.kind === 'partition') expect(r.fault.a).not.toBe(r.fault.b);
      if (r.fault.kind === 'none') expect(r.linger).toBe(false);
    }
    const updates = rounds.filter((r) => r.updateOn !== undefined).length;
    expect(updates).toBeGreaterThan(100);
    expect(updates).toBeLessThan(200);
    expect(new Set(rounds.map((r) => r.fault.kind))).toEqual(new Set(['none', 'shoald', 'host', 'runtime', 'partition', 'leader', 'drain']));
  });

  it.each([
    [{ rounds: 0 }, /rounds must be a positive integer, got 0/],
    [{ rounds: 1.5 }, /rounds must be a positive integer, got 1.5/],
    [{ hosts: ['host1'] }, /at least 2 hosts/],
  ])('refuses %j', (over, msg) => {
    expect(() => chaosSchedule({ seed: 1, rounds: 3, hosts, managers, ...over })).toThrow(msg);
  });

  it.each([
    [{ kind: 'none' } as const, 'no fault'],
    [{ kind: 'partition', a: 'host1', b: 'host4' } as const, 'partition host1 <-> host4'],
    [{ kind: 'host', host: 'host5' } as const, "SIGKILL host5's shoald and containerd"],
    [{ kind: 'runtime', host: 'host2' } as const, "SIGKILL host2's containerd"],
    [{ kind: 'drain', host: 'host3' } as const, 'drain host3'],
  ])('describes %j as "%s"', (f, text) => {
    expect(describeFault(f)).toBe(text);
  });

  it('names the runtime it is given', () => {
    expect(describeFault({ kind: 'host', host: 'host1' }, 'dockerd')).toBe("SIGKILL host1's shoald and dockerd");
    expect(describeFault({ kind: 'runtime', host: 'host2' }, 'dockerd')).toBe("SIGKILL host2's dockerd");
  });
});
