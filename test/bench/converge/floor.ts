// The runtime floor: the containers a step of the converge bench makes shoal
// run, made directly through each host's containerd (ContainerdRuntime, the
// adapter shoald's agent uses), every host in parallel, and on each host all
// of its containers at once, as shoald's agent does (worker/agent/tasks.ts:
// one driver per task, no limit on how many run together).
//
// The container spec is the one the agent would build for
// `service create --init IMAGE sleep 3600` (toContainerSpec of such a task:
// same image, args, init, labels, hostname, log file through the same logger),
// minus the shoal.task.id label, so that no shoald ever adopts or removes these.
// Removal is the agent's removal: stop (SIGTERM, grace) then remove.
import path from 'node:path';
import { LABEL_TASK_ID, toContainerSpec } from '../../../worker/agent/containerspec.js';
import type { Task } from '../../../proto/services.js';
import type { ServicesCluster } from '../../system/services/harness.js';
import type { ContainerEvents } from './events.js';
import { byService, pollContainers, type PollResult } from './observe.js';

export const FLOOR_SERVICE = 'floor';

export interface FloorStep extends PollResult {
  /** Until every create+start (or stop+remove) call returned. */
  apiMs: number;
  /** remove(): until no more than the remaining containers were running (the rest stopped, not yet deleted). */
  stoppedMs?: number;
}

export class Floor {
  private seq = 0;
  /** Container ids per host, oldest first. */
  private readonly ids = new Map<string, string[]>();

  constructor(private readonly c: ServicesCluster, private readonly tag: string, private readonly events?: ContainerEvents) {
    for (const h of c.hosts) this.ids.set(h, []);
  }

  private spec(host: string, id: string, slot: number) {
    const task = {
      id, serviceId: FLOOR_SERVICE, serviceName: FLOOR_SERVICE, slot,
      spec: { container: { image: this.c.image, args: ['sleep', '3600'], init: true } },
    } as unknown as Task;
    const dir = path.join(this.c.lab.hostState(host).hostDir, 'floor');
    const { spec } = toContainerSpec(task, { nodeId: `floor-${host}`, logDir: path.join(dir, 'logs'), volumeDir: path.join(dir, 'volumes') });
    delete spec.labels![LABEL_TASK_ID];
    return spec;
  }

  /** perHost more containers on every host, created and started; timed until containerd lists them all running. */
  async add(perHost: number, timeoutMs: number): Promise<FloorStep> {
    const total = this.count() + perHost * this.c.hosts.length;
    const before = this.idSet();
    const sinceWall = Date.now();
    const t0 = performance.now();
    let apiMs = 0;
    const api = Promise.all(this.c.hosts.map((h) => {
      const rt = this.c.runtime(h);
      const list = this.ids.get(h)!;
      return Promise.all(Array.from({ length: perHost }, async () => {
        const slot = ++this.seq;
        const id = `fl${this.tag}n${slot}`;
        list.push(id);
        await rt.create(this.spec(h, id, slot));
        await rt.start(id);
      }));
    })).then(() => {
      apiMs = performance.now() - t0;
    });
    const polled = await pollWhile(api, (signal) =>
      pollContainers(this.c, this.c.hosts, byService(FLOOR_SERVICE), (n) => n.running === total, {
        t0, timeoutMs, what: `${total} floor containers running`, signal,
        exact: this.events && { events: this.events, kind: 'start', before, sinceWall },
      }));
    return { ...polled, apiMs };
  }

  /** Stop and remove perHost containers on every host (the newest); timed until containerd no longer lists them. */
  async remove(perHost: number, timeoutMs: number): Promise<FloorStep> {
    const total = this.count() - perHost * this.c.hosts.length;
    const before = this.idSet();
    const sinceWall = Date.now();
    const t0 = performance.now();
    let apiMs = 0;
    let stoppedMs: number | undefined;
    const api = Promise.all(this.c.hosts.map((h) => {
      const rt = this.c.runtime(h);
      const list = this.ids.get(h)!;
      const gone = list.splice(list.length - perHost, perHost);
      return Promise.all(gone.map(async (id) => {
        await rt.stop(id).catch(() => undefined);
        await rt.remove(id);
      }));
    })).then(() => {
      apiMs = performance.now() - t0;
    });
    const polled = await pollWhile(api, (signal) =>
      pollContainers(this.c, this.c.hosts, byService(FLOOR_SERVICE), (n) => n.all === total, {
        t0, timeoutMs, what: `floor containers down to ${total}`, signal,
        onRound: (n, ms) => {
          if (stoppedMs === undefined && n.running <= total) stoppedMs = ms;
        },
        exact: this.events && { events: this.events, kind: 'delete', before, sinceWall },
      }));
    return { ...polled, apiMs, stoppedMs: polled.exact ? polled.exitedMs : stoppedMs };
  }

  /** Remove every floor container left (untimed). */
  async clear(): Promise<void> {
    await Promise.all(this.c.hosts.map(async (h) => {
      const rt = this.c.runtime(h);
      const list = this.ids.get(h)!.splice(0);
      await Promise.all(list.map(async (id) => {
        await rt.stop(id, { signal: 'SIGKILL', graceMs: 0 }).catch(() => undefined);
        await rt.remove(id);
      }));
    }));
  }

  private idSet(): Set<string> {
    return new Set([...this.ids.values()].flat());
  }

  count(): number {
    let n = 0;
    for (const l of this.ids.values()) n += l.length;
    return n;
  }
}

/** Poll while the calls run: a failed call ends the wait with its error; a poll that ends first waits for the calls. */
async function pollWhile<T>(api: Promise<void>, poll: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const p = poll(ac.signal);
  p.catch(() => undefined);
  try {
    const v = await Promise.race([p, api.then(() => p)]);
    await api;
    return v;
  } finally {
    ac.abort();
  }
}
