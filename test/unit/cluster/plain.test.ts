// Store objects decode from protobuf into plain objects with every field
// present, so they survive freezing, cloning and JSON (static protobufjs keeps
// defaults on prototypes, where all three would lose them).
import { describe, expect, it } from 'vitest';
import { api, plain } from '../../../proto/services.js';
import { nodesTable } from '../../../manager/cluster/tables.js';

describe('store codecs of cluster objects', () => {
  it('a node with default enum values keeps them through encode/decode, clone and JSON', () => {
    const node = {
      id: 'n1', meta: { version: 7, createdAt: 1, updatedAt: 2 },
      spec: { labels: { zone: 'eu' }, desiredRole: api.NodeRole.ROLE_WORKER, availability: api.NodeAvailability.AVAILABILITY_ACTIVE },
      description: { hostname: 'host1', platform: { os: 'linux', architecture: 'x64' }, resources: null, version: '0.1.0', engineLabels: {} },
      status: { state: api.NodeState.NODE_READY, message: '', addr: '10.0.0.1', updatedAt: 3 },
      managerStatus: null, role: api.NodeRole.ROLE_WORKER, certificate: null,
    };
    const decoded = nodesTable.codec.decode(nodesTable.codec.encode(node as never));
    expect(Object.prototype.hasOwnProperty.call(decoded, 'role')).toBe(true);
    expect(decoded.role).toBe(0);
    expect(decoded.spec!.availability).toBe(0);
    expect(decoded.spec!.labels).toEqual({ zone: 'eu' });
    expect(structuredClone(decoded).spec!.desiredRole).toBe(0);
    expect(JSON.parse(JSON.stringify(decoded)).status.state).toBe(api.NodeState.NODE_READY);
    expect(decoded.description!.hostname).toBe('host1');
  });

  it('plain() copies nested messages and arrays, and leaves bytes alone', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const p = plain({ a: [{ b: 1 }], c: bytes, d: null });
    expect(p).toEqual({ a: [{ b: 1 }], c: bytes, d: null });
    expect(p.c).toBe(bytes);
  });
});
