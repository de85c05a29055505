// Nodes ordered by (total tasks, index), kept across the groups of one pass. A group walks it lazily
// and stops as soon as it has placed its tasks, so a 50-task service on 5,000 nodes looks at about
// 50 nodes instead of heapifying all 5,000. Totals are small integers: one bitset per total, with
// bit i standing for node index i (indices follow node id order, the final tie-break).

interface Bucket {
  bits: Uint32Array;
  count: number;
}

export class LoadOrder {
  private readonly words: number;
  private readonly buckets = new Map<number, Bucket>();
  /** Totals that have at least one node, ascending. */
  private readonly keys: number[] = [];

  constructor(totals: ArrayLike<number>) {
    this.words = Math.ceil(totals.length / 32);
    for (let i = 0; i < totals.length; i++) this.add(i, totals[i]!);
  }

  /** Node i's total went from `from` to `to`. Only between walks: a walk in progress must not see it. */
  move(i: number, from: number, to: number): void {
    if (from === to) return;
    const b = this.buckets.get(from)!;
    b.bits[i >>> 5]! &= ~(1 << (i & 31));
    if (--b.count === 0) {
      this.buckets.delete(from);
      this.keys.splice(this.keys.indexOf(from), 1);
    }
    this.add(i, to);
  }

  /** Walks node indices from least to most loaded; next() returns -1 at the end. */
  walk(): LoadWalk {
    return new LoadWalk(this.keys, this.buckets, this.words);
  }

  private add(i: number, total: number): void {
    let b = this.buckets.get(total);
    if (b === undefined) {
      b = { bits: new Uint32Array(this.words), count: 0 };
      this.buckets.set(total, b);
      let at = this.keys.length;
      while (at > 0 && this.keys[at - 1]! > total) at--;
      this.keys.splice(at, 0, total);
    }
    b.bits[i >>> 5]! |= 1 << (i & 31);
    b.count++;
  }
}

export class LoadWalk {
  private k = -1;
  private w: number;
  private bits = 0;
  private arr: Uint32Array | undefined;

  constructor(
    private readonly keys: readonly number[],
    private readonly buckets: ReadonlyMap<number, Bucket>,
    private readonly words: number,
  ) {
    this.w = words; // forces the first next() onto bucket 0
  }

  next(): number {
    for (;;) {
      if (this.bits !== 0) {
        const low = this.bits & -this.bits;
        this.bits ^= low;
        return this.w * 32 + (31 - Math.clz32(low));
      }
      if (++this.w >= this.words) {
        if (++this.k >= this.keys.length) {
          this.w = this.words; // stay exhausted
          this.k = this.keys.length;
          return -1;
        }
        this.arr = this.buckets.get(this.keys[this.k]!)!.bits;
        this.w = 0;
      }
      this.bits = this.arr![this.w]! | 0;
    }
  }
}
