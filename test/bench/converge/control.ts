// shoal's control API driven from the bench process, as the floor drives
// containerd's: one warm client on a manager's local socket (the channel the
// CLI uses), sending the requests `service create --detach` and
// `service scale --detach` send, built by the CLI's own functions. What the
// CLI's start adds on top is measured by a step of its own.
import type * as grpc from '@grpc/grpc-js';
import { call, localClient } from '../../../proto/client.js';
import type { shoal } from '../../../proto/gen/api.js';
import { ControlService, plain, type Service } from '../../../proto/services.js';
import { buildServiceSpec, scaleSpec } from '../../../cli/shoal/serviceflags.js';

export class ControlDriver {
  private readonly client: grpc.Client;

  constructor(socket: string) {
    this.client = localClient(socket);
  }

  /** `service create --detach --name NAME --replicas N --init IMAGE ...args`. */
  async create(name: string, replicas: number, image: string, args: string[]): Promise<void> {
    const spec = buildServiceSpec(image, args, { name, replicas: String(replicas), init: true });
    await call(this.client, ControlService.createService, { spec } as never, 30_000);
  }

  /** `service scale --detach NAME=N`: the service read, then updated at the version read. */
  async scale(name: string, replicas: number): Promise<void> {
    const s = (await call(this.client, ControlService.getService, { ref: name } as never, 30_000)) as Service;
    const spec = scaleSpec(plain(s.spec ?? {}) as shoal.api.IServiceSpec, replicas);
    await call(this.client, ControlService.updateService, { serviceId: s.id, version: s.meta?.version ?? 0, spec } as never, 30_000);
  }

  close(): void {
    this.client.close();
  }
}
