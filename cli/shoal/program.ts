// shoal: the command line. Talks to the local shoald over its unix socket.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import type * as grpc from '@grpc/grpc-js';
import { SHOAL_VERSION } from '../../proto/client.js';
import { ControlService, LocalService, api, type Node } from '../../proto/services.js';
import { ago, parseDuration, shortDigest, table, titleCase } from './format.js';
import { UsageError, closeClients, rpc, stream, useGlobalOpts, type GlobalOpts } from './rpc.js';
import { NODE_FILTERS, filterUsage, parseFilters } from './filters.js';
import { failOne, out } from './output.js';
import { bytesHuman } from './views.js';
import { registerServiceCommands } from './service.js';
import { ProgressWriter } from './progress.js';
import { PullDisplay } from './pullprogress.js';

const DEFAULT_SOCKET = process.env.SHOAL_SOCKET ?? '/var/lib/shoal/shoald.sock';

const STATE = ['Unknown', 'Down', 'Ready', 'Disconnected'];
const AVAIL = ['Active', 'Pause', 'Drain'];
const REACH = ['Unknown', 'Unreachable', 'Reachable'];

function managerStatus(n: Node): string {
  if (!n.managerStatus || !n.managerStatus.raftId) return '';
  if (n.managerStatus.leader) return 'Leader';
  return REACH[n.managerStatus.reachability ?? 0] ?? '';
}

/** The node as `inspect` prints it: Docker-like field names, enums as words. */
function nodeView(n: Node) {
  return {
    ID: n.id,
    Version: { Index: Number(n.meta?.version ?? 0) },
    CreatedAt: new Date(Number(n.meta?.createdAt ?? 0)).toISOString(),
    UpdatedAt: new Date(Number(n.meta?.updatedAt ?? 0)).toISOString(),
    Spec: {
      Labels: n.spec?.labels ?? {},
      Role: n.spec?.desiredRole === api.NodeRole.ROLE_MANAGER ? 'manager' : 'worker',
      Availability: (AVAIL[n.spec?.availability ?? 0] ?? '').toLowerCase(),
    },
    Description: {
      Hostname: n.description?.hostname ?? '',
      Platform: { OS: n.description?.platform?.os ?? '', Architecture: n.description?.platform?.architecture ?? '' },
      Resources: { NanoCPUs: Number(n.description?.resources?.nanoCpus ?? 0), MemoryBytes: Number(n.description?.resources?.memoryBytes ?? 0) },
      Version: n.description?.version ?? '',
    },
    Status: {
      State: (STATE[n.status?.state ?? 0] ?? '').toLowerCase(),
      Message: n.status?.message ?? '',
      Addr: n.status?.addr ?? '',
      Since: new Date(Number(n.status?.updatedAt ?? 0)).toISOString(),
    },
    ManagerStatus: n.managerStatus && n.managerStatus.raftId ? {
      Leader: !!n.managerStatus.leader,
      Reachability: (REACH[n.managerStatus.reachability ?? 0] ?? '').toLowerCase(),
      Addr: n.managerStatus.addr ?? '',
      RaftID: Number(n.managerStatus.raftId),
    } : undefined,
    Certificate: n.certificate ? { NotAfter: new Date(Number(n.certificate.notAfter)).toISOString(), Serial: n.certificate.serial } : undefined,
  };
}

