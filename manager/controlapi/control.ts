// The control API: what `shoal node ...` and `shoal swarm ...` call. Every
// request is validated here, at the edge: a bad one is refused with a message
// naming the field and the rule, and nothing is written.
import * as grpc from '@grpc/grpc-js';
import { formatJoinToken, newTokenSecret } from '../ca/index.js';
import { ConfChangeType } from '../raft/core/index.js';
import type { shoal } from '../../proto/gen/api.js';
import { api, plain, type Cluster, type Node } from '../../proto/services.js';
import { CallError } from '../cluster/auth.js';
import { ROLE, type Manager } from '../cluster/manager.js';
import { clustersTable, nodesTable, type ClusterObject, type NodeObject } from '../cluster/tables.js';
import { ServiceApi } from './services.js';

const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,252})?$/;

function invalid(msg: string): CallError {
  return new CallError(grpc.status.INVALID_ARGUMENT, msg);
}

/** Node as the API shows it: live leader/reachability filled in, no secrets. */
function present(m: Manager, n: NodeObject): Node {
  const out = plain(n) as NodeObject;
  if (out.managerStatus && out.managerStatus.raftId) {
    const raftId = Number(out.managerStatus.raftId);
    out.managerStatus.leader = raftId === m.raftLeaderId();
    out.managerStatus.reachability = m.reachability(raftId);
  }
  return out;
}

export function resolveNode(m: Manager, ref: string): NodeObject {
  if (!ref) throw invalid('a node ID or hostname is required');
  const nodes = m.store.view((r) => r.list(nodesTable));
  const exact = nodes.find((n) => n.id === ref);
  if (exact) return exact;
  const byPrefix = nodes.filter((n) => n.id.startsWith(ref));
  const byName = nodes.filter((n) => n.description?.hostname === ref);
  const matches = byName.length > 0 ? byName : byPrefix;
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) {
    throw invalid(`node "${ref}" is ambiguous: it matches ${matches.map((n) => n.id.slice(0, 12)).join(', ')}; use a longer ID`);
  }
  throw new CallError(grpc.status.NOT_FOUND, `no such node: ${ref}`);
}

export class ControlApi {
  readonly services: ServiceApi;

  constructor(private readonly m: Manager) {
    this.services = new ServiceApi(m);
  }

  private leaderOnly(): void {
    if (!this.m.isLeader()) throw this.m.notLeader();
  }

  async listNodes(): Promise<{ nodes: Node[] }> {
    this.leaderOnly();
    const nodes = await this.m.store.readCurrent((r) => r.list(nodesTable));
    return { nodes: nodes.map((n) => present(this.m, n)) };
  }

  async getNode(ref: string): Promise<Node> {
    this.leaderOnly();
    await this.m.store.readCurrent(() => undefined);
    return present(this.m, resolveNode(this.m, ref));
  }

  async updateNode(req: { nodeId: string; version: number; spec: shoal.api.INodeSpec | null | undefined }): Promise<Node> {
    this.leaderOnly();
    const spec = req.spec;
    if (!spec) throw invalid('spec is required');
    if (![0, 1, 2].includes(spec.availability ?? 0)) throw invalid(`spec.availability ${spec.availability} is not one of active, pause, drain`);
    if (![0, 1].includes(spec.desiredRole ?? 0)) throw invalid(`spec.role ${spec.desiredRole} is not one of worker, manager`);
    for (const k of Object.keys(spec.labels ?? {})) {
      if (!LABEL_KEY.test(k)) throw invalid(`label key "${k}" is not valid: use letters, digits, '.', '_', '-', '/' (at most 253 characters, starting with a letter or digit)`);
    }
    const node = resolveNode(this.m, req.nodeId);
    const demoting = node.spec?.desiredRole === ROLE.manager && spec.desiredRole === ROLE.worker;
    if (demoting) {
      const managers = this.m.store.view((r) => r.list(nodesTable)).filter((n) => n.spec?.desiredRole === ROLE.manager);
      if (managers.length <= 1) {
        throw new CallError(grpc.status.FAILED_PRECONDITION, `cannot demote ${node.description?.hostname || node.id}: it is the last manager of the cluster, and a cluster needs at least one`);
      }
      const raftId = Number(node.managerStatus?.raftId ?? 0);
      const q = this.m.quorumSafeWithout(raftId);
      if (!q.ok) {
        throw new CallError(grpc.status.FAILED_PRECONDITION, `cannot demote ${node.description?.hostname || node.id}: the cluster would lose quorum (${q.why}). Bring the unreachable managers back first, or recover with \`shoal swarm init --force-new-cluster\` on a surviving manager`);
      }
    }
    try {
      await this.m.store.update((tx) => {
        const cur = tx.get(nodesTable, node.id);
        if (!cur) throw new CallError(grpc.status.NOT_FOUND, `no such node: ${req.nodeId}`);
        if (req.version && Number(cur.meta.version) !== Number(req.version)) {
          throw new CallError(grpc.status.ABORTED, `node ${node.id} changed since version ${req.version} (now ${cur.meta.version}): read it again and retry`);
        }
        const next = plain(cur) as NodeObject;
        next.spec = { labels: { ...(spec.labels ?? {}) }, desiredRole: spec.desiredRole ?? 0, availability: spec.availability ?? 0 } as never;
        tx.update(nodesTable, next);
      });
    } catch (e) {
      throw this.m.wrap(e);
    }
    return present(this.m, this.m.store.view((r) => r.get(nodesTable, node.id))!);
  }

