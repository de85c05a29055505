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

/** A method whose responses stream (server streaming). */
export function serverStream<Req, Res>(service: string, method: string, req: Codec<Req>, res: Codec<Res>): grpc.MethodDefinition<Req, Res> {
  return { ...unary(service, method, req, res), responseStream: true };
}

/** A method whose requests stream (client streaming). */
export function clientStream<Req, Res>(service: string, method: string, req: Codec<Req>, res: Codec<Res>): grpc.MethodDefinition<Req, Res> {
  return { ...unary(service, method, req, res), requestStream: true };
}

/** A method whose requests and responses both stream. */
export function bidiStream<Req, Res>(service: string, method: string, req: Codec<Req>, res: Codec<Res>): grpc.MethodDefinition<Req, Res> {
  return { ...unary(service, method, req, res), requestStream: true, responseStream: true };
}

/* eslint-disable @typescript-eslint/no-explicit-any */
const c = <T>(t: any): Codec<T> => t as Codec<T>;

export type Node = InstanceType<Api['Node']>;
export type Cluster = InstanceType<Api['Cluster']>;
export type NodeSpec = InstanceType<Api['NodeSpec']>;
export type ClusterSpec = InstanceType<Api['ClusterSpec']>;
export type NodeDescription = InstanceType<Api['NodeDescription']>;
export type ManagerAddr = InstanceType<Api['ManagerAddr']>;
export type Service = InstanceType<Api['Service']>;
export type ServiceSpec = InstanceType<Api['ServiceSpec']>;
export type Task = InstanceType<Api['Task']>;
export type TaskStatus = InstanceType<Api['TaskStatus']>;
export type LogLine = InstanceType<Api['LogLine']>;
type M<K extends keyof Api> = Api[K] extends abstract new (...a: any) => infer I ? I : never;

export const NodeCAService = {
  issueNodeCertificate: unary('NodeCA', 'IssueNodeCertificate', c<InstanceType<Api['IssueNodeCertificateRequest']>>(api.IssueNodeCertificateRequest), c<InstanceType<Api['IssueNodeCertificateResponse']>>(api.IssueNodeCertificateResponse)),
  renewNodeCertificate: unary('NodeCA', 'RenewNodeCertificate', c<InstanceType<Api['RenewNodeCertificateRequest']>>(api.RenewNodeCertificateRequest), c<InstanceType<Api['RenewNodeCertificateResponse']>>(api.RenewNodeCertificateResponse)),
};

export const RaftMembershipService = {
  join: unary('RaftMembership', 'Join', c<InstanceType<Api['JoinRaftRequest']>>(api.JoinRaftRequest), c<InstanceType<Api['JoinRaftResponse']>>(api.JoinRaftResponse)),
  leave: unary('RaftMembership', 'Leave', c<InstanceType<Api['LeaveRaftRequest']>>(api.LeaveRaftRequest), c<InstanceType<Api['Empty']>>(api.Empty)),
};

export const DispatcherService = {
  /** One beat per call: what agents before the stream used; still served during a rolling upgrade. */
  heartbeat: unary('Dispatcher', 'Heartbeat', c<M<'HeartbeatRequest'>>(api.HeartbeatRequest), c<M<'HeartbeatResponse'>>(api.HeartbeatResponse)),
  /**
   * A node's heartbeats: one long-lived stream to the leader, a request per period, an answer to
   * each, in order. (A unary call per beat cost the leader a new HTTP/2 stream, headers and
   * grpc-js's per-call machinery every period for every node.)
   */
  heartbeats: bidiStream('Dispatcher', 'Heartbeats', c<M<'HeartbeatRequest'>>(api.HeartbeatRequest), c<M<'HeartbeatResponse'>>(api.HeartbeatResponse)),
  /** The worker's session: its assignments (whole set, then changes) and log subscriptions. */
  session: serverStream('Dispatcher', 'Session', c<M<'SessionRequest'>>(api.SessionRequest), c<M<'SessionMessage'>>(api.SessionMessage)),
  updateTaskStatus: unary('Dispatcher', 'UpdateTaskStatus', c<M<'UpdateTaskStatusRequest'>>(api.UpdateTaskStatusRequest), c<M<'Empty'>>(api.Empty)),
  publishLogs: clientStream('Dispatcher', 'PublishLogs', c<M<'PublishLogsRequest'>>(api.PublishLogsRequest), c<M<'Empty'>>(api.Empty)),
};

