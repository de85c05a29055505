// The replicated object store (swarmkit's MemoryStore): tables of versioned
// objects in memory, written only by raft entries applied in log order, so
// every member holds the same state. A transaction reads the local committed
// view, collects its writes, and proposes them as ONE entry; apply() checks
// every write's expected version and either commits all of them or none.
import type { RaftNode, StateMachine } from '../raft/node/index.js';
import { decodeEntry, decodeSnapshot, encodeEntry, encodeSnapshot, type ActionOp, type EntryAction, type SnapshotRecord } from './encoding.js';
import { StoreError } from './errors.js';
import {
  deepFreeze, tableName, type Meta, type NewObject, type StoreObject, type TableDef, type TableRef,
} from './types.js';
import { DEFAULT_WATCH_BUFFER, Watch, type StoreEvent, type WatchOptions } from './watch.js';

/** What the store needs of raft: RaftNode fits as is. */
export type Proposer = Pick<RaftNode, 'propose' | 'readBarrier'>;

export interface StoreOptions {
  /** Every member must register the same tables (same names, codecs and indexes). */
  tables: readonly TableDef<StoreObject>[];
  raft?: Proposer;
  /** The proposer's clock for createdAt/updatedAt. Default Date.now. */
  clock?: () => number;
  /** Default buffer of watches that do not set one. */
  watchBufferSize?: number;
}

/** Reads against one consistent state. */
export interface ReadTx {
  /** Raft index of the last entry applied to the state read. */
  readonly version: number;
  get<T extends StoreObject>(table: TableRef<T>, id: string): Readonly<T> | undefined;
  /** All objects of a table (creation order). */
  list<T extends StoreObject>(table: TableRef<T>): Readonly<T>[];
  /** Objects whose index `index` has key `key` (order unspecified). */
  find<T extends StoreObject>(table: TableRef<T>, index: string, key: string): Readonly<T>[];
  count(table: TableRef<StoreObject>): number;
}

/** Reads (seeing this transaction's own writes) plus writes, collected and proposed together. */
export interface Tx extends ReadTx {
  /** Throws EXISTS if the id is taken in the view; the store assigns meta. */
  create<T extends StoreObject>(table: TableRef<T>, obj: NewObject<T>): Readonly<T>;
  /** obj.meta.version must be the version read (CONFLICT otherwise, here or when applied). */
  update<T extends StoreObject>(table: TableRef<T>, obj: T): Readonly<T>;
  /** By object (its meta.version is checked) or by id (the version in the view is). */
  delete<T extends StoreObject>(table: TableRef<T>, target: string | T): void;
}

export interface UpdateOptions {
  /** Re-run the function this many times when the transaction fails with CONFLICT. */
  retries?: number;
}

export interface UpdateResult<R> {
  /** What the transaction function returned. */
  value: R;
  /** Raft index of the committed entry (= meta.version of everything written); the view's version if nothing was written. */
  version: number;
  /** The committed writes, as watchers see them. */
  changes: StoreEvent[];
}

/** What apply() returns; RaftNode hands it to the proposer's propose() promise. */
export type ApplyResult =
  | { ok: true; version: number; events: StoreEvent[] }
  | { ok: false; version: number; error: StoreError };

export interface BatchOptions {
  /** Propose once the pending entry holds this many writes. Default 200. */
  maxActions?: number;
  /** ... or this many bytes of objects. Default 512 KiB (raft's entry limit is 1.5 MiB). */
  maxBytes?: number;
}

export interface Batch {
  /**
   * Run `fn` as one atomic unit inside the batch. Units are packed into shared
   * entries; a unit that throws leaves nothing behind. Resolves once the unit
   * is queued (or, when it filled the entry, once that entry is decided).
   */
  update(fn: (tx: Tx) => void): Promise<void>;
}

export interface BatchResult {
  /** Units committed. */
  committed: number;
  /** Units that failed (threw, or were rejected when applied even when re-run on their own). */
  failed: Array<{ unit: number; error: unknown }>;
}

