// grpc-js service definitions for shoal.api, built by hand over the static
// protobufjs code (no reflection at run time): each method names its request
// and response types, and clients/servers get typed (de)serializers.
import type * as grpc from '@grpc/grpc-js';
import { shoal } from './gen/api.js';

export const api = shoal.api;
export type Api = typeof api;

interface Codec<T> {
  encode(m: T): { finish(): Uint8Array };
  decode(b: Uint8Array): T;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export function unary<Req, Res>(service: string, method: string, req: Codec<Req>, res: Codec<Res>): grpc.MethodDefinition<Req, Res> {
  return {
    path: `/shoal.api.${service}/${method}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: Req) => toBuffer(req.encode(m).finish()),
    requestDeserialize: (b: Buffer) => req.decode(b),
    responseSerialize: (m: Res) => toBuffer(res.encode(m).finish()),
    responseDeserialize: (b: Buffer) => res.decode(b),
  };
}

/* eslint-disable @typescript-eslint/no-explicit-any */
const c = <T>(t: any): Codec<T> => t as Codec<T>;

export type Node = InstanceType<Api['Node']>;
export type Cluster = InstanceType<Api['Cluster']>;
export type NodeSpec = InstanceType<Api['NodeSpec']>;
export type ClusterSpec = InstanceType<Api['ClusterSpec']>;
export type NodeDescription = InstanceType<Api['NodeDescription']>;
export type ManagerAddr = InstanceType<Api['ManagerAddr']>;

export const NodeCAService = {
  issueNodeCertificate: unary('NodeCA', 'IssueNodeCertificate', c<InstanceType<Api['IssueNodeCertificateRequest']>>(api.IssueNodeCertificateRequest), c<InstanceType<Api['IssueNodeCertificateResponse']>>(api.IssueNodeCertificateResponse)),
  renewNodeCertificate: unary('NodeCA', 'RenewNodeCertificate', c<InstanceType<Api['RenewNodeCertificateRequest']>>(api.RenewNodeCertificateRequest), c<InstanceType<Api['RenewNodeCertificateResponse']>>(api.RenewNodeCertificateResponse)),
};

export const RaftMembershipService = {
  join: unary('RaftMembership', 'Join', c<InstanceType<Api['JoinRaftRequest']>>(api.JoinRaftRequest), c<InstanceType<Api['JoinRaftResponse']>>(api.JoinRaftResponse)),
  leave: unary('RaftMembership', 'Leave', c<InstanceType<Api['LeaveRaftRequest']>>(api.LeaveRaftRequest), c<InstanceType<Api['Empty']>>(api.Empty)),
};

export const DispatcherService = {
  heartbeat: unary('Dispatcher', 'Heartbeat', c<InstanceType<Api['HeartbeatRequest']>>(api.HeartbeatRequest), c<InstanceType<Api['HeartbeatResponse']>>(api.HeartbeatResponse)),
};

export const ControlService = {
  listNodes: unary('Control', 'ListNodes', c<InstanceType<Api['ListNodesRequest']>>(api.ListNodesRequest), c<InstanceType<Api['ListNodesResponse']>>(api.ListNodesResponse)),
  getNode: unary('Control', 'GetNode', c<InstanceType<Api['GetNodeRequest']>>(api.GetNodeRequest), c<Node>(api.Node)),
  updateNode: unary('Control', 'UpdateNode', c<InstanceType<Api['UpdateNodeRequest']>>(api.UpdateNodeRequest), c<Node>(api.Node)),
  removeNode: unary('Control', 'RemoveNode', c<InstanceType<Api['RemoveNodeRequest']>>(api.RemoveNodeRequest), c<InstanceType<Api['Empty']>>(api.Empty)),
  getCluster: unary('Control', 'GetCluster', c<InstanceType<Api['Empty']>>(api.Empty), c<Cluster>(api.Cluster)),
  updateCluster: unary('Control', 'UpdateCluster', c<InstanceType<Api['UpdateClusterRequest']>>(api.UpdateClusterRequest), c<Cluster>(api.Cluster)),
};

export const LocalService = {
  init: unary('Local', 'Init', c<InstanceType<Api['InitRequest']>>(api.InitRequest), c<InstanceType<Api['InitResponse']>>(api.InitResponse)),
  join: unary('Local', 'Join', c<InstanceType<Api['JoinRequest']>>(api.JoinRequest), c<InstanceType<Api['JoinResponse']>>(api.JoinResponse)),
  leave: unary('Local', 'Leave', c<InstanceType<Api['LeaveRequest']>>(api.LeaveRequest), c<InstanceType<Api['Empty']>>(api.Empty)),
  info: unary('Local', 'Info', c<InstanceType<Api['Empty']>>(api.Empty), c<InstanceType<Api['InfoResponse']>>(api.InfoResponse)),
};
/* eslint-enable @typescript-eslint/no-explicit-any */

/** grpc-js wants a plain object of method definitions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function serviceDef<T extends Record<string, grpc.MethodDefinition<any, any>>>(s: T): grpc.ServiceDefinition {
  return s as unknown as grpc.ServiceDefinition;
}

/**
 * Static protobufjs messages keep defaults on their prototypes: copy one into
 * a plain object with every field present, so it survives cloning, freezing
 * and JSON.stringify (enumerable inherited fields are the message's fields).
 */
export function plain<T>(msg: T): T {
  if (msg === null || msg === undefined || typeof msg !== 'object') return msg;
  if (ArrayBuffer.isView(msg)) return msg;
  if (Array.isArray(msg)) return msg.map((m) => plain(m)) as unknown as T;
  const out: Record<string, unknown> = {};
  for (const k in msg as Record<string, unknown>) {
    const v = (msg as Record<string, unknown>)[k];
    if (typeof v === 'function') continue;
    out[k] = plain(v);
  }
  return out as T;
}
