#!/usr/bin/env node
// shoald: the shoal daemon, one per host.
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { pino } from 'pino';
import { Daemon } from './daemon.js';

const program = new Command()
  .name('shoald')
  .description('The shoal daemon: runs the worker agent on every node, and the manager on manager nodes.')
  .option('--state-dir <dir>', 'where the node keeps its state', '/var/lib/shoal')
  .option('--socket <path>', 'unix socket for the local CLI (default: <state-dir>/shoald.sock)')
  .option('--listen-addr <host:port>', 'cluster port to serve on (managers)', '0.0.0.0:4377')
  .option('--advertise-addr <host:port>', 'address other nodes reach this one on')
  .option('--hostname <name>', 'node hostname to report', os.hostname())
  .option('--log-level <level>', 'debug, info, warn or error', process.env.SHOAL_LOG ?? 'info')
  .action(async (o: { stateDir: string; socket?: string; listenAddr: string; advertiseAddr?: string; hostname: string; logLevel: string }) => {
    const logger = pino({ level: o.logLevel, base: { host: o.hostname } });
    const daemon = new Daemon({
      stateDir: o.stateDir,
      socketPath: o.socket ?? path.join(o.stateDir, 'shoald.sock'),
      listenAddr: o.listenAddr,
      advertiseAddr: o.advertiseAddr,
      hostname: o.hostname,
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
