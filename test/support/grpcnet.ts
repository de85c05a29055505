// What tests of node-to-manager calls over real gRPC share: the certificates
// of a real cluster CA (a manager's for servers, a worker's for clients), and a
// TCP relay whose traffic can be frozen (both sockets stay open, nothing passes:
// a cut link, a host powered off, a partition).
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { RootCA, generateKeyAndCsr } from '../../manager/ca/index.js';

export interface TestTls {
  /** A worker's client material (cluster CA, worker certificate and key). */
  worker: { caPem: string; certPem: string; keyPem: string };
  /** A manager's client material. */
  manager: { caPem: string; certPem: string; keyPem: string };
  /** A manager's server credentials, asking clients for a certificate of the same CA. */
  serverCreds: grpc.ServerCredentials;
}

export function testClusterTls(clusterId: string): TestTls {
  const ca = RootCA.create({ clusterId });
  const mgr = generateKeyAndCsr();
  const wrk = generateKeyAndCsr();
  const mgrCert = ca.issue(mgr.csrPem, { nodeId: 'mgr1', role: 'manager', clusterId, validityMs: 3600_000 }).certPem;
  const wrkCert = ca.issue(wrk.csrPem, { nodeId: 'wrk1', role: 'worker', clusterId, validityMs: 3600_000 }).certPem;
  return {
    worker: { caPem: ca.certPem, certPem: wrkCert, keyPem: wrk.keyPem },
    manager: { caPem: ca.certPem, certPem: mgrCert, keyPem: mgr.keyPem },
    serverCreds: grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ cert_chain: Buffer.from(mgrCert), private_key: Buffer.from(mgr.keyPem) }], true),
  };
}

export interface FrozenRelay {
  /** Where to connect instead of the target. */
  addr: string;
  /** From now on nothing passes, either way; the sockets stay open. */
  freeze(): void;
  close(): void;
}

/** A TCP relay in front of `target` (host:port). */
export async function frozenRelay(target: string): Promise<FrozenRelay> {
  const pairs: Array<[net.Socket, net.Socket]> = [];
  const [host, port] = target.split(':');
  const srv = net.createServer((inbound) => {
    const outbound = net.connect(Number(port), host);
    inbound.pipe(outbound).pipe(inbound);
    for (const sock of [inbound, outbound]) sock.on('error', () => undefined);
    pairs.push([inbound, outbound]);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    addr: `127.0.0.1:${(srv.address() as net.AddressInfo).port}`,
    freeze() {
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    close() {
      for (const sock of pairs.flat()) sock.destroy();
      srv.close();
    },
  };
}
