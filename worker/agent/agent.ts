// The worker agent's heartbeats: one stream to the leader (following its
// hints, falling back through every known manager), a beat written each
// period whether or not the last was answered, and from each answer the
// current manager list and the role the cluster wants this node to have.
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { SHOAL_VERSION, leaderHint, managerClient, type TlsMaterial } from '../../proto/client.js';
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
  /** This host as the managers should see it (default describeHost(hostname)); read every beat, sent when new to the stream. */
  description?: () => InstanceType<typeof api.NodeDescription>;
  /** Why the container runtime is down, or '' (RuntimeHealth.problem). */
  runtimeProblem?: () => string;
  /** Every answered beat: the leader's address as the answering manager knows it ('' while there is none). */
  onLeader?: (addr: string) => void;
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

type BeatRequest = InstanceType<typeof api.HeartbeatRequest>;
type BeatResponse = InstanceType<typeof api.HeartbeatResponse>;

interface BeatStream {
  call: grpc.ClientDuplexStream<BeatRequest, BeatResponse>;
  addr: string;
  /** When each unanswered beat was written, oldest first (answers come in order). */
  unanswered: number[];
  /** The description last written on this stream (JSON): later beats carry it only when it changes. */
  described?: string;
}

/** Connection attempts per period before waiting for the next beat (hints followed, managers tried). */
const MAX_HOPS_PER_BEAT = 6;
/** Pause before trying another manager when the last gave no hint. */
const RETRY_MS = 100;

export class Agent {
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private periodMs = 1000;
  private readonly clients = new Map<string, grpc.Client>();
  private tlsKey = '';
  private stream: BeatStream | undefined;
  /** Connections tried since the last answer or the last period's beat. */
  private hops = 0;
  /** Managers tried in turn when none is known to lead. */
  private turn = 0;
  lastOk = 0;
  private lastFailed = 0;
  /** The leader's address as the last heartbeat answer named it. */
  leaderAddr = '';
  /** The manager to beat at: the one that answered last, or where a refusal pointed. */
  private target = '';
  /** Streams opened so far (tests read it). */
  streamsOpened = 0;

  constructor(private readonly opts: AgentOptions) {}

  start(): void {
    this.beat();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.dropStream();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  /** Beats start a period apart, answered or not: a slow answer must not stretch the gap the managers see (they mark a node down after 3). */
  private beat(): void {
    if (this.stopped) return;
    this.hops = 0;
    this.send();
    this.timer = setTimeout(() => this.beat(), this.periodMs);
  }

  private send(): void {
    if (this.stopped) return;
    const tls = this.opts.tls();
    this.resetIfTlsChanged(tls);
    const s = this.stream;
    const timeoutMs = Math.max(2000, this.periodMs * 2);
    if (s && s.unanswered.length > 0 && Date.now() - s.unanswered[0]! > timeoutMs) {
      // The manager (or the path to it) stopped answering without closing the stream.
      this.dropStream();
      this.failed(`no answer for ${Date.now() - s.unanswered[0]!} ms from ${s.addr}`);
      this.target = this.nextManager(s.addr);
    }
    const stream = this.stream ?? this.open(tls);
    if (!stream) return;
    stream.unanswered.push(Date.now());
    const role = this.opts.role();
    // The managers keep the description: a stream's first beat carries it, later ones only a change.
    const description = this.opts.description?.() ?? describeHost(this.opts.hostname);
    const key = JSON.stringify(description);
    const news = key !== stream.described;
    stream.described = key;
    stream.call.write({ description: news ? description : null, role: role === 'manager' ? 1 : 0, runtimeError: this.opts.runtimeProblem?.() ?? '' } as never);
  }

  private open(tls: TlsMaterial): BeatStream | undefined {
    const addr = this.target || this.nextManager('');
    if (!addr) return undefined;
    this.hops++;
    let client = this.clients.get(addr);
    if (!client) this.clients.set(addr, (client = managerClient(addr, tls)));
    const def = DispatcherService.heartbeats;
    const call = client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize) as grpc.ClientDuplexStream<BeatRequest, BeatResponse>;
    const stream: BeatStream = { call, addr, unanswered: [] };
    this.stream = stream;
    this.streamsOpened++;
    call.on('data', (res: BeatResponse) => this.answered(stream, res));
    call.on('error', (e: grpc.ServiceError) => this.ended(stream, e));
    call.on('end', () => this.ended(stream, { code: grpc.status.UNAVAILABLE, details: 'the manager ended the heartbeat stream' } as grpc.ServiceError));
    return stream;
  }