interface Row {
  obj: StoreObject;
  /** Keys per index of the table, kept so removal never re-runs user code. */
  keys: (readonly string[])[];
}

class TableState {
  readonly rows = new Map<string, Row>();
  readonly indexes: Map<string, Set<string>>[];
  private readonly positions = new Map<string, number>();

  constructor(readonly def: TableDef<StoreObject>) {
    this.indexes = def.indexes.map(() => new Map());
    def.indexes.forEach((ix, i) => this.positions.set(ix.name, i));
  }

  indexPos(name: string): number {
    const i = this.positions.get(name);
    if (i === undefined) throw new TypeError(`table ${this.def.name} has no index "${name}"`);
    return i;
  }

  keysOf(obj: StoreObject): (readonly string[])[] {
    return this.def.indexes.map((ix) => {
      const k = ix.key(obj);
      if (k === undefined) return [];
      if (typeof k === 'string') return [k];
      return [...new Set(k)];
    });
  }

  /** Replace `old` by `next` (either may be absent), touching only the index keys that changed. */
  write(id: string, old: Row | undefined, next: Row | undefined): void {
    this.indexes.forEach((ix, i) => {
      const before = old?.keys[i] ?? [];
      const after = next?.keys[i] ?? [];
      for (const k of before) {
        if (after.includes(k)) continue;
        const ids = ix.get(k);
        ids?.delete(id);
        if (ids?.size === 0) ix.delete(k);
      }
      for (const k of after) {
        if (before.includes(k)) continue;
        let ids = ix.get(k);
        if (!ids) ix.set(k, (ids = new Set()));
        ids.add(id);
      }
    });
    if (next) this.rows.set(id, next);
    else this.rows.delete(id);
  }
}

/** One action of an entry, checked and ready to write. */
interface Plan {
  t: TableState;
  op: ActionOp;
  id: string;
  old: Row | undefined;
  next: Row | undefined;
}

/** Objects encoded per event-loop turn by snapshotAsync. */
const SNAPSHOT_SLICE = 500;

/** Everything restore() replaces at once. */
class State {
  readonly tables = new Map<string, TableState>();
  /** Tables in a snapshot this build does not know; kept so they survive the next snapshot. */
  readonly opaque = new Map<string, SnapshotRecord[]>();
  appliedIndex = 0;

  constructor(defs: readonly TableDef<StoreObject>[]) {
    for (const d of defs) this.tables.set(d.name, new TableState(d));
  }
}

const ZERO_META: Meta = Object.freeze({ version: 0, createdAt: 0, updatedAt: 0 });

function key(table: string, id: string): string {
  return `${table}\u0000${id}`;
}

function toNumber(v: unknown): number {
  return typeof v === 'number' ? v : Number(v);
}

interface Pending {
  op: ActionOp;
  table: TableState;
  id: string;
  expected: number;
  data: Uint8Array;
  /** What reads inside the transaction see (undefined for a delete). */
  obj: StoreObject | undefined;
}

/** An object's bytes and what they decode to (frozen). */
interface Prepared {
  data: Uint8Array;
  obj: StoreObject;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

class ReadView implements ReadTx {
  protected open = true;

  constructor(protected readonly state: () => State) {}

  get version(): number {
    return this.state().appliedIndex;
  }

  protected check(): void {
    if (!this.open) throw new Error('store view used after its function returned (views and transactions are only valid inside their callback)');
  }

  protected table(t: TableRef<StoreObject>): TableState {
    this.check();
    const name = tableName(t);
    const ts = this.state().tables.get(name);
    if (!ts) throw new TypeError(`unknown table "${name}"`);
    return ts;
  }

  get<T extends StoreObject>(table: TableRef<T>, id: string): Readonly<T> | undefined {
    return this.table(table as TableRef<StoreObject>).rows.get(id)?.obj as T | undefined;
  }

