// What the services system tests share: shoal's task list as JSON, a
// service's containers as each host's runtime reports them (not shoal), waits
// on those, and the restart-policy scenario both runtimes must pass.
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { waitFor, type ServicesCluster } from './harness.js';

export interface TaskJson {
  ID: string;
  Name: string;
  NodeID?: string;
  ServiceID: string;
  Slot?: number;
  DesiredState: string;
  Status: { State: string; Message?: string; Err?: string; ContainerStatus?: { ExitCode: number } };
}

/** Per host: a service's running containers and all of them. */
export type PerHost = Record<string, { running: number; all: number }>;

export const runningTotal = (per: PerHost): number => Object.values(per).reduce((n, x) => n + x.running, 0);
export const allTotal = (per: PerHost): number => Object.values(per).reduce((n, x) => n + x.all, 0);

export class Scenario {
  constructor(private readonly c: ServicesCluster) {}

  async json<T>(host: string, ...args: string[]): Promise<T> {
    return JSON.parse(await this.c.ok(host, ...args)) as T;
  }

  tasks(svc: string, host = 'host1'): Promise<TaskJson[]> {
    return this.json<TaskJson[]>(host, 'service', 'ps', svc, '--format', 'json', '--no-trunc');
  }

  /** node ID -> hostname. */
  async nodeNames(): Promise<Record<string, string>> {
    return Object.fromEntries((await this.c.nodes('host1')).map((n) => [n.ID, n.Description.Hostname]));
  }

  /** A service's containers on every host (or these), straight from each host's runtime. */
  async containersOf(name: string, hosts = this.c.hosts): Promise<PerHost> {
    const all = await Promise.all(hosts.map((h) => this.c.containersOn(h)));
    return Object.fromEntries(hosts.map((h, i) => {
      const mine = all[i]!.filter((x) => x.labels['shoal.service.name'] === name);
      return [h, { running: mine.filter((x) => x.state === 'running').length, all: mine.length }];
    }));
  }

  /**
   * A service's running containers on every host, from the runtimes: container id -> the value of
   * env variable `key` in its process's environment (read in /proc, not from any spec).
   */
  async envOf(name: string, key: string): Promise<Record<string, string>> {
    const all = await this.c.allContainers();
    const out: Record<string, string> = {};
    for (const cs of Object.values(all)) {
      for (const x of cs) {
        if (x.labels['shoal.service.name'] !== name || x.state !== 'running') continue;
        const env = readFileSync(`/proc/${x.pid}/environ`, 'utf8').split('\0');
        out[x.id] = env.find((e) => e.startsWith(`${key}=`))?.slice(key.length + 1) ?? '';
      }
    }
    return out;
  }

  /** Until exactly `count` of a service's containers run, each with env `key` = `value` (as envOf reads it); their envOf. */
  waitEnv(name: string, key: string, count: number, value: string, timeoutMs = 30_000): Promise<Record<string, string>> {
    return waitFor(`${count} ${name} containers running with ${key}=${JSON.stringify(value)}`, async () => {
      const m = await this.envOf(name, key);
      return Object.keys(m).length === count && Object.values(m).every((v) => v === value) ? m : undefined;
    }, timeoutMs, 300);
  }

  /**
   * The leader every manager names. Right after an election a deposed leader may still name
   * itself for up to an election timeout (until it notices it lost its quorum): a step that picks
   * "the leader" from one manager's answer then would pick the wrong one.
   */
  async agreedLeader(timeoutMs = 30_000): Promise<string> {
    let seen: (string | undefined)[] = [];
    try {
      return await waitFor('every manager to name the same leader', async () => {
        seen = await Promise.all(this.c.managers.map(async (h) => (await this.c.nodes(h).catch(() => []))
          .find((n) => n.ManagerStatus?.Leader)?.Description.Hostname));
        return seen[0] && seen.every((x) => x === seen[0]) ? seen[0] : undefined;
      }, timeoutMs, 100);
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen per manager: ${JSON.stringify(Object.fromEntries(this.c.managers.map((h, i) => [h, seen[i] ?? null])))}`);
    }
  }

  /** Polls containersOf until ok; a timeout says what was seen last. */
  async waitContainers(what: string, name: string, ok: (per: PerHost) => boolean, timeoutMs = 60_000, hosts = this.c.hosts): Promise<PerHost> {
    let last: PerHost = {};
    try {
      return await waitFor(what, async () => {
        last = await this.containersOf(name, hosts);
        return ok(last) ? last : undefined;
      }, timeoutMs, 200);
    } catch (e) {
      throw new Error(`${(e as Error).message}; last seen (running/all per host): ${JSON.stringify(last)}`);
    }
  }

  /** on-failure, max 2 attempts, 200 ms delay, a command exiting 1: 3 failed tasks, never a fourth, then rm leaves nothing. */
  async restartPolicyGivesUp(): Promise<void> {
    const c = this.c;
    const r = await c.shoal('host1', 'service', 'create', '--name', 'crash', '--restart-condition', 'on-failure', '--restart-max-attempts', '2',
      '--restart-delay', '200ms', c.image, 'sh', '-c', 'echo about to fail; exit 1');
    expect(r.code).not.toBe(0);
    const ts = await waitFor('3 failed attempts', async () => {
      const l = await this.tasks('crash');
      return l.length === 3 && l.every((t) => t.Status.State === 'failed') ? l : undefined;
    }, 60_000, 300);
    for (const t of ts) {
      expect(t.Status.ContainerStatus?.ExitCode).toBe(1);
      expect(t.Status.Err).toMatch(/non-zero exit \(1\)/);
    }
    // No fourth attempt comes: the policy is exhausted (checked over a few restart delays).
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      expect((await this.tasks('crash')).length).toBe(3);
      await new Promise((res) => setTimeout(res, 300));
    }
    expect(runningTotal(await this.containersOf('crash'))).toBe(0);
    await c.ok('host1', 'service', 'rm', 'crash');
    await this.waitContainers('crash containers removed', 'crash', (p) => allTotal(p) === 0, 30_000);
  }
}
