// A task as the runtime's container: the pure mapping from Swarm's TaskSpec to
// worker/runtime's ContainerSpec. No I/O: the volume directories it names are
// made by the task runner.
import { join } from 'node:path';
import { api, type Task } from '../../proto/services.js';
import { decodeRegistryAuth } from '../../proto/registryauth.js';
import type { ContainerSpec, Mount, ImagePullOptions } from '../runtime/runtime.js';

/** Labels shoal puts on every task container; shoal.task.id is how a restarted agent finds its containers. */
export const LABEL_TASK_ID = 'shoal.task.id';
export const LABEL_SERVICE_ID = 'shoal.service.id';
export const LABEL_SERVICE_NAME = 'shoal.service.name';
export const LABEL_SLOT = 'shoal.slot';
export const LABEL_NODE_ID = 'shoal.node.id';

/** Docker's rule for volume names; it also keeps a name from leaving the volume directory. */
const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** The task's spec cannot become a container: the task is rejected with this message. */
export class TaskSpecError extends Error {
  override name = 'TaskSpecError';
}

export interface ContainerSpecOptions {
  nodeId: string;
  /** Absolute; the task's output goes to <logDir>/<taskId>.log. */
  logDir: string;
  /** Absolute; named volumes are <volumeDir>/<name>, anonymous ones <volumeDir>/<taskId>-<mount index>. */
  volumeDir: string;
}

export interface TaskContainer {
  spec: ContainerSpec;
  /** Host directories of the task's volumes, to be created before the container. */
  volumeDirs: string[];
}

/** The registry credentials the task carries (`service create --with-registry-auth`), if any. */
export function pullAuthOf(task: Task): ImagePullOptions | undefined {
  const encoded = task.spec?.container?.pullOptions?.registryAuth;
  if (!encoded) return undefined;
  try {
    const { username, password } = decodeRegistryAuth(encoded);
    return { credentials: { username, password } };
  } catch (e) {
    throw new TaskSpecError(`the service's registry credentials are unusable: ${(e as Error).message}`);
  }
}

export const logPathOf = (logDir: string, taskId: string): string => join(logDir, `${taskId}.log`);

/** Proto strings and lists are empty rather than absent: empty means "the image's default". */
const nonEmpty = <T extends string | unknown[]>(v: T | null | undefined): T | undefined => (v && v.length > 0 ? v : undefined);
const positive = (v: number | null | undefined): number | undefined => (v !== null && v !== undefined && Number(v) > 0 ? Number(v) : undefined);

export function toContainerSpec(task: Task, o: ContainerSpecOptions): TaskContainer {
  const c = task.spec?.container;
  if (!c?.image) throw new TaskSpecError(`task ${task.id} has no container image`);
  const volumeDirs: string[] = [];
  const mounts: Mount[] = (c.mounts ?? []).map((m, i) => {
    const target = m.target ?? '';
    if (!target.startsWith('/')) throw new TaskSpecError(`mount ${i}: target "${target}" is not an absolute path`);
    const readOnly = m.readOnly ? true : undefined;
    switch (m.type ?? api.MountType.MOUNT_TYPE_VOLUME) {
      case api.MountType.MOUNT_TYPE_BIND:
        if (!m.source?.startsWith('/')) throw new TaskSpecError(`mount ${i}: bind source "${m.source ?? ''}" is not an absolute path`);
        return { type: 'bind', source: m.source, target, ...(readOnly ? { readOnly } : {}) };
      case api.MountType.MOUNT_TYPE_TMPFS: {
        const sizeBytes = positive(m.tmpfsOptions?.sizeBytes);
        const mode = positive(m.tmpfsOptions?.mode);
        return { type: 'tmpfs', target, ...(sizeBytes ? { sizeBytes } : {}), ...(mode ? { mode } : {}) };
      }
      case api.MountType.MOUNT_TYPE_VOLUME: {
        let source: string;
        if (m.source) {
          if (!VOLUME_NAME_RE.test(m.source)) throw new TaskSpecError(`mount ${i}: invalid volume name "${m.source}" (allowed: [A-Za-z0-9][A-Za-z0-9_.-]*)`);
          source = join(o.volumeDir, m.source);
        } else {
          source = join(o.volumeDir, `${task.id}-${i}`);
        }
        volumeDirs.push(source);
        return { type: 'bind', source, target, ...(readOnly ? { readOnly } : {}) };
      }
      default:
        throw new TaskSpecError(`mount ${i}: unknown mount type ${String(m.type)}`);
    }
  });

  const limits = task.spec?.resources?.limits;
  const cpuLimitNano = positive(limits?.nanoCpus);
  const memoryLimitBytes = positive(limits?.memoryBytes);
  const spec: ContainerSpec = {
    id: task.id,
    image: c.image,
    command: nonEmpty(c.command ?? undefined),
    args: nonEmpty(c.args ?? undefined),
    env: nonEmpty(c.env ?? undefined),
    workdir: nonEmpty(c.dir),
    user: nonEmpty(c.user),
    hostname: nonEmpty(c.hostname) ?? task.id.slice(0, 12),
    mounts: mounts.length ? mounts : undefined,
    // Ours last: a service's labels cannot pose as another task's container.
    labels: {
      ...(c.labels ?? {}),
      [LABEL_TASK_ID]: task.id,
      [LABEL_SERVICE_ID]: task.serviceId ?? '',
      [LABEL_SERVICE_NAME]: task.serviceName ?? '',
      [LABEL_SLOT]: String(task.slot ?? 0),
      [LABEL_NODE_ID]: o.nodeId,
    },
    stopSignal: nonEmpty(c.stopSignal),
    stopGraceMs: c.stopGracePeriodMs === null || c.stopGracePeriodMs === undefined ? undefined : Number(c.stopGracePeriodMs),
    readOnlyRootfs: c.readOnly ? true : undefined,
    init: c.init ? true : undefined,
    capAdd: nonEmpty(c.capAdd ?? undefined),
    capDrop: nonEmpty(c.capDrop ?? undefined),
    resources: cpuLimitNano || memoryLimitBytes ? { ...(cpuLimitNano ? { cpuLimitNano } : {}), ...(memoryLimitBytes ? { memoryLimitBytes } : {}) } : undefined,
    logPath: logPathOf(o.logDir, task.id),
  };
  // Leave absent what is not set, so the runtime's defaults apply and specs compare cleanly.
  for (const k of Object.keys(spec) as (keyof ContainerSpec)[]) if (spec[k] === undefined) delete spec[k];
  return { spec, volumeDirs };
}