function parseKv(list: string[], flag: string): Record<string, string> {
  const o: Record<string, string> = {};
  for (const item of list) {
    const i = item.indexOf('=');
    if (i === 0) throw new UsageError(`invalid ${flag} "${item}": the key is empty; use key=value`);
    if (i < 0) o[item] = '';
    else o[item.slice(0, i)] = item.slice(i + 1);
  }
  return o;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

const program = new Command()
  .name('shoal')
  .description('Run containers on a cluster of hosts (a Docker Swarm-style orchestrator).')
  .version(`shoal version ${SHOAL_VERSION}`, '-v, --version', 'print the version and exit')
  .option('--socket <path>', 'shoald\'s unix socket (env SHOAL_SOCKET)', DEFAULT_SOCKET)
  .option('-H, --host <host:port>', 'a remote manager instead of the local daemon (mutual TLS)')
  .option('--tlscacert <file>', 'cluster CA certificate, with --host')
  .option('--tlscert <file>', 'client certificate (a manager\'s), with --host')
  .option('--tlskey <file>', 'client key, with --host')
  // As docker's: global options come before the command, so that a service's own command
  // line (`service create IMAGE CMD -H ...`) is left alone.
  .enablePositionalOptions()
  .showHelpAfterError();
useGlobalOpts(() => program.opts<GlobalOpts>());

function historyLimit(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 1000) throw new UsageError(`invalid --task-history-limit "${v}": use a whole number from 0 to 1000`);
  return n;
}

// ---- swarm ----
const swarm = program.command('swarm').description('Manage the swarm: init, join, leave, tokens');

swarm.command('init')
  .description('Create a new swarm with this node as its first manager')
  .option('--advertise-addr <host:port>', 'address other nodes reach this manager on')
  .option('--listen-addr <host:port>', 'address the cluster port binds to (default: shoald\'s --listen-addr)')
  .option('--cert-expiry <duration>', 'validity of node certificates', '2160h')
  .option('--heartbeat-period <duration>', 'how often nodes heartbeat', '1s')
  .option('--snapshot-interval <n>', 'raft entries between snapshots', '10000')
  .option('--task-history-limit <n>', 'ended tasks kept per slot', '5')
  .option('--force-new-cluster', 'recover: make this manager the only member, keeping its state')
  .action(async (o: { advertiseAddr?: string; listenAddr?: string; certExpiry: string; heartbeatPeriod: string; snapshotInterval: string; taskHistoryLimit: string; forceNewCluster?: boolean }) => {
    if (o.listenAddr && !/^[^:]+:\d+$/.test(o.listenAddr)) throw new UsageError(`invalid --listen-addr "${o.listenAddr}": use HOST:PORT, e.g. 0.0.0.0:4377`);
    const snapshotInterval = Number(o.snapshotInterval);
    if (!Number.isInteger(snapshotInterval) || snapshotInterval < 10) throw new UsageError(`invalid --snapshot-interval "${o.snapshotInterval}": use a whole number of entries, at least 10`);
    const res = await rpc(LocalService.init, {
      advertiseAddr: o.advertiseAddr ?? '',
      listenAddr: o.listenAddr ?? '',
      forceNewCluster: !!o.forceNewCluster,
      spec: {
        raft: { snapshotInterval },
        dispatcher: { heartbeatPeriodMs: parseDuration(o.heartbeatPeriod, '--heartbeat-period') },
        ca: { nodeCertExpiryMs: parseDuration(o.certExpiry, '--cert-expiry') },
        orchestration: { taskHistoryLimit: historyLimit(o.taskHistoryLimit) },
      },
    } as never, 60_000);
    out(`Swarm initialized: current node (${res.nodeId}) is now a manager.\n`);
    out(`To add a worker to this swarm, run the following command:\n\n    shoal swarm join --token ${res.workerToken} ${res.advertiseAddr}\n`);
    out('To add a manager to this swarm, run \'shoal swarm join-token manager\' and follow the instructions.');
  });

swarm.command('join')
  .description('Join a swarm as a worker or a manager (the token decides)')
  .argument('<host:port>', 'a manager of the swarm')
  .requiredOption('--token <token>', 'join token from `shoal swarm join-token`')
  .option('--advertise-addr <host:port>', 'address other nodes reach this node on')
  .option('--listen-addr <host:port>', 'address the cluster port binds to if this node is a manager (default: shoald\'s --listen-addr)')
  .action(async (remote: string, o: { token: string; advertiseAddr?: string; listenAddr?: string }) => {
    if (!/^[^:]+:\d+$/.test(remote)) throw new UsageError(`invalid manager address "${remote}": use HOST:PORT, e.g. 10.0.0.1:4377`);
    const res = await rpc(LocalService.join, { remoteAddr: remote, token: o.token.trim(), listenAddr: o.listenAddr ?? '', advertiseAddr: o.advertiseAddr ?? '' } as never, 60_000);
    out(res.role === api.NodeRole.ROLE_MANAGER ? 'This node joined a swarm as a manager.' : 'This node joined a swarm as a worker.');
  });

