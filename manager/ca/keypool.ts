// RSA keys generated ahead of time on the libuv thread pool: making a 2048-bit
// key takes 100-300 ms of CPU, which would otherwise block the event loop and
// sit on the path of `swarm init`, `swarm join` and certificate renewal.
import { generateKeyPair, generateKeyPairSync, type KeyObject } from 'node:crypto';

export class KeyPool {
  private readonly ready: KeyObject[] = [];
  private pending = 0;

  constructor(private readonly size = 2) {
    this.refill();
  }

  private refill(): void {
    while (this.ready.length + this.pending < this.size) {
      this.pending++;
      generateKeyPair('rsa', { modulusLength: 2048 }, (err, _pub, priv) => {
        this.pending--;
        if (!err) this.ready.push(priv);
      });
    }
  }

  /** A fresh key: from the pool when one is ready, made on the spot otherwise. */
  take(): KeyObject {
    const k = this.ready.shift() ?? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    this.refill();
    return k;
  }
}
