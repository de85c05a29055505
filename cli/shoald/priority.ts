// shoald's CPU scheduling priority. A burst of container starts or stops
// (runc, shims, log pipes, cgroup and mount work) puts tens of runnable
// threads on a small machine; at equal priority the kernel then gives shoald a
// slice only every tens of ms, and a manager that needs 50 ms of CPU waits a
// second for it: heartbeats go out late and followers start elections. etcd's
// operators renice it for the same reason. shoald uses little CPU, so a
// higher priority costs the containers next to nothing.
//
// With the kernel's autogroups on (the default of most distributions), the
// scheduler first shares the CPU between sessions, and a thread's nice value
// only ranks it within its own session: so when shoald leads its session (the
// lab starts it so), the session's nice is set too. Autogroups apply only in
// the root CPU cgroup: in a cgroup of its own (a systemd unit with the cpu
// controller on), the cgroup's weight (CPUWeight=) is what ranks shoald.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';

export const DEFAULT_NICE = -10;

/** Parses --nice: an integer from -20 (most favoured) to 19. */
export function parseNice(text: string): number {
  const n = Number(text);
  if (!/^[+-]?\d+$/.test(text.trim()) || !Number.isInteger(n) || n < -20 || n > 19) {
    throw new Error(`--nice ${text}: expected an integer from -20 (highest priority) to 19 (lowest)`);
  }
  return n;
}

export interface NiceResult {
  /** Threads set (Linux keeps a nice value per thread). */
  threads: number;
  /** The session's autogroup was set (shoald leads its session, and the kernel has autogroups). */
  autogroup: boolean;
  /** Why some or all could not be set (raising priority needs root or CAP_SYS_NICE). */
  error?: string;
}

/**
 * Sets the nice value of every thread of this process: the main thread
 * (event loop) and V8's and libuv's helpers started so far. Threads started
 * later inherit it from the thread that starts them.
 */
export function applyNice(nice: number, proc = '/proc/self'): NiceResult {
  const taskDir = `${proc}/task`;
  let tids: number[];
  try {
    tids = readdirSync(taskDir).map(Number).filter((t) => Number.isInteger(t) && t > 0);
  } catch {
    tids = [0]; // no /proc: this thread only
  }
  let threads = 0;
  let error: string | undefined;
  for (const tid of tids) {
    try {
      os.setPriority(tid, nice);
      threads++;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      // A thread that ended meanwhile is no failure.
      if (code === 'ESRCH' || /ESRCH|no such process/i.test((e as Error).message)) continue;
      error ??= (e as Error).message;
    }
  }
  let autogroup = false;
  if (leadsSession(proc) && inAutogroupOfItsOwn(proc)) {
    try {
      writeFileSync(`${proc}/autogroup`, String(nice));
      autogroup = true;
    } catch (e) {
      error ??= `autogroup: ${(e as Error).message}`;
    }
  }
  return { threads, autogroup, error };
}

/**
 * Whether the process has an autogroup that can be set. The file is missing on
 * a kernel without autogroups, and empty for the kernel's default autogroup
 * (the root group, whose weight cannot change): a session leader that never
 * called setsid, such as PID 1 in a container. Thread nice values are then
 * what counts.
 */
function inAutogroupOfItsOwn(proc: string): boolean {
  try {
    return /^\/autogroup-\d+ /.test(readFileSync(`${proc}/autogroup`, 'utf8'));
  } catch {
    return false;
  }
}

/** Whether this process leads its session (field 6 of /proc/<pid>/stat is the session id). */
function leadsSession(proc: string): boolean {
  try {
    const stat = readFileSync(`${proc}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields after the last ')' are plain.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pid = Number(stat.slice(0, stat.indexOf(' ')));
    return Number(rest[3]) === pid;
  } catch {
    return false;
  }
}
