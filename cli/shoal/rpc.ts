// How the CLI reaches a daemon: the local shoald over its unix socket, or with
// --host a remote manager over mutual TLS (following it to the leader). Unary
// calls (rpc) and server streams (stream) share the connection and the error
// wording.
import * as grpc from '@grpc/grpc-js';
import { readTlsFiles } from '../../proto/tlsfiles.js';
import { call, callLeader, leaderHint, localClient, managerClient, triesElsewhere, type TlsMaterial } from '../../proto/client.js';

/** A mistake in how the command was called (exit code 2). */
export class UsageError extends Error {}

export interface GlobalOpts { socket: string; host?: string; tlscacert?: string; tlscert?: string; tlskey?: string }

let globalOpts: () => GlobalOpts = () => ({ socket: process.env.SHOAL_SOCKET ?? '/var/lib/shoal/shoald.sock' });

/** Where the global options (--socket, --host, TLS files) come from: the program, once it parsed them. */
export function useGlobalOpts(get: () => GlobalOpts): void {
  globalOpts = get;
}

let client: grpc.Client | undefined;
/** Channels to remote managers (with --host), kept for the whole command. */
const remoteClients = new Map<string, grpc.Client>();

function tlsMaterial(o: GlobalOpts): TlsMaterial {
  try {
    return readTlsFiles({ caFile: o.tlscacert!, certFile: o.tlscert!, keyFile: o.tlskey! });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The local daemon over its unix socket, or with --host a remote manager over mutual TLS. */
export function daemon(): grpc.Client {
  if (client) return client;
  const o = globalOpts();
  if (!o.host) return (client = localClient(o.socket));
  if (!o.tlscacert || !o.tlscert || !o.tlskey) {
    throw new UsageError('--host needs --tlscacert, --tlscert and --tlskey: a manager\'s client certificate (e.g. from its state dir: certs/ca.pem, certs/node.pem, certs/node-key.pem)');
  }
  return (client = managerClient(o.host, tlsMaterial(o)));
}

/** Closes every channel the command opened (lets the process exit). */
export function closeClients(): void {
  client?.close();
  client = undefined;
  for (const c of remoteClients.values()) c.close();
  remoteClients.clear();
}

/** A gRPC failure in words: the daemon's own message, or why its socket cannot be reached. */
function translate(e: unknown): Error {
  if (e instanceof UsageError) return e;
  const err = e as grpc.ServiceError;
  const socket = globalOpts().socket;
  // Only when the failed connection is to our own socket: an UNAVAILABLE from
  // the daemon (say, about another manager) is reported as the daemon said it.
  if (err.code === grpc.status.UNAVAILABLE && /No connection established/.test(err.details ?? '') && /ENOENT|ECONNREFUSED|EACCES/.test(err.details ?? '')
    && (err.details ?? '').includes(socket)) {
    return new Error(`cannot reach shoald at ${socket}: is the daemon running, and are you root? (set --socket or SHOAL_SOCKET)`);
  }
  const out = new RpcError(err.details || err.message);
  out.code = err.code;
  return out;
}

/** A refusal from the daemon or the cluster; `code` is the gRPC status. */
export class RpcError extends Error {
  code?: number;
}

function refuseLocalRemotely(path: string): void {
  if (globalOpts().host && path.startsWith('/shoal.api.Local/')) {
    throw new UsageError('this command acts on the local node: run it on that node (without --host)');
  }
}

export async function rpc<Req, Res>(def: grpc.MethodDefinition<Req, Res>, req: Req, timeoutMs = 30_000): Promise<Res> {
  refuseLocalRemotely(def.path);
  try {
    const o = globalOpts();
    if (o.host) {
      daemon(); // validates the TLS flags
      // A remote follower names the leader; follow it.
      return (await callLeader([o.host], tlsMaterial(o), def, req, { timeoutMs, clients: remoteClients })).res;
    }
    return await call(daemon(), def, req, timeoutMs);
  } catch (e) {
    throw translate(e);
  }
}

export interface Stream {
  /** Settles when the stream ends: resolves at its end or after cancel(), rejects on an error. */
  done: Promise<void>;
  cancel(): void;
}

/**
 * A server-streaming call: every message goes to onMessage. On the local socket the daemon
 * forwards to the leader itself; with --host a manager that is not the leader names it before
 * any message, and the call is made again there.
 */
export function stream<Req, Res>(def: grpc.MethodDefinition<Req, Res>, req: Req, onMessage: (m: Res) => void): Stream {
  let current: grpc.ClientReadableStream<Res> | undefined;
  let cancelled = false;
  const open = (c: grpc.Client): grpc.ClientReadableStream<Res> =>
    c.makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, req, new grpc.Metadata(), {});

  const done = new Promise<void>((resolve, reject) => {
    const o = globalOpts();
    let hops = 0;
    const run = (c: grpc.Client) => {
      let received = false;
      const s = (current = open(c));
      s.on('data', (m: Res) => {
        received = true;
        onMessage(m);
      });
      s.on('error', (e: grpc.ServiceError) => {
        if (cancelled || e.code === grpc.status.CANCELLED) return resolve();
        const hint = leaderHint(e);
        if (o.host && !received && hint && hops++ < 5) {
          let next = remoteClients.get(hint);
          if (!next) remoteClients.set(hint, (next = managerClient(hint, tlsMaterial(o))));
          return run(next);
        }
        if (o.host && !received && !hint && triesElsewhere(e)) {
          return reject(new RpcError(`${e.details || e.message} (and it named no leader to follow)`));
        }
        reject(translate(e));
      });
      s.on('end', () => resolve());
    };
    try {
      refuseLocalRemotely(def.path);
      run(daemon());
    } catch (e) {
      reject(translate(e));
    }
  });
  return {
    done,
    cancel: () => {
      cancelled = true;
      current?.cancel();
    },
  };
}
