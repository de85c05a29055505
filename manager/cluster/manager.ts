// The manager role of a node: raft + the store, the leader-only loops
// (dispatcher monitor, membership reconciler), and the request handlers of
// NodeCA, RaftMembership, Dispatcher and Control. The daemon owns the gRPC
// server and routes calls here while this node is a manager.
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ConfChangeType, NONE, RaftError, StateType } from '../raft/core/index.js';
import { RaftNode, type NodeLogger, type Peers } from '../raft/node/index.js';
import { GrpcTransport } from '../raft/transport/index.js';
import { LeadershipGate, Store, StoreError } from '../store/index.js';
import { RootCA, identityOf, parseJoinToken, tokenMatches, type CertIdentity, type NodeRole } from '../ca/index.js';
import { newObjectId, newRaftId } from './ids.js';
import { api, plain, type ClusterSpec, type ManagerAddr } from '../../proto/services.js';
import { LEADER_META, elsewhereMetadata } from '../../proto/client.js';
import { CallError } from './auth.js';
import { clusterTables, clustersTable, nodesTable, type ClusterObject, type NodeObject } from './tables.js';
import { Dispatcher } from './dispatcher.js';
import { Sessions } from '../dispatcher/sessions.js';
import { Orchestrator } from '../orchestrator/loop.js';



export interface ManagerTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface ManagerOptions {
  nodeId: string;
  raftId: number;
  stateDir: string;
  advertiseAddr: string;
  server: grpc.Server;
  tls: ManagerTls;
  /** A brand-new cluster: this node is its first member. */
  bootstrap?: { clusterId: string; spec: ClusterSpec; ca: RootCA; workerToken: string; managerToken: string; hostname: string; certPem: string };
  /** Joining managers: the current members' raft addresses. */
  join?: Peers;
  tickMs: number;
  electionTick: number;
  /** Ticks between the leader's heartbeats (default 3: see DEFAULT_HEARTBEAT_TICK). */
  heartbeatTick?: number;
  snapshotInterval: number;
  logger: NodeLogger & { child?: unknown };
  /**
   * A learner not heard from for this long whose node is not ready is a manager join that never
   * completed (the joining daemon died or was reset between raft's AddLearner and its first
   * answer): it leaves raft, and its node becomes a worker (default 60 s; see dropAbandonedJoin).
   */
  abandonedJoinMs?: number;
}

export const DEFAULT_ABANDONED_JOIN_MS = 60_000;

/**
 * Leader heartbeats every 3 ticks (300 ms at the default 100 ms tick), not
 * every tick: at idle they are most of a follower's CPU (about 1.4 ms per
 * heartbeat and answer on this machine type), and on a saturated machine that
 * time comes out of container starts. An election still takes 10 ticks of
 * silence, so a follower misses 3 heartbeats before it even asks for a
 * pre-vote, which the others refuse while they hear from the leader.
 */
export const DEFAULT_HEARTBEAT_TICK = 3;

export const ROLE: Record<NodeRole, number> = { worker: api.NodeRole.ROLE_WORKER, manager: api.NodeRole.ROLE_MANAGER };

export class Manager {
  readonly store: Store;
  readonly raft: RaftNode;
  readonly transport: GrpcTransport;
  readonly gate: LeadershipGate;
  readonly dispatcher: Dispatcher;
  /** Worker sessions: assignments, task status, logs (leader only). */
  readonly sessions: Sessions;
  readonly orchestrator: Orchestrator;
  private readonly opts: ManagerOptions;
  private stopped = false;
  /** The cluster CA as this node knows it from its own state (verify only): usable before the store has caught up. */
  readonly trustedCA: RootCA;
  /** When raft last received a message from each peer (raft id -> ms). */
  private readonly lastHeard = new Map<number, number>();
  /** When this manager last won an election (ms): what it heard before then says nothing of a peer now. */
  private leaderSince = 0;
  /** Learners this leader has not heard from, and since when it has been waiting (see abandonedJoin). */
  private readonly silentLearners = new Map<number, number>();

