// The Runtime interface: what the worker agent asks of a container runtime.
// Adapters (containerd over gRPC today, the Docker Engine API later) implement
// it; the agent never talks to a runtime directly.
//
// Containers are named by the caller (the agent uses the task ID) and carry
// the caller's labels, so that after a restart the agent can list what runs
// on the node and adopt it again instead of starting duplicates.

import { normalizeRef } from './reference.js';
import type { RegistryCredentials } from './registry.js';

export interface BindMount {
  type: 'bind';
  /** Absolute host path. */
  source: string;
  /** Absolute path inside the container. */
  target: string;
  readOnly?: boolean;
}

export interface TmpfsMount {
  type: 'tmpfs';
  target: string;
  /** Size limit in bytes (default: the kernel's, half of RAM). */
  sizeBytes?: number;
  /** Permission bits of the mount's root, e.g. 0o1777. */
  mode?: number;
}

export type Mount = BindMount | TmpfsMount;

export interface Resources {
  /** CPU limit in units of 1e-9 CPUs (Swarm's NanoCPUs): 1.5 CPUs = 1_500_000_000. */
  cpuLimitNano?: number;
  /** Hard memory limit in bytes. */
  memoryLimitBytes?: number;
  /** Maximum number of processes in the container. */
  pidsLimit?: number;
}

export interface ContainerSpec {
  /** Unique per runtime namespace: [A-Za-z0-9][A-Za-z0-9_.-]{0,75}. */
  id: string;
  /** Image reference, e.g. `shoal.local/busybox:1` or `busybox` (= docker.io/library/busybox:latest). */
  image: string;
  /** Replaces the image's ENTRYPOINT (Swarm's ContainerSpec.Command). */
  command?: string[];
  /** Replaces the image's CMD (Swarm's ContainerSpec.Args). */
  args?: string[];
  /** `KEY=value` entries; they override the image's entries of the same key. */
  env?: string[];
  /** Working directory (default: the image's, else /). */
  workdir?: string;
  /** `uid`, `uid:gid`, `name` or `name:group`; names are looked up in the image's /etc/passwd and /etc/group. */
  user?: string;
  /** Default: the first 12 characters of the id. */
  hostname?: string;
  mounts?: Mount[];
  /** Caller's labels, returned by list(). Keys starting with `shoal.runtime.` are reserved. */
  labels?: Record<string, string>;
  /** Signal name (`SIGTERM`, `TERM`) or number; default: the image's StopSignal, else SIGTERM. */
  stopSignal?: string;
  /** How long stop() waits after stopSignal before SIGKILL (default 10 s). */
  stopGraceMs?: number;
  readOnlyRootfs?: boolean;
  /** Run a minimal init (tini) as PID 1 that forwards signals and reaps zombies. */
  init?: boolean;
  /** Capability names with or without `CAP_`; `ALL` means every capability. */
  capAdd?: string[];
  capDrop?: string[];
  resources?: Resources;
  /** Join this network namespace (e.g. /run/netns/<name>); default: a new one with only loopback. */
  netnsPath?: string;
  /** Share the host's network namespace (ignored when netnsPath is set). */
  hostNetwork?: boolean;
  /** stdout and stderr are appended to this host file (written by the runtime, not by shoal). */
  logPath: string;
}

/**
 * - `created`: the container exists but has not been started (or its task is gone)
 * - `running` / `paused`: its process lives
 * - `exited`: its process ended; exitCode tells how (128+n when killed by signal n)
 */
export type ContainerState = 'created' | 'running' | 'paused' | 'exited' | 'unknown';

export interface ContainerInfo {
  id: string;
  image: string;
  /** The caller's labels as given to create(). */
  labels: Record<string, string>;
  state: ContainerState;
  /** Host PID of the container's first process (0 when none). */
  pid: number;
  exitCode?: number;
  exitedAt?: Date;
  createdAt?: Date;
  logPath?: string;
  stopSignal: string;
  stopGraceMs: number;
}

/** A step of a pull, per layer as Docker shows it. */
export interface PullProgress {
  /** The layer's short digest (12 hex digits); empty for a step of the whole image. */
  id: string;
  /** Docker's words: Downloading, Download complete, Pull complete, Already exists, and (Docker) image-wide lines. */
  status: string;
  /** Bytes so far and in all, while downloading. */
  current?: number;
  total?: number;
}

export interface ImagePullOptions {
  /** Credentials for this pull (a service's `--with-registry-auth`): they take the place of the node's own. */
  credentials?: RegistryCredentials;
  /** Told of each step while a pull runs (`shoal image pull`'s display); not called when nothing is pulled. */
  onProgress?: (p: PullProgress) => void;
}

export interface ImageLoadOptions {
  /** Told of each layer's Loading layer (bytes so far of all), Load complete or Already exists (`shoal image load`'s display). */
  onProgress?: (p: PullProgress) => void;
}

/** The short form of a digest Docker shows for layers. */
export const shortLayerId = (digest: string): string => digest.replace(/^sha256:/, '').slice(0, 12);

