// Calling shoal's services: mutual-TLS channels to managers (checked against
// the cluster CA, any manager certificate matches the fixed server name), unary
// calls with deadlines, and following "not the leader" redirects.
import * as grpc from '@grpc/grpc-js';

/** shoal's version: what `shoal --version` prints and every node reports in its description. */
export const SHOAL_VERSION = '0.1.0';

/** Every manager certificate carries this DNS name; worker certificates do not. */
export const MANAGER_SERVER_NAME = 'swarm-manager';
export const LEADER_META = 'x-shoal-leader';
/**
 * Marks a refusal that means "not here" (this manager is not the leader, or
 * not a manager at all): the caller should try another manager. Any other
 * refusal is the cluster's answer and is final.
 */
export const ELSEWHERE_META = 'x-shoal-try-elsewhere';

/**
 * A node that cannot reach the leader asks another manager to relay its
 * dispatcher calls (heartbeats, session, status, logs): `x-shoal-relay: 1`.
 * The relaying manager vouches for the caller to the leader with the node's
 * identity and address (the x-shoal-relayed-* keys), which the leader takes
 * only from a manager's certificate.
 */
export const RELAY_META = 'x-shoal-relay';
export const RELAYED_NODE_META = 'x-shoal-relayed-node';
export const RELAYED_ROLE_META = 'x-shoal-relayed-role';
export const RELAYED_PEER_META = 'x-shoal-relayed-peer';

/** The metadata of a dispatcher call, asking the manager to relay it when `via`. */
export function relayMetadata(via: boolean): grpc.Metadata {
  const md = new grpc.Metadata();
  if (via) md.set(RELAY_META, '1');
  return md;
}

export function elsewhereMetadata(md: grpc.Metadata = new grpc.Metadata()): grpc.Metadata {
  md.set(ELSEWHERE_META, '1');
  return md;
}

export function triesElsewhere(err: unknown): boolean {
  return (err as grpc.ServiceError)?.metadata?.get(ELSEWHERE_META)?.[0] === '1';
}

export interface TlsMaterial {
  caPem: string;
  certPem?: string;
  keyPem?: string;
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.ssl_target_name_override': MANAGER_SERVER_NAME,
  'grpc.default_authority': MANAGER_SERVER_NAME,
  'grpc.enable_retries': 0,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.use_local_subchannel_pool': 1,
  // A manager cut off without closing the connection (partition, power loss)
  // sends no end of stream: a ping unanswered for 5 s fails the calls on it,
  // so long-lived ones (sessions, log streams) go elsewhere. Pings only while
  // a call is open; the server permits them (cli/shoald/serveroptions.ts).
  'grpc.keepalive_time_ms': 5_000,
  'grpc.keepalive_timeout_ms': 5_000,
};

export function managerClient(addr: string, tls: TlsMaterial): grpc.Client {
  const creds = grpc.credentials.createSsl(
    Buffer.from(tls.caPem),
    tls.keyPem ? Buffer.from(tls.keyPem) : null,
    tls.certPem ? Buffer.from(tls.certPem) : null,
  );
  return new grpc.Client(addr, creds, CHANNEL_OPTIONS);
}

export function localClient(socketPath: string): grpc.Client {
  return new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0 });
}

