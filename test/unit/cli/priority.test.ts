// applyNice's choice about the session's autogroup, against a /proc of the test's
// making: the thread list names this process only, set to the nice value it already
// has, so nothing changes for real.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyNice } from '../../../cli/shoald/priority.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A /proc/self with this process as its one thread, leading its session or not, and an autogroup file as given (null: none). */
function fakeProc(leader: boolean, autogroup: string | null): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shoal-proc-'));
  dirs.push(dir);
  mkdirSync(path.join(dir, 'task', String(process.pid)), { recursive: true });
  const session = leader ? process.pid : process.pid + 1;
  // pid (comm) state ppid pgrp session ...: a command name with a space and a ')' as /proc allows.
  writeFileSync(path.join(dir, 'stat'), `${process.pid} (node x) y) S 1 ${session} ${session} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0\n`);
  if (autogroup !== null) writeFileSync(path.join(dir, 'autogroup'), autogroup);
  return dir;
}

describe('applyNice and the session autogroup', () => {
  const nice = os.getPriority();
  it.each([
    { why: 'a session leader with an autogroup of its own sets it', leader: true, autogroup: '/autogroup-42 nice 0\n', set: true },
    { why: 'a process that does not lead its session leaves it (it would rank the whole session)', leader: false, autogroup: '/autogroup-42 nice 0\n', set: false },
    { why: 'a session leader in the default autogroup (empty file: the root group, as PID 1 of a container) leaves it, without error', leader: true, autogroup: '', set: false },
    { why: 'a kernel without autogroups (no file) is no error', leader: true, autogroup: null, set: false },
  ])('$why', ({ leader, autogroup, set }) => {
    const proc = fakeProc(leader, autogroup);
    const r = applyNice(nice, proc);
    expect(r.error).toBeUndefined();
    expect(r.threads).toBe(1);
    expect(r.autogroup).toBe(set);
    const file = path.join(proc, 'autogroup');
    if (set) expect(readFileSync(file, 'utf8')).toBe(String(nice));
    else if (autogroup !== null) expect(readFileSync(file, 'utf8')).toBe(autogroup);
    else expect(existsSync(file)).toBe(false);
  });
});