swarm.command('join-token')
  .description('Show (or rotate) the token to join as a worker or manager')
  .argument('<role>', 'worker or manager')
  .option('-q, --quiet', 'print the token only')
  .option('--rotate', 'make a new token; the old one stops working')
  .action(async (role: string, o: { quiet?: boolean; rotate?: boolean }) => {
    if (role !== 'worker' && role !== 'manager') throw new UsageError(`unknown role "${role}": use worker or manager`);
    let c = await rpc(ControlService.getCluster, {} as never);
    if (o.rotate) {
      c = await rpc(ControlService.updateCluster, {
        version: c.meta?.version ?? 0, spec: c.spec, rotateWorkerToken: role === 'worker', rotateManagerToken: role === 'manager',
      } as never);
      if (!o.quiet) out(`Successfully rotated ${role} join token.\n`);
    }
    const token = role === 'worker' ? c.rootCa?.joinTokens?.worker : c.rootCa?.joinTokens?.manager;
    if (o.quiet) return out(token ?? '');
    const info = await rpc(LocalService.info, {} as never);
    const self = info.managers?.find((m) => m.nodeId === info.nodeId)?.addr ?? info.managers?.[0]?.addr ?? '<manager-address>';
    out(`To add a ${role} to this swarm, run the following command:\n\n    shoal swarm join --token ${token} ${self}`);
  });

swarm.command('leave')
  .description('Leave the swarm')
  .option('-f, --force', 'leave even if this node is a manager')
  .action(async (o: { force?: boolean }) => {
    await rpc(LocalService.leave, { force: !!o.force } as never);
    out('Node left the swarm.');
  });

swarm.command('update')
  .description('Update the swarm\'s settings')
  .option('--cert-expiry <duration>', 'validity of node certificates')
  .option('--heartbeat-period <duration>', 'how often nodes heartbeat')
  .option('--snapshot-interval <n>', 'raft entries between snapshots')
  .option('--task-history-limit <n>', 'ended tasks kept per slot')
  .action(async (o: { certExpiry?: string; heartbeatPeriod?: string; snapshotInterval?: string; taskHistoryLimit?: string }) => {
    const c = await rpc(ControlService.getCluster, {} as never);
    const spec = JSON.parse(JSON.stringify(c.spec ?? {}));
    if (o.certExpiry) spec.ca = { ...(spec.ca ?? {}), nodeCertExpiryMs: parseDuration(o.certExpiry, '--cert-expiry') };
    if (o.heartbeatPeriod) spec.dispatcher = { ...(spec.dispatcher ?? {}), heartbeatPeriodMs: parseDuration(o.heartbeatPeriod, '--heartbeat-period') };
    if (o.snapshotInterval) spec.raft = { ...(spec.raft ?? {}), snapshotInterval: Number(o.snapshotInterval) };
    if (o.taskHistoryLimit !== undefined) spec.orchestration = { ...(spec.orchestration ?? {}), taskHistoryLimit: historyLimit(o.taskHistoryLimit) };
    await rpc(ControlService.updateCluster, { version: c.meta?.version ?? 0, spec, rotateWorkerToken: false, rotateManagerToken: false } as never);
    out('Swarm updated.');
  });

/**
 * An image call that streams its layers' steps (pull, load): drawn on stderr as Docker draws them
 * (unless quiet); every message also goes to `onMessage`, the last one says what was done.
 */
