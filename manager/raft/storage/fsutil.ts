// Small synchronous file helpers shared by the WAL and snapshot code.
import * as fs from 'node:fs';

/** writeSync may write less than asked (rare for files, but legal): loop until done. */
export function writeAll(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) {
    done += fs.writeSync(fd, buf, done, buf.byteLength - done, position + done);
  }
}

/** writeAll off the event loop (on the thread pool). */
export async function writeAllAsync(fh: fs.promises.FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    done += (await fh.write(buf, done, buf.byteLength - done, position + done)).bytesWritten;
  }
}

/** fsyncDir off the event loop. */
export async function fsyncDirAsync(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
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
