// The worker agent's heartbeat stream against real gRPC manager endpoints
// (mutual TLS with certificates of a real cluster CA), each served by the
// managers' own stream handler (serveHeartbeats) with a scripted beat:
// - a saturated leader that answers slowly: beats still start a period apart,
//   on one stream, so the gap the manager sees does not grow by the latency;
// - a follower that names the leader is asked once, then the leader only;
// - a leader that dies, or stops answering without closing: the agent moves on;
// - a leader whose link to this node drops while another manager can relay:
//   the beats go through that manager without a gap the leader would mark
//   the node down for, and straight to the leader again once it answers;
// - a node the cluster removed is told so;
// - a node that vanishes without closing its connection: the manager's
//   keepalive pings end its stream (cluster port options, cli/shoald).
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CallError } from '../../../manager/cluster/auth.js';
import { serveHeartbeats, type HeartbeatStream } from '../../../manager/cluster/heartbeats.js';
import { clusterServerOptions } from '../../../cli/shoald/serveroptions.js';
import { LEADER_META, managerClient } from '../../../proto/client.js';
import { DispatcherService, api, serviceDef } from '../../../proto/services.js';
import { Agent } from '../../../worker/agent/agent.js';
import { waitFor } from '../../support/wait.js';
import { frozenRelay, testClusterTls } from '../../support/grpcnet.js';

type Res = InstanceType<typeof api.HeartbeatResponse>;
type Req = InstanceType<typeof api.HeartbeatRequest>;

const quiet = { info() {}, warn() {}, debug() {} };

