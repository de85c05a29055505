// Object and table definitions shared by every part of the store.

export interface Meta {
  /** Raft index of the entry that last wrote the object. */
  version: number;
  /** Milliseconds since the epoch, chosen by the proposer of the creating entry. */
  createdAt: number;
  /** Milliseconds since the epoch, chosen by the proposer of the last writing entry. */
  updatedAt: number;
}

export interface StoreObject {
  id: string;
  meta: Meta;
}

/** What create() accepts: meta is assigned by the store. */
export type NewObject<T extends StoreObject> = Omit<T, 'meta'> & { meta?: Meta };

/** Turns one table's objects into bytes and back (protobuf in the cluster, JSON in tests). */
export interface Codec<T> {
  encode(obj: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

export interface IndexDef<T> {
  name: string;
  /** The key(s) the object is found under; undefined or [] leaves it out of the index. */
  key(obj: T): string | readonly string[] | undefined;
  /** At most one object per key; enforced when entries apply (EXISTS). */
  unique?: boolean;
}

export interface TableDef<T extends StoreObject> {
  readonly name: string;
  readonly codec: Codec<T>;
  readonly indexes: readonly IndexDef<T>[];
}

/** Tables are passed either as their definition (typed) or by name. */
export type TableRef<T extends StoreObject> = TableDef<T> | string;

export function defineTable<T extends StoreObject>(def: {
  name: string;
  codec: Codec<T>;
  indexes?: readonly IndexDef<T>[];
}): TableDef<T> {
  if (!/^[A-Za-z0-9_.-]+$/.test(def.name)) throw new TypeError(`invalid table name "${def.name}"`);
  const indexes = def.indexes ?? [];
  const names = new Set<string>();
  for (const ix of indexes) {
    if (ix.name === 'id') throw new TypeError(`table ${def.name}: "id" is reserved (use get())`);
    if (names.has(ix.name)) throw new TypeError(`table ${def.name}: index "${ix.name}" defined twice`);
    names.add(ix.name);
  }
  return Object.freeze({ name: def.name, codec: def.codec, indexes: Object.freeze([...indexes]) });
}

/** A codec for tests and tables whose objects are plain JSON. */
export function jsonCodec<T>(): Codec<T> {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  return {
    encode: (obj) => enc.encode(JSON.stringify(obj)),
    decode: (bytes) => JSON.parse(dec.decode(bytes)) as T,
  };
}

export function tableName(t: TableRef<StoreObject>): string {
  return typeof t === 'string' ? t : t.name;
}

/**
 * Freeze an object graph so callers cannot corrupt the store through what it
 * returns. Typed arrays cannot be frozen by the language and stay as they are.
 */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value) || ArrayBuffer.isView(value)) return value;
  Object.freeze(value);
  for (const k of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[k]);
  return value;
}