  private constructor(opts: ManagerOptions, store: Store, raft: RaftNode, transport: GrpcTransport) {
    this.opts = opts;
    this.trustedCA = RootCA.fromPem(opts.tls.ca.toString());
    this.store = store;
    this.raft = raft;
    this.transport = transport;
    this.dispatcher = new Dispatcher(this);
    // Emitted before the new leader's first messages go out, so every answer to them comes after.
    raft.on('state', (s: { state: StateType }) => {
      if (s.state === StateType.Leader) {
        this.leaderSince = Date.now();
        this.silentLearners.clear();
      }
    });
    this.gate = new LeadershipGate(raft, { onError: (name, err) => opts.logger.warn({ task: name, err: String(err) }, 'leader task failed') });
    this.gate.add('dispatcher', (signal) => this.dispatcher.run(signal));
    this.gate.add('membership', (signal) => this.reconcileMembership(signal));
    this.sessions = new Sessions({ store, isLeader: () => this.isLeader(), notLeaderError: () => this.notLeader(), logger: opts.logger as never });
    this.orchestrator = new Orchestrator(store, { logger: opts.logger as never });
    this.gate.add('orchestrator', (signal) => this.orchestrator.run(signal));
    // Sessions live while leading; when leadership ends every worker is told to find the new leader.
    this.gate.add('sessions', (signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => {
      this.sessions.closeAll();
      resolve();
    }, { once: true })));
  }

  static async start(opts: ManagerOptions): Promise<Manager> {
    const store = new Store({ tables: clusterTables });
    // The cluster's raft.snapshot_interval (`swarm init/update --snapshot-interval`) applies to
    // every manager and follows updates; the flag value is the fallback until the store has it.
    const snapshotEvery = () => Number(store.view((r) => r.list(clustersTable)[0])?.spec?.raft?.snapshotInterval) || opts.snapshotInterval;
    const raft = RaftNode.open({
      id: opts.raftId,
      dataDir: path.join(opts.stateDir, 'raft'),
      stateMachine: store,
      advertiseAddr: opts.advertiseAddr,
      bootstrap: opts.bootstrap ? { [opts.raftId]: opts.advertiseAddr } : undefined,
      join: opts.join,
      tickMs: opts.tickMs,
      electionTick: opts.electionTick,
      heartbeatTick: opts.heartbeatTick ?? DEFAULT_HEARTBEAT_TICK,
      snapshotEntries: snapshotEvery,
      compactionMargin: () => Math.min(500, Math.floor(snapshotEvery() / 2)),
      logger: opts.logger,
    });
    store.setRaft(raft);
    // The transport's callbacks need the manager, which needs the transport.
    const late: { m?: Manager } = {};
    const transport: GrpcTransport = new GrpcTransport({
      id: opts.raftId,
      onMessage: (msg) => {
        late.m?.lastHeard.set(msg.from, Date.now());
        raft.step(msg);
      },
      onUnreachable: (p) => raft.reportUnreachable(p),
      onSnapshotStatus: (p, f) => raft.reportSnapshot(p, f),
      logger: opts.logger as never,
      credentials: {
        ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key,
        verifyPeer: (peer, cert): Error | undefined => (late.m ? late.m.verifyRaftPeer(peer, cert.raw) : new Error('manager starting')),
      },
    });
    const m = (late.m = new Manager(opts, store, raft, transport));
    transport.attach(opts.server);
    raft.start(transport);
    m.gate.start();
    if (opts.bootstrap) await m.bootstrapCluster(opts.bootstrap);
    return m;
  }

  /** A raft peer must present a manager certificate of the node that owns that raft id. */
  private verifyRaftPeer(raftId: number, raw: Buffer | undefined): Error | undefined {
    if (!raw) return new Error('no certificate');
    let id: CertIdentity;
    try {
      id = this.trustedCA.verify(raw);
    } catch (e) {
      return e as Error;
    }
    if (id.role !== 'manager') return new Error(`certificate of node ${id.nodeId} is a ${id.role} certificate`);
    const owner = this.store.view((r) => r.find(nodesTable, 'raftId', String(raftId))[0]);
    // Before the store knows the raft id (a member joining right now) the CA chain is what we have.
    if (owner && owner.id !== id.nodeId) return new Error(`raft id ${raftId} belongs to node ${owner.id}, not ${id.nodeId}`);
    if (this.removedNodes().has(id.nodeId)) return new Error(`node ${id.nodeId} was removed from the cluster`);
    return undefined;
  }

  private async bootstrapCluster(b: NonNullable<ManagerOptions['bootstrap']>): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (!this.raft.isLeader()) {
      if (Date.now() > deadline) throw new Error('the new cluster elected no leader within 30 s');
      this.raft.campaign();
      await new Promise((r) => setTimeout(r, 20));
    }
    const now = Date.now();
    const ident = identityOf(b.certPem);
    await this.store.update((tx) => {
      if (tx.list(clustersTable).length > 0) return;
      tx.create(clustersTable, {
        id: b.clusterId,
        spec: b.spec,
        rootCa: { caCertPem: b.ca.certPem, caKeyPem: b.ca.keyPem!, digest: b.ca.digest, joinTokens: { worker: b.workerToken, manager: b.managerToken } },
        removedNodes: [],
      } as unknown as ClusterObject);
      tx.create(nodesTable, {
        id: this.opts.nodeId,
        spec: { labels: {}, desiredRole: ROLE.manager, availability: api.NodeAvailability.AVAILABILITY_ACTIVE },
        description: { hostname: b.hostname, platform: { os: process.platform, architecture: process.arch }, resources: null, version: '0.1.0', engineLabels: {} },
        status: { state: api.NodeState.NODE_READY, message: '', addr: this.opts.advertiseAddr.split(':')[0]!, updatedAt: now },
        managerStatus: { raftId: this.opts.raftId, addr: this.opts.advertiseAddr, leader: false, reachability: api.Reachability.REACHABILITY_REACHABLE, message: '' },
        role: ROLE.manager,
        certificate: { certPem: b.certPem, notAfter: ident.notAfter.getTime(), serial: ident.serial, role: ROLE.manager },
      } as unknown as NodeObject);
    });
  }

  // ---- state queries ----

  cluster(): ClusterObject | undefined {
    return this.store.view((r) => r.list(clustersTable)[0]);
  }

  private caCache?: { pem: string; ca: RootCA };

  /** The signing CA from the store (leader-side issuance). */
  rootCA(): RootCA {
    const c = this.cluster();
    if (c?.rootCa?.caCertPem && this.caCache?.pem === c.rootCa.caCertPem) return this.caCache.ca;
    if (!c?.rootCa) throw new CallError(grpc.status.UNAVAILABLE, 'the cluster is still starting: no CA yet');
    const ca = RootCA.fromPem(c.rootCa.caCertPem ?? '', c.rootCa.caKeyPem || undefined);
    this.caCache = { pem: c.rootCa.caCertPem ?? '', ca };
    return ca;
  }

  removedNodes(): Set<string> {
    return new Set(this.cluster()?.removedNodes ?? []);
  }

  isLeader(): boolean {
    return this.raft.isLeader();
  }

  leaderAddr(): string | undefined {
    return this.raft.leader().addr;
  }

  managers(): ManagerAddr[] {
    return this.store.view((r) => r.list(nodesTable))
      .filter((n) => n.role === ROLE.manager && n.managerStatus?.raftId)
      .map((n) => ({ nodeId: n.id, raftId: n.managerStatus!.raftId, addr: n.managerStatus!.addr }) as ManagerAddr);
  }

  /** A call that only the leader can serve: say where the leader is. */
  notLeader(): CallError {
    const md = elsewhereMetadata();
    const addr = this.leaderAddr();
    if (addr) md.set(LEADER_META, addr);
    return new CallError(grpc.status.FAILED_PRECONDITION,
      addr ? `this manager is not the leader; the leader is at ${addr}` : 'no leader is elected right now (the cluster may have lost quorum): retry shortly', md);
  }

  /** Map store/raft errors to gRPC errors the caller understands. */
  wrap(e: unknown): CallError {
    if (e instanceof CallError) return e;
    if (e instanceof RaftError) {
      if (e.code === 'NOT_LEADER') return this.notLeader();
      if (e.code === 'TIMEOUT' || e.code === 'PROPOSAL_DROPPED') return new CallError(grpc.status.UNAVAILABLE, `${e.message}`);
      return new CallError(grpc.status.INTERNAL, e.message);
    }
    if (e instanceof StoreError) {
      const code = e.code === 'CONFLICT' ? grpc.status.ABORTED : e.code === 'NOT_FOUND' ? grpc.status.NOT_FOUND
        : e.code === 'EXISTS' ? grpc.status.ALREADY_EXISTS : grpc.status.INVALID_ARGUMENT;
      return new CallError(code, e.message);
    }
    return new CallError(grpc.status.INTERNAL, e instanceof Error ? e.message : String(e));
  }

  // ---- NodeCA ----

  async issueNodeCertificate(req: { token: string; csrPem: string; hostname: string }, peerAddr: string): Promise<InstanceType<typeof api.IssueNodeCertificateResponse>> {
    if (!this.isLeader()) throw this.notLeader();
    const c = this.cluster();
    if (!c) throw new CallError(grpc.status.UNAVAILABLE, 'the cluster is still starting');
    const tokens = c.rootCa!.joinTokens!;
    try {
      parseJoinToken(req.token);
    } catch (e) {
      throw new CallError(grpc.status.INVALID_ARGUMENT, (e as Error).message);
    }
    let role: NodeRole;
    if (tokenMatches(req.token, tokens.manager ?? '')) role = 'manager';
    else if (tokenMatches(req.token, tokens.worker ?? '')) role = 'worker';
    else {
      throw new CallError(grpc.status.PERMISSION_DENIED,
        'the join token is not valid for this cluster (it may have been rotated): ask a manager for a current one with `shoal swarm join-token worker|manager`');
    }
    const nodeId = newObjectId();
    const ca = this.rootCA();
    const validityMs = Number(c.spec?.ca?.nodeCertExpiryMs) || 90 * 24 * 3600 * 1000;
    let certPem: string;
    let ident: CertIdentity;
    try {
      ({ certPem, identity: ident } = ca.issue(req.csrPem, { nodeId, role, clusterId: c.id, validityMs }));
    } catch (e) {
      throw new CallError(grpc.status.INVALID_ARGUMENT, (e as Error).message);
    }
    const now = Date.now();
    try {
      await this.store.update((tx) => {
        tx.create(nodesTable, {
          id: nodeId,
          spec: { labels: {}, desiredRole: ROLE[role], availability: api.NodeAvailability.AVAILABILITY_ACTIVE },
          description: { hostname: req.hostname, platform: null, resources: null, version: '', engineLabels: {} },
          status: { state: api.NodeState.NODE_UNKNOWN, message: 'joining', addr: peerAddr, updatedAt: now },
          managerStatus: null,
          role: ROLE[role],
          certificate: { certPem, notAfter: ident.notAfter.getTime(), serial: ident.serial, role: ROLE[role] },
        } as unknown as NodeObject);
      });
    } catch (e) {
      throw this.wrap(e);
    }
    return { nodeId, role: ROLE[role], certPem, caCertPem: ca.certPem, clusterId: c.id, managers: this.managers() } as never;
  }

  /** A node renews its certificate; the role it gets is the one the cluster wants for it now. */
  async renewNodeCertificate(id: CertIdentity, csrPem: string): Promise<{ certPem: string; role: number }> {
    if (!this.isLeader()) throw this.notLeader();
    const c = this.cluster()!;
    const node = this.store.view((r) => r.get(nodesTable, id.nodeId));
    if (!node) throw new CallError(grpc.status.NOT_FOUND, `node ${id.nodeId} is not part of the cluster`);
    const role: NodeRole = node.spec?.desiredRole === ROLE.manager ? 'manager' : 'worker';
    // Demotion completes only when raft no longer counts the node: until then it stays a manager.
    const effective: NodeRole = role === 'worker' && node.role === ROLE.manager ? 'manager' : role;
    const validityMs = Number(c.spec?.ca?.nodeCertExpiryMs) || 90 * 24 * 3600 * 1000;
    let certPem: string;
    let ident: CertIdentity;
    try {
      ({ certPem, identity: ident } = this.rootCA().issue(csrPem, { nodeId: id.nodeId, role: effective, clusterId: c.id, validityMs }));
    } catch (e) {
      throw new CallError(grpc.status.INVALID_ARGUMENT, (e as Error).message);
    }
    await this.store.update((tx) => {
      const n = tx.get(nodesTable, id.nodeId);
      if (!n) return;
      const next = plain(n) as NodeObject;
      next.certificate = { certPem, notAfter: ident.notAfter.getTime(), serial: ident.serial, role: ROLE[effective] } as never;
      next.role = ROLE[effective];
      tx.update(nodesTable, next);
    }, { retries: 5 }).catch((e) => { throw this.wrap(e); });
    return { certPem, role: ROLE[effective] };
  }

  // ---- RaftMembership ----

  /** A manager joins raft: it becomes a learner now and a voter once caught up (the reconciler promotes it). */
  async joinRaft(id: CertIdentity, addr: string): Promise<{ raftId: number; members: ManagerAddr[] }> {
    if (!this.isLeader()) throw this.notLeader();
    const node = this.store.view((r) => r.get(nodesTable, id.nodeId));
    if (!node) throw new CallError(grpc.status.NOT_FOUND, `node ${id.nodeId} is not part of the cluster`);
    let raftId = node.managerStatus?.raftId ? Number(node.managerStatus.raftId) : 0;
    const cs = this.raft.status().config;
    if (!raftId || !(cs.voters.includes(raftId) || cs.learners.includes(raftId))) {
      raftId = raftId || newRaftId();
      await this.store.update((tx) => {
        const n = tx.get(nodesTable, id.nodeId);
        if (!n) throw new StoreError('NOT_FOUND', `node ${id.nodeId} vanished`);
        const next = plain(n) as NodeObject;
        next.managerStatus = { raftId, addr, leader: false, reachability: api.Reachability.REACHABILITY_UNKNOWN, message: 'joining' } as never;
        tx.update(nodesTable, next);
      }, { retries: 5 }).catch((e) => { throw this.wrap(e); });
      await this.raft.changeMembership(ConfChangeType.AddLearner, raftId, addr).catch((e) => { throw this.wrap(e); });
    }
    return { raftId, members: this.managers() };
  }

  /**
   * Leader loop: promote caught-up learners to voters; carry out role changes
   * (demote: transfer leadership away first, then remove from raft).
   */
  private async reconcileMembership(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.reconcileOnce();
      } catch (e) {
        this.opts.logger.debug({ err: String(e) }, 'membership reconcile');
      }
      await new Promise((r) => setTimeout(r, this.opts.tickMs * 2));
    }
  }

  private async reconcileOnce(): Promise<void> {
    if (!this.isLeader()) return;
    const st = this.raft.status();
    const nodes = this.store.view((r) => r.list(nodesTable));
    for (const learner of st.config.learners) {
      const pr = st.progress.get(learner);
      const owner = nodes.find((n) => Number(n.managerStatus?.raftId) === learner);
      if (owner && owner.spec?.desiredRole !== ROLE.manager) continue;
      if (pr && pr.match >= st.commit) {
        await this.raft.changeMembership(ConfChangeType.AddVoter, learner);
        this.opts.logger.info({ raftId: learner }, 'promoted caught-up learner to voter');
        return;
      }
      if (this.abandonedJoin(learner, owner)) {
        await this.dropAbandonedJoin(learner, owner);
        return;
      }
    }
    for (const id of this.silentLearners.keys()) if (!st.config.learners.includes(id)) this.silentLearners.delete(id);
    for (const n of nodes) {
      const raftId = Number(n.managerStatus?.raftId ?? 0);
      const inRaft = raftId !== 0 && (st.config.voters.includes(raftId) || st.config.learners.includes(raftId));
      if (n.spec?.desiredRole === ROLE.worker && n.role === ROLE.manager && !inRaft) {
        // A demotion whose raft removal committed but whose store write did not happen (the
        // leader that removed it lost leadership in between): finish it, or it stays half-done.
        await this.finishDemotion(n.id);
        this.opts.logger.info({ node: n.id, raftId }, 'finished a demotion left half-done by an earlier leader');
        return;
      }
      if (n.spec?.desiredRole === ROLE.worker && inRaft) {
        if (raftId === this.opts.raftId) {
          // Demoting the leader: hand leadership to another voter first.
          const other = st.config.voters.find((v) => v !== raftId && this.peerActive(v));
          if (other !== undefined) await this.raft.transferLeadership(other, 5000).catch(() => undefined);
          return;
        }
        await this.raft.changeMembership(ConfChangeType.RemoveNode, raftId);
        await this.finishDemotion(n.id);
        return;
      }
    }
  }

  /**
   * A learner this leader has not heard from for abandonedJoinMs, whose node is not ready (or
   * gone): a manager join cut short after raft added the learner. The joining daemon starts over
   * after such a crash (it keeps nothing of a join it did not finish), so nobody will ever answer
   * for this raft id, and the leader would otherwise keep replicating to it and list the node as
   * an unreachable manager for good. A learner that answers at all, however slowly it catches up,
   * is never dropped; nor is one whose node is ready (its agent is alive: a wrong advertise
   * address, say, is for an operator to see and fix).
   */
  private abandonedJoin(learner: number, owner: NodeObject | undefined): boolean {
    if (this.peerActive(learner)) {
      this.silentLearners.delete(learner);
      return false;
    }
    const now = Date.now();
    const since = this.silentLearners.get(learner) ?? now;
    this.silentLearners.set(learner, since);
    if (owner?.status?.state === api.NodeState.NODE_READY) return false;
    return now - since >= (this.opts.abandonedJoinMs ?? DEFAULT_ABANDONED_JOIN_MS);
  }

  /**
   * Undo the join as a demotion: the node's desired role becomes worker (with the reason in its
   * status), and the demotion path below takes the learner out of raft and clears the node's
   * manager status, finishing what a leader that fails in between leaves half-done. A learner
   * that no node owns has only raft to leave.
   */
  private async dropAbandonedJoin(learner: number, owner: NodeObject | undefined): Promise<void> {
    const silentMs = Date.now() - (this.silentLearners.get(learner) ?? Date.now());
    this.silentLearners.delete(learner);
    this.opts.logger.warn({ raftId: learner, node: owner?.id, silentMs }, 'a manager join never completed: its raft learner is removed and its node made a worker');
    if (!owner) {
      await this.raft.changeMembership(ConfChangeType.RemoveNode, learner);
      return;
    }
    await this.store.update((tx) => {
      const cur = tx.get(nodesTable, owner.id);
      if (!cur || Number(cur.managerStatus?.raftId) !== learner) return;
      const next = plain(cur) as NodeObject;
      next.spec = { ...(next.spec ?? {}), desiredRole: ROLE.worker } as never;
      next.status = {
        state: api.NodeState.NODE_DOWN,
        message: `its join as a manager never completed (no answer to raft for ${Math.round(silentMs / 1000)} s): taken out of raft as a worker; \`shoal node rm\` it, or join the host again`,
        addr: cur.status?.addr ?? '', updatedAt: Date.now(),
      } as never;
      tx.update(nodesTable, next);
    }, { retries: 5 });
  }

  /** The store's half of a demotion: the node is a worker, with no manager status. */
  private async finishDemotion(nodeId: string): Promise<void> {
    await this.store.update((tx) => {
      const cur = tx.get(nodesTable, nodeId);
      if (!cur) return;
      const next = plain(cur) as NodeObject;
      next.role = ROLE.worker;
      next.managerStatus = null as never;
      tx.update(nodesTable, next);
    }, { retries: 5 });
  }

  /** After --force-new-cluster: this node is the only manager; the others become workers that are down. */
  async forgetOtherManagers(): Promise<void> {
    await this.store.update((tx) => {
      for (const n of tx.list(nodesTable)) {
        if (n.id === this.opts.nodeId || n.role !== ROLE.manager) continue;
        const next = plain(n) as NodeObject;
        next.role = ROLE.worker;
        next.spec = { ...(next.spec ?? {}), desiredRole: ROLE.worker } as never;
        next.managerStatus = null as never;
        next.status = { state: api.NodeState.NODE_DOWN, message: 'removed from raft by --force-new-cluster', addr: n.status?.addr ?? '', updatedAt: Date.now() } as never;
        tx.update(nodesTable, next);
      }
    }, { retries: 5 });
  }

  /** Is removing/demoting `raftId` safe for quorum (a majority of the remaining voters reachable)? */
  quorumSafeWithout(raftId: number): { ok: boolean; why: string } {
    const st = this.raft.status();
    const voters = st.config.voters.filter((v) => v !== raftId);
    if (!st.config.voters.includes(raftId)) return { ok: true, why: '' };
    if (voters.length === 0) return { ok: false, why: 'it is the last manager' };
    const reachable = voters.filter((v) => this.peerActive(v)).length;
    const need = Math.floor(voters.length / 2) + 1;
    if (reachable < need) {
      return { ok: false, why: `only ${reachable} of the ${voters.length} remaining managers are reachable and ${need} are needed for a quorum` };
    }
    return { ok: true, why: '' };
  }

  /**
   * Has raft heard from this peer within an election timeout? Raft's own
   * recentActive flags are no substitute: CheckQuorum clears them every
   * election timeout, so a healthy peer reads inactive until its next
   * response arrives, and a decision taken in that moment would be wrong.
   */
  peerActive(raftId: number): boolean {
    if (raftId === this.opts.raftId) return true;
    const t = this.lastHeard.get(raftId);
    if (t === undefined || Date.now() - t >= this.opts.tickMs * this.opts.electionTick) return false;
    // A new leader counts only what it heard since it won. A peer cut off just before the election
    // (the old leader, most often) would otherwise read reachable for up to an election timeout;
    // a healthy one answers the new leader's first appends within milliseconds.
    return !(this.isLeader() && t < this.leaderSince);
  }

  reachability(raftId: number): number {
    if (raftId === this.opts.raftId) return api.Reachability.REACHABILITY_REACHABLE;
    const st = this.raft.status();
    if (st.state !== StateType.Leader) return api.Reachability.REACHABILITY_UNKNOWN;
    const pr = st.progress.get(raftId);
    if (!pr) return api.Reachability.REACHABILITY_UNKNOWN;
    return this.dispatcher.raftReachable(raftId) ? api.Reachability.REACHABILITY_REACHABLE : api.Reachability.REACHABILITY_UNREACHABLE;
  }

  raftLeaderId(): number {
    const l = this.raft.leader().id;
    return l === NONE ? 0 : l;
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  get raftId(): number {
    return this.opts.raftId;
  }

  get logger(): NodeLogger {
    return this.opts.logger;
  }

  get tickMs(): number {
    return this.opts.tickMs;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.gate.stop?.();
    this.raft.stop();
    await this.transport.stop();
  }
}
