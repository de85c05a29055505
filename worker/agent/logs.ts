// Reading a task's log file (written by the container logger, one line per
// output line: `<ISO-8601 UTC, seconds> <stdout|stderr> <text>`) as LogLine
// objects, with Docker's tail/since/follow. Tail reads backwards in chunks, so
// the last lines of a big log cost only their size; follow reacts to fs.watch
// and polls as well (inotify may be unavailable or out of watches).
import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { api, type LogLine } from '../../proto/services.js';

export interface LogQuery {
  follow: boolean;
  /** Lines from the end; -1: all. */
  tail: number;
  /** Milliseconds since the epoch; 0: all. */
  since: number;
}

const CHUNK = 64 * 1024;
const NL = 0x0a;
const SPACE = 0x20;
/** Polling fallback of follow. */
const POLL_MS = 500;

/** One line of the log format (without its newline); a line not in the format is stdout at time 0. */
export function parseLogLine(line: Buffer, taskId: string, nodeId: string): LogLine {
  const s1 = line.indexOf(SPACE);
  const s2 = s1 < 0 ? -1 : line.indexOf(SPACE, s1 + 1);
  const ts = s1 > 0 ? Date.parse(line.toString('latin1', 0, s1)) : NaN;
  const word = s2 > 0 ? line.toString('latin1', s1 + 1, s2) : '';
  const stream = word === 'stderr' ? api.LogStream.LOG_STDERR : api.LogStream.LOG_STDOUT;
  const ok = !Number.isNaN(ts) && (word === 'stdout' || word === 'stderr');
  // A copy: the chunk it came from is large and short-lived.
  const data = Buffer.from(ok ? line.subarray(s2 + 1) : line);
  return { taskId, nodeId, timestamp: ok ? ts : 0, stream, data } as LogLine;
}

/** Splits chunks into lines; an unfinished last line waits for its newline. */
class LineSplitter {
  private rest: Buffer[] = [];

  push(chunk: Buffer): Buffer[] {
    const lines: Buffer[] = [];
    let from = 0;
    for (let nl = chunk.indexOf(NL); nl >= 0; nl = chunk.indexOf(NL, from)) {
      const piece = chunk.subarray(from, nl);
      lines.push(this.rest.length ? Buffer.concat([...this.rest, piece]) : piece);
      this.rest = [];
      from = nl + 1;
    }
    if (from < chunk.length) this.rest.push(chunk.subarray(from));
    return lines;
  }

  reset(): void {
    this.rest = [];
  }
}

/** Offset of the first of the last n complete lines (a partial last line does not count). */
export async function tailOffset(fh: FileHandle, size: number, n: number): Promise<number> {
  const buf = Buffer.allocUnsafe(CHUNK);
  let seen = -1; // complete lines passed; -1 until the last newline is found
  for (let pos = size; pos > 0; ) {
    const start = Math.max(0, pos - CHUNK);
    const { bytesRead } = await fh.read(buf, 0, pos - start, start);
    for (let i = bytesRead - 1; i >= 0; i--) {
      if (buf[i] !== NL) continue;
      seen++;
      if (seen === n) return start + i + 1;
    }
    pos = start;
  }
  return 0;
}

async function openIfThere(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function inodeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).ino;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** A nudge that is kept when it comes while nobody waits (as fs.watch events do). */
class Nudge {
  private pending = false;
  private waiter?: () => void;

  fire = (): void => {
    this.pending = true;
    this.waiter?.();
  };

  async wait(ms: number): Promise<void> {
    if (!this.pending) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((r) => {
        this.waiter = r;
        timer = setTimeout(r, ms);
      });
      clearTimeout(timer);
      this.waiter = undefined;
    }
    this.pending = false;
  }
}

/**
 * Lines of one task's log file as LogLine objects, in batches, oldest first.
 * `since` has the file's resolution, whole seconds: lines of since's second
 * are included. With follow, keeps reading as the file grows (and when it is
 * created, replaced or truncated) until `signal` aborts; a missing file yields
 * nothing and, with follow, is waited for.
 */
export async function readTaskLog(
  path: string, taskId: string, nodeId: string, q: LogQuery, onLines: (lines: LogLine[]) => void, signal: AbortSignal,
): Promise<void> {
  if (signal.aborted) return;
  const since = q.since > 0 ? Math.floor(q.since / 1000) * 1000 : 0;
  const splitter = new LineSplitter();
  const emit = (raw: Buffer[]): void => {
    let lines = raw.map((l) => parseLogLine(l, taskId, nodeId));
    if (since) lines = lines.filter((l) => l.timestamp >= since);
    if (lines.length) onLines(lines);
  };
  /** Read from offset to the end of the file; returns the new offset. */
  const drain = async (fh: FileHandle, offset: number): Promise<number> => {
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK);
      const { bytesRead } = await fh.read(buf, 0, CHUNK, offset);
      if (bytesRead === 0) return offset;
      offset += bytesRead;
      emit(splitter.push(buf.subarray(0, bytesRead)));
    }
  };

  let fh = await openIfThere(path);
  if (!fh && !q.follow) return;
  let offset = 0;
  let ino: number | undefined;
  const nudge = new Nudge();
  let watcher: FSWatcher | undefined;
  let watching: 'file' | 'dir' | undefined;
  const unwatch = (): void => {
    watcher?.close();
    watcher = watching = undefined;
  };
  // The file itself while it exists (cheap: only its own events), else its directory to see it appear.
  const rewatch = (): void => {
    const want = fh ? 'file' : 'dir';
    if (watching === want) return;
    unwatch();
    try {
      const name = basename(path);
      watcher = fh
        ? watch(path, { persistent: false }, nudge.fire)
        : watch(dirname(path), { persistent: false }, (_e, f) => {
            if (f === null || f === name) nudge.fire();
          });
      watcher.on('error', () => unwatch());
      watching = want;
    } catch {
      // Not there (yet) or no inotify: polling covers it.
    }
  };
  const onAbort = (): void => nudge.fire();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    if (fh) {
      const st = await fh.stat();
      ino = st.ino;
      offset = q.tail >= 0 ? await tailOffset(fh, st.size, q.tail) : 0;
    }
    for (;;) {
      if (q.follow) {
        // Watch before reading: whatever changes from now on nudges the wait below.
        rewatch();
        if (!fh) {
          fh = await openIfThere(path);
          if (fh) {
            ino = (await fh.stat()).ino;
            offset = 0;
            rewatch();
          }
        }
      }
      if (fh) offset = await drain(fh, offset);
      if (!q.follow || signal.aborted) return;
      await nudge.wait(POLL_MS);
      if (signal.aborted) return;
      if (!fh) continue;
      if ((await inodeOf(path)) !== ino) {
        // Replaced or deleted: finish the old file; the new one (if any) is read from its beginning.
        offset = await drain(fh, offset);
        await fh.close();
        fh = undefined;
        splitter.reset();
        unwatch(); // it watched the old inode
      } else if ((await fh.stat()).size < offset) {
        // Truncated: what is there now is new.
        offset = 0;
        splitter.reset();
      }
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    unwatch();
    await fh?.close();
  }
}