export const ControlService = {
  listNodes: unary('Control', 'ListNodes', c<InstanceType<Api['ListNodesRequest']>>(api.ListNodesRequest), c<InstanceType<Api['ListNodesResponse']>>(api.ListNodesResponse)),
  getNode: unary('Control', 'GetNode', c<InstanceType<Api['GetNodeRequest']>>(api.GetNodeRequest), c<Node>(api.Node)),
  updateNode: unary('Control', 'UpdateNode', c<InstanceType<Api['UpdateNodeRequest']>>(api.UpdateNodeRequest), c<Node>(api.Node)),
  removeNode: unary('Control', 'RemoveNode', c<InstanceType<Api['RemoveNodeRequest']>>(api.RemoveNodeRequest), c<InstanceType<Api['Empty']>>(api.Empty)),
  getCluster: unary('Control', 'GetCluster', c<InstanceType<Api['Empty']>>(api.Empty), c<Cluster>(api.Cluster)),
  updateCluster: unary('Control', 'UpdateCluster', c<InstanceType<Api['UpdateClusterRequest']>>(api.UpdateClusterRequest), c<Cluster>(api.Cluster)),
  createService: unary('Control', 'CreateService', c<M<'CreateServiceRequest'>>(api.CreateServiceRequest), c<Service>(api.Service)),
  getService: unary('Control', 'GetService', c<M<'GetServiceRequest'>>(api.GetServiceRequest), c<Service>(api.Service)),
  listServices: unary('Control', 'ListServices', c<M<'ListServicesRequest'>>(api.ListServicesRequest), c<M<'ListServicesResponse'>>(api.ListServicesResponse)),
  updateService: unary('Control', 'UpdateService', c<M<'UpdateServiceRequest'>>(api.UpdateServiceRequest), c<Service>(api.Service)),
  removeService: unary('Control', 'RemoveService', c<M<'RemoveServiceRequest'>>(api.RemoveServiceRequest), c<M<'Empty'>>(api.Empty)),
  listTasks: unary('Control', 'ListTasks', c<M<'ListTasksRequest'>>(api.ListTasksRequest), c<M<'ListTasksResponse'>>(api.ListTasksResponse)),
  /** Streams the output of a service's tasks from the workers through the managers. */
  serviceLogs: serverStream('Control', 'ServiceLogs', c<M<'ServiceLogsRequest'>>(api.ServiceLogsRequest), c<M<'ServiceLogsMessage'>>(api.ServiceLogsMessage)),
};

export const LocalService = {
  init: unary('Local', 'Init', c<InstanceType<Api['InitRequest']>>(api.InitRequest), c<InstanceType<Api['InitResponse']>>(api.InitResponse)),
  join: unary('Local', 'Join', c<InstanceType<Api['JoinRequest']>>(api.JoinRequest), c<InstanceType<Api['JoinResponse']>>(api.JoinResponse)),
  leave: unary('Local', 'Leave', c<InstanceType<Api['LeaveRequest']>>(api.LeaveRequest), c<InstanceType<Api['Empty']>>(api.Empty)),
  info: unary('Local', 'Info', c<InstanceType<Api['Empty']>>(api.Empty), c<InstanceType<Api['InfoResponse']>>(api.InfoResponse)),
  /** Loads an OCI image tarball into this host's runtime (hosts without a registry). */
  loadImage: serverStream('Local', 'LoadImage', c<M<'LoadImageRequest'>>(api.LoadImageRequest), c<M<'PullProgress'>>(api.PullProgress)),
  /** The images in this host's runtime. */
  listImages: unary('Local', 'ListImages', c<InstanceType<Api['Empty']>>(api.Empty), c<M<'ListImagesResponse'>>(api.ListImagesResponse)),
  /**
   * Pulls an image into this host's runtime from its registry, with this host's registry
   * credentials; streams its progress, a message per layer step, then one with `pulled`.
   */
  pullImage: serverStream('Local', 'PullImage', c<M<'PullImageRequest'>>(api.PullImageRequest), c<M<'PullProgress'>>(api.PullProgress)),
  /** Removes an image's name from this host's runtime (refused while containers of this host use it, unless forced). */
  removeImage: unary('Local', 'RemoveImage', c<M<'RemoveImageRequest'>>(api.RemoveImageRequest), c<M<'ImageRef'>>(api.ImageRef)),
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