  list<T extends StoreObject>(table: TableRef<T>): Readonly<T>[] {
    const out: T[] = [];
    for (const r of this.table(table as TableRef<StoreObject>).rows.values()) out.push(r.obj as T);
    return out;
  }

  find<T extends StoreObject>(table: TableRef<T>, index: string, k: string): Readonly<T>[] {
    const t = this.table(table as TableRef<StoreObject>);
    const ids = t.indexes[t.indexPos(index)]!.get(k);
    if (!ids) return [];
    const out: T[] = [];
    for (const id of ids) out.push(t.rows.get(id)!.obj as T);
    return out;
  }

  count(table: TableRef<StoreObject>): number {
    return this.table(table).rows.size;
  }

  close(): void {
    this.open = false;
  }
}

class WriteTx extends ReadView implements Tx {
  private readonly pending = new Map<string, Pending>();
  private undo: Array<[string, Pending | undefined]> = [];
  bytes = 0;

  get size(): number {
    return this.pending.size;
  }

  /** For batches: forget the undo log, so rollback() undoes only what follows. */
  mark(): void {
    this.undo = [];
  }

  rollback(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const [k, p] = this.undo[i]!;
      this.put(k, p);
    }
    this.undo = [];
  }

  private setPending(k: string, p: Pending | undefined): void {
    this.undo.push([k, this.pending.get(k)]);
    this.put(k, p);
  }

  /** Sets (or, undefined, removes) the pending write of a key, keeping the byte count. */
  private put(k: string, p: Pending | undefined): void {
    const cur = this.pending.get(k);
    if (cur) this.bytes -= cur.data.byteLength;
    if (p) {
      this.pending.set(k, p);
      this.bytes += p.data.byteLength;
    } else {
      this.pending.delete(k);
    }
  }

  /** The writes as apply() will plan them, for checking unique indexes before proposing. */
  plans(): { plans: Plan[]; touched: Set<string> } {
    const plans: Plan[] = [];
    for (const p of this.pending.values()) {
      plans.push({ t: p.table, op: p.op, id: p.id, old: undefined, next: p.obj ? { obj: p.obj, keys: p.table.keysOf(p.obj) } : undefined });
    }
    return { plans, touched: new Set(this.pending.keys()) };
  }

  actions(): EntryAction[] {
    return [...this.pending.values()].map((p) => ({ op: p.op, table: p.table.def.name, id: p.id, expected: p.expected, data: p.data }));
  }

  /** The objects written, as decoded from the bytes they were encoded to (by key). */
  decoded(): Array<[string, Prepared]> {
    const out: Array<[string, Prepared]> = [];
    for (const [k, p] of this.pending) if (p.obj) out.push([k, { data: p.data, obj: p.obj }]);
    return out;
  }

  /** Encode now (later changes by the caller cannot leak in) and decode back for read-your-writes. */
  private prepare(t: TableState, obj: StoreObject, meta: Meta): { data: Uint8Array; obj: StoreObject } {
    if (typeof obj.id !== 'string' || obj.id === '') throw new TypeError(`${t.def.name}: object needs a non-empty string id`);
    const data = t.def.codec.encode(obj);
    const copy = t.def.codec.decode(data);
    copy.meta = { ...meta };
    return { data, obj: deepFreeze(copy) };
  }

  override get<T extends StoreObject>(table: TableRef<T>, id: string): Readonly<T> | undefined {
    const t = this.table(table as TableRef<StoreObject>);
    const p = this.pending.get(key(t.def.name, id));
    if (p) return p.obj as T | undefined;
    return t.rows.get(id)?.obj as T | undefined;
  }

  override list<T extends StoreObject>(table: TableRef<T>): Readonly<T>[] {
    const t = this.table(table as TableRef<StoreObject>);
    const out: T[] = [];
    for (const [id, r] of t.rows) {
      const p = this.pending.get(key(t.def.name, id));
      if (!p) out.push(r.obj as T);
      else if (p.obj) out.push(p.obj as T);
    }
    for (const p of this.pending.values()) {
      if (p.table === t && p.op === 'create' && p.obj) out.push(p.obj as T);
    }
    return out;
  }

