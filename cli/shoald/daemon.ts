// shoald: one per host. Always runs the worker agent once the node belongs to
// a cluster; runs the manager (raft, store, CA, dispatcher, control API) while
// its role is manager, and switches role without a restart.
//   - a unix socket (root only) serves the Local service and the Control API
//     to the local CLI;
//   - managers serve NodeCA, RaftMembership, Dispatcher, Control and raft on
//     the cluster port with mutual TLS (a joining node has no certificate yet:
//     only NodeCA.IssueNodeCertificate accepts that).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as crypto from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  KeyPool, RootCA, checkPinnedCa, formatJoinToken, generateKeyAndCsr, identityOf, newTokenSecret, parseJoinToken, renewAt,
  type CertIdentity, type NodeRole,
} from '../../manager/ca/index.js';
import { CallError, peerIdentity, relayedIdentity, requireRole, statusOf } from '../../manager/cluster/auth.js';
import { newObjectId, newRaftId } from '../../manager/cluster/ids.js';
import { DEFAULT_HEARTBEAT_TICK, Manager } from '../../manager/cluster/manager.js';
import { serveHeartbeats, type HeartbeatStream } from '../../manager/cluster/heartbeats.js';
import { clusterTables } from '../../manager/cluster/tables.js';
import { Store } from '../../manager/store/index.js';
import { ControlApi } from '../../manager/controlapi/control.js';
import { RaftNode } from '../../manager/raft/node/index.js';
import { RaftError } from '../../manager/raft/core/index.js';
import { Agent, describeHost } from '../../worker/agent/agent.js';
import { RuntimeHealth } from '../../worker/agent/runtimehealth.js';
import { WorkerSession } from '../../worker/agent/session.js';
import { TaskRunner } from '../../worker/agent/tasks.js';
import { ContainerdRuntime } from '../../worker/runtime/containerd/runtime.js';
import { RegistryPuller, type RegistryCredentials } from '../../worker/runtime/registry.js';
import { RegistryAuthFile } from '../../worker/runtime/registryauth.js';
import { ImageInUseError, ImageNotFoundError, type PullProgress, type Runtime } from '../../worker/runtime/runtime.js';
import { parseRef } from '../../worker/runtime/reference.js';
import { RELAY_META, call, callLeader, elsewhereMetadata, managerClient, mayHaveArrived, movesOn, neverDelivered, relayMetadata } from '../../proto/client.js';
import { streamServiceLogs } from '../../manager/controlapi/logs.js';
import {
  ControlService, DispatcherService, LocalService, NodeCAService, RaftMembershipService, api, serviceDef,
  type ClusterSpec, type ManagerAddr, type NodeDescription,
} from '../../proto/services.js';

type HeartbeatRequest = InstanceType<typeof api.HeartbeatRequest>;
import { MemoryCertProvider } from './certprovider.js';
import { clusterServerOptions } from './serveroptions.js';
import { relayClientStream, relayHeartbeats, relaySession, relayUnary } from './relay.js';
import { StateDir, type Certs, type NodeState } from './identity.js';
import { crashPoint } from './crashpoints.js';

export interface DaemonOptions {
  stateDir: string;
  socketPath: string;
  listenAddr: string;
  advertiseAddr?: string;
  hostname?: string;
  /** The container runtime the worker agent drives (default: containerd on its default socket). */
  runtime?: RuntimeOptions;
  logger: Logger;
}

export interface RuntimeOptions {
  kind: 'containerd' | 'docker';
  containerdSocket?: string;
  containerdNamespace?: string;
  dockerSocket?: string;
  /** Registries reachable over plain HTTP (host:port). */
  insecureRegistries?: string[];
  /** A Docker client config file with registry credentials (`auths`); none when missing. */
  registryConfig?: string;
}

export interface Logger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  debug(o: object, m?: string): void;
  error(o: object, m?: string): void;
}

type Bootstrap = NonNullable<Parameters<typeof Manager.start>[0]['bootstrap']>;

type Handler<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>;

function unaryHandler<Req, Res>(h: Handler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
  return (c, cb) => {
    h(c).then((res) => cb(null, res), (e: unknown) => cb(statusOf(e)));
  };
}

function peerHost(c: { getPeer(): string }): string {
  const p = c.getPeer();
  const i = p.lastIndexOf(':');
  return (i > 0 ? p.slice(0, i) : p).replace(/^ipv4:|^ipv6:|^\[|\]$/g, '');
}

/** How long a follower tries to hand a control request to the leader. */
const FORWARD_TIMEOUT_MS = 10_000;
/** Of those, how long the leader is tried directly before other managers are asked to relay (when there are any). */
const DIRECT_FORWARD_MS = 4_000;
/** How long a manager relaying another's control call waits for the leader. */
const RELAY_TIMEOUT_MS = 5_000;
const NOT_IN_SWARM = 'This node is not part of a swarm: use `shoal swarm init` or `shoal swarm join` first';
const NOT_A_MANAGER = 'This node is not a swarm manager. Use `shoal swarm init` or `shoal swarm join` to connect this node to a swarm as a manager, or run the command on a manager';

