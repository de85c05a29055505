// The worker agent's session with the managers: heartbeats to the leader
// (following redirects, falling back through every known manager), learning
// the current manager list and the role the cluster wants this node to have.
// Tasks join this loop with the services issue.
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { SHOAL_VERSION, callLeader, type TlsMaterial } from '../../proto/client.js';
import { DispatcherService, api, type ManagerAddr } from '../../proto/services.js';

export interface AgentOptions {
  tls: () => TlsMaterial;
  managers: () => string[];
  role: () => 'manager' | 'worker';
  onManagers: (m: ManagerAddr[]) => void;
  onDesiredRole: (role: 'manager' | 'worker') => void;
  /** The cluster refused this node (removed): stop trying. */
  onRemoved: (why: string) => void;
  logger: { info(o: object, m?: string): void; warn(o: object, m?: string): void; debug(o: object, m?: string): void };
  hostname?: string;
  /** Why the container runtime is down, or '' (RuntimeHealth.problem). */
  runtimeProblem?: () => string;
}

export function describeHost(hostname?: string): InstanceType<typeof api.NodeDescription> {
  return {
    hostname: hostname ?? os.hostname(),
    platform: { os: process.platform, architecture: process.arch },
    resources: { nanoCpus: os.availableParallelism() * 1e9, memoryBytes: os.totalmem() },
    version: SHOAL_VERSION,
    engineLabels: {},
  } as never;
}

export class Agent {
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private periodMs = 1000;
  private readonly clients = new Map<string, grpc.Client>();
  private tlsKey = '';
  lastOk = 0;
  private lastFailed = 0;
  /** The leader's address as the last heartbeat answer named it. */
  leaderAddr = '';
  /** The manager that answered the last beat (the leader then): the next beat asks it first. */
  private answeredBy = '';

  constructor(private readonly opts: AgentOptions) {}

  start(): void {
    void this.beat();
  }

  private resetClientsIfTlsChanged(tls: TlsMaterial): void {
    const key = tls.certPem ?? '';
    if (key === this.tlsKey) return;
    this.tlsKey = key;
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    const started = Date.now();
    const tls = this.opts.tls();
    this.resetClientsIfTlsChanged(tls);
    // Asking a follower first costs it and us a refused call per beat, every period.
    const addrs = [...new Set([this.answeredBy, ...this.opts.managers()].filter((a) => a !== ''))];
    const role = this.opts.role();
    try {
      const { res, addr } = await callLeader(addrs, tls, DispatcherService.heartbeat,
        { description: describeHost(this.opts.hostname), role: role === 'manager' ? 1 : 0, runtimeError: this.opts.runtimeProblem?.() ?? '' } as never,
        { timeoutMs: Math.max(2000, this.periodMs * 2), clients: this.clients });
      this.lastOk = Date.now();
      this.answeredBy = addr;
      // Slow answers are what gets a live node marked down: say so where it can be seen.
      if (this.lastOk - started > this.periodMs) this.opts.logger.info({ ms: this.lastOk - started }, 'heartbeat answered late');
      this.periodMs = res.periodMs || 1000;
      this.leaderAddr = res.leaderAddr ?? '';
      if (res.managers?.length) this.opts.onManagers(res.managers as ManagerAddr[]);
      const desired = res.desiredRole === api.NodeRole.ROLE_MANAGER ? 'manager' : 'worker';
      if (desired !== role) this.opts.onDesiredRole(desired);
    } catch (e) {
      const err = e as grpc.ServiceError;
      if (err.code === grpc.status.PERMISSION_DENIED || err.code === grpc.status.NOT_FOUND) {
        this.opts.logger.warn({ err: err.details }, 'the cluster refused this node');
        this.opts.onRemoved(err.details ?? String(e));
      } else {
        // The first failure after a success is news; the ones that follow are not.
        const log = this.lastOk >= this.lastFailed ? this.opts.logger.info : this.opts.logger.debug;
        log.call(this.opts.logger, { err: err.details ?? String(e), ms: Date.now() - started }, 'heartbeat failed');
        this.lastFailed = Date.now();
      }
    }
    // Beats start a period apart, not a period after the last answer: on a saturated machine a
    // slow answer must not stretch the gap the managers see (they mark a node down after 3).
    if (!this.stopped) this.timer = setTimeout(() => void this.beat(), Math.max(0, started + this.periodMs - Date.now()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
