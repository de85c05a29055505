// The worker's session with the leader, against real gRPC manager endpoints
// (mutual TLS, certificates of a real cluster CA), reached through a TCP relay
// whose traffic can be frozen: both sockets stay open and nothing passes, as
// when a link is cut or the leader's host is partitioned away. Such a leader
// can end nothing, so:
// - the heartbeats finding the leader elsewhere move the session there at once,
//   and heartbeats relayed by a manager take the session through it too;
// - without that, the channel's keepalive fails the stream within 10 s.
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clusterServerOptions } from '../../../cli/shoald/serveroptions.js';
import { managerClient } from '../../../proto/client.js';
import { DispatcherService, serviceDef, type Task } from '../../../proto/services.js';
import { WorkerSession } from '../../../worker/agent/session.js';
import type { TaskRunner } from '../../../worker/agent/tasks.js';
import { waitFor } from '../../support/wait.js';
import { frozenRelay, testClusterTls, type FrozenRelay } from '../../support/grpcnet.js';

const quiet = { info() {}, warn() {}, debug() {} };

describe('worker session with a leader that is cut off', () => {
  let tls: { caPem: string; certPem: string; keyPem: string };
  let serverCreds: grpc.ServerCredentials;
  const servers: grpc.Server[] = [];
  const relays: Array<{ close(): void }> = [];
  const sessions: WorkerSession[] = [];

  beforeAll(() => {
    ({ worker: tls, serverCreds } = testClusterTls('ws'));
  }, 30_000);

  afterEach(() => {
    for (const s of sessions.splice(0)) s.stop();
    for (const r of relays.splice(0)) r.close();
  });

  afterAll(() => {
    for (const s of servers) s.forceShutdown();
  });

  /** A leader's dispatcher: each session gets the whole set (one task named after the manager), then stays open. */
  async function manager(name: string): Promise<{ addr: string; opened: () => number; relayAsked: () => boolean[] }> {
    let opened = 0;
    const relay: boolean[] = [];
    const server = new grpc.Server(clusterServerOptions());
    server.addService(serviceDef({ session: DispatcherService.session }), {
      session: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        opened++;
        relay.push(call.metadata.get('x-shoal-relay')[0] === '1');
        call.write({ assignments: { full: true, updated: [{ id: `task-of-${name}`, desiredState: 512 }], removed: [] } });
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', serverCreds, (e, p) => (e ? rej(e) : res(p))));
    servers.push(server);
    return { addr: `127.0.0.1:${port}`, opened: () => opened, relayAsked: () => relay };
  }

  /** A frozen-relay in front of a manager, closed after the test. */
  async function relay(target: string): Promise<FrozenRelay> {
    const r = await frozenRelay(target);
    relays.push(r);
    return r;
  }

  /** A session whose runner records the assignment sets it is given. */
  function session(managers: () => string[]): { s: WorkerSession; fullSets: string[][] } {
    const fullSets: string[][] = [];
    const runner = {
      assign: (a: { full: boolean; updated: Task[] }) => {
        if (a.full) fullSets.push(a.updated.map((t) => t.id));
      },
      statuses: () => new Map(),
    } as unknown as TaskRunner;
    const s = new WorkerSession({ nodeId: () => 'wrk1', tls: () => tls, managers, runner, logDir: '/nonexistent', description: () => ({}), logger: quiet });
    sessions.push(s);
    s.start();
    return { s, fullSets };
  }

  it('the heartbeats find the leader elsewhere: the session moves there at once and gets the new leader\'s set', async () => {
    const old = await manager('old');
    const next = await manager('new');
    const cut = await relay(old.addr);
    const { s, fullSets } = session(() => [cut.addr, next.addr]);
    await waitFor('a session with the old leader', () => (fullSets.length === 1 ? true : undefined), 10_000, 10);
    expect(fullSets[0]).toEqual(['task-of-old']);
    cut.freeze();
    // A heartbeat naming the manager the session is with changes nothing.
    s.follow({ addr: cut.addr, via: false });
    s.follow({ addr: '', via: false });
    await new Promise((r) => setTimeout(r, 300));
    expect(next.opened()).toBe(0);
    const t0 = Date.now();
    s.follow({ addr: next.addr, via: false });
    await waitFor('a session with the new leader', () => (fullSets.length === 2 ? true : undefined), 5_000, 10);
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(fullSets[1]).toEqual(['task-of-new']);
    expect(next.opened()).toBe(1);
    // Settled: told again, it stays.
    s.follow({ addr: next.addr, via: false });
    await new Promise((r) => setTimeout(r, 300));
    expect(next.opened()).toBe(1);
    expect(s.sessions).toBe(2);
    expect(next.relayAsked()).toEqual([false]);
    // The heartbeats go through a manager that relays them: the session goes that way too, asking it to relay.
    s.follow({ addr: next.addr, via: true });
    await waitFor('a relayed session', () => (next.opened() === 2 && fullSets.length === 3 ? true : undefined), 5_000, 10);
    expect(next.relayAsked()).toEqual([false, true]);
    expect(s.sessions).toBe(3);
  }, 30_000);

  it('a stream to a manager that went silent fails within keepalive time + timeout (10 s), not when the kernel gives up', async () => {
    const m = await manager('silent');
    const cut = await relay(m.addr);
    const client = managerClient(cut.addr, tls);
    const def = DispatcherService.session;
    const call = client.makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, {} as never);
    let got = 0;
    let failed: grpc.ServiceError | undefined;
    call.on('data', () => got++);
    call.on('error', (e: grpc.ServiceError) => (failed = e));
    await waitFor('the set', () => (got === 1 ? true : undefined), 10_000, 10);
    cut.freeze();
    const t0 = Date.now();
    await waitFor('the stream to fail', () => failed, 15_000, 50);
    expect(failed!.code).toBe(grpc.status.UNAVAILABLE);
    expect(Date.now() - t0).toBeLessThan(11_000);
    client.close();
  }, 30_000);
});