describe('agent heartbeats', () => {
  let tls: { caPem: string; certPem: string; keyPem: string };
  let serverCreds: grpc.ServerCredentials;
  const servers: grpc.Server[] = [];
  const agents: Agent[] = [];

  /** A manager endpoint answering each beat with `onBeat`; returns its address and server. */
  async function manager(
    onBeat: (req: Req, call: HeartbeatStream<Req, Res>) => Promise<Res>,
    opts: { server?: grpc.ServerOptions; onStream?: (call: HeartbeatStream<Req, Res>) => void } = {},
  ): Promise<{ addr: string; server: grpc.Server }> {
    const server = new grpc.Server(opts.server);
    server.addService(serviceDef({ heartbeats: DispatcherService.heartbeats }), {
      heartbeats: (call: HeartbeatStream<Req, Res>) => {
        opts.onStream?.(call);
        serveHeartbeats(call, (req) => onBeat(req, call));
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', serverCreds, (e, p) => (e ? rej(e) : res(p))));
    servers.push(server);
    return { addr: `127.0.0.1:${port}`, server };
  }

  function agent(managers: string[], extra: Partial<ConstructorParameters<typeof Agent>[0]> = {}): Agent {
    const a = new Agent({
      tls: () => tls, managers: () => managers, role: () => 'worker',
      onManagers() {}, onDesiredRole() {}, onRemoved() {}, logger: quiet, hostname: 'hb-test', ...extra,
    });
    agents.push(a);
    a.start();
    return a;
  }

  const answer = (periodMs: number, delayMs = 0) => () =>
    new Promise<Res>((r) => setTimeout(() => r({ periodMs } as Res), delayMs));

  beforeAll(() => {
    ({ worker: tls, serverCreds } = testClusterTls('hb'));
  }, 30_000);

  afterEach(() => {
    for (const a of agents.splice(0)) a.stop();
  });

  afterAll(() => {
    for (const s of servers) s.forceShutdown();
  });

  it('start a period apart, on one stream, when the manager takes 400 ms to answer', async () => {
    const PERIOD_MS = 500;
    const received: number[] = [];
    const slow = answer(PERIOD_MS, 400);
    const m = await manager(() => {
      received.push(Date.now());
      return slow();
    });
    const a = agent([m.addr]);
    await waitFor('6 heartbeats', () => (received.length >= 6 ? true : undefined), 15_000, 20);
    // The first gap may include the connection's set-up; the steady ones follow the period.
    const gaps = received.slice(2, 6).map((t, i) => t - received[i + 1]!);
    const sorted = [...gaps].sort((x, y) => x - y);
    const median = (sorted[1]! + sorted[2]!) / 2;
    // A period plus the answer's delay (900 ms) is what beating after each answer gives.
    expect(median).toBeGreaterThanOrEqual(PERIOD_MS - 50);
    expect(median).toBeLessThan(PERIOD_MS + 400 / 2);
    expect(a.lastOk).toBeGreaterThan(0);
    expect(a.streamsOpened).toBe(1);
  }, 30_000);

  it('go to the leader a follower names: the follower is asked once, not every period', async () => {
    const leaderBeats: number[] = [];
    let followerBeats = 0;
    const ok = answer(100);
    const leader = await manager(() => {
      leaderBeats.push(Date.now());
      return ok();
    });
    const follower = await manager(async () => {
      followerBeats++;
      const md = new grpc.Metadata();
      md.set(LEADER_META, leader.addr);
      throw new CallError(grpc.status.FAILED_PRECONDITION, `this manager is not the leader; the leader is at ${leader.addr}`, md);
    });
    const a = agent([follower.addr, leader.addr]);
    await waitFor('5 heartbeats at the leader', () => (leaderBeats.length >= 5 ? true : undefined), 15_000, 20);
    expect(followerBeats).toBe(1);
    expect(a.streamsOpened).toBe(2);
  }, 30_000);

  it('a leader that dies: the next beat reaches another manager within a period', async () => {
    const PERIOD_MS = 200;
    const ok = answer(PERIOD_MS);
    const first: number[] = [];
    const second: number[] = [];
    const a1 = await manager(() => (first.push(Date.now()), ok()));
    const a2 = await manager(() => (second.push(Date.now()), ok()));
    agent([a1.addr, a2.addr]);
    await waitFor('3 heartbeats at the first manager', () => (first.length >= 3 ? true : undefined), 15_000, 10);
    const killedAt = Date.now();
    a1.server.forceShutdown();
    await waitFor('a heartbeat at the second manager', () => (second.length >= 1 ? true : undefined), 15_000, 10);
    expect(second[0]! - killedAt).toBeLessThan(2 * PERIOD_MS);
  }, 30_000);

  it('a manager that stops answering without closing the stream is left after twice the period (at least 2 s)', async () => {
    let answering = true;
    const ok = answer(100);
    let stuckBeats = 0;
    const stuck = await manager(() => {
      if (answering) return ok();
      stuckBeats++;
      return new Promise<Res>(() => undefined);
    });
    const other: number[] = [];
    const good = await manager(() => (other.push(Date.now()), ok()));
    const a = agent([stuck.addr, good.addr]);
    await waitFor('an answered heartbeat', () => (a.lastOk > 0 ? true : undefined), 15_000, 10);
    answering = false;
    const stuckSince = Date.now();
    await waitFor('heartbeats at the other manager', () => (other.length >= 2 ? true : undefined), 15_000, 20);
    const movedAfter = other[0]! - stuckSince;
    expect(movedAfter).toBeGreaterThanOrEqual(2000 - 150);
    expect(movedAfter).toBeLessThan(3500);
    // The managers handle a node's beats one at a time: the rest waited behind the stuck one.
    expect(stuckBeats).toBe(1);
  }, 30_000);

  it('the description rides on a stream\'s first beat, then only when it changed; the stream to another manager carries it again', async () => {
    const seen: (string | null)[] = [];
    const atOther: (string | null)[] = [];
    const ok = answer(50);
    const described = (req: Req) => (req.description ? `${req.description.hostname} ${req.description.version}` : null);
    const m = await manager(async (req) => (seen.push(described(req)), ok()));
    const other = await manager(async (req) => (atOther.push(described(req)), ok()));
    let version = '1.0.0';
    const a = agent([m.addr, other.addr], { description: () => ({ hostname: 'hb-test', version, platform: { os: 'linux', architecture: 'x64' } }) as never });
    await waitFor('4 beats', () => (seen.length >= 4 ? true : undefined), 15_000, 10);
    version = '1.1.0'; // upgraded in place: the managers must hear of it
    await waitFor('the new version and 2 beats after it', () => (seen.includes('hb-test 1.1.0') && seen.length >= seen.indexOf('hb-test 1.1.0') + 3 ? true : undefined), 15_000, 10);
    const upgradedAt = seen.indexOf('hb-test 1.1.0');
    expect(seen[0]).toBe('hb-test 1.0.0');
    expect(seen.slice(1, upgradedAt)).toEqual(seen.slice(1, upgradedAt).map(() => null));
    expect(seen.slice(upgradedAt + 1)).toEqual(seen.slice(upgradedAt + 1).map(() => null));
    expect(a.streamsOpened).toBe(1);
    // The first manager dies: the stream to the other one starts with the description again.
    m.server.forceShutdown();
    await waitFor('2 beats at the other manager', () => (atOther.length >= 2 ? true : undefined), 15_000, 10);
    expect(atOther.slice(0, 2)).toEqual(['hb-test 1.1.0', null]);
    expect(a.streamsOpened).toBe(2);
  }, 30_000);

  /**
   * A leader whose direct link to the node can be cut, and a follower that
   * refuses the node's own beats with a hint to the leader but relays beats
   * asked to be relayed (here: answers them as the leader would). `heard` is
   * every beat that reached the leader, straight or relayed.
   */
  async function leaderAndRelay(periodMs: number) {
    const heard: Array<{ at: number; relayed: boolean }> = [];
    let cut = false;
    let relayedStreams = 0;
    let leaderAddr = '';
    const reply = (): Res => ({ periodMs, leaderAddr } as Res);
    const leader = await manager(async () => {
      if (cut) return new Promise<Res>(() => undefined);
      heard.push({ at: Date.now(), relayed: false });
      return reply();
    });
    leaderAddr = leader.addr;
    const follower = await manager(async (_req, call) => {
      if (call.metadata.get('x-shoal-relay')[0] !== '1') {
        const md = new grpc.Metadata();
        md.set(LEADER_META, leaderAddr);
        throw new CallError(grpc.status.FAILED_PRECONDITION, 'this manager is not the leader', md);
      }
      heard.push({ at: Date.now(), relayed: true });
      return reply();
    }, { onStream: (call) => (call.metadata.get('x-shoal-relay')[0] === '1' ? relayedStreams++ : undefined) });
    return {
      leader: leader.addr, follower: follower.addr, heard,
      cut: (v: boolean) => (cut = v),
      relayedStreams: () => relayedStreams,
    };
  }

  it('the leader\'s link to the node drops: the beats go through another manager with no gap of 2.5 periods (the managers mark a node down after 3), and straight again once it answers', async () => {
    const PERIOD_MS = 200;
    const m = await leaderAndRelay(PERIOD_MS);
    const routes: Array<{ at: number; addr: string; via: boolean }> = [];
    agent([m.leader, m.follower], { outOfReachMs: 1_000, onRoute: (r) => routes.push({ at: Date.now(), ...r }) });
    await waitFor('5 beats at the leader', () => (m.heard.length >= 5 ? true : undefined), 15_000, 10);
    expect(routes.at(-1)).toMatchObject({ addr: m.leader, via: false });
    const cutAt = Date.now();
    m.cut(true);
    const relayed = await waitFor('the calls routed through the follower', () => routes.find((r) => r.at > cutAt && r.via), 10_000, 10);
    expect(relayed.addr).toBe(m.follower);
    // Promoted once the direct stream is given up (no answer for 2 s), not before.
    expect(relayed.at - cutAt).toBeGreaterThanOrEqual(1_800);
    expect(relayed.at - cutAt).toBeLessThan(3_000);
    // Meanwhile the leader kept hearing: the relay started after a period and a half of silence.
    const times = m.heard.map((h) => h.at);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(Math.max(...gaps)).toBeLessThan(2.5 * PERIOD_MS);
    expect(m.heard.filter((h) => h.relayed && h.at < relayed.at).length).toBeGreaterThan(3);
    // The link is back: once the out-of-reach mark runs out, a direct try answers and the calls go straight again.
    m.cut(false);
    const uncutAt = Date.now();
    const back = await waitFor('the calls straight to the leader again', () => routes.find((r) => r.at > uncutAt && !r.via), 10_000, 10);
    expect(back.addr).toBe(m.leader);
    expect(back.at - uncutAt).toBeLessThan(2_500);
    const streams = m.relayedStreams();
    await new Promise((r) => setTimeout(r, 5 * PERIOD_MS));
    expect(m.relayedStreams()).toBe(streams);
    expect(m.heard.at(-1)!.relayed).toBe(false);
  }, 30_000);

  it('a manager tried as a relay does not answer either: the beats go through the other ones at once, with no gap of 2.5 periods at the leader', async () => {
    const PERIOD_MS = 200;
    const m = await leaderAndRelay(PERIOD_MS);
    let silentBeats = 0;
    const silent = await manager(() => (silentBeats++, new Promise<Res>(() => undefined)));
    const routes: Array<{ at: number; addr: string; via: boolean }> = [];
    agent([m.leader, silent.addr, m.follower], { onRoute: (r) => routes.push({ at: Date.now(), ...r }) });
    await waitFor('5 beats at the leader', () => (m.heard.length >= 5 ? true : undefined), 15_000, 10);
    const cutAt = Date.now();
    m.cut(true);
    const relayed = await waitFor('the calls routed through the answering manager', () => routes.find((r) => r.at > cutAt && r.via), 10_000, 10);
    expect(relayed.addr).toBe(m.follower);
    // Promoted at the direct stream's give-up (2 s), as with one relay.
    expect(relayed.at - cutAt).toBeLessThan(3_000);
    // The leader never went 2.5 periods without a beat: the answering relay carried them from the hedge on.
    const times = m.heard.map((h) => h.at);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(Math.max(...gaps)).toBeLessThan(2.5 * PERIOD_MS);
    expect(m.heard.filter((h) => h.relayed && h.at < relayed.at).length).toBeGreaterThan(3);
    expect(silentBeats).toBeGreaterThan(0);
    const tried = silentBeats;
    await new Promise((r) => setTimeout(r, 5 * PERIOD_MS));
    expect(silentBeats).toBe(tried);
    expect(m.heard.at(-1)!.relayed).toBe(true);
  }, 30_000);

  it('a node the cluster removed is told so, with the reason', async () => {
    const m = await manager(async () => {
      throw new CallError(grpc.status.NOT_FOUND, 'node wrk1 is not part of the cluster (was it removed?)');
    });
    const removed: string[] = [];
    agent([m.addr], { onRemoved: (why) => removed.push(why) });
    await waitFor('the removal', () => (removed.length > 0 ? true : undefined), 15_000, 20);
    expect(removed[0]).toContain('not part of the cluster');
  }, 30_000);

  describe.each([
    { options: 'the cluster port\'s (keepalive 300 ms, answered within 300 ms)', server: clusterServerOptions(300, 300), freeze: true, ended: true },
    { options: 'the cluster port\'s', server: clusterServerOptions(300, 300), freeze: false, ended: false },
    { options: 'gRPC\'s defaults (no keepalive from the server)', server: undefined, freeze: true, ended: false },
  ])('a heartbeat stream on a manager with $options options', ({ server, freeze, ended }) => {
    it(`${freeze ? 'whose node vanishes without closing the connection' : 'of a healthy node'} is ${ended ? 'ended within 2 s' : 'still open after 2 s'}`, async () => {
      let endedAt = 0;
      const beats: number[] = [];
      const m = await manager(async () => (beats.push(Date.now()), { periodMs: 100 } as Res), {
        server,
        onStream: (call) => call.on('cancelled', () => (endedAt = Date.now())),
      });
      const r = await frozenRelay(m.addr);
      const client = managerClient(r.addr, tls);
      const def = DispatcherService.heartbeats;
      const call = client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize);
      call.on('error', () => undefined);
      let answers = 0;
      call.on('data', () => answers++);
      const beat = () => call.write({ runtimeError: '' } as never);
      beat();
      await waitFor('the first answer', () => (answers >= 1 ? true : undefined), 10_000, 10);
      if (freeze) r.freeze();
      const since = Date.now();
      // A healthy node keeps beating; a vanished one's beats go nowhere.
      const beating = setInterval(beat, 100);
      try {
        if (ended) {
          await waitFor('the manager ending the stream', () => (endedAt ? true : undefined), 5_000, 10);
          expect(endedAt - since).toBeLessThan(2_000);
        } else {
          await new Promise((res) => setTimeout(res, 2_000));
          expect(endedAt).toBe(0);
          // Healthy: the pings did not get in the way of the beats.
          if (!freeze) expect(beats.filter((t) => t > since).length).toBeGreaterThanOrEqual(10);
        }
      } finally {
        clearInterval(beating);
        call.cancel();
        client.close();
        r.close();
      }
    }, 30_000);
  });
});