/** The spec of a new cluster: the defaults, with what `swarm init` asked for; bad values refused (INVALID_ARGUMENT). */
export function initSpec(s: InstanceType<typeof api.InitRequest>['spec']): ClusterSpec {
  const spec = defaultSpec();
  if (s?.raft?.snapshotInterval) spec.raft!.snapshotInterval = s.raft.snapshotInterval;
  if (s?.raft?.tickMs) spec.raft!.tickMs = s.raft.tickMs;
  if (s?.raft?.electionTick) spec.raft!.electionTick = s.raft.electionTick;
  if (s?.raft?.heartbeatTick) spec.raft!.heartbeatTick = s.raft.heartbeatTick;
  if (Number(spec.raft!.heartbeatTick) >= Number(spec.raft!.electionTick)) {
    throw new CallError(grpc.status.INVALID_ARGUMENT, `raft heartbeat tick (${spec.raft!.heartbeatTick}) must be less than the election tick (${spec.raft!.electionTick}): followers would start elections between heartbeats`);
  }
  if (s?.dispatcher?.heartbeatPeriodMs) spec.dispatcher!.heartbeatPeriodMs = s.dispatcher.heartbeatPeriodMs;
  const limit = s?.orchestration?.taskHistoryLimit;
  if (limit !== undefined && limit !== null) {
    if (Number(limit) < 0 || Number(limit) > 1000) throw new CallError(grpc.status.INVALID_ARGUMENT, '--task-history-limit must be 0 to 1000');
    spec.orchestration = { taskHistoryLimit: Number(limit) } as never;
  }
  if (s?.ca?.nodeCertExpiryMs) {
    if (Number(s.ca.nodeCertExpiryMs) < 30_000) throw new CallError(grpc.status.INVALID_ARGUMENT, '--cert-expiry must be at least 30s');
    spec.ca!.nodeCertExpiryMs = s.ca.nodeCertExpiryMs;
  }
  return spec;
}

/** The defaults of a new cluster; `swarm init` flags override them. */
export function defaultSpec(): ClusterSpec {
  return {
    name: 'default',
    raft: { snapshotInterval: 10_000, tickMs: 100, electionTick: 10, heartbeatTick: DEFAULT_HEARTBEAT_TICK },
    dispatcher: { heartbeatPeriodMs: 1000 },
    ca: { nodeCertExpiryMs: 90 * 24 * 3600 * 1000 },
    labels: {},
  } as never;
}

export class Daemon {
  private readonly dir: StateDir;
  private readonly log: Logger;
  private node?: NodeState;
  private certs?: Certs;
  private local?: grpc.Server;
  private cluster?: grpc.Server;
  private clusterPort = '';
  private certProvider?: MemoryCertProvider;
  private manager?: Manager;
  private control?: ControlApi;
  private agent?: Agent;
  private tasks?: { runtime: Runtime; runner: TaskRunner; session: WorkerSession; health: RuntimeHealth };
  private renewTimer?: NodeJS.Timeout;
  private roleChange?: Promise<void>;
  private roleBackoffMs = 0;
  private roleRetryAt = 0;
  private lastError = '';
  private readonly leaderClients = new Map<string, grpc.Client>();
  private readonly keys = new KeyPool(2);

  constructor(private readonly opts: DaemonOptions) {
    this.dir = new StateDir(opts.stateDir);
    this.log = opts.logger;
  }

  // ---- lifecycle ----

  async start(): Promise<void> {
    await this.serveLocal();
    const saved = this.dir.load();
    if (saved.droppedLeftovers) this.log.warn({ stateDir: this.dir.dir }, 'a swarm init, join or leave was cut short: removed the certificates and raft data it left');
    this.node = saved.node;
    this.certs = saved.certs;
    if (this.node && this.certs) {
      this.log.info({ node: this.node.nodeId, role: this.node.role }, 'rejoining the cluster with saved state');
      await this.activate();
    } else {
      this.log.info({}, 'not part of a cluster yet: waiting for `shoal swarm init` or `shoal swarm join`');
    }
  }

  async stop(): Promise<void> {
    await this.deactivate();
    this.local?.forceShutdown();
    fs.rmSync(this.opts.socketPath, { force: true });
  }