async function layerSteps<Req, Res extends { id?: string | null; status?: string | null; current?: unknown; total?: unknown }>(
  method: grpc.MethodDefinition<Req, Res>, req: Req, quiet: boolean, onMessage: (m: Res) => void,
): Promise<void> {
  const display = new PullDisplay();
  const writer = new ProgressWriter((s) => process.stderr.write(s), !!process.stderr.isTTY, process.stderr.columns ?? 0);
  await stream(method, req as never, (m) => {
    onMessage(m);
    if (quiet || !m.status) return;
    display.add({ id: m.id ?? '', status: m.status, current: Number(m.current ?? 0), total: Number(m.total ?? 0) });
    writer.draw(display.frame());
  }).done;
}

// ---- image ----
const image = program.command('image').description('Manage images on this node');

image.command('load')
  .description("Load an OCI image layout tarball into this node's container runtime (for hosts without a registry)")
  .argument('<tar>', 'the tarball (index.json, blobs/sha256/...)')
  .option('--name <ref>', 'name an unnamed single image')
  .option('-q, --quiet', 'no progress, only the result')
  .action(async (tar: string, o: { name?: string; quiet?: boolean }) => {
    const abs = path.resolve(tar);
    if (!fs.existsSync(abs)) throw new UsageError(`no such file: ${tar}`);
    let names: string[] | undefined;
    await layerSteps(LocalService.loadImage, { path: abs, name: o.name ?? '' }, !!o.quiet, (m) => {
      if (m.loaded?.length) names = m.loaded;
    });
    if (!names) throw new Error(`the load of ${tar} ended without saying what it loaded: see shoald's log`);
    for (const n of names) out(`Loaded image: ${n}`);
  });

image.command('ls')
  .alias('list')
  .description("List the images in this node's container runtime")
  .option('-q, --quiet', 'only names')
  .option('--no-trunc', 'do not shorten digests')
  .addOption(new Option('--format <format>', 'table or json').choices(['table', 'json']).default('table'))
  .action(async (o: { quiet?: boolean; trunc: boolean; format: string }) => {
    const res = await rpc(LocalService.listImages, {} as never);
    const images = (res.images ?? []).map((i) => ({ Name: i.name ?? '', Digest: i.digest ?? '', Size: Number(i.size ?? 0) }));
    if (o.quiet) return out(images.map((i) => i.Name).join('\n'));
    if (o.format === 'json') return out(JSON.stringify(images, null, 2));
    out(table(['NAME', 'DIGEST', 'SIZE'], images.map((i) => [i.Name, o.trunc ? shortDigest(i.Digest) : i.Digest, bytesHuman(i.Size)])));
  });

image.command('pull')
  .description("Pull an image from its registry into this node's container runtime, with this node's registry credentials (shoald --registry-config)")
  .argument('<image>', 'the image, e.g. busybox or registry.example.com:5000/app:1')
  .option('-q, --quiet', 'no progress, only the result')
  .action(async (name: string, o: { quiet?: boolean }) => {
    if (!o.quiet) process.stderr.write(`Pulling ${name} ...\n`);
    let pulled: { name?: string | null; digest?: string | null } | null | undefined;
    await layerSteps(LocalService.pullImage, { name }, !!o.quiet, (m) => {
      if (m.pulled) pulled = m.pulled;
    });
    if (!pulled) throw new Error(`the pull of ${name} ended without saying what it pulled: see shoald's log`);
    out(`Pulled: ${pulled.name}\nDigest: ${pulled.digest}`);
  });

image.command('rm')
  .alias('remove')
  .description("Remove images from this node's container runtime")
  .argument('<image...>', 'image names, as `shoal image ls` shows them or short (busybox)')
  .option('-f, --force', 'remove even when containers of this node were made from it (they keep running)')
  .action(async (names: string[], o: { force?: boolean }) => {
    for (const name of names) {
      try {
        const res = await rpc(LocalService.removeImage, { name, force: !!o.force } as never);
        out(`Untagged: ${res.name}`);
      } catch (e) {
        failOne((e as Error).message);
      }
    }
  });

// ---- node ----
const node = program.command('node').description('Manage the swarm\'s nodes');

