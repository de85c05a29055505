// A thin typed gRPC client for containerd's API over its unix socket: method
// definitions written by hand over the static protobufjs code in
// proto/gen/containerd.js, the namespace (and lease) passed as metadata the way
// containerd's own Go client does.
import * as grpc from '@grpc/grpc-js';
import { containerd } from '../../../proto/gen/containerd.js';

interface Encoder<T> {
  encode(m: T): { finish(): Uint8Array };
}
interface Decoder<T> {
  decode(b: Uint8Array): T;
}

export interface Method<Req, Res> {
  path: string;
  serialize: (m: Req) => Buffer;
  deserialize: (b: Buffer) => Res;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function method<Req, Res>(service: string, name: string, req: Encoder<Req>, res: Decoder<Res>): Method<Req, Res> {
  return { path: `/containerd.services.${service}/${name}`, serialize: (m) => toBuffer(req.encode(m).finish()), deserialize: (b) => res.decode(b) };
}

const T = containerd.types;
const content = containerd.services.content.v1;
const images = containerd.services.images.v1;
const snapshots = containerd.services.snapshots.v1;
const diff = containerd.services.diff.v1;
const containers = containerd.services.containers.v1;
const tasks = containerd.services.tasks.v1;
const leases = containerd.services.leases.v1;
const version = containerd.services.version.v1;
const events = containerd.services.events.v1;

export const M = {
  version: method('version.v1.Version', 'Version', T.Empty, version.VersionResponse),

  contentInfo: method('content.v1.Content', 'Info', content.InfoRequest, content.InfoResponse),
  contentUpdate: method('content.v1.Content', 'Update', content.UpdateRequest, content.UpdateResponse),
  contentRead: method('content.v1.Content', 'Read', content.ReadContentRequest, content.ReadContentResponse),
  contentWrite: method('content.v1.Content', 'Write', content.WriteContentRequest, content.WriteContentResponse),
  contentAbort: method('content.v1.Content', 'Abort', content.AbortRequest, T.Empty),

  imageGet: method('images.v1.Images', 'Get', images.GetImageRequest, images.GetImageResponse),
  imageCreate: method('images.v1.Images', 'Create', images.CreateImageRequest, images.CreateImageResponse),
  imageUpdate: method('images.v1.Images', 'Update', images.UpdateImageRequest, images.UpdateImageResponse),
  imageList: method('images.v1.Images', 'List', images.ListImagesRequest, images.ListImagesResponse),
  imageDelete: method('images.v1.Images', 'Delete', images.DeleteImageRequest, T.Empty),

  snapshotPrepare: method('snapshots.v1.Snapshots', 'Prepare', snapshots.PrepareSnapshotRequest, snapshots.PrepareSnapshotResponse),
  snapshotMounts: method('snapshots.v1.Snapshots', 'Mounts', snapshots.MountsRequest, snapshots.MountsResponse),
  snapshotCommit: method('snapshots.v1.Snapshots', 'Commit', snapshots.CommitSnapshotRequest, T.Empty),
  snapshotRemove: method('snapshots.v1.Snapshots', 'Remove', snapshots.RemoveSnapshotRequest, T.Empty),
  snapshotStat: method('snapshots.v1.Snapshots', 'Stat', snapshots.StatSnapshotRequest, snapshots.StatSnapshotResponse),

  diffApply: method('diff.v1.Diff', 'Apply', diff.ApplyRequest, diff.ApplyResponse),

  containerGet: method('containers.v1.Containers', 'Get', containers.GetContainerRequest, containers.GetContainerResponse),
  containerList: method('containers.v1.Containers', 'List', containers.ListContainersRequest, containers.ListContainersResponse),
  containerCreate: method('containers.v1.Containers', 'Create', containers.CreateContainerRequest, containers.CreateContainerResponse),
  containerDelete: method('containers.v1.Containers', 'Delete', containers.DeleteContainerRequest, T.Empty),

  taskCreate: method('tasks.v1.Tasks', 'Create', tasks.CreateTaskRequest, tasks.CreateTaskResponse),
  taskStart: method('tasks.v1.Tasks', 'Start', tasks.StartRequest, tasks.StartResponse),
  taskDelete: method('tasks.v1.Tasks', 'Delete', tasks.DeleteTaskRequest, tasks.DeleteResponse),
  taskGet: method('tasks.v1.Tasks', 'Get', tasks.GetRequest, tasks.GetResponse),
  taskList: method('tasks.v1.Tasks', 'List', tasks.ListTasksRequest, tasks.ListTasksResponse),
  taskKill: method('tasks.v1.Tasks', 'Kill', tasks.KillRequest, T.Empty),
  taskWait: method('tasks.v1.Tasks', 'Wait', tasks.WaitRequest, tasks.WaitResponse),

  leaseCreate: method('leases.v1.Leases', 'Create', leases.CreateRequest, leases.CreateResponse),
  leaseDelete: method('leases.v1.Leases', 'Delete', leases.DeleteRequest, T.Empty),

  eventsPublish: method('events.v1.Events', 'Publish', events.PublishRequest, T.Empty),
  eventsSubscribe: method('events.v1.Events', 'Subscribe', events.SubscribeRequest, events.Envelope),
};

type Req<X> = X extends Method<infer R, unknown> ? R : never;
type Res<X> = X extends Method<never, infer R> ? R : never;

export interface CallOptions {
  /** Resources created by this call belong to the lease (kept from garbage collection while it lives). */
  lease?: string;
  /** Deadline in ms from now (default: the client's; 0 = none). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export const DEFAULT_SOCKET = '/run/containerd/containerd.sock';

export function grpcCode(err: unknown): number | undefined {
  return (err as grpc.ServiceError | undefined)?.code;
}
export const isNotFound = (err: unknown): boolean => grpcCode(err) === grpc.status.NOT_FOUND;
export const isAlreadyExists = (err: unknown): boolean => grpcCode(err) === grpc.status.ALREADY_EXISTS;
export const isUnavailable = (err: unknown): boolean => grpcCode(err) === grpc.status.UNAVAILABLE;

export class ContainerdClient {
  private readonly client: grpc.Client;

  constructor(
    readonly socketPath: string = DEFAULT_SOCKET,
    readonly namespace = 'shoal',
    private readonly defaultTimeoutMs = 60_000,
  ) {
    this.client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 32 * 1024 * 1024,
      'grpc.max_send_message_length': 32 * 1024 * 1024,
      // A local daemon that restarts should be found again within a second, not after
      // grpc's default backoff (up to two minutes).
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    });
  }

  metadata(lease?: string): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set('containerd-namespace', this.namespace);
    if (lease) md.set('containerd-lease', lease);
    return md;
  }

  private callOptions(o: CallOptions): grpc.CallOptions {
    const ms = o.timeoutMs ?? this.defaultTimeoutMs;
    return ms > 0 ? { deadline: Date.now() + ms } : {};
  }

  call<X extends Method<never, unknown>>(m: X, req: Req<X>, o: CallOptions = {}): Promise<Res<X>> {
    const mm = m as unknown as Method<Req<X>, Res<X>>;
    return new Promise((resolve, reject) => {
      const call = this.client.makeUnaryRequest(mm.path, mm.serialize, mm.deserialize, req, this.metadata(o.lease), this.callOptions(o), (err, res) => {
        o.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(res as Res<X>);
      });
      const onAbort = (): void => call.cancel();
      if (o.signal) {
        if (o.signal.aborted) call.cancel();
        else o.signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  /** A server stream, collected. */
  collect<X extends Method<never, unknown>>(m: X, req: Req<X>, o: CallOptions = {}): Promise<Res<X>[]> {
    const mm = m as unknown as Method<Req<X>, Res<X>>;
    return new Promise((resolve, reject) => {
      const out: Res<X>[] = [];
      const stream = this.client.makeServerStreamRequest(mm.path, mm.serialize, mm.deserialize, req, this.metadata(o.lease), this.callOptions(o));
      stream.on('data', (d: Res<X>) => out.push(d));
      stream.on('error', reject);
      stream.on('end', () => resolve(out));
    });
  }

  /** A server stream left open (no deadline), read by the caller (events Subscribe). */
  stream<X extends Method<never, unknown>>(m: X, req: Req<X>): grpc.ClientReadableStream<Res<X>> {
    const mm = m as unknown as Method<Req<X>, Res<X>>;
    return this.client.makeServerStreamRequest(mm.path, mm.serialize, mm.deserialize, req, this.metadata(), {});
  }

  /** A bidirectional stream (content Write). */
  bidi<X extends Method<never, unknown>>(m: X, o: CallOptions = {}): grpc.ClientDuplexStream<Req<X>, Res<X>> {
    const mm = m as unknown as Method<Req<X>, Res<X>>;
    return this.client.makeBidiStreamRequest(mm.path, mm.serialize, mm.deserialize, this.metadata(o.lease), this.callOptions(o));
  }

  close(): void {
    this.client.close();
  }
}
