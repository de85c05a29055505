// A small deterministic tar writer (ustar): the caller gives every entry's
// name, mode and mtime, so the same input always makes the same bytes and
// therefore the same image digests.

export interface TarFile {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  /** Permission bits, e.g. 0o755. */
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  uid?: number;
  gid?: number;
  data?: Buffer;
  /** Target of a symlink. */
  linkname?: string;
}

const BLOCK = 512;

function field(buf: Buffer, off: number, len: number, value: string): void {
  const b = Buffer.from(value, 'utf8');
  if (b.length > len) throw new Error(`tar: "${value}" does not fit in ${len} bytes`);
  b.copy(buf, off);
}

function octalField(buf: Buffer, off: number, len: number, value: number): void {
  // len-1 octal digits and a NUL.
  const s = value.toString(8).padStart(len - 1, '0');
  if (s.length > len - 1) throw new Error(`tar: ${value} does not fit in ${len - 1} octal digits`);
  field(buf, off, len, `${s}\0`);
}

/** Split a long name into ustar's prefix (155) and name (100) at a slash. */
function splitName(name: string): [string, string] {
  if (Buffer.byteLength(name) <= 100) return ['', name];
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100) return [prefix, rest];
  }
  throw new Error(`tar: name too long: ${name}`);
}

function header(f: TarFile): Buffer {
  const h = Buffer.alloc(BLOCK);
  const name = f.type === 'dir' && !f.name.endsWith('/') ? `${f.name}/` : f.name;
  const [prefix, rest] = splitName(name);
  field(h, 0, 100, rest);
  octalField(h, 100, 8, f.mode & 0o7777);
  octalField(h, 108, 8, f.uid ?? 0);
  octalField(h, 116, 8, f.gid ?? 0);
  octalField(h, 124, 12, f.type === 'file' ? (f.data?.length ?? 0) : 0);
  octalField(h, 136, 12, f.mtime);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  h[156] = (f.type === 'file' ? '0' : f.type === 'dir' ? '5' : '2').charCodeAt(0);
  if (f.linkname) field(h, 157, 100, f.linkname);
  field(h, 257, 6, 'ustar\0');
  field(h, 263, 2, '00');
  field(h, 265, 32, (f.uid ?? 0) === 0 ? 'root' : '');
  field(h, 297, 32, (f.gid ?? 0) === 0 ? 'root' : '');
  field(h, 345, 155, prefix);
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

/** The archive of `files`, in the order given, with the two closing zero blocks. */
export function tar(files: TarFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(header(f));
    if (f.type === 'file' && f.data?.length) {
      parts.push(f.data);
      const pad = (BLOCK - (f.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}