  private async serveLocal(): Promise<void> {
    const server = new grpc.Server();
    server.addService(serviceDef(LocalService), {
      init: unaryHandler((c) => this.init(c.request)),
      join: unaryHandler((c) => this.join(c.request)),
      leave: unaryHandler((c) => this.leave(c.request.force)),
      info: unaryHandler(() => this.info()),
      loadImage: (call: grpc.ServerWritableStream<InstanceType<typeof api.LoadImageRequest>, unknown>) => this.stepsThenResult(call, (onProgress) => this.withRuntime(
        async (rt) => ({ loaded: (await rt.loadImage(call.request.path, call.request.name || undefined, { onProgress })).map((i) => i.name) }),
        (rt, e) => new CallError(grpc.status.INVALID_ARGUMENT, `cannot load ${call.request.path}: ${e.message}`),
      )),
      listImages: unaryHandler(() => this.withRuntime(
        async (rt) => ({ images: await rt.listImages() }) as never,
        (rt, e) => new CallError(grpc.status.UNAVAILABLE, `cannot list the images of ${rt.endpoint}: ${e.message}`),
      )),
      pullImage: (call: grpc.ServerWritableStream<InstanceType<typeof api.PullImageRequest>, unknown>) => this.pullImage(call),
      removeImage: unaryHandler(async (c) => {
        const { force } = c.request;
        const name = checkedImageRef(c.request.name);
        return this.withRuntime(
          async (rt) => (await rt.removeImage(name, { force })) as never,
          (rt, e) => imageCallError(e, `cannot remove image ${name} from ${rt.endpoint}`),
        );
      }),
    });
    server.addService(serviceDef(ControlService), this.controlHandlers(true));
    fs.rmSync(this.opts.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${this.opts.socketPath}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
    // Root only: the socket is the keys to the cluster.
    fs.chmodSync(this.opts.socketPath, 0o600);
    this.local = server;
  }

  private tls() {
    return { caPem: this.certs!.caPem, certPem: this.certs!.certPem, keyPem: this.certs!.keyPem };
  }

  private get advertiseAddr(): string {
    return this.node?.advertiseAddr ?? this.opts.advertiseAddr ?? this.opts.listenAddr;
  }

  /** Start what this node's role needs: the cluster server and manager (managers), the agent (everyone). */
  private async activate(bootstrap?: Bootstrap): Promise<void> {
    const node = this.node!;
    if (node.role === 'manager') await this.startManager(bootstrap);
    this.agent = new Agent({
      tls: () => this.tls(),
      managers: () => this.managerAddrs(),
      role: () => this.node?.role ?? 'worker',
      onManagers: (ms) => this.updateManagers(ms),
      onDesiredRole: () => this.switchRole(),
      onRemoved: (why) => {
        this.lastError = `removed from the cluster: ${why}`;
      },
      logger: this.log,
      hostname: this.opts.hostname,
      runtimeProblem: () => this.tasks?.health.problem ?? '',
      onRoute: (route) => this.tasks?.session.follow(route),
    });
    this.agent.start();
    await this.startTasks();
    this.scheduleRenewal();
  }

  /** The runtime, the task runner and the session that feeds it (every node runs tasks). */
  private async startTasks(): Promise<void> {
    const runtime = await this.openRuntime();
    const dirs = { logDir: path.join(this.opts.stateDir, 'tasks', 'logs'), volumeDir: path.join(this.opts.stateDir, 'volumes') };
    fs.mkdirSync(dirs.logDir, { recursive: true });
    const late: { session?: WorkerSession } = {};
    const runner = new TaskRunner({
      runtime, nodeId: this.node!.nodeId, ...dirs,
      report: (u) => late.session?.report(u),
      logger: this.log,
    });
    // Not awaited: a runtime that is down (containerd restarting, or not installed yet) must not
    // hold up init, join or a restart. The runner keeps retrying its first listing, logs why, and
    // applies assignments only once it knows what runs.
    runner.start().catch((e: unknown) => this.log.warn({ err: String(e) }, 'container runtime not answering yet'));
    const session = (late.session = new WorkerSession({
      nodeId: () => this.node?.nodeId ?? '',
      tls: () => this.tls(),
      managers: () => [...new Set([this.agent?.leaderAddr, ...this.managerAddrs()].filter((a): a is string => !!a))],
      runner,
      logDir: dirs.logDir,
      description: () => describeHost(this.opts.hostname),
      logger: this.log,
    }));
    session.start();
    const health = new RuntimeHealth({
      runtime,
      onChange: (problem) => (problem ? this.log.warn({ problem }, 'container runtime unreachable: this node reports itself down') : this.log.info({}, 'container runtime answers again')),
    });
    health.start();
    this.tasks = { runtime, runner, session, health };
  }

  /** PullImage: the pull's steps as they happen, then the image. */
  private pullImage(call: grpc.ServerWritableStream<InstanceType<typeof api.PullImageRequest>, unknown>): void {
    this.stepsThenResult(call, async (onProgress) => {
      const name = checkedImageRef(call.request.name);
      const pulled = await this.withRuntime((rt) => rt.pullImage(name, { onProgress }), (rt, e) => imageCallError(e, `cannot pull ${name} into ${rt.endpoint}`));
      return { pulled };
    });
  }

  /** An image call that streams its layers' steps (PullImage, LoadImage), then the message saying what it did. */
  private stepsThenResult(call: grpc.ServerWritableStream<unknown, unknown>, run: (onProgress: (p: PullProgress) => void) => Promise<object>): void {
    let open = true;
    call.on('cancelled', () => (open = false));
    const onProgress = (p: PullProgress) => {
      if (open) call.write({ id: p.id, status: p.status, current: p.current ?? 0, total: p.total ?? 0 });
    };
    run(onProgress).then((last) => {
      if (!open) return;
      call.write(last);
      call.end();
    }).catch((e: unknown) => call.emit('error', statusOf(e)));
  }

  /** Runs f on the task runner's runtime, or on one opened for the call (before the node has tasks); its errors go through refuse. */
  private async withRuntime<T>(f: (rt: Runtime) => Promise<T>, refuse: (rt: Runtime, e: Error) => Error): Promise<T> {
    const rt = this.tasks?.runtime ?? await this.openRuntime();
    try {
      return await f(rt);
    } catch (e) {
      throw refuse(rt, e as Error);
    } finally {
      if (!this.tasks) rt.close();
    }
  }

  private async openRuntime(): Promise<Runtime> {
    const r = this.opts.runtime ?? { kind: 'containerd' };
    if (r.kind === 'docker') {
      const { DockerRuntime } = await import('../../worker/runtime/docker/runtime.js');
      return new DockerRuntime({ socket: r.dockerSocket, stateDir: path.join(this.opts.stateDir, 'runtime'), insecureRegistries: r.insecureRegistries, ...this.registryAuth() });
    }
    const ns = r.containerdNamespace || 'shoal';
    return new ContainerdRuntime({
      socket: r.containerdSocket,
      namespace: ns,
      // cgroups per namespace, so hosts sharing a machine never share a cgroup path.
      cgroupParent: ns === 'shoal' ? '/shoal' : `/shoal/${ns}`,
      stateDir: path.join(this.opts.stateDir, 'runtime'),
      puller: new RegistryPuller({ insecure: r.insecureRegistries ?? [], ...this.registryAuth() }),
    });
  }

  /** Pull credentials from the node's Docker config file, and what a refusal says about it. */
  private registryAuth(): { credentials?: (domain: string) => RegistryCredentials | undefined; credentialsHint?: string } {
    const file = this.opts.runtime?.registryConfig;
    if (!file) return {};
    const auth = new RegistryAuthFile(file);
    return {
      credentials: (domain) => auth.credentials(domain),
      credentialsHint: `log this node in: an "auths" entry for the registry in ${file} (what \`docker login\` writes), or shoald --registry-config FILE`,
    };
  }

  private async stopTasks(): Promise<void> {
    const t = this.tasks;
    this.tasks = undefined;
    if (!t) return;
    t.health.stop();
    t.session.stop();
    await t.runner.stop();
    t.runtime.close();
  }

  private async deactivate(): Promise<void> {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.agent?.stop();
    this.agent = undefined;
    await this.stopTasks();
    await this.stopManager();
    for (const c of this.leaderClients.values()) c.close();
    this.leaderClients.clear();
  }

  private managerAddrs(): string[] {
    const own = this.node?.role === 'manager' ? [this.advertiseAddr] : [];
    const known = (this.node?.managers ?? []).map((m) => m.addr);
    return [...new Set([...own, ...known])];
  }

  private updateManagers(ms: ManagerAddr[]): void {
    if (!this.node) return;
    const next = ms.map((m) => ({ nodeId: String(m.nodeId), raftId: Number(m.raftId), addr: String(m.addr) }));
    if (JSON.stringify(next) === JSON.stringify(this.node.managers)) return;
    this.node = { ...this.node, managers: next };
    this.dir.saveState(this.node);
  }

  private async startManager(bootstrap?: Bootstrap): Promise<void> {
    const node = this.node!;
    const certs = this.certs!;
    this.certProvider = new MemoryCertProvider(certs.caPem, certs.certPem, certs.keyPem);
    const creds = grpc.experimental.createCertificateProviderServerCredentials(this.certProvider, this.certProvider, false);
    const server = new grpc.Server(clusterServerOptions());
    server.addService(serviceDef(NodeCAService), {
      issueNodeCertificate: unaryHandler((c) => this.mgr().issueNodeCertificate(c.request, peerHost(c))),
      renewNodeCertificate: unaryHandler(async (c) => {
        const id = requireRole(this.identify(c), ['manager', 'worker'], 'certificate renewal');
        return (await this.mgr().renewNodeCertificate(id, c.request.csrPem)) as never;
      }),
    });
    server.addService(serviceDef(RaftMembershipService), {
      join: unaryHandler(async (c) => {
        const id = requireRole(this.identify(c), ['manager'], 'joining raft');
        return (await this.mgr().joinRaft(id, c.request.addr)) as never;
      }),
      leave: unaryHandler(async () => ({}) as never),
    });
    const relay = () => this.leaderClient();
    const D = DispatcherService as unknown as Record<string, grpc.MethodDefinition<unknown, unknown>>;
    server.addService(serviceDef(DispatcherService), {
      heartbeat: unaryHandler(async (c) => {
        const who = this.dispatcherCaller(c);
        if (who.relay) return (await relayUnary(relay, D.heartbeat!, c.request, who.id, who.peer, c.getDeadline())) as never;
        return this.beat(who, c.request);
      }),
      heartbeats: (call: HeartbeatStream<HeartbeatRequest, unknown>) => {
        try {
          const who = this.dispatcherCaller(call);
          if (who.relay) return relayHeartbeats(relay, D.heartbeats!, call as never, who.id, who.peer);
        } catch (e) {
          call.emit('error', statusOf(e));
          return;
        }
        // The caller is checked per beat, as a unary call is: a node removed meanwhile is refused at once.
        serveHeartbeats(call, async (req) => this.beat(this.dispatcherCaller(call), req));
      },
      session: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        try {
          const who = this.dispatcherCaller(call);
          if (who.relay) return relaySession(relay, D.session!, call, who.id, who.peer);
          this.mgr().sessions.open(who.id.nodeId, call);
        } catch (e) {
          call.emit('error', statusOf(e));
        }
      },
      updateTaskStatus: unaryHandler(async (c) => {
        const who = this.dispatcherCaller(c);
        if (who.relay) return (await relayUnary(relay, D.updateTaskStatus!, c.request, who.id, who.peer, c.getDeadline())) as never;
        await this.mgr().sessions.updateTaskStatus(who.id.nodeId, c.request.updates ?? []);
        return {} as never;
      }),
      publishLogs: (call: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        try {
          const who = this.dispatcherCaller(call);
          if (who.relay) return relayClientStream(relay, D.publishLogs!, call, who.id, who.peer, (e) => (e ? cb(statusOf(e)) : cb(null, {})));
          this.mgr().sessions.publishLogs(who.id.nodeId, call, (err) => (err ? cb(err) : cb(null, {})));
        } catch (e) {
          cb(statusOf(e));
        }
      },
    });
    server.addService(serviceDef(ControlService), this.controlHandlers(false));
    const spec = bootstrap?.spec ?? undefined;
    const raftCfg = spec?.raft;
    const manager = await Manager.start({
      nodeId: node.nodeId,
      raftId: node.raftId!,
      stateDir: this.opts.stateDir,
      advertiseAddr: this.advertiseAddr,
      server,
      tls: { ca: Buffer.from(certs.caPem), cert: Buffer.from(certs.certPem), key: Buffer.from(certs.keyPem) },
      bootstrap,
      join: bootstrap ? undefined : Object.fromEntries(node.managers.filter((m) => m.raftId).map((m) => [m.raftId, m.addr])),
      tickMs: Number(raftCfg?.tickMs) || 100,
      electionTick: Number(raftCfg?.electionTick) || 10,
      heartbeatTick: Number(raftCfg?.heartbeatTick) || DEFAULT_HEARTBEAT_TICK,
      snapshotInterval: Number(raftCfg?.snapshotInterval) || 10_000,
      logger: this.log,
    });
    this.manager = manager;
    this.control = new ControlApi(manager);
    // `swarm init/join --listen-addr` is remembered in node.json; shoald's flag is the default.
    const listen = node.listenAddr || this.opts.listenAddr;
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(listen, creds, (e, p) => (e ? reject(e) : resolve(p))));
    this.clusterPort = String(port);
    this.cluster = server;
    this.log.info({ listen, advertise: this.advertiseAddr }, 'manager serving');
  }

  private async stopManager(): Promise<void> {
    const m = this.manager;
    this.manager = undefined;
    this.control = undefined;
    await m?.stop();
    this.cluster?.forceShutdown();
    this.cluster = undefined;
  }

  private mgr(): Manager {
    if (!this.manager) throw new CallError(grpc.status.FAILED_PRECONDITION, NOT_A_MANAGER, elsewhereMetadata());
    return this.manager;
  }

  /** One heartbeat of a node, from a unary call or the stream. */
  private beat(who: { id: CertIdentity; peer: string; relayedBy: string }, req: HeartbeatRequest) {
    return this.mgr().dispatcher.heartbeat(who.id, req.description as NodeDescription | null | undefined, who.peer, req.runtimeError ?? '', who.relayedBy);
  }

  /**
   * Who a dispatcher call is for and from where: the caller itself, or the
   * node a manager relays for (relayedBy: that manager's node id); and whether
   * this manager is to relay it to the leader (the node asked, and this
   * manager does not lead).
   */
  private dispatcherCaller(c: Parameters<Daemon['identify']>[0] & { metadata: grpc.Metadata; getPeer(): string }): { id: CertIdentity; peer: string; relay: boolean; relayedBy: string } {
    const own = requireRole(this.identify(c), ['manager', 'worker'], 'the dispatcher');
    const relayed = relayedIdentity(c.metadata, own, this.mgr().removedNodes());
    if (relayed) return { ...relayed, relay: false, relayedBy: own.nodeId };
    return { id: own, peer: peerHost(c), relay: c.metadata.get(RELAY_META)[0] === '1' && !this.mgr().isLeader(), relayedBy: '' };
  }

  /** A client for the leader's cluster port (this node's certificate); UNAVAILABLE while no leader is known. */
  private leaderClient(): grpc.Client {
    const addr = this.manager?.leaderAddr();
    if (!addr) throw new CallError(grpc.status.UNAVAILABLE, 'no leader is elected right now (the cluster may have lost quorum): retry shortly');
    return this.managerClientFor(addr);
  }

  /** The kept client for a manager's cluster port (this node's certificate), made at first use. */
  private managerClientFor(addr: string): grpc.Client {
    let c = this.leaderClients.get(addr);
    if (!c) this.leaderClients.set(addr, (c = managerClient(addr, this.tls())));
    return c;
  }

  private identify(c: { getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null }): CertIdentity | undefined {
    const m = this.mgr();
    return peerIdentity(c, m.trustedCA, m.removedNodes());
  }

  // ---- Control: served locally (trusted socket) and to manager certificates over TLS ----

  private controlHandlers(local: boolean): grpc.UntypedServiceImplementation {
    /** `read`: a call that changes nothing, so one the leader lost its leadership under can be asked again of the next. */
    const route = <Req, Res>(method: grpc.MethodDefinition<Req, Res>, run: (api: ControlApi, req: Req) => Promise<Res>, read = false) =>
      unaryHandler<Req, Res>(async (c) => {
        if (!local) requireRole(this.identify(c), ['manager'], 'the control API');
        if (!this.node) throw new CallError(grpc.status.FAILED_PRECONDITION, NOT_IN_SWARM, local ? undefined : elsewhereMetadata());
        if (!this.manager || !this.control) throw new CallError(grpc.status.FAILED_PRECONDITION, NOT_A_MANAGER, local ? undefined : elsewhereMetadata());
        if (this.manager.isLeader()) {
          try {
            return await run(this.control, c.request);
          } catch (e) {
            // A read whose confirmation round the leader could not finish (it stepped down meanwhile):
            // asked on the local socket, it goes to the next leader, as a follower's would.
            const lostLeadership = e instanceof RaftError && e.code === 'NOT_LEADER';
            if (!(read && local && lostLeadership)) throw this.manager.wrap(e);
          }
        }
        if (!local) {
          // Another manager that cannot reach the leader asks this one to pass its call on.
          if (c.metadata.get(RELAY_META)[0] === '1') return this.relayControl(method, c.request);
          throw this.manager.notLeader();
        }
        return this.forwardControl(method, c.request, read);
      });
    return {
      listNodes: route(ControlService.listNodes, (a) => a.listNodes() as never, true),
      getNode: route(ControlService.getNode, (a, r) => a.getNode(r.ref), true),
      updateNode: route(ControlService.updateNode, (a, r) => a.updateNode(r as never)),
      removeNode: route(ControlService.removeNode, (a, r) => a.removeNode(r as never) as never),
      getCluster: route(ControlService.getCluster, (a) => a.getCluster(), true),
      updateCluster: route(ControlService.updateCluster, (a, r) => a.updateCluster(r as never)),
      createService: route(ControlService.createService, (a, r) => a.services.createService(r)),
      getService: route(ControlService.getService, (a, r) => a.services.getService(r.ref), true),
      listServices: route(ControlService.listServices, (a, r) => a.services.listServices(r) as never, true),
      updateService: route(ControlService.updateService, (a, r) => a.services.updateService(r)),
      removeService: route(ControlService.removeService, (a, r) => a.services.removeService(r) as never),
      listTasks: route(ControlService.listTasks, (a, r) => a.services.listTasks(r) as never, true),
      serviceLogs: (call: grpc.ServerWritableStream<InstanceType<typeof api.ServiceLogsRequest>, unknown>) => this.serviceLogs(call, local),
    };
  }

  /**
   * A follower's local socket: the call goes to the leader on the caller's behalf. When the leader
   * does not answer this manager (one link down), another manager relays it, as they relay the
   * agents' calls. A write is relayed only when no attempt reached a server that could have
   * applied it, so it is never applied twice.
   */
  private async forwardControl<Req, Res>(method: grpc.MethodDefinition<Req, Res>, req: Req, read: boolean): Promise<Res> {
    const m = this.mgr();
    // A follower that lost touch with the leader forgets it (raft's pre-vote): any other manager may
    // relay, those this manager is connected to (or has not tried) first, so that the unreachable
    // leader, whose channel is still connecting, comes last.
    const connectable = (a: string): boolean => {
      const st = this.leaderClients.get(a)?.getChannel().getConnectivityState(false) ?? grpc.connectivityState.IDLE;
      return st === grpc.connectivityState.READY || st === grpc.connectivityState.IDLE;
    };
    const relays = () => this.managerAddrs().filter((a) => a !== this.advertiseAddr && a !== m.leaderAddr())
      .sort((a, b) => Number(connectable(b)) - Number(connectable(a)));
    const deadline = Date.now() + FORWARD_TIMEOUT_MS;
    let last: unknown;
    /** Some attempt may have reached a server that could apply the call: a write then goes no other way. */
    let mayApply = false;
    while (deadline - Date.now() >= 500) {
      const left = deadline - Date.now();
      try {
        const { res } = await callLeader([m.leaderAddr() ?? this.advertiseAddr, ...this.managerAddrs()], this.tls(), method, req,
          { clients: this.leaderClients, timeoutMs: relays().length > 0 ? Math.min(left, DIRECT_FORWARD_MS) : left, leader: () => this.manager?.leaderAddr() });
        return res;
      } catch (e) {
        // The leader's own answers pass through.
        if (!movesOn(e)) throw e;
        last = e;
        if (!neverDelivered(e)) mayApply = true;
      }
      if (!read && mayApply) break;
      for (const via of relays()) {
        const rest = deadline - Date.now();
        if (rest < 500) break;
        try {
          return await call(this.managerClientFor(via), method, req, rest, relayMetadata(true));
        } catch (e) {
          if (!movesOn(e)) throw e;
          last = e;
          if (mayHaveArrived(e)) mayApply = true;
          if (!read && mayApply) break;
        }
      }
      if (!read && mayApply) break;
      // No manager knows a leader yet (an election under way): look again until the deadline.
      await new Promise((r) => setTimeout(r, 200));
    }
    // Failing to find a leader is said as what it is, not as the last connection error
    // (which the CLI would take for its own socket's).
    const err = (last ?? new Error('no manager answered')) as grpc.ServiceError;
    throw new CallError(grpc.status.UNAVAILABLE,
      `this manager could not reach a leader within ${FORWARD_TIMEOUT_MS / 1000} s (last error: ${err.details || err.message}): the cluster may have lost quorum. ` +
      'It needs a majority of its managers up; if they are gone for good, recover with `shoal swarm init --force-new-cluster` on a surviving manager');
  }

  /** A control call another manager asked this one to pass on to the leader (it cannot reach it): once, never further. */
  private async relayControl<Req, Res>(method: grpc.MethodDefinition<Req, Res>, req: Req): Promise<Res> {
    const leader = this.mgr().leaderAddr();
    if (!leader || leader === this.advertiseAddr) throw this.mgr().notLeader();
    const { res } = await callLeader([leader], this.tls(), method, req, { clients: this.leaderClients, timeoutMs: RELAY_TIMEOUT_MS });
    return res;
  }

  /** ServiceLogs: served by the leader; a follower's local socket relays the leader's stream. */
  private serviceLogs(call: grpc.ServerWritableStream<InstanceType<typeof api.ServiceLogsRequest>, unknown>, local: boolean): void {
    const fail = (e: unknown) => call.emit('error', statusOf(e));
    try {
      if (!local) requireRole(this.identify(call), ['manager'], 'the control API');
      if (!this.node) throw new CallError(grpc.status.FAILED_PRECONDITION, NOT_IN_SWARM);
      const m = this.manager;
      if (!m) throw new CallError(grpc.status.FAILED_PRECONDITION, NOT_A_MANAGER, local ? undefined : elsewhereMetadata());
      if (m.isLeader()) {
        streamServiceLogs(m, call.request, {
          write: (msg) => call.write(msg),
          end: () => call.end(),
          onCancel: (fn) => call.on('cancelled', fn),
        });
        return;
      }
      if (!local) throw m.notLeader();
      const c = this.leaderClient();
      const def = ControlService.serviceLogs;
      const up = c.makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, call.request);
      up.on('data', (msg) => call.write(msg));
      up.on('end', () => call.end());
      up.on('error', (e) => fail(e));
      call.on('cancelled', () => up.cancel());
    } catch (e) {
      fail(e);
    }
  }

  // ---- Local: init, join, leave, info ----

  private async init(req: InstanceType<typeof api.InitRequest>): Promise<InstanceType<typeof api.InitResponse>> {
    if (req.forceNewCluster) return this.forceNewCluster();
    if (this.node) {
      throw new CallError(grpc.status.FAILED_PRECONDITION, 'This node is already part of a swarm. Use `shoal swarm leave` to leave it first, or `shoal swarm init --force-new-cluster` to recover a cluster that lost its quorum');
    }
    const advertise = req.advertiseAddr || this.opts.advertiseAddr || '';
    if (!advertise || advertise.startsWith('0.0.0.0')) {
      throw new CallError(grpc.status.INVALID_ARGUMENT, 'an advertise address is needed: pass --advertise-addr HOST:PORT (the address other nodes reach this one on)');
    }
    const spec = initSpec(req.spec);
    const clusterId = newObjectId();
    const nodeId = newObjectId();
    const raftId = newRaftId();
    const ca = RootCA.create({ clusterId, key: this.keys.take() });
    const { keyPem, csrPem } = generateKeyAndCsr(this.keys.take());
    const { certPem } = ca.issue(csrPem, { nodeId, role: 'manager', clusterId, validityMs: Number(spec.ca!.nodeCertExpiryMs) });
    const workerToken = formatJoinToken(ca.digest, newTokenSecret());
    const managerToken = formatJoinToken(ca.digest, newTokenSecret());
    this.certs = { caPem: ca.certPem, certPem, keyPem };
    this.node = { nodeId, clusterId, role: 'manager', raftId, listenAddr: req.listenAddr || this.opts.listenAddr, advertiseAddr: advertise, managers: [{ nodeId, raftId, addr: advertise }] };
    try {
      this.dir.saveCerts(this.certs);
      await this.activate({ clusterId, spec, ca, workerToken, managerToken, hostname: this.opts.hostname ?? os.hostname(), certPem });
      this.dir.saveState(this.node);
    } catch (e) {
      // Nothing half-done: an init that failed leaves the node as it was.
      await this.forgetCluster();
      throw e;
    }
    return { nodeId, workerToken, managerToken, advertiseAddr: advertise } as never;
  }

  /** Fetch the remote manager's CA certificate over TLS and check it against the token's digest. */
  private async pinnedCa(remote: string, digestHex: string): Promise<string> {
    const i = remote.lastIndexOf(':');
    const host = remote.slice(0, i);
    const port = Number(remote.slice(i + 1));
    const chain = await new Promise<tls.DetailedPeerCertificate>((resolve, reject) => {
      const sock = tls.connect({ host, port, rejectUnauthorized: false, servername: 'swarm-manager', ALPNProtocols: ['h2'] }, () => {
        const cert = sock.getPeerCertificate(true);
        sock.destroy();
        resolve(cert);
      });
      sock.setTimeout(5000, () => {
        sock.destroy();
        reject(new CallError(grpc.status.UNAVAILABLE, `no answer from ${remote} within 5 s: check the address and that a manager runs there`));
      });
      sock.once('error', (e) => reject(new CallError(grpc.status.UNAVAILABLE, `cannot reach a manager at ${remote}: ${e.message}`)));
    });
    // Walk up to the self-signed root the manager presents.
    let c: tls.DetailedPeerCertificate | undefined = chain;
    const seen = new Set<string>();
    while (c && c.issuerCertificate && c.issuerCertificate !== c && !seen.has(c.fingerprint256)) {
      seen.add(c.fingerprint256);
      c = c.issuerCertificate;
    }
    const manager = new crypto.X509Certificate(chain.raw);
    const candidates = [c?.raw, chain.raw].filter(Boolean) as Buffer[];
    for (const raw of candidates) {
      const x = new crypto.X509Certificate(raw);
      if (x.ca && manager.checkIssued(x)) {
        checkPinnedCa(x.toString(), digestHex);
        return x.toString();
      }
    }
    throw new CallError(grpc.status.FAILED_PRECONDITION, `the server at ${remote} did not present its CA certificate; is it a shoal manager?`);
  }

  private async join(req: InstanceType<typeof api.JoinRequest>): Promise<InstanceType<typeof api.JoinResponse>> {
    if (this.node) {
      throw new CallError(grpc.status.FAILED_PRECONDITION, 'This node is already part of a swarm. Use `shoal swarm leave` to leave it first');
    }
    let digest: string;
    try {
      digest = parseJoinToken(req.token).caDigestHex;
    } catch (e) {
      throw new CallError(grpc.status.INVALID_ARGUMENT, (e as Error).message);
    }
    const t0 = performance.now();
    const lap = (what: string) => this.log.info({ ms: Math.round(performance.now() - t0) }, `join: ${what}`);
    let caPem: string;
    try {
      caPem = await this.pinnedCa(req.remoteAddr, digest);
      lap('CA pinned');
    } catch (e) {
      if (e instanceof CallError) throw e;
      throw new CallError(grpc.status.PERMISSION_DENIED, (e as Error).message);
    }
    const { keyPem, csrPem } = generateKeyAndCsr(this.keys.take());
    const { res } = await callLeader([req.remoteAddr], { caPem }, NodeCAService.issueNodeCertificate,
      { token: req.token, csrPem, hostname: this.opts.hostname ?? os.hostname() } as never, { timeoutMs: 20_000 })
      .catch((e: grpc.ServiceError) => {
        throw new CallError(e.code ?? grpc.status.UNAVAILABLE, `the manager refused to join this node: ${e.details ?? e.message}`);
      });
    lap('certificate issued');
    const role: NodeRole = res.role === api.NodeRole.ROLE_MANAGER ? 'manager' : 'worker';
    this.certs = { caPem: res.caCertPem, certPem: res.certPem, keyPem };
    const advertise = req.advertiseAddr || this.opts.advertiseAddr || this.opts.listenAddr;
    this.node = {
      nodeId: res.nodeId, clusterId: res.clusterId, role, listenAddr: req.listenAddr || this.opts.listenAddr, advertiseAddr: advertise,
      managers: (res.managers ?? []).map((m) => ({ nodeId: String(m.nodeId), raftId: Number(m.raftId), addr: String(m.addr) })),
    };
    try {
      this.dir.saveCerts(this.certs);
      lap('certificates saved');
      if (role === 'manager') await this.joinRaft();
      crashPoint('join:after-raft-add');
      this.dir.saveState(this.node);
      await this.activate();
      lap('active');
    } catch (e) {
      await this.forgetCluster();
      throw e;
    }
    return { nodeId: res.nodeId, role: res.role } as never;
  }

  /** Ask the leader to add this node to raft; remember the raft id and the members. */
  private async joinRaft(): Promise<void> {
    const node = this.node!;
    const { res } = await callLeader(this.managerAddrs().filter((a) => a !== node.advertiseAddr).concat(node.managers.map((m) => m.addr)),
      this.tls(), RaftMembershipService.join, { addr: node.advertiseAddr } as never, { timeoutMs: 20_000 });
    node.raftId = Number(res.raftId);
    node.managers = (res.members ?? []).map((m) => ({ nodeId: String(m.nodeId), raftId: Number(m.raftId), addr: String(m.addr) }));
    // A rejoin after demotion starts raft from scratch.
    fs.rmSync(this.dir.raftDir, { recursive: true, force: true });
  }

  private async leave(force: boolean): Promise<Record<string, never>> {
    if (!this.node) throw new CallError(grpc.status.FAILED_PRECONDITION, NOT_IN_SWARM);
    if (this.node.role === 'manager' && !force) {
      throw new CallError(grpc.status.FAILED_PRECONDITION,
        'You are attempting to leave the swarm on a node that is a manager. Demote it first (`shoal node demote <node>` from a manager) so the remaining managers keep their quorum, or use --force to leave anyway');
    }
    await this.forgetCluster();
    return {};
  }

  /** Stop everything cluster-related and forget the cluster: back to a node that never joined. */
  private async forgetCluster(): Promise<void> {
    await this.deactivate();
    this.node = undefined;
    this.certs = undefined;
    this.lastError = '';
    this.dir.reset();
  }

  private async info(): Promise<InstanceType<typeof api.InfoResponse>> {
    const n = this.node;
    if (!n) return { nodeId: '', localState: 'inactive', role: 0, clusterId: '', leaderAddr: '', managers: [], error: this.lastError, certNotAfter: 0 } as never;
    const ident = identityOf(this.certs!.certPem);
    return {
      nodeId: n.nodeId,
      localState: this.lastError ? 'error' : 'active',
      role: n.role === 'manager' ? 1 : 0,
      clusterId: n.clusterId,
      leaderAddr: this.manager?.leaderAddr() ?? '',
      managers: n.managers,
      error: this.lastError,
      certNotAfter: ident.notAfter.getTime(),
    } as never;
  }

  /** Keep this node's raft state but make it the only member: recovery after losing quorum. */
  private async forceNewCluster(): Promise<InstanceType<typeof api.InitResponse>> {
    const n = this.node;
    if (!n || n.role !== 'manager' || !n.raftId) {
      throw new CallError(grpc.status.FAILED_PRECONDITION, '--force-new-cluster needs a node that was a manager: it keeps that manager\'s state and makes it the only member');
    }
    await this.deactivate();
    RaftNode.forceNewCluster({ id: n.raftId, dataDir: this.dir.raftDir, stateMachine: new Store({ tables: clusterTables }), advertiseAddr: n.advertiseAddr });
    n.managers = [{ nodeId: n.nodeId, raftId: n.raftId, addr: n.advertiseAddr }];
    this.dir.saveState(n);
    await this.activate();
    // Everyone else is gone from raft: drop them from the store's view of managers.
    const m = this.manager!;
    const deadline = Date.now() + 20_000;
    while (!m.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await m.forgetOtherManagers();
    const c = m.cluster();
    return { nodeId: n.nodeId, workerToken: c?.rootCa?.joinTokens?.worker ?? '', managerToken: c?.rootCa?.joinTokens?.manager ?? '', advertiseAddr: n.advertiseAddr } as never;
  }

  // ---- role switches and certificate renewal ----

  /**
   * The cluster wants another role: renew, and the certificate that comes back carries the role
   * the managers have got to. Until it is the wanted one (a demotion waits for the raft removal),
   * each heartbeat asks again, backing off (1 s doubling to 30 s) so a change that takes long does
   * not make this node renew every second.
   */
  private switchRole(): void {
    if (this.roleChange || Date.now() < this.roleRetryAt) return;
    const before = this.node?.role;
    const backOff = (): number => (this.roleBackoffMs = Math.min(30_000, Math.max(1_000, this.roleBackoffMs * 2)));
    this.roleChange = this.renew()
      .then(() => {
        if (this.node?.role !== before) this.roleBackoffMs = 0;
        else backOff();
      })
      .catch((e) => this.log.warn({ err: String(e), retryMs: backOff() }, 'role change failed; will retry'))
      .finally(() => {
        this.roleRetryAt = Date.now() + this.roleBackoffMs;
        this.roleChange = undefined;
      });
  }

  private scheduleRenewal(): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (!this.certs) return;
    const ident = identityOf(this.certs.certPem);
    // Issued-at: when this node received the certificate, i.e. when it was written to the
    // state dir. notBefore says little: it is backdated an hour (or to the CA's own notBefore),
    // and counting from it put the renewal point of a short-lived certificate in the past,
    // so nodes renewed every second.
    const received = this.dir.certsWrittenAt() ?? Date.now();
    const issuedAt = new Date(Math.min(Date.now(), Math.max(ident.notBefore.getTime(), received)));
    const at = renewAt(ident, issuedAt).getTime();
    const delay = Math.max(1000, Math.min(at - Date.now(), 2 ** 31 - 1));
    this.renewTimer = setTimeout(() => {
      this.renew().catch((e) => {
        this.log.warn({ err: String(e) }, 'certificate renewal failed; retrying in 5 s');
        this.renewTimer = setTimeout(() => this.scheduleRenewal(), 5000);
      });
    }, delay);
  }

  /** Get a fresh certificate; if the role in it changed, switch role. */
  private async renew(): Promise<void> {
    const node = this.node;
    if (!node || !this.certs) return;
    const { keyPem, csrPem } = generateKeyAndCsr(this.keys.take());
    const { res } = await callLeader(this.managerAddrs(), this.tls(), NodeCAService.renewNodeCertificate, { csrPem } as never, { timeoutMs: 15_000 });
    const newRole: NodeRole = res.role === api.NodeRole.ROLE_MANAGER ? 'manager' : 'worker';
    this.certs = { caPem: this.certs.caPem, certPem: res.certPem, keyPem };
    this.dir.saveCerts(this.certs);
    this.certProvider?.update(this.certs.caPem, this.certs.certPem, this.certs.keyPem);
    // Channels to the leader (forwarded control calls) were opened with the old certificate,
    // which the leader checks on every call: they would fail once it expires.
    for (const c of this.leaderClients.values()) c.close();
    this.leaderClients.clear();
    this.manager?.transport.updateCredentials({ ca: Buffer.from(this.certs.caPem), cert: Buffer.from(this.certs.certPem), key: Buffer.from(this.certs.keyPem) });
    this.log.info({ role: newRole, notAfter: identityOf(res.certPem).notAfter }, 'certificate renewed');
    if (newRole !== node.role) {
      if (newRole === 'manager') {
        const next: NodeState = { ...node, role: 'manager' };
        this.node = next;
        await this.joinRaft();
        this.dir.saveState(next);
        await this.startManager();
      } else {
        await this.stopManager();
        fs.rmSync(this.dir.raftDir, { recursive: true, force: true });
        this.node = { ...node, role: 'worker', raftId: undefined };
        this.dir.saveState(this.node);
      }
      this.log.info({ role: newRole }, 'role switched');
    }
    this.scheduleRenewal();
  }
}

/** An image reference from a local call, refused at the edge when it cannot be one. */
function checkedImageRef(name: string): string {
  try {
    parseRef(name);
  } catch (e) {
    throw new CallError(grpc.status.INVALID_ARGUMENT, `${(e as Error).message}: give the image's name as \`shoal image ls\` shows it, e.g. busybox or registry.example.com:5000/app:1`);
  }
  return name;
}

/** A runtime's image error as a local call's status: no such image, in use, or the runtime failed (with what was asked). */
function imageCallError(e: Error, what: string): CallError {
  if (e instanceof ImageNotFoundError) return new CallError(grpc.status.NOT_FOUND, e.message);
  if (e instanceof ImageInUseError) return new CallError(grpc.status.FAILED_PRECONDITION, e.message);
  return new CallError(grpc.status.UNAVAILABLE, `${what}: ${e.message}`);
}