  override find<T extends StoreObject>(table: TableRef<T>, index: string, k: string): Readonly<T>[] {
    const t = this.table(table as TableRef<StoreObject>);
    const pos = t.indexPos(index);
    const out: T[] = [];
    for (const id of t.indexes[pos]!.get(k) ?? []) {
      if (!this.pending.has(key(t.def.name, id))) out.push(t.rows.get(id)!.obj as T);
    }
    for (const p of this.pending.values()) {
      if (p.table === t && p.obj && t.keysOf(p.obj)[pos]!.includes(k)) out.push(p.obj as T);
    }
    return out;
  }

  override count(table: TableRef<StoreObject>): number {
    return this.list(table).length;
  }

  create<T extends StoreObject>(table: TableRef<T>, obj: NewObject<T>): Readonly<T> {
    const t = this.table(table as TableRef<StoreObject>);
    const id = obj.id;
    const k = key(t.def.name, id);
    const p = this.pending.get(k);
    if (p?.op === 'delete') {
      throw new TypeError(`${t.def.name} ${id}: deleted and re-created in one transaction; update it instead`);
    }
    const cur = p?.obj ?? t.rows.get(id)?.obj;
    if (cur) {
      throw new StoreError('EXISTS', `${t.def.name} ${id} already exists (version ${cur.meta.version})`,
        { table: t.def.name, id, actual: cur.meta.version });
    }
    const prepared = this.prepare(t, { ...obj, meta: ZERO_META } as StoreObject, ZERO_META);
    this.setPending(k, { op: 'create', table: t, id, expected: 0, ...prepared });
    return prepared.obj as T;
  }

  update<T extends StoreObject>(table: TableRef<T>, obj: T): Readonly<T> {
    const t = this.table(table as TableRef<StoreObject>);
    const id = obj.id;
    const k = key(t.def.name, id);
    const p = this.pending.get(k);
    const cur = p ? p.obj : t.rows.get(id)?.obj;
    const given = toNumber(obj.meta?.version);
    if (!cur) {
      throw new StoreError('NOT_FOUND', `update of ${t.def.name} ${id}: no such object${p ? ' (deleted earlier in this transaction)' : ''}`,
        { table: t.def.name, id, expected: given });
    }
    if (given !== cur.meta.version) {
      throw new StoreError('CONFLICT',
        `update of ${t.def.name} ${id}: the object given is at version ${given} but the current one is at version ${cur.meta.version}; re-read it and retry`,
        { table: t.def.name, id, expected: given, actual: cur.meta.version });
    }
    const prepared = this.prepare(t, obj, cur.meta);
    this.setPending(k, { op: p?.op ?? 'update', table: t, id, expected: p?.expected ?? cur.meta.version, ...prepared });
    return prepared.obj as T;
  }

  delete<T extends StoreObject>(table: TableRef<T>, target: string | T): void {
    const t = this.table(table as TableRef<StoreObject>);
    const id = typeof target === 'string' ? target : target.id;
    const k = key(t.def.name, id);
    const p = this.pending.get(k);
    const cur = p ? p.obj : t.rows.get(id)?.obj;
    const given = typeof target === 'string' ? undefined : toNumber(target.meta?.version);
    if (!cur) {
      throw new StoreError('NOT_FOUND', `delete of ${t.def.name} ${id}: no such object${p ? ' (deleted earlier in this transaction)' : ''}`,
        { table: t.def.name, id, expected: given });
    }
    if (given !== undefined && given !== cur.meta.version) {
      throw new StoreError('CONFLICT',
        `delete of ${t.def.name} ${id}: the object given is at version ${given} but the current one is at version ${cur.meta.version}; re-read it and retry`,
        { table: t.def.name, id, expected: given, actual: cur.meta.version });
    }
    if (p?.op === 'create') {
      this.setPending(k, undefined);
      return;
    }
    this.setPending(k, { op: 'delete', table: t, id, expected: p?.expected ?? cur.meta.version, data: new Uint8Array(0), obj: undefined });
  }
}

