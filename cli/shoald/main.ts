#!/usr/bin/env node
// shoald: the shoal daemon, one per host.
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { SHOAL_VERSION } from '../../proto/client.js';
import { pino } from 'pino';
import { Daemon } from './daemon.js';
import { startCpuProfiler } from './profile.js';
import { DEFAULT_NICE, applyNice, parseNice } from './priority.js';
import { defaultDockerConfig } from '../../worker/runtime/registryauth.js';
import { armCrashPoints } from './crashpoints.js';

const program = new Command()
  .name('shoald')
  .description('The shoal daemon: runs the worker agent on every node, and the manager on manager nodes.')
  .version(`shoald version ${SHOAL_VERSION}`, '-v, --version', 'print the version and exit')
  .option('--state-dir <dir>', 'where the node keeps its state', '/var/lib/shoal')
  .option('--socket <path>', 'unix socket for the local CLI (default: <state-dir>/shoald.sock)')
  .option('--listen-addr <host:port>', 'cluster port to serve on (managers)', '0.0.0.0:4377')
  .option('--advertise-addr <host:port>', 'address other nodes reach this one on')
  .option('--hostname <name>', 'node hostname to report', os.hostname())
  .option('--log-level <level>', 'debug, info, warn or error', process.env.SHOAL_LOG ?? 'info')
  .option('--runtime <name>', 'container runtime: containerd or docker', 'containerd')
  .option('--containerd-socket <path>', "containerd's gRPC socket", '/run/containerd/containerd.sock')
  .option('--containerd-namespace <ns>', 'containerd namespace of shoal\'s containers (one per host when hosts share a machine)', 'shoal')
  .option('--docker-socket <path>', "the Docker Engine's socket (--runtime docker)", '/var/run/docker.sock')
  .option('--cpu-profile <prefix>', 'record a CPU profile; each SIGUSR2 writes <prefix>.<n>.cpuprofile (for finding where time goes)')
  .option('--insecure-registry <host:port>', 'a registry to pull from over plain HTTP (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--registry-config <file>', 'registry credentials for pulls, in the Docker client\'s config format (what `docker login` writes)', defaultDockerConfig())
  .option('--nice <n>', 'CPU scheduling priority, -20 (highest) to 19: above the containers, so bursts of container starts do not delay heartbeats and raft', parseNice, DEFAULT_NICE)
  .action(async (o: {
    stateDir: string; socket?: string; listenAddr: string; advertiseAddr?: string; hostname: string; logLevel: string;
    runtime: string; containerdSocket: string; containerdNamespace: string; dockerSocket: string; insecureRegistry: string[]; registryConfig: string; cpuProfile?: string; nice: number;
  }) => {
    if (o.runtime !== 'containerd' && o.runtime !== 'docker') throw new Error(`--runtime ${o.runtime}: expected containerd or docker`);
    const crashPoints = armCrashPoints();
    const logger = pino({ level: o.logLevel, base: { host: o.hostname } });
    const prio = applyNice(o.nice);
    if (prio.error) logger.warn({ nice: o.nice, err: prio.error }, 'could not set the CPU priority (needs root or CAP_SYS_NICE): running at the inherited one');
    else logger.info({ nice: o.nice, threads: prio.threads, session: prio.autogroup }, 'CPU priority set');
    if (crashPoints.size > 0) logger.warn({ points: [...crashPoints] }, 'SHOAL_CRASH_AT: this daemon kills itself (SIGKILL) at these points, for tests');
    if (o.cpuProfile) await startCpuProfiler(path.resolve(o.cpuProfile), logger);
    const daemon = new Daemon({
      stateDir: o.stateDir,
      socketPath: o.socket ?? path.join(o.stateDir, 'shoald.sock'),
      listenAddr: o.listenAddr,
      advertiseAddr: o.advertiseAddr,
      hostname: o.hostname,
      runtime: {
        kind: o.runtime, containerdSocket: o.containerdSocket, containerdNamespace: o.containerdNamespace,
        dockerSocket: o.dockerSocket, insecureRegistries: o.insecureRegistry, registryConfig: path.resolve(o.registryConfig),
      },
      logger,
    });
    await daemon.start();
    logger.info({ socket: o.socket ?? path.join(o.stateDir, 'shoald.sock') }, 'shoald ready');
    const stop = () => {
      daemon.stop().finally(() => process.exit(0));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });

program.parseAsync().catch((e) => {
  process.stderr.write(`shoald: ${(e as Error).message}\n`);
  process.exit(1);
});