node.command('ls')
  .alias('list')
  .description('List nodes')
  .option('-q, --quiet', 'only IDs')
  .option('-f, --filter <filter>', `Filter output based on conditions provided: ${filterUsage(NODE_FILTERS)} (repeatable)`, collect)
  .addOption(new Option('--format <format>', 'table or json').choices(['table', 'json']).default('table'))
  .action(async (o: { quiet?: boolean; filter?: string[]; format: string }) => {
    const { keep } = parseFilters(o.filter ?? [], NODE_FILTERS);
    const remote = !!program.opts<GlobalOpts>().host;
    const [list, info] = await Promise.all([rpc(ControlService.listNodes, {} as never), remote ? Promise.resolve({ nodeId: '' }) : rpc(LocalService.info, {} as never)]);
    const nodes = ((list.nodes ?? []) as Node[]).filter(keep);
    const sorted = [...nodes].sort((a, b) => (a.description?.hostname ?? '').localeCompare(b.description?.hostname ?? '') || a.id.localeCompare(b.id));
    if (o.quiet) return out(sorted.map((n) => n.id).join('\n'));
    if (o.format === 'json') return out(JSON.stringify(sorted.map(nodeView), null, 2));
    out(table(['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'MANAGER STATUS', 'ENGINE VERSION'], sorted.map((n) => [
      n.id === info.nodeId ? `${n.id} *` : n.id,
      n.description?.hostname ?? '',
      STATE[n.status?.state ?? 0] ?? '',
      AVAIL[n.spec?.availability ?? 0] ?? '',
      managerStatus(n),
      n.description?.version ?? '',
    ])));
  });

node.command('inspect')
  .description('Show details of one or more nodes (self for this node)')
  .argument('<node...>')
  .option('--pretty', 'human-friendly output')
  .action(async (refs: string[], o: { pretty?: boolean }) => {
    const info = await rpc(LocalService.info, {} as never);
    const nodes = await Promise.all(refs.map((r) => rpc(ControlService.getNode, { ref: r === 'self' ? info.nodeId : r } as never)));
    if (!o.pretty) return out(JSON.stringify(nodes.map(nodeView), null, 2));
    for (const n of nodes) {
      const v = nodeView(n);
      const lines = [
        `ID:\t\t\t${v.ID}`,
        `Hostname:\t\t${v.Description.Hostname}`,
        `Joined at:\t\t${v.CreatedAt}`,
        'Status:',
        ` State:\t\t\t${titleCase(v.Status.State)}`,
        ` Availability:\t\t${titleCase(v.Spec.Availability)}`,
        ` Address:\t\t${v.Status.Addr}`,
        ...(v.Status.Message ? [` Message:\t\t${v.Status.Message} (${ago(Date.parse(v.Status.Since))})`] : []),
        ...(v.ManagerStatus ? ['Manager Status:', ` Address:\t\t${v.ManagerStatus.Addr}`, ` Raft Status:\t\t${titleCase(v.ManagerStatus.Reachability)}`, ` Leader:\t\t${v.ManagerStatus.Leader ? 'Yes' : 'No'}`] : []),
        'Platform:', ` Operating System:\t${v.Description.Platform.OS}`, ` Architecture:\t\t${v.Description.Platform.Architecture}`,
        'Resources:', ` CPUs:\t\t\t${v.Description.Resources.NanoCPUs / 1e9}`, ` Memory:\t\t${(v.Description.Resources.MemoryBytes / 2 ** 30).toFixed(1)}GiB`,
        ...(Object.keys(v.Spec.Labels).length ? ['Labels:', ...Object.entries(v.Spec.Labels).map(([k, val]) => ` - ${k}${val ? `=${val}` : ''}`)] : []),
        ...(v.Certificate ? [`Certificate expires:\t${v.Certificate.NotAfter}`] : []),
      ];
      out(lines.join('\n'));
    }
  });

