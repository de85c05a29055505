// Dispatcher (leader only): nodes heartbeat here; a node whose heartbeats stop
// is marked down with the time and reason. Heartbeats live in memory: only
// state changes are written to the store, so a healthy cluster costs raft
// nothing per heartbeat.
import * as grpc from '@grpc/grpc-js';
import { api, plain, type NodeDescription } from '../../proto/services.js';
import type { shoal } from '../../proto/gen/api.js';
import type { CertIdentity } from '../ca/index.js';
import { CallError } from './auth.js';
import { nodesTable, type NodeObject } from './tables.js';
import type { Manager } from './manager.js';

export const DEFAULT_HEARTBEAT_MS = 1000;
/** Missed periods before a node is declared down. */
const GRACE_PERIODS = 3;
/** Longest runtime error a node's status keeps. */
const MAX_REASON_CHARS = 1024;

export class Dispatcher {
  private readonly lastSeen = new Map<string, number>();
  /** When each node's last heartbeat of its own (not relayed) came: a relayed one within 1.5 periods of it is the leader only being slow. */
  private readonly lastDirect = new Map<string, number>();
  /** The manager each relayed node's status note names, and when it last relayed a beat of it. */
  private readonly namedRelay = new Map<string, { by: string; at: number }>();
  private leaderSince = 0;

  constructor(private readonly m: Manager) {}

  periodMs(): number {
    return Number(this.m.cluster()?.spec?.dispatcher?.heartbeatPeriodMs) || DEFAULT_HEARTBEAT_MS;
  }

  /**
   * A node's heartbeat. With runtimeError (its container runtime cannot be
   * reached) the node is down for tasks, with that reason, though it answers:
   * as in Swarm, where a node whose engine is gone is down.
   */
  async heartbeat(id: CertIdentity, desc: NodeDescription | null | undefined, peerAddr: string, runtimeError = '', relayedBy = ''): Promise<InstanceType<typeof api.HeartbeatResponse>> {
    if (!this.m.isLeader()) throw this.m.notLeader();
    // A reason, not a payload: it lands in the node's status in the replicated store.
    runtimeError = runtimeError.slice(0, MAX_REASON_CHARS);
    const node = this.m.store.view((r) => r.get(nodesTable, id.nodeId));
    if (!node) throw new CallError(grpc.status.NOT_FOUND, `node ${id.nodeId} is not part of the cluster (was it removed?)`);
    const now = Date.now();
    this.lastSeen.set(id.nodeId, now);
    if (!relayedBy) this.lastDirect.set(id.nodeId, now);
    const message = runtimeError || this.relayNote(id.nodeId, relayedBy, now);
    // Agents send their description when it may be news (first beat of a stream, or changed).
    const described = !!desc && descriptionChanged(desc, node.description);
    const state = runtimeError ? api.NodeState.NODE_DOWN : api.NodeState.NODE_READY;
    if (node.status?.state !== state || (node.status?.message ?? '') !== message || described || node.status?.addr !== peerAddr) {
      if (runtimeError && node.status?.state !== state) this.m.logger.info({ node: id.nodeId, reason: runtimeError }, 'node marked down: container runtime unavailable');
      await this.m.store.update((tx) => {
        const cur = tx.get(nodesTable, id.nodeId);
        if (!cur) return;
        const next = plain(cur) as NodeObject;
        if (described) next.description = plain(desc) as never;
        next.status = { state, message, addr: peerAddr, updatedAt: now } as never;
        tx.update(nodesTable, next);
      }, { retries: 5 }).catch((e) => { throw this.m.wrap(e); });
    }
    return {
      periodMs: this.periodMs(),
      managers: this.m.managers(),
      desiredRole: node.spec?.desiredRole ?? api.NodeRole.ROLE_WORKER,
      leaderAddr: this.m.leaderAddr() ?? '',
    } as never;
  }

  /** Nodes this dispatcher keeps heartbeat state of (for tests: removed nodes must not stay). */
  tracked(): string[] {
    return [...new Set([...this.lastSeen.keys(), ...this.lastDirect.keys(), ...this.namedRelay.keys()])].sort();
  }

  /** Drops what is kept of nodes no longer in the store (removed from the cluster). */
  private forgetRemoved(nodes: readonly NodeObject[]): void {
    const live = new Set(nodes.map((n) => n.id));
    for (const map of [this.lastSeen, this.lastDirect, this.namedRelay]) {
      for (const id of map.keys()) if (!live.has(id)) map.delete(id);
    }
  }

  /**
   * A raft peer is reachable when raft heard from it within an election
   * timeout, and since this manager won its election (Manager.peerActive):
   * the same test the quorum checks of demote and rm use, so a
   * manager `node ls` shows as Reachable is one they count. (Agent heartbeats
   * say nothing about raft: a manager that just restarted heartbeats before
   * its raft streams are up, and a dead one was seen up to 3 periods ago.)
   */
  raftReachable(raftId: number): boolean {
    return this.m.raft.status().progress.has(raftId) && this.m.peerActive(raftId);
  }