  async removeNode(req: { nodeId: string; force: boolean }): Promise<Record<string, never>> {
    this.leaderOnly();
    const node = resolveNode(this.m, req.nodeId);
    const name = node.description?.hostname || node.id;
    const raftId = Number(node.managerStatus?.raftId ?? 0);
    const st = this.m.raft.status();
    if (raftId && (st.config.voters.includes(raftId) || st.config.learners.includes(raftId))) {
      if (!req.force) {
        throw new CallError(grpc.status.FAILED_PRECONDITION, `node ${name} is a cluster manager and a member of raft: demote it first (\`shoal node demote ${name}\`), or use --force`);
      }
      if (raftId === this.m.raftId) {
        throw new CallError(grpc.status.FAILED_PRECONDITION, `node ${name} is the leader this request reached: demote it first so leadership moves, then remove it`);
      }
      const q = this.m.quorumSafeWithout(raftId);
      if (!q.ok) {
        throw new CallError(grpc.status.FAILED_PRECONDITION, `cannot remove manager ${name}: the cluster would lose quorum (${q.why}). Bring the unreachable managers back first, or recover with \`shoal swarm init --force-new-cluster\` on a surviving manager`);
      }
    }
    if (!req.force && node.status?.state === api.NodeState.NODE_READY) {
      throw new CallError(grpc.status.FAILED_PRECONDITION, `node ${name} is not down and can't be removed: stop it or make it leave first (\`shoal swarm leave\` on it), or use --force`);
    }
    if (raftId && (st.config.voters.includes(raftId) || st.config.learners.includes(raftId))) {
      await this.m.raft.changeMembership(ConfChangeType.RemoveNode, raftId).catch((e) => { throw this.m.wrap(e); });
    }
    try {
      await this.m.store.update((tx) => {
        const cur = tx.get(nodesTable, node.id);
        if (cur) tx.delete(nodesTable, cur);
        const c = tx.list(clustersTable)[0];
        if (c) {
          const next = plain(c) as ClusterObject;
          next.removedNodes = [...(next.removedNodes ?? []), node.id];
          tx.update(clustersTable, next);
        }
      }, { retries: 5 });
    } catch (e) {
      throw this.m.wrap(e);
    }
    return {};
  }

  async getCluster(): Promise<Cluster> {
    this.leaderOnly();
    const c = await this.m.store.readCurrent((r) => r.list(clustersTable)[0]);
    if (!c) throw new CallError(grpc.status.UNAVAILABLE, 'the cluster is still starting');
    const out = plain(c) as ClusterObject;
    // The CA key never leaves the managers' store.
    if (out.rootCa) out.rootCa.caKeyPem = '';
    return out;
  }

  async updateCluster(req: { version: number; spec: shoal.api.IClusterSpec | null | undefined; rotateWorkerToken: boolean; rotateManagerToken: boolean }): Promise<Cluster> {
    this.leaderOnly();
    const spec = req.spec;
    if (spec) {
      const hb = Number(spec.dispatcher?.heartbeatPeriodMs ?? 0);
      if (hb && (hb < 100 || hb > 3_600_000)) throw invalid(`dispatcher.heartbeat_period ${hb} ms is out of range: use 100 ms to 1 h`);
      const exp = Number(spec.ca?.nodeCertExpiryMs ?? 0);
      if (exp && exp < 30_000) throw invalid(`ca.node_cert_expiry ${exp} ms is too short: use at least 30 s`);
      const snap = Number(spec.raft?.snapshotInterval ?? 0);
      if (snap && snap < 10) throw invalid(`raft.snapshot_interval ${snap} is too small: use at least 10 entries`);
      const limit = spec.orchestration?.taskHistoryLimit;
      if (limit !== undefined && limit !== null && (Number(limit) < 0 || Number(limit) > 1000)) {
        throw invalid(`orchestration.task_history_limit ${limit} is out of range: use 0 to 1000`);
      }
    }
    try {
      await this.m.store.update((tx) => {
        const c = tx.list(clustersTable)[0];
        if (!c) throw new CallError(grpc.status.UNAVAILABLE, 'the cluster is still starting');
        if (req.version && Number(c.meta.version) !== Number(req.version)) {
          throw new CallError(grpc.status.ABORTED, `the cluster changed since version ${req.version} (now ${c.meta.version}): read it again and retry`);
        }
        const next = plain(c) as ClusterObject;
        if (spec) next.spec = plain(spec) as never;
        const tokens = next.rootCa!.joinTokens!;
        if (req.rotateWorkerToken) tokens.worker = formatJoinToken(next.rootCa!.digest!, newTokenSecret());
        if (req.rotateManagerToken) tokens.manager = formatJoinToken(next.rootCa!.digest!, newTokenSecret());
        tx.update(clustersTable, next);
      });
    } catch (e) {
      throw this.m.wrap(e);
    }
    return this.getCluster();
  }
}