function isApplyResult(v: unknown): v is ApplyResult {
  return typeof v === 'object' && v !== null && 'ok' in v && typeof (v as { version?: unknown }).version === 'number';
}

export class Store implements StateMachine {
  private state: State;
  private readonly defs: readonly TableDef<StoreObject>[];
  private raft: Proposer | undefined;
  private readonly clock: () => number;
  private readonly watchBufferSize: number;
  private readonly watchers = new Set<Watch<StoreObject>>();
  /**
   * Objects of this member's proposals in flight, already decoded by the
   * transaction (read-your-writes): apply() takes them instead of decoding the
   * same bytes again. Decoding is a pure function of the bytes, so members
   * that decode reach the same state; this only saves the proposer the work.
   */
  private readonly inFlight = new Map<string, Prepared>();

  constructor(opts: StoreOptions) {
    const names = new Set<string>();
    for (const d of opts.tables) {
      if (names.has(d.name)) throw new TypeError(`table "${d.name}" registered twice`);
      names.add(d.name);
    }
    this.defs = [...opts.tables];
    this.state = new State(this.defs);
    this.raft = opts.raft;
    this.clock = opts.clock ?? Date.now;
    this.watchBufferSize = opts.watchBufferSize ?? DEFAULT_WATCH_BUFFER;
  }

  /** Attach the raft node whose state machine this store is (RaftNode.open needs the store first). */
  setRaft(raft: Proposer): void {
    this.raft = raft;
  }

  /** Raft index of the last entry applied here. */
  get version(): number {
    return this.state.appliedIndex;
  }

  tables(): TableDef<StoreObject>[] {
    return [...this.defs];
  }

  // ---- reads ----

  /** Read the local committed state (may trail the leader on a follower). `fn` must be synchronous. */
  view<R>(fn: (r: ReadTx) => R): R {
    const v = new ReadView(() => this.state);
    try {
      return fn(v);
    } finally {
      v.close();
    }
  }

  /** Linearizable read: waits until this member has applied every write committed before the call. */
  async readCurrent<R>(fn: (r: ReadTx) => R): Promise<R> {
    if (this.raft) await this.raft.readBarrier();
    return this.view(fn);
  }

  // ---- writes ----

