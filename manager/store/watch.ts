// Watch streams: each watcher has its own bounded queue, filled synchronously
// by apply() after a transaction is written, drained by the consumer at its
// own pace. A consumer that falls too far behind is cut off with an error
// (never silently skipped events), and re-syncs with viewAndWatch().
import { StoreError } from './errors.js';
import type { StoreObject, TableRef } from './types.js';
import { tableName } from './types.js';

export type EventKind = 'create' | 'update' | 'delete';

export interface StoreEvent<T extends StoreObject = StoreObject> {
  kind: EventKind;
  table: string;
  /** The object as written; for a delete, its last state. */
  object: Readonly<T>;
  /** For an update: the object before it. */
  oldObject?: Readonly<T>;
  /** Raft index of the transaction (= object.meta.version for create and update). */
  version: number;
}

export interface WatchOptions<T extends StoreObject = StoreObject> {
  /** Only these tables (default all). */
  table?: TableRef<T> | readonly TableRef<T>[];
  /** Only events this returns true for. Runs inside apply: keep it cheap; if it throws, the watch ends with that error. */
  filter?: (ev: StoreEvent<T>) => boolean;
  /** Events queued before the watch overflows. Default 10,000. */
  bufferSize?: number;
  /** Closes the watch when aborted. */
  signal?: AbortSignal;
}

export const DEFAULT_WATCH_BUFFER = 10_000;

export class Watch<T extends StoreObject = StoreObject> implements AsyncIterableIterator<StoreEvent<T>> {
  private queue: Array<StoreEvent<T> | undefined> = [];
  private head = 0;
  private waiter: { resolve: (r: IteratorResult<StoreEvent<T>>) => void; reject: (e: Error) => void } | undefined;
  private ended = false;
  private error: Error | undefined;
  private errorReported = false;
  private readonly tables: Set<string> | undefined;
  private readonly filter: ((ev: StoreEvent<T>) => boolean) | undefined;
  private readonly bufferSize: number;
  private readonly signal: AbortSignal | undefined;
  private readonly onAbort = () => this.close();

  /** @internal Created by Store.watch(). */
  constructor(opts: WatchOptions<T>, private readonly detach: (w: Watch<T>) => void) {
    const t = opts.table;
    this.tables = t === undefined ? undefined
      : new Set((Array.isArray(t) ? t : [t]).map((x: TableRef<T>) => tableName(x as TableRef<StoreObject>)));
    this.filter = opts.filter;
    this.bufferSize = opts.bufferSize ?? DEFAULT_WATCH_BUFFER;
    if (opts.signal) {
      if (opts.signal.aborted) queueMicrotask(this.onAbort);
      else opts.signal.addEventListener('abort', this.onAbort, { once: true });
      this.signal = opts.signal;
    }
  }

  /** @internal Called by the store, in commit order. */
  push(ev: StoreEvent<T>): void {
    if (this.ended) return;
    if (this.tables && !this.tables.has(ev.table)) return;
    if (this.filter) {
      try {
        if (!this.filter(ev)) return;
      } catch (e) {
        this.end(e instanceof Error ? e : new Error(String(e)));
        return;
      }
    }
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: ev, done: false });
      return;
    }
    if (this.queue.length - this.head >= this.bufferSize) {
      this.end(new StoreError('WATCH_OVERFLOW',
        `watch fell more than ${this.bufferSize} events behind and was closed; re-sync with viewAndWatch()`));
      return;
    }
    this.queue.push(ev);
  }

  /**
   * @internal End the stream. With an error, queued events are dropped and the
   * consumer's next read throws it: it must re-sync anyway, so holding memory
   * for events it will discard helps no one.
   */
  end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    if (error) {
      this.queue = [];
      this.head = 0;
    }
    this.signal?.removeEventListener('abort', this.onAbort);
    this.detach(this);
    const w = this.waiter;
    this.waiter = undefined;
    if (w) {
      if (error) {
        this.errorReported = true;
        w.reject(error);
      } else {
        w.resolve({ value: undefined, done: true });
      }
    }
  }

  /** Stop watching; a pending next() resolves done. */
  close(): void {
    this.queue = [];
    this.head = 0;
    this.end();
  }

  next(): Promise<IteratorResult<StoreEvent<T>>> {
    const ev = this.shift();
    if (ev) return Promise.resolve({ value: ev, done: false });
    if (this.ended) {
      if (this.error && !this.errorReported) {
        this.errorReported = true;
        return Promise.reject(this.error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    if (this.waiter) return Promise.reject(new Error('a watch has one consumer: await next() before calling it again'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<StoreEvent<T>>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Events already queued, taken without waiting (for consumers that batch their work). */
  drain(): StoreEvent<T>[] {
    const out: StoreEvent<T>[] = [];
    for (let ev = this.shift(); ev; ev = this.shift()) out.push(ev);
    return out;
  }

  /** Events queued and not yet read. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Why the watch ended, if it ended with an error. */
  get endError(): Error | undefined {
    return this.error;
  }

  private shift(): StoreEvent<T> | undefined {
    if (this.head >= this.queue.length) return undefined;
    const ev = this.queue[this.head];
    this.queue[this.head++] = undefined;
    // Compact now and then so a long-lived watch does not grow an ever-longer array.
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return ev;
  }
}
