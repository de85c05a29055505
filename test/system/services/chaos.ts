// The fault schedule of the chaos soak (chaos.test.ts), pure: a seed gives
// the same rounds every time, so a failing run replays with its seed.
//
// A round injects one fault, asks for scales (and now and then a rolling
// update) while it holds, repairs it (or,
// now and then, leaves it for a later round, so faults overlap), then pauses
// for less than convergence takes, so the next fault lands mid-convergence.
// The faults that hold together always leave the managers a quorum (a live
// manager linked to a majority), so the scales have a chance to be acknowledged.
import { mulberry32 } from '../../support/random.js';

export type Fault =
  | { kind: 'none' }
  /** SIGKILL the host's shoald; repaired by starting it. */
  | { kind: 'shoald'; host: string }
  /** SIGKILL the host's shoald and container runtime (the containers live on); repaired by starting both. */
  | { kind: 'host'; host: string }
  /** SIGKILL the host's container runtime alone (containerd, or dockerd); repaired by starting it. */
  | { kind: 'runtime'; host: string }
  /** Cut all traffic between two hosts; repaired by healing that link. */
  | { kind: 'partition'; a: string; b: string }
  /** SIGKILL whichever shoald leads when the round starts; repaired by starting it. */
  | { kind: 'leader' }
  /** Not a fault but an operator's move amid them: drain the host's node; repaired by making it active again. */
  | { kind: 'drain'; host: string };

export interface Round {
  fault: Fault;
  /** How long the fault holds before its repair (ms). */
  holdMs: number;
  /** Replica counts asked for while it holds, in order. */
  scales: number[];
  /** Which live manager each scale is asked on: an index into the managers that answer then. */
  askOn: number[];
  /** Also start a rolling update of the task template (a new env value) while the fault holds, on this manager index. */
  updateOn?: number;
  /** Leave the fault in place until the round after next (repaired then, or at the end). */
  linger: boolean;
  /** After the repair, before the next round (ms). */
  pauseMs: number;
}

export interface ScheduleOptions {
  seed: number;
  rounds: number;
  hosts: readonly string[];
  managers: readonly string[];
  /** Largest replica count asked for (default 24). */
  maxReplicas?: number;
}

const KINDS = ['none', 'shoald', 'shoald', 'host', 'runtime', 'partition', 'partition', 'leader', 'drain'] as const;

/**
 * Whether the managers keep a quorum under these faults together: some live manager is linked to
 * a majority of the managers, itself included. A leader kill may hit any manager: every choice must hold.
 */
export function quorumHolds(faults: readonly Fault[], managers: readonly string[]): boolean {
  const leaderKills = faults.filter((f) => f.kind === 'leader').length;
  if (leaderKills > 0) {
    const rest = faults.filter((f) => f.kind !== 'leader');
    return managers.every((m) => quorumHolds([...rest, { kind: 'shoald', host: m }], managers));
  }
  const dead = new Set(faults.flatMap((f) => (f.kind === 'shoald' || f.kind === 'host' ? [f.host] : [])));
  const cut = (a: string, b: string): boolean => faults.some((f) => f.kind === 'partition' && ((f.a === a && f.b === b) || (f.a === b && f.b === a)));
  const live = managers.filter((m) => !dead.has(m));
  return live.some((m) => live.filter((o) => o === m || !cut(m, o)).length > managers.length / 2);
}

export function chaosSchedule(o: ScheduleOptions): Round[] {
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new Error(`rounds must be a positive integer, got ${o.rounds}`);
  if (o.hosts.length < 2) throw new Error('a chaos schedule needs at least 2 hosts');
  const rnd = mulberry32(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const between = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const max = o.maxReplicas ?? 24;
  const rounds: Round[] = [];
  /** The fault left in place by the previous round, if any: it holds during this round's. */
  let lingering: Fault | undefined;
  for (let i = 0; i < o.rounds; i++) {
    let fault: Fault = { kind: 'none' };
    for (let attempt = 0; attempt < 20; attempt++) {
      const kind = pick(KINDS);
      let f: Fault;
      if (kind === 'none' || kind === 'leader') f = { kind };
      else if (kind === 'partition') {
        const a = pick(o.hosts);
        f = { kind, a, b: pick(o.hosts.filter((h) => h !== a)) };
      } else f = { kind, host: pick(o.hosts) };
      if (quorumHolds(lingering ? [lingering, f] : [f], o.managers)) {
        fault = f;
        break;
      }
    }
    const nScales = between(0, 2);
    const linger = !lingering && fault.kind !== 'none' && rnd() < 0.25;
    const update = rnd() < 0.3;
    rounds.push({
      fault,
      holdMs: between(300, 4_000),
      scales: Array.from({ length: nScales }, () => between(0, max)),
      askOn: Array.from({ length: nScales }, () => between(0, o.managers.length - 1)),
      ...(update ? { updateOn: between(0, o.managers.length - 1) } : {}),
      linger,
      pauseMs: between(0, 2_500),
    });
    lingering = linger ? fault : undefined;
  }
  return rounds;
}

/** `runtime`: what runs the containers, as the hosts' daemons are named (containerd, dockerd). */
export function describeFault(f: Fault, runtime = 'containerd'): string {
  switch (f.kind) {
    case 'none':
      return 'no fault';
    case 'partition':
      return `partition ${f.a} <-> ${f.b}`;
    case 'leader':
      return "SIGKILL the leader's shoald";
    case 'shoald':
      return `SIGKILL ${f.host}'s shoald`;
    case 'host':
      return `SIGKILL ${f.host}'s shoald and ${runtime}`;
    case 'runtime':
      return `SIGKILL ${f.host}'s ${runtime}`;
    case 'drain':
      return `drain ${f.host}`;
  }
}
