// The worker agent's heartbeats: one stream to the leader (following its
// hints, falling back through every known manager), a beat written each
// period whether or not the last was answered, and from each answer the
// current manager list and the role the cluster wants this node to have.
import * as os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { SHOAL_VERSION, leaderHint, managerClient, relayMetadata, type TlsMaterial } from '../../proto/client.js';
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
  /** How long a leader that left beats unanswered is taken to be out of reach, before trying it directly again (default 30 s). */
  outOfReachMs?: number;
  /**
   * Every answered beat: where the node's calls to the leader go. The leader
   * itself (via false; addr '' while there is none), or the manager that
   * relays them because the leader does not answer this node (via true).
   */
  onRoute?: (route: Route) => void;
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

export interface Route {
  addr: string;
  via: boolean;
}

type BeatRequest = InstanceType<typeof api.HeartbeatRequest>;
type BeatResponse = InstanceType<typeof api.HeartbeatResponse>;

interface BeatStream {
  call: grpc.ClientDuplexStream<BeatRequest, BeatResponse>;
  addr: string;
  /** Relayed to the leader by the manager at addr. */
  via: boolean;
  /** When each unanswered beat was written, oldest first (answers come in order). */
  unanswered: number[];
  /** The description last written on this stream (JSON): later beats carry it only when it changes. */
  described?: string;
  /** When it last answered (0: never). */
  answeredAt: number;
}

/** Connection attempts per period before waiting for the next beat (hints followed, managers tried). */
const MAX_HOPS_PER_BEAT = 6;
/** Pause before trying another manager when the last gave no hint. */
const RETRY_MS = 100;
/** How long a manager that left beats unanswered counts as out of reach (a hint to it is then taken through another). */
const OUT_OF_REACH_MS = 30_000;

export class Agent {
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private periodMs = 1000;
  private readonly clients = new Map<string, grpc.Client>();
  private tlsKey = '';
  private stream: BeatStream | undefined;
  /**
   * Other paths to the leader, beaten on alongside the stream: through every
   * other manager in reach (relayed) while the leader leaves beats unanswered
   * for a period and a half, so the leader keeps hearing from this node if its
   * own link is down, even when a relay's is too; or straight to the leader
   * while relayed, to go back once it answers.
   */
  private backups: BeatStream[] = [];
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
  /** Ask target to relay the beats to the leader (the leader is out of this node's reach). */
  private via = false;
  /** Managers that left beats unanswered, until when they count as out of reach. */
  private readonly unreachable = new Map<string, number>();
  /** Streams opened so far (tests read it). */
  streamsOpened = 0;

  private readonly outOfReachMs: number;

  constructor(private readonly opts: AgentOptions) {
    this.outOfReachMs = opts.outOfReachMs ?? OUT_OF_REACH_MS;
  }

  start(): void {
    this.beat();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.dropStream();
    this.dropBackups();
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
    const now = Date.now();
    const timeoutMs = Math.max(2000, this.periodMs * 2);
    for (const b of [...this.backups]) {
      if (b.unanswered.length > 0 && now - b.unanswered[0]! > timeoutMs) {
        // The leader still does not answer directly, or this relay does not: the next try goes elsewhere.
        this.dropStream(b);
        this.markOutOfReach(b.addr, now);
      }
    }
    const s = this.stream;
    if (s && s.unanswered.length > 0 && now - s.unanswered[0]! > timeoutMs) {
      // The manager (or the path to it) stopped answering without closing the stream.
      this.dropStream(s);
      this.failed(`no answer for ${now - s.unanswered[0]!} ms from ${s.addr}`);
      if (!s.via) this.markOutOfReach(s.addr, now);
      // The other path that answered last becomes the stream.
      const alt = this.backups.filter((b) => b.answeredAt > 0).sort((a, b) => b.answeredAt - a.answeredAt)[0];
      if (alt) {
        this.promote(alt);
      } else {
        for (const b of [...this.backups]) {
          // A relay that has not answered a beat in a period and a half is no better a way than the leader.
          if (this.silent(b, now)) this.markOutOfReach(b.addr, now);
          this.dropStream(b);
        }
        this.target = this.nextInReach(s.addr);
        this.via = false;
      }
    }
    const stream = this.stream ?? this.open(tls);
    if (!stream) return;
    // No answer for a period and a half: not a slow leader (its answers keep coming a period apart)
    // but a path that carries nothing. The relayed beats then reach the leader 2 periods after the
    // last one that did, within its 3-period bound for marking the node down.
    const late = this.silent(stream, now);
    this.write(stream);
    if (this.backups.length === 0) this.backups = this.openBackups(stream, late, tls);
    for (const b of this.backups) this.write(b);
  }

