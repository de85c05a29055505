// The certificates this CA issues must work for grpc-js mutual TLS (Node's TLS underneath):
// a manager serving, a worker calling, and the handshake refusing what it should.
import * as grpc from '@grpc/grpc-js';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaError, MANAGER_SERVER_NAME, RootCA, generateKeyAndCsr, type NodeRole } from '../../../manager/ca/index.js';

const HOUR = 3_600_000;
const PATH = '/shoal.test.Echo/WhoAmI';
const raw = (b: Buffer): Buffer => b;
const service: grpc.ServiceDefinition = {
  whoAmI: {
    path: PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

interface Creds {
  nodeId: string;
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

function creds(ca: RootCA, nodeId: string, role: NodeRole, validityMs = HOUR): Creds {
  const { keyPem, csrPem } = generateKeyAndCsr();
  const { certPem } = ca.issue(csrPem, { nodeId, role, clusterId: ca.clusterId!, validityMs });
  return { nodeId, cert: Buffer.from(certPem), key: Buffer.from(keyPem), ca: Buffer.from(ca.certPem) };
}

async function serve(ca: RootCA, me: Creds): Promise<{ server: grpc.Server; addr: string; calls: string[] }> {
  const calls: string[] = [];
  const server = new grpc.Server();
  server.addService(service, {
    whoAmI: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      // What the dispatcher and control API will do: identify the caller from its certificate.
      const peer = call.getAuthContext().sslPeerCertificate;
      try {
        const id = ca.verify(peer!.raw);
        calls.push(id.nodeId);
        cb(null, Buffer.from(`${id.nodeId}/${id.role}`));
      } catch (e) {
        cb({ code: grpc.status.PERMISSION_DENIED, details: (e as Error).message });
      }
    },
  });
  const sc = grpc.ServerCredentials.createSsl(me.ca, [{ cert_chain: me.cert, private_key: me.key }], true);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', sc, (e, p) => (e ? rej(e) : res(p))));
  return { server, addr: `127.0.0.1:${port}`, calls };
}

function call(addr: string, me: Creds, serverName: string): Promise<string> {
  const client = new grpc.Client(addr, grpc.credentials.createSsl(me.ca, me.key, me.cert), {
    // Node IDs are not host names: the server is checked against the name we expect it to carry.
    'grpc.ssl_target_name_override': serverName,
    'grpc.use_local_subchannel_pool': 1,
  });
  return new Promise<string>((resolve, reject) => {
    client.makeUnaryRequest(PATH, raw, raw, Buffer.from('hi'), new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, v) => {
      client.close();
      if (err) reject(err);
      else resolve(v!.toString());
    });
  });
}

/**
 * grpc-js reports a refused handshake only as "Failed to connect", and Node's TLS server drops
 * such a connection without saying why. The reason is what Node's TLS verification finds, so it
 * is read from a plain Node TLS server that requests a client certificate but, unlike grpc-js's
 * (requestCert + rejectUnauthorized), reports the verdict instead of hanging up.
 */
async function tlsServerVerdict(server: Creds, client: Creds): Promise<string> {
  const srv = createServer({ cert: server.cert, key: server.key, ca: server.ca, requestCert: true, rejectUnauthorized: false });
  const verdict = new Promise<string>((resolve) => {
    srv.on('tlsClientError', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
    srv.on('secureConnection', (sock) => {
      resolve(sock.authorized ? 'accepted' : String(sock.authorizationError));
      sock.destroy();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const sock = connect({
    host: '127.0.0.1',
    port: (srv.address() as AddressInfo).port,
    ca: client.ca,
    cert: client.cert,
    key: client.key,
    checkServerIdentity: () => undefined,
  });
  sock.on('error', () => undefined);
  sock.on('data', () => undefined);
  try {
    return await verdict;
  } finally {
    sock.destroy();
    srv.close();
  }
}

describe('grpc-js mutual TLS with issued certificates', () => {
  let ca: RootCA;
  let otherCa: RootCA;
  let manager: Creds;
  let worker: Creds;
  let srv: Awaited<ReturnType<typeof serve>>;

  beforeAll(async () => {
    ca = RootCA.create({ clusterId: 'mtls' });
    otherCa = RootCA.create({ clusterId: 'elsewhere' });
    manager = creds(ca, 'managernode1', 'manager');
    worker = creds(ca, 'workernode1', 'worker');
    srv = await serve(ca, manager);
  });
  afterAll(() => srv?.server.forceShutdown());

  it('a worker calls a manager, pinning it by node ID or by role', async () => {
    expect(await call(srv.addr, worker, manager.nodeId)).toBe('workernode1/worker');
    expect(await call(srv.addr, worker, MANAGER_SERVER_NAME)).toBe('workernode1/worker');
    expect(await tlsServerVerdict(manager, worker)).toBe('accepted');
  });

  it('the server refuses a client certificate from another CA', async () => {
    const intruder = { ...creds(otherCa, 'intruder', 'manager'), ca: Buffer.from(ca.certPem) };
    const before = srv.calls.length;
    await expect(call(srv.addr, intruder, manager.nodeId)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(srv.calls.length).toBe(before);
    expect(await tlsServerVerdict(manager, intruder)).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('the client refuses a server that is not the node (or role) it expects', async () => {
    const w2 = await serve(ca, creds(ca, 'workernode2', 'worker'));
    try {
      await expect(call(w2.addr, worker, MANAGER_SERVER_NAME)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      await expect(call(w2.addr, worker, 'managernode1')).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect(await call(w2.addr, worker, 'workernode2')).toBe('workernode1/worker');
    } finally {
      w2.server.forceShutdown();
    }
  });

  it('an expired client certificate is refused by the handshake and by verify()', async () => {
    const short = creds(ca, 'shortlived', 'worker', 1);
    const notAfter = ca.verify(short.cert.toString()).notAfter; // still valid: notAfter is rounded up to a second
    // TLS compares whole seconds: wait until strictly past notAfter.
    await new Promise((r) => setTimeout(r, Math.max(0, notAfter.getTime() + 1100 - Date.now())));
    await expect(call(srv.addr, short, manager.nodeId)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(srv.calls).not.toContain('shortlived');
    expect(await tlsServerVerdict(manager, short)).toBe('CERT_HAS_EXPIRED');
    let err: unknown;
    try {
      ca.verify(short.cert.toString());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CaError);
    expect((err as CaError).code).toBe('CERT_EXPIRED');
  });
});
