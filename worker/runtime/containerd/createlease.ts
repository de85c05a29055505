// One containerd lease for many container creates. A new container's rootfs
// snapshot must be kept from garbage collection between its Prepare and the
// container record that then references it. A lease per create did that at
// the cost of two more calls per container (each a write transaction in
// containerd's database); this lease serves every create for ROTATE_MS, and is
// deleted once it is replaced and the creates under it are done. Should this
// process die, it expires by itself (gc.expire), as the per-create ones did.
import { randomUUID } from 'node:crypto';
import { M, type ContainerdClient } from './client.js';

/** A lease older than this gets no new creates. */
const ROTATE_MS = 5 * 60_000;
/** When containerd may collect a lease we never deleted: after its creates, however slow, are done. */
const EXPIRE_MS = ROTATE_MS + 15 * 60_000;

interface Lease {
  id: string;
  madeAt: number;
  /** Creates running under it. */
  users: number;
  /** The LeaseCreate call. */
  made: Promise<void>;
}

export class CreateLease {
  private current: Lease | undefined;

  constructor(
    private readonly c: Pick<ContainerdClient, 'call'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Run fn with a lease that holds what it makes until fn returns. */
  async use<T>(fn: (lease: string) => Promise<T>): Promise<T> {
    let l = this.current;
    if (!l || this.now() - l.madeAt >= ROTATE_MS) {
      const old = l;
      l = this.current = this.make();
      if (old && old.users === 0) this.drop(old);
    }
    l.users++;
    try {
      await l.made;
      return await fn(l.id);
    } finally {
      l.users--;
      if (l !== this.current && l.users === 0) this.drop(l);
    }
  }

  private make(): Lease {
    const madeAt = this.now();
    const id = `shoal-create-${randomUUID()}`;
    const l: Lease = { id, madeAt, users: 0, made: Promise.resolve() };
    l.made = this.c.call(M.leaseCreate, { id, labels: { 'containerd.io/gc.expire': new Date(madeAt + EXPIRE_MS).toISOString() } }).then(
      () => undefined,
      (e: unknown) => {
        // Not made: the next create asks again.
        if (this.current === l) this.current = undefined;
        throw e;
      },
    );
    l.made.catch(() => undefined);
    return l;
  }

  private drop(l: Lease): void {
    // Nothing waits on the collection of what the lease no longer holds; one that was never made
    // is not there to delete, and one we fail to delete expires.
    void l.made.then(() => this.c.call(M.leaseDelete, { id: l.id, sync: false })).catch(() => undefined);
  }
}