export function call<Req, Res>(client: grpc.Client, def: grpc.MethodDefinition<Req, Res>, req: Req, timeoutMs = 10_000, md = new grpc.Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, req, md,
      { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

export function leaderHint(err: unknown): string | undefined {
  const md = (err as grpc.ServiceError)?.metadata;
  const v = md?.get(LEADER_META)?.[0];
  return typeof v === 'string' && v ? v : undefined;
}

/**
 * Whether a failed call to a manager says to try another: "cannot answer" (unavailable, no
 * answer in time) and "not here". Definite answers (a bad request, a permission, a refused
 * change) are final.
 */
export function movesOn(err: unknown): boolean {
  const code = (err as grpc.ServiceError)?.code;
  return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED || triesElsewhere(err);
}

/**
 * Whether a failed call may have reached a server that acted on it. A refusal that points
 * elsewhere did not act; a call that never got a connection (grpc-js waited for one, "LB pick",
 * or found none) never left this process. Anything else (a deadline after sending, a dropped
 * connection) may have.
 */
export function mayHaveArrived(err: unknown): boolean {
  const e = err as grpc.ServiceError;
  if (e instanceof LeaderMoved) return true;
  if (triesElsewhere(e) || leaderHint(e)) return false;
  const details = e?.details ?? '';
  if (e?.code === grpc.status.DEADLINE_EXCEEDED) return !/Waiting for LB pick/.test(details);
  if (e?.code === grpc.status.UNAVAILABLE) return !/No connection established|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH/.test(details);
  return true;
}

/** Errors of callLeader whose every attempt failed before reaching a server that could act on it. */
const undelivered = new WeakSet<object>();

/** The call callLeader gave up on never reached a server that could have acted on it: asking again elsewhere cannot apply it twice. */
export function neverDelivered(err: unknown): boolean {
  return typeof err === 'object' && err !== null && undelivered.has(err);
}

/**
 * Call a leader-only method: try `addrs` in turn, jump straight to the leader
 * when a manager names it, until one answers or the deadline passes.
 */
export async function callLeader<Req, Res>(
  addrs: string[], tls: TlsMaterial, def: grpc.MethodDefinition<Req, Res>, req: Req,
  opts: {
    timeoutMs?: number;
    clients?: Map<string, grpc.Client>;
    /**
     * The leader as the caller knows it now (a manager's raft): when it names
     * another manager than the one a call waits on, the call is given up and
     * made there. A leader cut off by a partition answers nothing, and the
     * call would otherwise wait out its deadline after a new one was elected.
     */
    leader?: () => string | undefined;
  } = {},
): Promise<{ res: Res; addr: string }> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  const clients = opts.clients ?? new Map<string, grpc.Client>();
  const own = !opts.clients;
  const queue = [...addrs];
  let last: unknown;
  let arrived = false;
  try {
    for (let i = 0; Date.now() < deadline; i++) {
      const addr = queue.length > 0 ? queue.shift()! : addrs[i % addrs.length]!;
      if (!addr) break;
      let c = clients.get(addr);
      if (!c) clients.set(addr, (c = managerClient(addr, tls)));
      try {
        const res = await callFollowing(c, def, req, Math.max(500, Math.min(5000, deadline - Date.now())), addr, opts.leader);
        return { res, addr };
      } catch (e) {
        // A call given up for a new leader was cancelled, perhaps after it was sent.
        if (mayHaveArrived(e)) arrived = true;
        if (e instanceof LeaderMoved) {
          queue.unshift(e.leader);
          continue;
        }
        last = e;
        const hint = leaderHint(e);
        if (hint) {
          queue.unshift(hint);
          continue;
        }
        if (!movesOn(e)) throw e;
        if (queue.length === 0) await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    if (own) for (const c of clients.values()) c.close();
  }
  const err = last ?? new Error('no manager address known');
  if (!arrived && typeof err === 'object') undelivered.add(err as object);
  throw err;
}

class LeaderMoved extends Error {
  constructor(readonly leader: string) {
    super(`the leader is now ${leader}`);
  }
}

/** A unary call to addr, given up (LeaderMoved) as soon as leader() names another manager. */
function callFollowing<Req, Res>(c: grpc.Client, def: grpc.MethodDefinition<Req, Res>, req: Req, timeoutMs: number, addr: string, leader?: () => string | undefined): Promise<Res> {
  if (!leader) return call(c, def, req, timeoutMs);
  return new Promise((resolve, reject) => {
    // Settled once: after a LeaderMoved, the cancelled call's own error is ignored.
    const watch = setInterval(() => {
      const now = leader();
      if (!now || now === addr) return;
      clearInterval(watch);
      reject(new LeaderMoved(now));
      pending.cancel();
    }, 50);
    const pending = c.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, req, new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs }, (err, res) => {
        clearInterval(watch);
        if (err) reject(err);
        else resolve(res!);
      });
  });
}