  private write(stream: BeatStream): void {
    stream.unanswered.push(Date.now());
    const role = this.opts.role();
    // The managers keep the description: a stream's first beat carries it, later ones only a change.
    const description = this.opts.description?.() ?? describeHost(this.opts.hostname);
    const key = JSON.stringify(description);
    const news = key !== stream.described;
    stream.described = key;
    stream.call.write({ description: news ? description : null, role: role === 'manager' ? 1 : 0, runtimeError: this.opts.runtimeProblem?.() ?? '' } as never);
  }

  /**
   * The other paths, when they are wanted: relayed by every other manager in
   * reach when the leader, beaten on directly, is silent (see silent()), so a
   * relay whose own link is down costs nothing; straight to the leader when
   * relayed and the leader's out-of-reach mark ran out.
   */
  private openBackups(stream: BeatStream, late: boolean, tls: TlsMaterial): BeatStream[] {
    const leader = this.leaderAddr;
    if (!leader) return [];
    if (!stream.via && late && stream.addr === leader) {
      const others = this.opts.managers().filter((a) => a !== '' && a !== leader);
      const inReach = others.filter((a) => !this.outOfReach(a));
      // All out of reach: try the next one anyway (as nextInReach does).
      const relays = inReach.length > 0 ? inReach : others.slice(0, 1);
      return relays.map((r) => this.connect(r, true, tls));
    }
    if (stream.via && !this.outOfReach(leader)) return [this.connect(leader, false, tls)];
    return [];
  }

  private promote(alt: BeatStream): void {
    const old = this.stream;
    this.backups = this.backups.filter((b) => b !== alt);
    this.dropBackups();
    if (old && old !== alt) this.dropStream(old);
    this.stream = alt;
    this.target = alt.addr;
    this.via = alt.via;
    this.opts.logger.info({ manager: alt.addr, relayed: alt.via },
      alt.via ? 'the leader does not answer this node: its calls go through another manager' : 'the leader answers this node again: its calls go straight to it');
    this.opts.onRoute?.(this.route(alt));
  }

  private route(stream: BeatStream): Route {
    return stream.via ? { addr: stream.addr, via: true } : { addr: this.leaderAddr, via: false };
  }

  private open(tls: TlsMaterial): BeatStream | undefined {
    const addr = this.target || this.nextManager('');
    if (!addr) return undefined;
    this.hops++;
    const via = this.via && addr === this.target;
    if (via) this.opts.logger.info({ manager: addr }, 'the leader does not answer this node: its calls go through another manager');
    return (this.stream = this.connect(addr, via, tls));
  }

