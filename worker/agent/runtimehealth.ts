// Is the container runtime there? Pinged every 2 s (a ping costs shoald about
// a millisecond of CPU; idle nodes should cost nothing); after `downAfter` (2)
// pings in a row that could not reach it at all (no socket, connection
// refused), the node reports it in its heartbeats and the managers mark the
// node down, as Swarm does when a node's engine is gone, so its tasks run
// elsewhere. A runtime that is only slow (a deadline passes while the machine
// is saturated with container starts) never counts: that would move tasks off
// a healthy node.
import type { Runtime } from '../runtime/runtime.js';
import { hasCode } from './errorcodes.js';

// gRPC UNAVAILABLE (containerd), and the errno codes of a socket nobody serves (docker).
const UNREACHABLE_GRPC = 14;
const UNREACHABLE_ERRNO = new Set(['ENOENT', 'ECONNREFUSED', 'ENOTSOCK']);

export function isUnreachable(e: unknown): boolean {
  return hasCode(e, (c) => (typeof c === 'number' ? c === UNREACHABLE_GRPC : UNREACHABLE_ERRNO.has(c)));
}

export interface RuntimeHealthOptions {
  runtime: Pick<Runtime, 'ping' | 'endpoint'>;
  /** Default 2000. */
  periodMs?: number;
  /** Unreachable pings in a row before the runtime counts as down. Default 2. */
  downAfter?: number;
  onChange?: (problem: string) => void;
}

export class RuntimeHealth {
  private misses = 0;
  private lastError = '';
  private problemText = '';
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: RuntimeHealthOptions) {}

  /** Empty while the runtime answers (or has not been unreachable long); else why it is down. */
  get problem(): string {
    return this.problemText;
  }

  start(): void {
    void this.check();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** One ping; exposed for tests. */
  async check(): Promise<void> {
    const period = this.opts.periodMs ?? 2000;
    const started = Date.now();
    try {
      await this.opts.runtime.ping();
      this.misses = 0;
      this.set('');
    } catch (e) {
      if (isUnreachable(e)) {
        this.misses++;
        this.lastError = e instanceof Error ? e.message : String(e);
        if (this.misses >= (this.opts.downAfter ?? 2)) this.set(`container runtime unavailable (${this.opts.runtime.endpoint}): ${this.lastError}`);
      }
      // Anything else (slow, overloaded): no verdict either way.
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.check(), Math.max(0, started + period - Date.now()));
  }

  private set(problem: string): void {
    if (problem === this.problemText) return;
    this.problemText = problem;
    this.opts.onChange?.(problem);
  }
}
