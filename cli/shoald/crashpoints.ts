// Crash points: what a SIGKILL at one exact moment leaves behind, made
// testable. With SHOAL_CRASH_AT=<point>[,<point>...] in its environment the
// daemon kills itself with SIGKILL on reaching that point, as a power cut or
// the OOM killer would; a test then restarts it and checks that the node and
// the cluster recover. Unset (always, outside such tests) nothing happens.
//
// Points:
//   join:after-raft-add  a manager join, after raft added this node as a
//                        learner and before node.json was saved
const armed = new Set((process.env.SHOAL_CRASH_AT ?? '').split(',').map((s) => s.trim()).filter(Boolean));

export function crashPoint(point: string): void {
  if (!armed.has(point)) return;
  // Written synchronously: the kill leaves no time for an asynchronous logger to flush.
  process.stderr.write(`shoald: SHOAL_CRASH_AT=${point}: killing this daemon here (SIGKILL)\n`);
  process.kill(process.pid, 'SIGKILL');
}
