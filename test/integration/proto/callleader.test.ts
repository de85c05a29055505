// callLeader, the way a follower forwards a request to the leader (and the CLI
// and joining nodes find one), against real gRPC endpoints with mutual TLS:
// a named leader is followed, a definite answer is final, and a call waiting
// on a leader that went silent (cut off by a partition) is made at once at the
// manager the caller's raft now names, instead of waiting out its deadline.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEADER_META, callLeader } from '../../../proto/client.js';
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
});