async function updateNode(ref: string, change: (spec: Record<string, unknown>) => void): Promise<void> {
  const n = await rpc(ControlService.getNode, { ref } as never);
  const spec = { labels: { ...(n.spec?.labels ?? {}) }, desiredRole: n.spec?.desiredRole ?? 0, availability: n.spec?.availability ?? 0 };
  change(spec);
  await rpc(ControlService.updateNode, { nodeId: n.id, version: n.meta?.version ?? 0, spec } as never);
}

node.command('update')
  .description('Update a node: availability, labels, role')
  .argument('<node>')
  .addOption(new Option('--availability <a>', 'active, pause or drain').choices(['active', 'pause', 'drain']))
  .option('--label-add <key=value>', 'add or change a label (repeatable)', collect, [])
  .option('--label-rm <key>', 'remove a label (repeatable)', collect, [])
  .addOption(new Option('--role <role>', 'worker or manager').choices(['worker', 'manager']))
  .action(async (ref: string, o: { availability?: string; labelAdd: string[]; labelRm: string[]; role?: string }) => {
    const add = parseKv(o.labelAdd, '--label-add');
    await updateNode(ref, (spec) => {
      if (o.availability) spec.availability = AVAIL.map((a) => a.toLowerCase()).indexOf(o.availability);
      const labels = spec.labels as Record<string, string>;
      Object.assign(labels, add);
      for (const k of o.labelRm) {
        if (!(k in labels)) throw new UsageError(`label "${k}" is not set on node ${ref}`);
        delete labels[k];
      }
      if (o.role) spec.desiredRole = o.role === 'manager' ? 1 : 0;
    });
    out(ref);
  });

for (const [cmd, role, verb] of [['promote', 1, 'promoted to a manager'], ['demote', 0, 'demoted in the swarm']] as const) {
  node.command(cmd)
    .description(cmd === 'promote' ? 'Make nodes managers' : 'Make managers workers')
    .argument('<node...>')
    .action(async (refs: string[]) => {
      for (const ref of refs) {
        await updateNode(ref, (spec) => { spec.desiredRole = role; });
        out(`Node ${ref} ${verb}.`);
      }
    });
}

node.command('rm')
  .alias('remove')
  .description('Remove nodes from the swarm')
  .argument('<node...>')
  .option('-f, --force', 'remove even if the node is up, or a manager')
  .action(async (refs: string[], o: { force?: boolean }) => {
    for (const ref of refs) {
      const n = await rpc(ControlService.getNode, { ref } as never);
      await rpc(ControlService.removeNode, { nodeId: n.id, force: !!o.force } as never);
      out(ref);
    }
  });

// ---- service, node ps ----
registerServiceCommands(program, node);

// ---- info ----
program.command('info')
  .description('This node\'s view of the swarm')
  .addOption(new Option('--format <format>', 'text or json').choices(['text', 'json']).default('text'))
  .action(async (o: { format: string }) => {
    const i = await rpc(LocalService.info, {} as never);
    const v = {
      NodeID: i.nodeId, LocalNodeState: i.localState, ControlAvailable: i.role === 1, ClusterID: i.clusterId,
      Managers: (i.managers ?? []).map((m) => m.addr), Error: i.error,
      CertificateExpiry: i.certNotAfter ? new Date(Number(i.certNotAfter)).toISOString() : '',
    };
    if (o.format === 'json') return out(JSON.stringify(v, null, 2));
    out([`Swarm: ${v.LocalNodeState}`, ...(v.NodeID ? [` NodeID: ${v.NodeID}`, ` Is Manager: ${v.ControlAvailable}`, ` ClusterID: ${v.ClusterID}`,
      ` Managers: ${v.Managers.join(', ')}`, ` Certificate expires: ${v.CertificateExpiry}`] : []), ...(v.Error ? [` Error: ${v.Error}`] : [])].join('\n'));
  });

program.parseAsync().then(() => closeClients()).catch((e: unknown) => {
  closeClients();
  process.stderr.write(`Error: ${(e as Error).message}\n`);
  process.exit(e instanceof UsageError ? 2 : 1);
});
