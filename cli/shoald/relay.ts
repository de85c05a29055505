// A follower relaying a node's dispatcher calls to the leader, for a node that
// can reach this manager but not the leader (one link down): without it such
// a node would be marked down and its tasks moved although it runs fine, as
// Swarm's managers avoid by proxying to the leader. The node asks for it
// (x-shoal-relay: 1); this manager checked its certificate and passes its
// identity and address on (x-shoal-relayed-*), which the leader takes from a
// manager only. Messages pass through as decoded objects, in both directions;
// an end, an error (with its metadata: a leader hint) or a cancel on one side
// ends the other.
import * as grpc from '@grpc/grpc-js';
import { RELAYED_NODE_META, RELAYED_PEER_META, RELAYED_ROLE_META } from '../../proto/client.js';
import type { CertIdentity } from '../../manager/ca/index.js';
import { statusOf } from '../../manager/cluster/auth.js';

/** A client for the leader's cluster port (this node's own certificate); throws UNAVAILABLE while no leader is known. */
export type LeaderClient = () => grpc.Client;

/** The metadata the leader reads the relayed node from. */
function vouch(id: CertIdentity, peer: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(RELAYED_NODE_META, id.nodeId);
  md.set(RELAYED_ROLE_META, id.role);
  md.set(RELAYED_PEER_META, peer);
  return md;
}

type Upstream = { on(ev: 'data', f: (m: unknown) => void): unknown; on(ev: 'error', f: (e: grpc.ServiceError) => void): unknown; on(ev: 'end', f: () => void): unknown; cancel(): void };
type Downstream = { write(m: unknown): unknown; end(): unknown; emit(ev: 'error', e: object): unknown; on(ev: 'cancelled', f: () => void): unknown };

/** Leader -> node: messages, then its end or error; the node going away cancels the leader's call. */
function pipeDown(up: Upstream, down: Downstream): void {
  let over = false;
  up.on('data', (m) => {
    if (!over) down.write(m);
  });
  up.on('error', (e) => {
    if (over) return;
    over = true;
    down.emit('error', statusOf(e));
  });
  up.on('end', () => {
    if (over) return;
    over = true;
    down.end();
  });
  down.on('cancelled', () => {
    over = true;
    up.cancel();
  });
}

export function relayHeartbeats(leader: LeaderClient, def: grpc.MethodDefinition<unknown, unknown>, call: grpc.ServerDuplexStream<unknown, unknown>, id: CertIdentity, peer: string): void {
  const up = leader().makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, vouch(id, peer));
  call.on('data', (m: unknown) => up.write(m));
  call.on('end', () => up.end());
  pipeDown(up, call);
}

export function relaySession(leader: LeaderClient, def: grpc.MethodDefinition<unknown, unknown>, call: grpc.ServerWritableStream<unknown, unknown>, id: CertIdentity, peer: string): void {
  const up = leader().makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, call.request, vouch(id, peer));
  pipeDown(up, call);
}

export function relayUnary(leader: LeaderClient, def: grpc.MethodDefinition<unknown, unknown>, req: unknown, id: CertIdentity, peer: string, deadline: grpc.Deadline): Promise<unknown> {
  const c = leader();
  return new Promise((resolve, reject) => {
    c.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, req, vouch(id, peer), { deadline }, (e, res) => (e ? reject(e) : resolve(res)));
  });
}

export function relayClientStream(
  leader: LeaderClient, def: grpc.MethodDefinition<unknown, unknown>, call: grpc.ServerReadableStream<unknown, unknown>, id: CertIdentity, peer: string,
  done: (e: grpc.ServiceError | null) => void,
): void {
  const up = leader().makeClientStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, vouch(id, peer), (e) => done(e));
  call.on('data', (m: unknown) => up.write(m));
  call.on('end', () => up.end());
  call.on('cancelled', () => up.cancel());
}
