// Who may call what: identities come from certificates checked against the
// cluster CA, removed nodes are refused, and roles gate the APIs.
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { RootCA, generateKeyAndCsr } from '../../../manager/ca/index.js';
import { CallError, peerIdentity, relayedIdentity, requireRole, statusOf } from '../../../manager/cluster/auth.js';
import { RaftError } from '../../../manager/raft/core/errors.js';
import { StoreError } from '../../../manager/store/errors.js';
import { newObjectId, newRaftId } from '../../../manager/cluster/ids.js';

const callWith = (pem?: string) => ({
  getAuthContext: () => ({ sslPeerCertificate: pem ? { raw: new X509Certificate(pem).raw } : undefined }),
});

describe('caller identity from client certificates', () => {
  let ca: RootCA;
  let other: RootCA;
  let managerPem: string;
  let workerPem: string;
  let foreignPem: string;
  beforeAll(() => {
    ca = RootCA.create({ clusterId: 'c1' });
    other = RootCA.create({ clusterId: 'c2' });
    const { csrPem } = generateKeyAndCsr();
    managerPem = ca.issue(csrPem, { nodeId: 'mgr1', role: 'manager', clusterId: 'c1', validityMs: 3600_000 }).certPem;
    workerPem = ca.issue(csrPem, { nodeId: 'wrk1', role: 'worker', clusterId: 'c1', validityMs: 3600_000 }).certPem;
    foreignPem = other.issue(csrPem, { nodeId: 'mgr1', role: 'manager', clusterId: 'c2', validityMs: 3600_000 }).certPem;
  });

  it('a certificate verified once is still held to its validity and to the removed list on every call', () => {
    const raw = new X509Certificate(managerPem).raw;
    expect(peerIdentity(callWith(managerPem), ca, new Set())).toMatchObject({ nodeId: 'mgr1', role: 'manager' });
    // Second call: the signature check is cached, the time is not.
    const notAfter = ca.verify(raw).notAfter;
    expect(() => ca.verify(raw, new Date(notAfter.getTime() + 1000))).toThrow(/expired at/);
    expect(() => peerIdentity(callWith(managerPem), ca, new Set(['mgr1']))).toThrow(/was removed from the cluster/);
    expect(peerIdentity(callWith(managerPem), ca, new Set())).toMatchObject({ nodeId: 'mgr1' });
    // A foreign certificate is never cached as good: refused every time.
    expect(() => ca.verify(new X509Certificate(foreignPem).raw)).toThrow(/not by this cluster's CA/);
    expect(() => ca.verify(new X509Certificate(foreignPem).raw)).toThrow(/not by this cluster's CA/);
  });

  it('no certificate: no identity (only NodeCA.IssueNodeCertificate accepts that)', () => {
    expect(peerIdentity(callWith(), ca, new Set())).toBeUndefined();
  });

  it('reads node ID and role from a certificate of this cluster', () => {
    expect(peerIdentity(callWith(workerPem), ca, new Set())).toMatchObject({ nodeId: 'wrk1', role: 'worker', clusterId: 'c1' });
  });

  const cases: Array<[string, () => string, Set<string>, grpc.status, RegExp]> = [
    ['a certificate of another cluster', () => foreignPem, new Set(), grpc.status.UNAUTHENTICATED, /client certificate refused/],
    ['a removed node', () => managerPem, new Set(['mgr1']), grpc.status.PERMISSION_DENIED, /was removed from the cluster/],
  ];
  it.each(cases)('refuses %s', (_what, pem, removed, code, msg) => {
    try {
      peerIdentity(callWith(pem()), ca, removed);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(CallError);
      expect((e as CallError).code).toBe(code);
      expect((e as CallError).message).toMatch(msg);
    }
  });

  it('a worker certificate may not call the control API; a manager certificate may', () => {
    const w = peerIdentity(callWith(workerPem), ca, new Set());
    expect(() => requireRole(w, ['manager'], 'the control API')).toThrow(/the control API is not allowed for a worker certificate \(node wrk1\)/);
    expect(requireRole(peerIdentity(callWith(managerPem), ca, new Set()), ['manager'], 'x').nodeId).toBe('mgr1');
    expect(() => requireRole(undefined, ['manager'], 'the control API')).toThrow(/needs a cluster client certificate/);
  });
});

describe('identifiers', () => {
  it('node IDs are 25 base-36 characters and distinct', () => {
    const ids = Array.from({ length: 200 }, newObjectId);
    for (const id of ids) expect(id).toMatch(/^[0-9a-z]{25}$/);
    expect(new Set(ids).size).toBe(200);
  });
  it('raft IDs are positive safe integers, never 0 (raft\'s "none")', () => {
    for (let i = 0; i < 1000; i++) {
      const r = newRaftId();
      expect(r).toBeGreaterThan(0);
      expect(Number.isSafeInteger(r)).toBe(true);
    }
  });
});

describe('the status a handler\'s error goes back as (unary calls, heartbeat, session, log streams)', () => {
  const md = new grpc.Metadata();
  md.set('x-shoal-leader', '10.0.0.1:4377');
  const relayed = Object.assign(new Error('14 UNAVAILABLE: connection refused'), { code: grpc.status.UNAVAILABLE, details: 'connection refused', metadata: md });
  it.each([
    { case: 'a CallError: its code, message and metadata', e: new CallError(grpc.status.NOT_FOUND, 'no such node', md), want: { code: grpc.status.NOT_FOUND, details: 'no such node', metadata: md } },
    { case: 'a gRPC error from a call to another node: relayed as it came', e: relayed, want: { code: grpc.status.UNAVAILABLE, details: 'connection refused', metadata: md } },
    { case: 'a gRPC status without details: its message', e: Object.assign(new Error('cancelled by the client'), { code: grpc.status.CANCELLED }), want: { code: grpc.status.CANCELLED, details: 'cancelled by the client' } },
    { case: 'a raft error (a string code, an object of details): INTERNAL', e: new RaftError('UNAVAILABLE', 'requested entry at index is unavailable'), want: { code: grpc.status.INTERNAL, details: 'requested entry at index is unavailable' } },
    { case: 'a store error: INTERNAL', e: new StoreError('CONFLICT', 'version mismatch'), want: { code: grpc.status.INTERNAL, details: 'version mismatch' } },
    { case: 'a system error (ENOENT): INTERNAL', e: Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' }), want: { code: grpc.status.INTERNAL, details: 'ENOENT: no such file' } },
    { case: 'a number that is no gRPC status: INTERNAL', e: Object.assign(new Error('exit 127'), { code: 127 }), want: { code: grpc.status.INTERNAL, details: 'exit 127' } },
    { case: 'not an Error at all', e: 'boom', want: { code: grpc.status.INTERNAL, details: 'boom' } },
  ])('$case', ({ e, want }) => {
    const got = statusOf(e);
    expect({ code: got.code, details: got.details }).toEqual({ code: want.code, details: want.details });
    expect(got.metadata).toBe((want as { metadata?: grpc.Metadata }).metadata);
  });
});

describe('a node relayed by a manager (relayedIdentity)', () => {
  const via = (role: 'manager' | 'worker') =>
    ({ nodeId: 'relayer', role, clusterId: 'c1', notBefore: new Date(0), notAfter: new Date(0), serial: '1' });
  const md = (kv: Record<string, string>) => {
    const m = new grpc.Metadata();
    for (const [k, v] of Object.entries(kv)) m.set(k, v);
    return m;
  };
  const vouched = { 'x-shoal-relayed-node': 'w1', 'x-shoal-relayed-role': 'worker', 'x-shoal-relayed-peer': '10.0.0.5' };

  it.each([
    { what: 'a call of the caller\'s own', via: via('manager'), md: {}, want: undefined },
    { what: 'a manager vouching for a worker', via: via('manager'), md: vouched, want: { nodeId: 'w1', role: 'worker', peer: '10.0.0.5' } },
    { what: 'a manager vouching for a manager', via: via('manager'), md: { ...vouched, 'x-shoal-relayed-node': 'm2', 'x-shoal-relayed-role': 'manager' }, want: { nodeId: 'm2', role: 'manager', peer: '10.0.0.5' } },
    { what: 'a worker vouching for another node', via: via('worker'), md: vouched, err: [grpc.status.PERMISSION_DENIED, /only a manager may relay another node's calls \(node relayer has a worker certificate\)/] },
    { what: 'a removed node', via: via('manager'), md: { ...vouched, 'x-shoal-relayed-node': 'gone' }, err: [grpc.status.PERMISSION_DENIED, /node gone was removed from the cluster/] },
    { what: 'no role', via: via('manager'), md: { 'x-shoal-relayed-node': 'w1' }, err: [grpc.status.INVALID_ARGUMENT, /relayed call for node w1 without a valid role/] },
    { what: 'a role that is none', via: via('manager'), md: { ...vouched, 'x-shoal-relayed-role': 'admin' }, err: [grpc.status.INVALID_ARGUMENT, /without a valid role \(admin\)/] },
  ] as const)('$what', (t) => {
    const run = () => relayedIdentity(md(t.md as Record<string, string>), t.via, new Set(['gone']));
    if ('err' in t && t.err) {
      expect(run).toThrowError(CallError);
      try {
        run();
      } catch (e) {
        expect((e as CallError).code).toBe(t.err[0]);
        expect((e as CallError).message).toMatch(t.err[1]);
      }
      return;
    }
    const got = run();
    if (!('want' in t) || t.want === undefined) return expect(got).toBeUndefined();
    expect({ nodeId: got!.id.nodeId, role: got!.id.role, peer: got!.peer }).toEqual(t.want);
    expect(got!.id.clusterId).toBe('c1');
  });
});
