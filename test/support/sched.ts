// A process's CPU priority as the kernel reports it in /proc: the nice value of
// each thread, and the nice value of its session's autogroup.
import { readFileSync, readdirSync } from 'node:fs';

/** Field 19 of a thread's stat (the nice value). The command name may hold spaces: fields after the last ')' are plain. */
export function threadNice(pid: number, tid = pid): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

/** The nice value of every thread of a process. */
export function threadNices(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => threadNice(pid, Number(tid)));
}

/**
 * The nice value of the process's autogroup, or null when it is in the kernel's
 * default autogroup (the root group, which /proc shows as an empty file): a
 * process whose session began before any setsid, as under a CI runner's PID 1.
 */
export function autogroupNice(pid: number): number | null {
  const m = /nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
  return m ? Number(m[1]) : null;
}
