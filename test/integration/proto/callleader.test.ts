// callLeader, the way a follower forwards a request to the leader (and the CLI
// and joining nodes find one), against real gRPC endpoints with mutual TLS:
// a named leader is followed, a definite answer is final, and a call waiting
// on a leader that went silent (cut off by a partition) is made at once at the
// manager the caller's raft now names, instead of waiting out its deadline;
// and it says when a call it gave up on never reached a server that could
// have acted on it (so that another route cannot apply it twice).
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ELSEWHERE_META, LEADER_META, callLeader, mayHaveArrived, neverDelivered } from '../../../proto/client.js';
import { DispatcherService, serviceDef } from '../../../proto/services.js';
import { testClusterTls } from '../../support/grpcnet.js';

type Behaviour = 'answer' | 'silent' | { hint: string } | 'refuse';

describe('callLeader', () => {
  let tls: { caPem: string; certPem: string; keyPem: string };
  let serverCreds: grpc.ServerCredentials;
  const servers: grpc.Server[] = [];
  const calls = new Map<string, number>();

  beforeAll(() => {
    ({ manager: tls, serverCreds } = testClusterTls('cl'));
  }, 30_000);

  afterAll(() => {
    for (const s of servers) s.forceShutdown();
  });

  /** A manager answering UpdateTaskStatus as told; `name` counts its calls. */
  async function manager(name: string, behave: () => Behaviour): Promise<string> {
    const server = new grpc.Server();
    server.addService(serviceDef({ updateTaskStatus: DispatcherService.updateTaskStatus }), {
      updateTaskStatus: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        const b = behave();
        if (b === 'answer') return cb(null, {});
        if (b === 'refuse') return cb({ code: grpc.status.INVALID_ARGUMENT, details: `${name} refuses` });
        if (b === 'silent') return; // never answers
        const md = new grpc.Metadata();
        md.set(LEADER_META, b.hint);
        cb({ code: grpc.status.FAILED_PRECONDITION, details: 'not the leader', metadata: md });
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', serverCreds, (e, p) => (e ? rej(e) : res(p))));
    servers.push(server);
    return `127.0.0.1:${port}`;
  }

  const update = (addrs: string[], opts: Parameters<typeof callLeader>[4]) =>
    callLeader(addrs, tls, DispatcherService.updateTaskStatus, { updates: [] } as never, opts);

  it('goes where a follower points, and takes a definite answer as final', async () => {
    const leader = await manager('leader1', () => 'answer');
    const follower = await manager('follower1', () => ({ hint: leader }));
    expect((await update([follower], { timeoutMs: 5_000 })).addr).toBe(leader);
    const refuser = await manager('refuser', () => 'refuse');
    const other = await manager('other1', () => 'answer');
    await expect(update([refuser, other], { timeoutMs: 5_000 })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'refuser refuses' });
    expect(calls.get('other1')).toBeUndefined();
  });

  it('a call waiting on a silent leader moves to the new one as soon as leader() names it', async () => {
    const old = await manager('old', () => 'silent');
    const next = await manager('next', () => 'answer');
    let known = old;
    setTimeout(() => (known = next), 300);
    const t0 = Date.now();
    const { addr } = await update([old], { timeoutMs: 10_000, leader: () => known });
    expect(addr).toBe(next);
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(calls.get('old')).toBe(1);
    expect(calls.get('next')).toBe(1);
  });

  it('while leader() names no one else (an election under way, or no hook), it waits on the silent one', async () => {
    const silent = await manager('silent', () => 'silent');
    for (const leader of [() => undefined, () => silent, undefined]) {
      const t0 = Date.now();
      await expect(update([silent], { timeoutMs: 600, leader })).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
    }
  });

  /** An address where nothing listens any more: connections are refused. */
  async function closedAddr(): Promise<string> {
    const server = new grpc.Server();
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', serverCreds, (e, p) => (e ? rej(e) : res(p))));
    server.forceShutdown();
    return `127.0.0.1:${port}`;
  }

  it('a call that reached no server (refused connections, managers pointing at them) is never delivered; one a silent server received may have been', async () => {
    const gone = await closedAddr();
    const pointer = await manager('pointer', () => ({ hint: gone }));
    const undelivered = await update([pointer, gone], { timeoutMs: 800 }).catch((e: unknown) => e);
    expect(calls.get('pointer')).toBeGreaterThan(0);
    expect(neverDelivered(undelivered)).toBe(true);
    const silent = await manager('silent2', () => 'silent');
    const maybe = await update([silent], { timeoutMs: 600 }).catch((e: unknown) => e);
    expect((maybe as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(neverDelivered(maybe)).toBe(false);
  });
});

describe('mayHaveArrived', () => {
  const err = (code: grpc.status, details: string, meta: Record<string, string> = {}) => {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(meta)) metadata.set(k, v);
    return Object.assign(new Error(details), { code, details, metadata });
  };
  it.each([
    ['a deadline while waiting for a connection', err(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded after 4.001s,Waiting for LB pick'), false],
    ['a deadline after the call went out', err(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded after 4.001s,LB pick: 0.001s,remote_addr=10.0.0.1:4377'), true],
    ['no connection at all', err(grpc.status.UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1'), false],
    ['a connection dropped under the call', err(grpc.status.UNAVAILABLE, 'Connection dropped'), true],
    ['a refusal pointing at the leader', err(grpc.status.FAILED_PRECONDITION, 'not the leader', { [LEADER_META]: '10.0.0.2:4377' }), false],
    ['a refusal saying to try elsewhere', err(grpc.status.FAILED_PRECONDITION, 'no leader', { [ELSEWHERE_META]: '1' }), false],
    ['a definite answer', err(grpc.status.ABORTED, 'service changed since version 3'), true],
  ])('%s: %s', (_, e, arrived) => {
    expect(mayHaveArrived(e)).toBe(arrived);
  });
});
