// The caller's certificate over real mutual TLS (grpc-js server and clients):
// read once per connection, not once per call, and the same as getAuthContext's.
import * as grpc from '@grpc/grpc-js';
import { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RootCA, generateKeyAndCsr } from '../../../manager/ca/index.js';
import { peerCertificate, peerIdentity } from '../../../manager/cluster/auth.js';
import { MemoryCertProvider } from '../../../cli/shoald/certprovider.js';

const whoAmI: grpc.MethodDefinition<Buffer, Buffer> = {
  path: '/test.Probe/WhoAmI', requestStream: false, responseStream: false,
  requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b,
};

describe('peer certificates over mutual TLS', () => {
  const ca = RootCA.create({ clusterId: 'c1' });
  const server = new grpc.Server();
  let port = 0;
  const seen: Array<{ fast: Buffer | undefined; slow: Buffer | undefined; who: string }> = [];
  const clients: grpc.Client[] = [];

  const client = (nodeId?: string, role: 'manager' | 'worker' = 'worker'): grpc.Client => {
    let c: grpc.Client;
    if (nodeId) {
      const { keyPem, csrPem } = generateKeyAndCsr();
      const { certPem } = ca.issue(csrPem, { nodeId, role, clusterId: 'c1', validityMs: 3600_000 });
      c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(keyPem), Buffer.from(certPem), { checkServerIdentity: () => undefined }));
    } else {
      c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(ca.certPem), null, null, { checkServerIdentity: () => undefined }));
    }
    clients.push(c);
    return c;
  };
  const ask = (c: grpc.Client): Promise<string> => new Promise((resolve, reject) => {
    c.makeUnaryRequest(whoAmI.path, whoAmI.requestSerialize, whoAmI.responseDeserialize, Buffer.alloc(0), (err, res) => (err ? reject(err) : resolve(res!.toString())));
  });

  beforeAll(async () => {
    const { keyPem, csrPem } = generateKeyAndCsr();
    const { certPem } = ca.issue(csrPem, { nodeId: 'srv', role: 'manager', clusterId: 'c1', validityMs: 3600_000 });
    server.addService({ WhoAmI: whoAmI } as grpc.ServiceDefinition, {
      WhoAmI: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const fast = peerCertificate(call);
        const slow = call.getAuthContext()?.sslPeerCertificate?.raw;
        const who = peerIdentity(call, ca, new Set())?.nodeId ?? '(none)';
        seen.push({ fast, slow, who });
        cb(null, Buffer.from(who));
      },
    });
    // As shoald serves: client certificates asked for, not required (a joining node has none yet).
    const provider = new MemoryCertProvider(ca.certPem, certPem, keyPem);
    const creds = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
  });

  afterAll(() => {
    for (const c of clients) c.close();
    server.forceShutdown();
  });

  it('reads each connection\'s certificate once, whatever the number of calls, and agrees with getAuthContext', async () => {
    const a = client('node-a');
    const b = client('node-b', 'manager');
    const anonymous = client();
    expect(await ask(a)).toBe('node-a'); // connections up before counting
    expect(await ask(b)).toBe('node-b');
    expect(await ask(anonymous)).toBe('(none)');
    seen.length = 0;
    const spy = vi.spyOn(TLSSocket.prototype, 'getPeerCertificate');
    try {
      const answers = await Promise.all([a, b, a, anonymous, b, a].map((c) => ask(c)));
      expect(answers).toEqual(['node-a', 'node-b', 'node-a', '(none)', 'node-b', 'node-a']);
      // Only the getAuthContext() reads in the handler (one per call): peerCertificate reads none.
      expect(spy.mock.calls.length).toBe(seen.filter((s) => s.slow !== undefined).length);
    } finally {
      spy.mockRestore();
    }
    for (const s of seen) {
      expect(s.fast === undefined).toBe(s.slow === undefined);
      if (s.fast) expect(s.fast.equals(s.slow!)).toBe(true);
    }
    expect(seen.filter((s) => s.fast === undefined).map((s) => s.who)).toEqual(['(none)']);
  });
});
