// Crash points: what a SIGKILL at one exact moment leaves behind, made
// testable. With SHOAL_CRASH_AT=<point>[,<point>...] in its environment the
// daemon kills itself with SIGKILL on reaching that point, as a power cut or
// the OOM killer would; a test then restarts it and checks that the node and
// the cluster recover. Unset (always, outside such tests) nothing happens.
// A name that is not a point is refused at start: a misspelt one would arm
// nothing, and the test would wait for a crash that never comes.

export const CRASH_POINTS = {
  'join:after-raft-add': 'a manager join, after raft added this node as a learner and before node.json was saved',
} as const;

export type CrashPoint = keyof typeof CRASH_POINTS;

/** The points a SHOAL_CRASH_AT value arms; throws, naming the known ones, on any other name. */
export function parseCrashPoints(value: string | undefined): Set<CrashPoint> {
  const names = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !Object.hasOwn(CRASH_POINTS, n));
  if (unknown.length > 0) {
    throw new Error(`SHOAL_CRASH_AT: no crash point named ${unknown.map((n) => `"${n}"`).join(', ')}; the points are: ${Object.keys(CRASH_POINTS).join(', ')} (unset it outside tests)`);
  }
  return new Set(names as CrashPoint[]);
}

let armed: Set<CrashPoint> = new Set();

/** Arms the points named in SHOAL_CRASH_AT (shoald's start); throws on an unknown name. */
export function armCrashPoints(value = process.env.SHOAL_CRASH_AT): ReadonlySet<CrashPoint> {
  armed = parseCrashPoints(value);
  return armed;
}

export function crashPoint(point: CrashPoint): void {
  if (!armed.has(point)) return;
  // Written synchronously: the kill leaves no time for an asynchronous logger to flush.
  process.stderr.write(`shoald: SHOAL_CRASH_AT=${point}: killing this daemon here (SIGKILL)\n`);
  process.kill(process.pid, 'SIGKILL');
}