  private answered(stream: BeatStream, res: BeatResponse): void {
    if (this.stream !== stream) return;
    const sentAt = stream.unanswered.shift() ?? Date.now();
    this.lastOk = Date.now();
    this.hops = 0;
    this.target = stream.addr;
    // Slow answers are what gets a live node marked down: say so where it can be seen.
    if (this.lastOk - sentAt > this.periodMs) this.opts.logger.info({ ms: this.lastOk - sentAt }, 'heartbeat answered late');
    const period = res.periodMs || 1000;
    if (period !== this.periodMs) {
      this.periodMs = period;
      // Take a new period at once (the cluster's setting changed, or this is the first answer).
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => this.beat(), this.periodMs);
    }
    this.leaderAddr = res.leaderAddr ?? '';
    this.opts.onLeader?.(this.leaderAddr);
    if (res.managers?.length) this.opts.onManagers(res.managers as ManagerAddr[]);
    const role = this.opts.role();
    const desired = res.desiredRole === api.NodeRole.ROLE_MANAGER ? 'manager' : 'worker';
    if (desired !== role) this.opts.onDesiredRole(desired);
  }

  private ended(stream: BeatStream, err: grpc.ServiceError): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    stream.call.removeAllListeners('data');
    if (this.stopped) return;
    if (err.code === grpc.status.PERMISSION_DENIED || err.code === grpc.status.NOT_FOUND) {
      this.opts.logger.warn({ err: err.details }, 'the cluster refused this node');
      this.opts.onRemoved(err.details ?? String(err));
      return;
    }
    const hint = leaderHint(err);
    this.target = hint && hint !== stream.addr ? hint : this.nextManager(stream.addr);
    // Nothing was waiting for an answer (a healthy stream closed): the next period's beat reconnects.
    if (stream.unanswered.length === 0) return;
    this.failed(err.details ?? String(err));
    if (this.hops >= MAX_HOPS_PER_BEAT) return;
    // The beat was not answered: send it again where the refusal pointed, or to the next manager.
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.send();
    }, hint ? 0 : RETRY_MS);
  }

  private failed(why: string): void {
    // The first failure after a success is news; the ones that follow are not.
    const log = this.lastOk >= this.lastFailed ? this.opts.logger.info : this.opts.logger.debug;
    log.call(this.opts.logger, { err: why }, 'heartbeat failed');
    this.lastFailed = Date.now();
  }

  /** The manager after `addr` in the known list (round robin when addr is not in it). */
  private nextManager(addr: string): string {
    const known = this.opts.managers().filter((a) => a !== '');
    if (known.length === 0) return '';
    const i = known.indexOf(addr);
    return i >= 0 ? known[(i + 1) % known.length]! : known[this.turn++ % known.length]!;
  }

  private dropStream(): void {
    const s = this.stream;
    this.stream = undefined;
    if (!s) return;
    s.call.removeAllListeners('data');
    s.call.on('error', () => undefined); // the cancel's own error is expected
    s.call.cancel();
  }

  private resetIfTlsChanged(tls: TlsMaterial): void {
    const key = tls.certPem ?? '';
    if (key === this.tlsKey) return;
    this.tlsKey = key;
    this.dropStream();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
