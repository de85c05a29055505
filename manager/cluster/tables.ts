// The store tables of the cluster: protobuf on the wire and in raft, plain
// objects in memory (see plain() in proto/services.ts).
import { defineTable, type Codec, type StoreObject } from '../store/index.js';
import { api, plain, type Cluster, type Node, type Service, type Task } from '../../proto/services.js';

export type NodeObject = Node & StoreObject;
export type ClusterObject = Cluster & StoreObject;
export type ServiceObject = Service & StoreObject;
export type TaskObject = Task & StoreObject;

function protoCodec<T>(type: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T }): Codec<T> {
  return {
    encode: (obj) => type.encode(obj).finish(),
    decode: (bytes) => plain(type.decode(bytes)),
  };
}

export const nodesTable = defineTable<NodeObject>({
  name: 'nodes',
  codec: protoCodec(api.Node as never) as Codec<NodeObject>,
  indexes: [
    { name: 'hostname', key: (n) => n.description?.hostname || undefined },
    { name: 'raftId', key: (n) => (n.managerStatus && n.managerStatus.raftId ? String(n.managerStatus.raftId) : undefined), unique: true },
  ],
});

export const clustersTable = defineTable<ClusterObject>({
  name: 'clusters',
  codec: protoCodec(api.Cluster as never) as Codec<ClusterObject>,
});

export const servicesTable = defineTable<ServiceObject>({
  name: 'services',
  codec: protoCodec(api.Service as never) as Codec<ServiceObject>,
  indexes: [{ name: 'name', key: (s) => s.spec?.name || undefined, unique: true }],
});

export const tasksTable = defineTable<TaskObject>({
  name: 'tasks',
  codec: protoCodec(api.Task as never) as Codec<TaskObject>,
  indexes: [
    { name: 'service', key: (t) => t.serviceId || undefined },
    { name: 'node', key: (t) => t.nodeId || undefined },
  ],
});

export const clusterTables = [nodesTable, clustersTable, servicesTable, tasksTable];

/** The one cluster object's id. */
export const CLUSTER_ID_KEY = 'default';
