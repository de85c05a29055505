// The spec `swarm init` gives a new cluster: defaults, what the request asks
// for, and clear refusals (checked before anything is created).
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { initSpec } from '../../../cli/shoald/daemon.js';
import { CallError } from '../../../manager/cluster/auth.js';

type Asked = Parameters<typeof initSpec>[0];

describe('the spec of a new cluster', () => {
  it('defaults: 100 ms ticks, elections after 10, heartbeats every 3', () => {
    expect(initSpec(undefined).raft).toMatchObject({ tickMs: 100, electionTick: 10, heartbeatTick: 3 });
  });

  const accepted: Array<[string, Asked, object]> = [
    ['a heartbeat tick below the default election tick', { raft: { heartbeatTick: 1 } } as Asked, { electionTick: 10, heartbeatTick: 1 }],
    ['both ticks raised together', { raft: { electionTick: 20, heartbeatTick: 10 } } as Asked, { electionTick: 20, heartbeatTick: 10 }],
  ];
  it.each(accepted)('takes %s', (_what, asked, raft) => {
    expect(initSpec(asked).raft).toMatchObject(raft);
  });

  const refused: Array<[string, Asked, RegExp]> = [
    ['a heartbeat tick equal to the election tick', { raft: { heartbeatTick: 10 } } as Asked, /raft heartbeat tick \(10\) must be less than the election tick \(10\)/],
    ['an election tick below the default heartbeat tick', { raft: { electionTick: 2 } } as Asked, /raft heartbeat tick \(3\) must be less than the election tick \(2\)/],
    ['a task history limit out of range', { orchestration: { taskHistoryLimit: 1001 } } as Asked, /--task-history-limit must be 0 to 1000/],
    ['a certificate validity under 30 s', { ca: { nodeCertExpiryMs: 10_000 } } as Asked, /--cert-expiry must be at least 30s/],
  ];
  it.each(refused)('refuses %s, naming the values', (_what, asked, msg) => {
    let err: unknown;
    try {
      initSpec(asked);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CallError);
    expect((err as CallError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as CallError).message).toMatch(msg);
  });
});
