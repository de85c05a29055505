// Exact times of container starts, exits and deletes, from each host's
// containerd event stream: containerd stamps an event as it publishes it, so a
// step can end at the event that completed it rather than at the poll round
// that noticed (rounds are ~100 ms apart, a third of a 0.3 s step). Which
// containers count is still decided by listing them (observe.ts): the events
// only say when.
import type * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { containerd } from '../../../proto/gen/containerd.js';
import { M } from '../../../worker/runtime/containerd/client.js';
import type { ServicesCluster } from '../../system/services/harness.js';

const ev = containerd.services.events.v1;
type Envelope = containerd.services.events.v1.Envelope;

const TOPICS = { start: '/tasks/start', exit: '/tasks/exit', taskDelete: '/tasks/delete', delete: '/containers/delete' } as const;
const MARKER_TOPIC = '/shoal-bench/subscribed';

export type EventKind = keyof typeof TOPICS;

/** Epoch ms of the envelope's stamp (containerd's clock: this machine's). */
function stampOf(env: Envelope): number {
  const t = env.timestamp;
  return t ? Number(t.seconds ?? 0) * 1000 + Number(t.nanos ?? 0) / 1e6 : Date.now();
}

/** What a step's timing needs of the events (ContainerEvents; a table of them in tests). */
export interface EventTimes {
  latest(kind: EventKind, ids: Iterable<string>, sinceMs: number): { ms?: number; missing: string[] };
  /** Per host, ms after `sinceMs` of its latest `kind` event among `ids` (hosts without one are left out). */
  latestPerHost?(kind: EventKind, ids: Iterable<string>, sinceMs: number): Record<string, number>;
  /** Ms after `sinceMs` of each of `ids`' latest `kind` event since then, sorted (ones without are left out). */
  times?(kind: EventKind, ids: Iterable<string>, sinceMs: number): number[];
  /** Per container of `ids` with both events since `sinceMs`: ms from its `from` event to its `to` event, sorted. */
  gaps?(from: EventKind, to: EventKind, ids: Iterable<string>, sinceMs: number): number[];
}

export class ContainerEvents implements EventTimes {
  /** Per kind: container id -> epoch ms of its latest such event. */
  private readonly seen: Record<EventKind, Map<string, number>> = { start: new Map(), exit: new Map(), taskDelete: new Map(), delete: new Map() };
  /** Container id -> the host whose containerd published its events. */
  private readonly hostOf = new Map<string, string>();
  private readonly streams: grpc.ClientReadableStream<Envelope>[] = [];
  private broken = '';

  constructor(private readonly c: ServicesCluster, private readonly hosts: string[]) {}

  /** Subscribe on every host; resolves once each stream has carried a marker of ours (so nothing later is missed). */
  async open(timeoutMs = 10_000): Promise<void> {
    await Promise.all(this.hosts.map(async (h) => {
      const client = this.c.runtime(h).client;
      const ns = client.namespace;
      const nonce = randomUUID();
      let confirm!: () => void;
      const confirmed = new Promise<void>((r) => (confirm = r));
      const s = client.stream(M.eventsSubscribe, {
        filters: [...Object.values(TOPICS), MARKER_TOPIC].map((t) => `topic=="${t}",namespace=="${ns}"`),
      });
      this.streams.push(s);
      s.on('data', (env: Envelope) => {
        if (env.topic === MARKER_TOPIC) {
          if (Buffer.from(env.event?.value ?? []).toString() === nonce) confirm();
          return;
        }
        const id = idOf(env);
        const kind = (Object.keys(TOPICS) as EventKind[]).find((k) => TOPICS[k] === env.topic);
        if (id && kind) this.record(kind, id, stampOf(env), h);
      });
      s.on('error', (e: grpc.ServiceError) => {
        if (e.code !== 1 /* CANCELLED: closed by us */) this.broken ||= `${h}: ${e.details || e.message}`;
      });
      const deadline = Date.now() + timeoutMs;
      let done = false;
      void confirmed.then(() => (done = true));
      while (!done) {
        if (Date.now() > deadline) throw new Error(`containerd events on ${h}: our marker did not come back within ${timeoutMs} ms`);
        await client.call(M.eventsPublish, { topic: MARKER_TOPIC, event: { typeUrl: 'shoal.bench.Subscribed', value: Buffer.from(nonce) } }, { timeoutMs: 5_000 });
        await Promise.race([confirmed, new Promise((r) => setTimeout(r, 100))]);
      }
    }));
  }

  /** A `kind` event of container `id`, stamped `atMs` (epoch): the latest of a kind per container counts. */
  record(kind: EventKind, id: string, atMs: number, host?: string): void {
    this.seen[kind].set(id, atMs);
    if (host) this.hostOf.set(id, host);
  }

  latestPerHost(kind: EventKind, ids: Iterable<string>, sinceMs: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const id of ids) {
      const t = this.seen[kind].get(id);
      const h = this.hostOf.get(id);
      if (t === undefined || t < sinceMs || !h) continue;
      out[h] = Math.max(out[h] ?? -Infinity, t - sinceMs);
    }
    return out;
  }

  times(kind: EventKind, ids: Iterable<string>, sinceMs: number): number[] {
    const out: number[] = [];
    for (const id of ids) {
      const t = this.seen[kind].get(id);
      if (t !== undefined && t >= sinceMs) out.push(t - sinceMs);
    }
    return out.sort((a, b) => a - b);
  }

  gaps(from: EventKind, to: EventKind, ids: Iterable<string>, sinceMs: number): number[] {
    const out: number[] = [];
    for (const id of ids) {
      const a = this.seen[from].get(id);
      const b = this.seen[to].get(id);
      if (a !== undefined && b !== undefined && a >= sinceMs && b >= a) out.push(b - a);
    }
    return out.sort((x, y) => x - y);
  }

  /**
   * The latest `kind` event at or after `sinceMs` (epoch) among `ids`, in ms after `sinceMs`;
   * undefined (with the ids that had none) when any of them had none since then.
   */
  latest(kind: EventKind, ids: Iterable<string>, sinceMs: number): { ms?: number; missing: string[] } {
    if (this.broken) return { missing: [`stream broken: ${this.broken}`] };
    let last = -Infinity;
    const missing: string[] = [];
    for (const id of ids) {
      const t = this.seen[kind].get(id);
      if (t === undefined || t < sinceMs) missing.push(id);
      else last = Math.max(last, t);
    }
    return missing.length || last === -Infinity ? { missing } : { ms: last - sinceMs, missing };
  }

  close(): void {
    for (const s of this.streams) s.cancel();
    this.streams.length = 0;
  }
}

function idOf(env: Envelope): string | undefined {
  const v = env.event?.value;
  if (!v) return undefined;
  switch (env.topic) {
    case TOPICS.start:
      return ev.TaskStart.decode(v).containerId || undefined;
    case TOPICS.exit:
      return ev.TaskExit.decode(v).containerId || undefined;
    case TOPICS.taskDelete:
      return ev.TaskDelete.decode(v).containerId || undefined;
    case TOPICS.delete:
      return ev.ContainerDelete.decode(v).id || undefined;
    default:
      return undefined;
  }
}