  /**
   * What the node's status says while its heartbeats come only through
   * another manager (the link between it and the leader is down; see
   * cli/shoald/relay.ts): an operator should know. '' once they come directly.
   */
  private relayNote(nodeId: string, relayedBy: string, now: number): string {
    const period = this.periodMs();
    if (!relayedBy || now - (this.lastDirect.get(nodeId) ?? 0) <= period * 1.5) return '';
    // While the agent hedges through several managers, the note keeps naming one of them (each
    // change of the note is a store write): the one named stays while it relays at all.
    const named = this.namedRelay.get(nodeId);
    if (!named || named.by === relayedBy || now - named.at > period * 1.5) this.namedRelay.set(nodeId, { by: relayedBy, at: now });
    const by = this.namedRelay.get(nodeId)!.by;
    const via = this.m.store.view((r) => r.get(nodesTable, by))?.description?.hostname || by;
    return `reached through manager ${via}: no direct connection to the leader`;
  }

  /** Leader loop: mark nodes whose heartbeats stopped as down. */
  async run(signal: AbortSignal): Promise<void> {
    this.leaderSince = Date.now();
    // A new leader has seen nobody yet: everyone gets a full grace period.
    this.lastSeen.clear();
    while (!signal.aborted) {
      const period = this.periodMs();
      const wait = Math.max(50, period / 4);
      const due = Date.now() + wait;
      const cpu0 = process.cpuUsage();
      await new Promise((r) => setTimeout(r, wait));
      if (signal.aborted) break;
      const now = Date.now();
      const late = now - due;
      if (late > period / 2) {
        // This process did not run for a while (its event loop blocked: a slow fsync on a
        // saturated disk, a long GC). The heartbeats that came meanwhile are still queued behind
        // this timer, so judging now would mark live nodes down: the time we could not watch
        // counts against nobody, and the next round judges after the queue is read.
        for (const [id, t] of this.lastSeen) this.lastSeen.set(id, t + late);
        this.leaderSince += late;
        // cpuMs near waitMs + lateMs: this process was busy; far below: it was not given the CPU (or sat in a syscall).
        const used = process.cpuUsage(cpu0);
        this.m.logger.info({ lateMs: late, waitMs: wait, cpuMs: Math.round((used.user + used.system) / 1000) }, 'down detection paused: this manager did not run on time');
        continue;
      }
      const bound = period * GRACE_PERIODS;
      const nodes = this.m.store.view((r) => r.list(nodesTable));
      this.forgetRemoved(nodes);
      const stale = nodes.filter((n) => {
        if (n.status?.state === api.NodeState.NODE_DOWN) return false;
        const seen = this.lastSeen.get(n.id) ?? this.leaderSince;
        return now - seen > bound;
      });
      for (const n of stale) {
        const seen = this.lastSeen.get(n.id);
        await this.m.store.update((tx) => {
          const cur = tx.get(nodesTable, n.id);
          if (!cur) return;
          const next = plain(cur) as NodeObject;
          next.status = {
            state: api.NodeState.NODE_DOWN,
            message: `heartbeat failure: no heartbeat for ${Math.round((now - (seen ?? this.leaderSince)) / 100) / 10} s (period ${period} ms)`,
            addr: cur.status?.addr ?? '', updatedAt: now,
          } as never;
          tx.update(nodesTable, next);
        }, { retries: 3 }).catch((e) => this.m.logger.warn({ err: String(e), node: n.id }, 'could not mark node down'));
        this.m.logger.info({ node: n.id, silentMs: now - (seen ?? this.leaderSince), lateMs: late }, 'node marked down: heartbeat failure');
      }
    }
  }
}

/** A description as decoded or as stored (fields may be absent). */
type DescriptionFields = shoal.api.NodeDescription.$Properties;

/**
 * Whether a reported description differs from the stored one in anything the
 * cluster shows or schedules by: hostname, platform, resources, version
 * (`node ls` ENGINE VERSION after an upgrade), engine labels.
 */
export function descriptionChanged(reported: DescriptionFields, stored: DescriptionFields | null | undefined): boolean {
  if (!stored) return true;
  const labels = (d: DescriptionFields): string => JSON.stringify(Object.entries(d.engineLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return (
    (reported.hostname ?? '') !== (stored.hostname ?? '') ||
    (reported.platform?.os ?? '') !== (stored.platform?.os ?? '') ||
    (reported.platform?.architecture ?? '') !== (stored.platform?.architecture ?? '') ||
    Number(reported.resources?.nanoCpus ?? 0) !== Number(stored.resources?.nanoCpus ?? 0) ||
    Number(reported.resources?.memoryBytes ?? 0) !== Number(stored.resources?.memoryBytes ?? 0) ||
    (reported.version ?? '') !== (stored.version ?? '') ||
    labels(reported) !== labels(stored)
  );
}