/** Concurrent pulls of one image share one pull, unless their credentials differ. */
export function pullKey(name: string, credentials?: RegistryCredentials): string {
  return credentials ? `${name}\0${credentials.username}\0${credentials.password}` : name;
}

export interface StopOptions {
  /** Default: the container's stopSignal. */
  signal?: string;
  /** Default: the container's stopGraceMs. */
  graceMs?: number;
}

export interface ImageInfo {
  /** Normalized reference, e.g. docker.io/library/busybox:latest. */
  name: string;
  /** Digest of the manifest (or index) the name points at. */
  digest: string;
}

/** An image as `image ls` shows it. */
export interface ListedImage extends ImageInfo {
  /**
   * Bytes the image takes in the runtime's store: containerd, its config and layers as stored
   * (compressed, as a registry serves them; 0 when its content is not all there); Docker, the
   * engine's own figure (unpacked).
   */
  size: number;
}

export interface Runtime {
  /** What and where it is, for messages: "containerd at /run/containerd/containerd.sock". */
  readonly endpoint: string;
  /** Check that the runtime answers; resolves with its version. */
  ping(): Promise<string>;
  /**
   * Make the image available for create(): present (and unpacked) locally, or
   * pulled from its registry when the adapter can pull. Throws ImageNotFoundError
   * naming the image when neither works.
   */
  ensureImage(ref: string, pullOpts?: ImagePullOptions): Promise<ImageInfo>;
  /**
   * Load an OCI image layout tarball (index.json + blobs/sha256/...). Every
   * manifest named in index.json (io.containerd.image.name or
   * org.opencontainers.image.ref.name annotations) is registered; `name` names
   * an unnamed single image. Returns what was registered.
   */
  loadImage(tarPath: string, name?: string, opts?: ImageLoadOptions): Promise<ImageInfo[]>;
  /**
   * Fetch the image from its registry even when present (a tag may have moved), and make it
   * available for create(). Throws ImageNotFoundError when the registry has no such image.
   */
  pullImage(ref: string, pullOpts?: ImagePullOptions): Promise<ImageInfo>;
  /** The images present (named ones: a name each), sorted by name. */
  listImages(): Promise<ListedImage[]>;
  /**
   * Remove the image's name from the runtime (its content goes once nothing
   * else names it). Throws ImageNotFoundError when there is no such image, and
   * ImageInUseError when a container of shoal's namespace was made from it,
   * unless `force` (the container keeps running: its rootfs is its own).
   */
  removeImage(ref: string, opts?: { force?: boolean }): Promise<ImageInfo>;
  /** Create the container (not started). Throws ContainerExistsError if the id is taken. */
  create(spec: ContainerSpec): Promise<void>;
  /** Start the container's process; resolves with its host PID. */
  start(id: string): Promise<number>;
  /**
   * Resolves with the exit code once the container's process has ended (at
   * once if it already has). Rejects if the container has no process.
   */
  wait(id: string, signal?: AbortSignal): Promise<number>;
  /**
   * Send the stop signal, wait up to the grace period, then SIGKILL every
   * process of the container. Resolves with the exit code (undefined if the
   * container was not running).
   */
  stop(id: string, opts?: StopOptions): Promise<number | undefined>;
  /** Kill if still running, then delete the process, the container and its rootfs. Idempotent. */
  remove(id: string): Promise<void>;
  /** Every container of shoal's namespace, with state. */
  list(): Promise<ContainerInfo[]>;
  /** One container, or undefined. */
  inspect(id: string): Promise<ContainerInfo | undefined>;
  close(): void;
}

export class ImageNotFoundError extends Error {
  constructor(
    readonly image: string,
    detail?: string,
  ) {
    super(`image ${image} not found${detail ? `: ${detail}` : ''}`);
    this.name = 'ImageNotFoundError';
  }
}

export class ImageInUseError extends Error {
  constructor(
    readonly image: string,
    readonly containers: string[],
  ) {
    const shown = containers.slice(0, 3).join(', ') + (containers.length > 3 ? ` and ${containers.length - 3} more` : '');
    super(
      `image ${image} is in use by ${containers.length} container(s) on this node (${shown}): ` +
        'remove the services or tasks that run it first, or use --force (the containers keep running)',
    );
    this.name = 'ImageInUseError';
  }
}

/** Ids of the containers made from the image (names compared normalized: containers may hold the reference as given). */
export function containersOfImage(containers: ContainerInfo[], name: string): string[] {
  const same = (ref: string): boolean => {
    try {
      return normalizeRef(ref) === name;
    } catch {
      return false;
    }
  };
  return containers.filter((c) => same(c.image)).map((c) => c.id).sort();
}

export class ContainerNotFoundError extends Error {
  constructor(readonly id: string) {
    super(`container ${id} not found`);
    this.name = 'ContainerNotFoundError';
  }
}

export class ContainerExistsError extends Error {
  constructor(readonly id: string) {
    super(`container ${id} already exists`);
    this.name = 'ContainerExistsError';
  }
}

export const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$/;
export const DEFAULT_STOP_GRACE_MS = 10_000;
