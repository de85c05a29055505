// Small synchronous file helpers shared by the WAL and snapshot code.
import * as fs from 'node:fs';

/** writeSync may write less than asked (rare for files, but legal): loop until done. */
export function writeAll(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) {
    done += fs.writeSync(fd, buf, done, buf.byteLength - done, position + done);
  }
}

/** Makes creations, renames and deletions inside `dir` durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** 16 lower-case hex digits: fixed width so names sort in numeric order. */
export function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}
