// A tar reader that only indexes: one pass over the 512-byte headers gives
// every entry's name and where its bytes sit in the file, so image blobs can be
// streamed straight from the archive without unpacking it. Reads ustar, GNU
// long names and pax extended headers (path, linkpath, size).
import { open, type FileHandle } from 'node:fs/promises';

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  name: string;
  type: TarEntryType;
  mode: number;
  size: number;
  /** Byte offset of the entry's data in the archive. */
  offset: number;
  linkname: string;
}

const BLOCK = 512;

function cstring(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end < 0 || end > start + len ? start + len : end);
}

function octal(buf: Buffer, start: number, len: number): number {
  // GNU base-256 for values that do not fit in octal digits.
  if (buf[start]! & 0x80) {
    let v = buf[start]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + buf[start + i]!;
    return v;
  }
  const s = cstring(buf, start, len).trim();
  return s ? parseInt(s, 8) : 0;
}

function cleanName(name: string): string {
  let n = name;
  while (n.startsWith('./')) n = n.slice(2);
  while (n.startsWith('/')) n = n.slice(1);
  while (n.endsWith('/')) n = n.slice(0, -1);
  return n;
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = parseInt(data.toString('ascii', pos, sp), 10);
    if (!(len > 0)) break;
    const rec = data.toString('utf8', sp + 1, pos + len - 1); // without the trailing \n
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    pos += len;
  }
  return out;
}

async function readAt(fh: FileHandle, pos: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === len ? buf : buf.subarray(0, got);
}

/** Index a tar archive: entry name (without ./ and trailing /) -> entry. Later entries win. */
export async function indexTar(path: string): Promise<Map<string, TarEntry>> {
  const fh = await open(path, 'r');
  try {
    const entries = new Map<string, TarEntry>();
    let pos = 0;
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax: Record<string, string> = {};
    for (;;) {
      const hdr = await readAt(fh, pos, BLOCK);
      if (hdr.length < BLOCK) {
        if (hdr.length === 0) break;
        throw new Error(`${path}: truncated tar header at ${pos}`);
      }
      if (hdr.every((b) => b === 0)) break;
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : hdr[i]!;
      if (sum !== octal(hdr, 148, 8)) throw new Error(`${path}: not a tar archive (bad header checksum at ${pos})`);
      const flag = String.fromCharCode(hdr[156]!);
      let size = octal(hdr, 124, 12);
      const dataAt = pos + BLOCK;
      if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
        const data = await readAt(fh, dataAt, size);
        if (flag === 'L') longName = cstring(data, 0, data.length);
        else if (flag === 'K') longLink = cstring(data, 0, data.length);
        else if (flag === 'x') pax = { ...pax, ...parsePax(data) };
        pos = dataAt + Math.ceil(size / BLOCK) * BLOCK;
        continue;
      }
      let name = cstring(hdr, 0, 100);
      if (hdr.toString('ascii', 257, 262) === 'ustar') {
        const prefix = cstring(hdr, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      if (longName !== undefined) name = longName;
      if (pax.path !== undefined) name = pax.path;
      let linkname = longLink ?? cstring(hdr, 157, 100);
      if (pax.linkpath !== undefined) linkname = pax.linkpath;
      if (pax.size !== undefined) size = Number(pax.size);
      const type: TarEntryType =
        flag === '0' || flag === '\0' || flag === '7' ? 'file' : flag === '5' ? 'dir' : flag === '2' ? 'symlink' : flag === '1' ? 'hardlink' : 'other';
      const entry: TarEntry = { name: cleanName(name), type, mode: octal(hdr, 100, 8), size: type === 'file' ? size : 0, offset: dataAt, linkname };
      entries.set(entry.name, entry);
      pos = dataAt + Math.ceil((type === 'file' ? size : 0) / BLOCK) * BLOCK;
      longName = longLink = undefined;
      pax = {};
    }
    return entries;
  } finally {
    await fh.close();
  }
}

/** Read an entry's bytes (for small entries: index.json, manifests, configs). */
export async function readTarEntry(path: string, entry: TarEntry): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const data = await readAt(fh, entry.offset, entry.size);
    if (data.length !== entry.size) throw new Error(`${path}: ${entry.name} is truncated`);
    return data;
  } finally {
    await fh.close();
  }
}

/** indexTar for an image tarball to load: a file that is no tar says so, and what to give instead. */
export async function indexImageTar(path: string): Promise<Map<string, TarEntry>> {
  try {
    return await indexTar(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw e; // cannot be read at all (missing, a directory, ...)
    const why = (e as Error).message.replace(`${path}: `, '');
    throw new Error(`not a tar file (${why}): give an OCI image layout tarball (index.json, blobs/sha256/...)`);
  }
}