  /**
   * Run `fn` against the committed view, then propose its writes as one raft
   * entry; resolves once applied here. Rejects with StoreError (CONFLICT,
   * EXISTS, NOT_FOUND, INVALID) or RaftError (NOT_LEADER with details.leaderAddr,
   * PROPOSAL_DROPPED, TIMEOUT, ...) unchanged. `fn` may await, but reads after
   * an await see later commits: only written objects are version-checked.
   */
  async update<R>(fn: (tx: Tx) => R | Promise<R>, opts: UpdateOptions = {}): Promise<UpdateResult<R>> {
    const retries = opts.retries ?? 0;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.tryUpdate(fn);
      } catch (e) {
        if (!(e instanceof StoreError && e.code === 'CONFLICT') || attempt >= retries) throw e;
      }
    }
  }

  private async tryUpdate<R>(fn: (tx: Tx) => R | Promise<R>): Promise<UpdateResult<R>> {
    const tx = new WriteTx(() => this.state);
    let value: R;
    try {
      value = await fn(tx);
    } finally {
      tx.close();
    }
    if (tx.size === 0) return { value, version: this.state.appliedIndex, changes: [] };
    const res = await this.commit(tx);
    if (!res.ok) throw res.error;
    return { value, version: res.version, changes: res.events };
  }

  private async commit(tx: WriteTx): Promise<ApplyResult> {
    if (!this.raft) throw new Error('store has no raft node: call setRaft() before writing');
    // Fail fast on a unique index clash visible here; apply() checks again, authoritatively.
    const { plans, touched } = tx.plans();
    const clash = this.uniqueClash(plans, touched);
    if (clash) return { ok: false, version: this.state.appliedIndex, error: clash };
    const mine = tx.decoded();
    for (const [k, p] of mine) this.inFlight.set(k, p);
    let res: unknown;
    try {
      res = await this.raft.propose(encodeEntry({ timestamp: this.clock(), actions: tx.actions() }));
    } finally {
      for (const [k, p] of mine) if (this.inFlight.get(k) === p) this.inFlight.delete(k);
    }
    if (!isApplyResult(res)) throw new Error('raft returned a result that is not the store\'s: is this store that raft node\'s state machine?');
    if (!res.ok) {
      // A fresh error, so its stack points at the caller rather than at apply().
      return { ok: false, version: res.version, error: new StoreError(res.error.code, res.error.message, res.error.details) };
    }
    return res;
  }

  /**
   * Many small atomic units packed into few entries (swarmkit's Batch), for
   * writes too large for one entry, e.g. creating thousands of tasks. Units are
   * atomic; the batch as a whole is not. If an entry is rejected, its units are
   * re-run one by one so only the stale ones fail.
   */
  async batch(fn: (b: Batch) => void | Promise<void>, opts: BatchOptions = {}): Promise<BatchResult> {
    const maxActions = opts.maxActions ?? 200;
    const maxBytes = opts.maxBytes ?? 512 * 1024;
    const result: BatchResult = { committed: 0, failed: [] };
    let tx = new WriteTx(() => this.state);
    let units: Array<{ n: number; fn: (tx: Tx) => void }> = [];
    let seq = 0;

    const flush = async () => {
      const mine = units;
      const full = tx;
      units = [];
      tx = new WriteTx(() => this.state);
      full.close();
      if (full.size === 0) {
        result.committed += mine.length;
        return;
      }
      let res: ApplyResult | undefined;
      try {
        res = await this.commit(full);
      } catch (e) {
        for (const u of mine) result.failed.push({ unit: u.n, error: e });
        return;
      }
      if (res.ok) {
        result.committed += mine.length;
        return;
      }
      for (const u of mine) {
        try {
          await this.tryUpdate(u.fn);
          result.committed++;
        } catch (e) {
          result.failed.push({ unit: u.n, error: e });
        }
      }
    };

    const b: Batch = {
      update: async (unit) => {
        const n = seq++;
        tx.mark();
        try {
          const r: unknown = unit(tx);
          // An async unit would keep writing into entries it no longer owns.
          if (r instanceof Promise) throw new TypeError('batch units must be synchronous');
        } catch (e) {
          tx.rollback();
          result.failed.push({ unit: n, error: e });
          return;
        }
        units.push({ n, fn: unit });
        if (tx.size >= maxActions || tx.bytes >= maxBytes) await flush();
      },
    };
    await fn(b);
    await flush();
    return result;
  }

  // ---- watches ----

  /** Events of transactions applied from now on, in commit order. */
  watch<T extends StoreObject = StoreObject>(opts: WatchOptions<T> = {}): Watch<T> {
    const w = new Watch<T>({ ...opts, bufferSize: opts.bufferSize ?? this.watchBufferSize }, (x) => this.watchers.delete(x as unknown as Watch<StoreObject>));
    this.watchers.add(w as unknown as Watch<StoreObject>);
    return w;
  }

  /**
   * A consistent start for a consumer: `fn` reads the state and the watch
   * begins exactly after it (no event missed or seen twice), because both
   * happen in one turn of the event loop, where nothing can apply.
   */
  viewAndWatch<R, T extends StoreObject = StoreObject>(fn: (r: ReadTx) => R, opts: WatchOptions<T> = {}): { value: R; watch: Watch<T>; version: number } {
    const value = this.view(fn);
    return { value, watch: this.watch(opts), version: this.state.appliedIndex };
  }

  /** End every watch (they finish normally). */
  close(): void {
    for (const w of [...this.watchers]) w.end();
  }

  // ---- StateMachine ----

  /**
   * Apply one entry. Deterministic and never throws for a rejected
   * transaction: every member must reach the same state, and the proposer
   * learns the outcome from the returned ApplyResult.
   */
  apply(index: number, data: Uint8Array): ApplyResult {
    const st = this.state;
    st.appliedIndex = index;
    const reject = (error: StoreError): ApplyResult => ({ ok: false, version: index, error });
    let entry;
    try {
      entry = decodeEntry(data);
    } catch (e) {
      return reject(new StoreError('INVALID', `entry ${index} is not a valid store transaction: ${(e as Error).message}`));
    }

    // Check everything before writing anything: the transaction is all or nothing.
    const plans: Plan[] = [];
    const touched = new Set<string>();
    for (const a of entry.actions) {
      const t = st.tables.get(a.table);
      if (!t) return reject(new StoreError('INVALID', `unknown table "${a.table}" (do all managers run the same version?)`, { table: a.table, id: a.id }));
      const k = key(a.table, a.id);
      if (touched.has(k)) return reject(new StoreError('INVALID', `${a.table} ${a.id} written twice in one entry`, { table: a.table, id: a.id }));
      touched.add(k);
      const old = t.rows.get(a.id);
      if (a.op === 'create') {
        if (old) {
          return reject(new StoreError('EXISTS', `create of ${a.table} ${a.id}: it already exists (version ${old.obj.meta.version})`,
            { table: a.table, id: a.id, actual: old.obj.meta.version }));
        }
      } else {
        if (!old) {
          return reject(new StoreError('NOT_FOUND', `${a.op} of ${a.table} ${a.id}: no such object (the transaction read version ${a.expected})`,
            { table: a.table, id: a.id, expected: a.expected }));
        }
        if (old.obj.meta.version !== a.expected) {
          return reject(new StoreError('CONFLICT',
            `${a.op} of ${a.table} ${a.id}: the transaction read version ${a.expected} but it is now at version ${old.obj.meta.version}; re-read and retry`,
            { table: a.table, id: a.id, expected: a.expected, actual: old.obj.meta.version }));
        }
      }
      let next: Row | undefined;
      if (a.op !== 'delete') {
        try {
          const known = this.inFlight.get(k);
          const obj = known && sameBytes(known.data, a.data) ? { ...known.obj } : t.def.codec.decode(a.data);
          if (obj.id !== a.id) throw new Error(`object id "${obj.id}" does not match the action's id`);
          obj.meta = { version: index, createdAt: old ? old.obj.meta.createdAt : entry.timestamp, updatedAt: entry.timestamp };
          next = { obj, keys: t.keysOf(obj) };
        } catch (e) {
          return reject(new StoreError('INVALID', `${a.op} of ${a.table} ${a.id}: ${(e as Error).message}`, { table: a.table, id: a.id }));
        }
      }
      plans.push({ t, op: a.op, id: a.id, old, next });
    }
    const clash = this.uniqueClash(plans, touched);
    if (clash) return reject(clash);

    const events: StoreEvent[] = [];
    for (const p of plans) {
      if (p.next) deepFreeze(p.next.obj);
      p.t.write(p.id, p.old, p.next);
      const table = p.t.def.name;
      if (p.op === 'create') events.push({ kind: 'create', table, object: p.next!.obj, version: index });
      else if (p.op === 'update') events.push({ kind: 'update', table, object: p.next!.obj, oldObject: p.old!.obj, version: index });
      else events.push({ kind: 'delete', table, object: p.old!.obj, version: index });
    }
    for (const ev of events) for (const w of this.watchers) w.push(ev);
    return { ok: true, version: index, events };
  }

  /**
   * Unique indexes after the transaction: a key may be held by at most one
   * object, counting untouched objects as they are and touched ones as written
   * (so swapping two hostnames in one transaction is fine).
   */
  private uniqueClash(plans: Plan[], touched: Set<string>): StoreError | undefined {
    const claimed = new Map<string, string>();
    for (const p of plans) {
      if (!p.next) continue;
      const name = p.t.def.name;
      for (const [i, ix] of p.t.def.indexes.entries()) {
        if (!ix.unique) continue;
        for (const k of p.next.keys[i]!) {
          const ck = `${name}\u0000${ix.name}\u0000${k}`;
          let holder = claimed.get(ck);
          if (holder === undefined) {
            for (const other of p.t.indexes[i]!.get(k) ?? []) {
              if (!touched.has(key(name, other))) holder = other;
            }
          }
          if (holder !== undefined && holder !== p.id) {
            return new StoreError('EXISTS', `${p.op} of ${name} ${p.id}: ${ix.name} "${k}" is already taken by ${name} ${holder}`,
              { table: name, id: p.id, index: ix.name, key: k, holder });
          }
          claimed.set(ck, p.id);
        }
      }
    }
    return undefined;
  }

  snapshot(): Uint8Array {
    const g = this.encodeInSlices();
    for (;;) {
      const r = g.next();
      if (r.done) return r.value;
    }
  }

  /**
   * snapshot()'s bytes, encoded a few hundred objects at a time with the event
   * loop free in between (raft's StateMachine.snapshotAsync): a large state
   * must not hold up heartbeats or the agents' sessions.
   */
  async snapshotAsync(): Promise<Uint8Array> {
    const g = this.encodeInSlices();
    // The first next() runs before any await: the state is captured as of this call.
    for (;;) {
      const r = g.next();
      if (r.done) return r.value;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** The snapshot, pausing (yield) every SNAPSHOT_SLICE objects. The capture happens at the first next(). */
  private *encodeInSlices(): Generator<void, Uint8Array> {
    // Rows hold deep-frozen objects that writes replace and never change, and
    // restore() swaps in a new State: holding them is a consistent capture.
    const st = this.state;
    const captured = [...st.tables].map(([name, t]) => ({ name, def: t.def, objs: [...t.rows.values()].map((r) => r.obj) }));
    const opaque = [...st.opaque];
    const appliedIndex = st.appliedIndex;
    const tables = new Map<string, SnapshotRecord[]>();
    let n = 0;
    for (const c of captured) {
      const records: SnapshotRecord[] = [];
      for (const obj of c.objs) {
        if (++n % SNAPSHOT_SLICE === 0) yield;
        records.push({ version: obj.meta.version, createdAt: obj.meta.createdAt, updatedAt: obj.meta.updatedAt, data: c.def.codec.encode(obj) });
      }
      tables.set(c.name, records);
    }
    for (const [name, records] of opaque) tables.set(name, records);
    return encodeSnapshot({ appliedIndex, tables });
  }

  /**
   * Replace the whole state. Watchers end with WATCH_RESTORED: events between
   * their state and the snapshot are unknown, so they must re-sync.
   */
  restore(data: Uint8Array): void {
    const next = new State(this.defs);
    if (data.byteLength > 0) {
      const snap = decodeSnapshot(data);
      next.appliedIndex = snap.appliedIndex;
      for (const [name, records] of snap.tables) {
        const t = next.tables.get(name);
        if (!t) {
          // Bytes are views into `data`: copy what we keep.
          next.opaque.set(name, records.map((r) => ({ ...r, data: r.data.slice() })));
          continue;
        }
        for (const r of records) {
          const obj = t.def.codec.decode(r.data);
          obj.meta = { version: r.version, createdAt: r.createdAt, updatedAt: r.updatedAt };
          t.write(obj.id, undefined, { obj: deepFreeze(obj), keys: t.keysOf(obj) });
        }
      }
    }
    this.state = next;
    for (const w of [...this.watchers]) {
      w.end(new StoreError('WATCH_RESTORED', `the store was replaced by a snapshot at index ${next.appliedIndex}; re-sync with viewAndWatch()`));
    }
  }
}
