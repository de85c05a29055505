// The store's binary formats: one raft entry per transaction, and the snapshot.
// Hand-rolled (not protobuf) so the store needs nothing from proto/ and the
// layout is fixed here, next to the code that must stay compatible with it.
//
// Entry (all integers unsigned LEB128 varints unless noted):
//   u8 0x53 'S'   magic: a store entry
//   u8 1          format version
//   u8 1          kind: transaction
//   f64 LE        timestamp (ms since epoch, chosen by the proposer)
//   varint n      number of actions, then n times:
//     u8 op       1 create, 2 update, 3 delete
//     str table   varint length + UTF-8
//     str id
//     varint expected   version the transaction read (0 for create)
//     bytes object      varint length + table codec bytes (empty for delete)
//
// Snapshot:
//   u8 0x53 'S', u8 0x4e 'N', u8 1 (format version)
//   varint appliedIndex
//   varint tables, then per table: str name, varint count, then per object:
//     varint version, f64 LE createdAt, f64 LE updatedAt, bytes object
// Meta travels beside the codec bytes, so a codec that drops or reshapes meta
// (e.g. protobuf uint64 as Long) cannot corrupt versions.

export type ActionOp = 'create' | 'update' | 'delete';

export interface EntryAction {
  op: ActionOp;
  table: string;
  id: string;
  expected: number;
  data: Uint8Array;
}

export interface Entry {
  timestamp: number;
  actions: EntryAction[];
}

export interface SnapshotRecord {
  version: number;
  createdAt: number;
  updatedAt: number;
  data: Uint8Array;
}

export interface SnapshotData {
  appliedIndex: number;
  tables: Map<string, SnapshotRecord[]>;
}

const ENTRY_MAGIC = 0x53;
const ENTRY_FORMAT = 1;
const KIND_TX = 1;
const SNAP_MAGIC = [0x53, 0x4e] as const;
const SNAP_FORMAT = 1;
const OPS: readonly ActionOp[] = ['create', 'update', 'delete'];

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(size = 256) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  /** Non-negative safe integers; arithmetic rather than bit ops so values above 2^31 survive. */
  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  f64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.varint(b.byteLength);
    this.ensure(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }

  str(s: string): void {
    this.bytes(utf8.encode(s));
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

export class Reader {
  private pos = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.byteLength) throw new RangeError(`truncated: need ${n} bytes at offset ${this.pos} of ${this.buf.byteLength}`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  varint(): number {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = this.u8();
      v += (b & 0x7f) * mul;
      if (b < 0x80) break;
      mul *= 0x80;
      if (mul > 2 ** 53) throw new RangeError('varint too long');
    }
    if (!Number.isSafeInteger(v)) throw new RangeError('varint out of range');
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A view into the input, not a copy: callers decode it before the input can change. */
  bytes(): Uint8Array {
    const n = this.varint();
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  str(): string {
    return utf8d.decode(this.bytes());
  }

  get done(): boolean {
    return this.pos === this.buf.byteLength;
  }
}

export function encodeEntry(e: Entry): Uint8Array {
  const w = new Writer(64 + e.actions.reduce((n, a) => n + a.data.byteLength + a.table.length + a.id.length + 16, 0));
  w.u8(ENTRY_MAGIC);
  w.u8(ENTRY_FORMAT);
  w.u8(KIND_TX);
  w.f64(e.timestamp);
  w.varint(e.actions.length);
  for (const a of e.actions) {
    w.u8(OPS.indexOf(a.op) + 1);
    w.str(a.table);
    w.str(a.id);
    w.varint(a.expected);
    w.bytes(a.data);
  }
  return w.finish();
}

/** Throws on anything malformed; apply() turns that into an INVALID result. */
export function decodeEntry(data: Uint8Array): Entry {
  const r = new Reader(data);
  if (r.u8() !== ENTRY_MAGIC) throw new Error('not a store entry (bad magic)');
  const format = r.u8();
  if (format !== ENTRY_FORMAT) throw new Error(`unsupported store entry format ${format}`);
  const kind = r.u8();
  if (kind !== KIND_TX) throw new Error(`unknown store entry kind ${kind}`);
  const timestamp = r.f64();
  const n = r.varint();
  const actions: EntryAction[] = [];
  for (let i = 0; i < n; i++) {
    const opByte = r.u8();
    const op = OPS[opByte - 1];
    if (!op) throw new Error(`unknown action op ${opByte}`);
    actions.push({ op, table: r.str(), id: r.str(), expected: r.varint(), data: r.bytes() });
  }
  if (!r.done) throw new Error('trailing bytes after store entry');
  return { timestamp, actions };
}

export function encodeSnapshot(s: SnapshotData): Uint8Array {
  const w = new Writer(4096);
  w.u8(SNAP_MAGIC[0]);
  w.u8(SNAP_MAGIC[1]);
  w.u8(SNAP_FORMAT);
  w.varint(s.appliedIndex);
  w.varint(s.tables.size);
  for (const [name, records] of s.tables) {
    w.str(name);
    w.varint(records.length);
    for (const rec of records) {
      w.varint(rec.version);
      w.f64(rec.createdAt);
      w.f64(rec.updatedAt);
      w.bytes(rec.data);
    }
  }
  return w.finish();
}

export function decodeSnapshot(data: Uint8Array): SnapshotData {
  const r = new Reader(data);
  if (r.u8() !== SNAP_MAGIC[0] || r.u8() !== SNAP_MAGIC[1]) throw new Error('not a store snapshot (bad magic)');
  const format = r.u8();
  if (format !== SNAP_FORMAT) throw new Error(`unsupported store snapshot format ${format}`);
  const appliedIndex = r.varint();
  const tables = new Map<string, SnapshotRecord[]>();
  const nt = r.varint();
  for (let t = 0; t < nt; t++) {
    const name = r.str();
    const n = r.varint();
    const records: SnapshotRecord[] = [];
    for (let i = 0; i < n; i++) {
      records.push({ version: r.varint(), createdAt: r.f64(), updatedAt: r.f64(), data: r.bytes() });
    }
    tables.set(name, records);
  }
  if (!r.done) throw new Error('trailing bytes after store snapshot');
  return { appliedIndex, tables };
}