  private connect(addr: string, via: boolean, tls: TlsMaterial): BeatStream {
    let client = this.clients.get(addr);
    if (!client) this.clients.set(addr, (client = managerClient(addr, tls)));
    const def = DispatcherService.heartbeats;
    const call = client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, relayMetadata(via)) as grpc.ClientDuplexStream<BeatRequest, BeatResponse>;
    const stream: BeatStream = { call, addr, via, unanswered: [], answeredAt: 0 };
    this.streamsOpened++;
    call.on('data', (res: BeatResponse) => this.answered(stream, res));
    call.on('error', (e: grpc.ServiceError) => this.ended(stream, e));
    call.on('end', () => this.ended(stream, { code: grpc.status.UNAVAILABLE, details: 'the manager ended the heartbeat stream' } as grpc.ServiceError));
    return stream;
  }

  private answered(stream: BeatStream, res: BeatResponse): void {
    if (this.backups.includes(stream)) {
      stream.unanswered.shift();
      stream.answeredAt = this.lastOk = Date.now();
      // Straight to the leader works again: back to it. (A relayed backup waits: the leader may only be slow.)
      if (!stream.via) this.promote(stream);
      return;
    }
    if (this.stream !== stream) return;
    const sentAt = stream.unanswered.shift() ?? Date.now();
    stream.answeredAt = this.lastOk = Date.now();
    // The leader answers (it was only slow): the relayed paths are not needed.
    if (!stream.via) for (const b of this.backups.filter((x) => x.via)) this.dropStream(b);
    this.hops = 0;
    this.target = stream.addr;
    this.via = stream.via;
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
    this.opts.onRoute?.(this.route(stream));
    if (res.managers?.length) this.opts.onManagers(res.managers as ManagerAddr[]);
    const role = this.opts.role();
    const desired = res.desiredRole === api.NodeRole.ROLE_MANAGER ? 'manager' : 'worker';
    if (desired !== role) this.opts.onDesiredRole(desired);
  }

  private ended(stream: BeatStream, err: grpc.ServiceError): void {
    if (this.backups.includes(stream)) {
      this.backups = this.backups.filter((b) => b !== stream);
      stream.call.removeAllListeners('data');
      return;
    }
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
    this.via = false;
    if (hint && hint !== stream.addr && !stream.via && this.outOfReach(hint)) {
      // The leader this manager names left this node's beats unanswered: ask this one to relay them.
      this.target = stream.addr;
      this.via = true;
    }
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

  /** A beat waits for its answer, and nothing came for a period and a half. */
  private silent(stream: BeatStream, now: number): boolean {
    return stream.unanswered.length > 0 && now - (stream.answeredAt || stream.unanswered[0]!) >= this.periodMs * 1.5;
  }

  private markOutOfReach(addr: string, now: number): void {
    this.unreachable.set(addr, now + this.outOfReachMs);
  }

  private outOfReach(addr: string): boolean {
    const until = this.unreachable.get(addr);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.unreachable.delete(addr);
    return false;
  }

  /** The next manager after `addr` that is not out of reach (or just the next, if all are). */
  private nextInReach(addr: string): string {
    const first = this.nextManager(addr);
    let m = first;
    for (let i = 0; i < this.opts.managers().length && m && this.outOfReach(m); i++) m = this.nextManager(m);
    return m && !this.outOfReach(m) ? m : first;
  }

  /** The manager after `addr` in the known list (round robin when addr is not in it). */
  private nextManager(addr: string): string {
    const known = this.opts.managers().filter((a) => a !== '');
    if (known.length === 0) return '';
    const i = known.indexOf(addr);
    return i >= 0 ? known[(i + 1) % known.length]! : known[this.turn++ % known.length]!;
  }

  /** End a stream of ours (the current one by default) without waiting for its answers. */
  private dropStream(s: BeatStream | undefined = this.stream): void {
    if (s === this.stream) this.stream = undefined;
    if (!s) return;
    this.backups = this.backups.filter((b) => b !== s);
    s.call.removeAllListeners('data');
    s.call.on('error', () => undefined); // the cancel's own error is expected
    s.call.cancel();
  }

  private dropBackups(): void {
    for (const b of [...this.backups]) this.dropStream(b);
  }

  private resetIfTlsChanged(tls: TlsMaterial): void {
    const key = tls.certPem ?? '';
    if (key === this.tlsKey) return;
    this.tlsKey = key;
    this.dropStream();
    this.dropBackups();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
