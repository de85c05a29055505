#!/usr/bin/env node
// shoal-lab: the multi-host lab from the command line. A thin layer over the
// Lab class; see deploy/lab/README.md.
import { Command, Option } from 'commander';
import { Lab, checkPrerequisites, type ProcSpec } from './lab.js';
import { DEFAULT_BASE_DIR, DEFAULT_DAEMON_CMD, DEFAULT_SUBNET, MAIN_PROC, exitCode, formatStatus } from './plan.js';
import { containerdLabOptions } from './containerd.js';
import { preloadImage } from './images.js';
import { pushImage } from './registry.js';
import { signalNumbers } from './sys.js';

interface GlobalOpts {
  lab: string;
  baseDir: string;
}

function parseSidecar(value: string, prev: ProcSpec[] = []): ProcSpec[] {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new Error(`--sidecar wants NAME=TEMPLATE, got '${value}'`);
  return [...prev, { name: value.slice(0, eq), cmd: value.slice(eq + 1) }];
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a positive integer, got '${value}'`);
  return n;
}

const program = new Command('shoal-lab')
  .description('N shoal "hosts" on one machine: network namespaces on a private bridge, each with its own address, hostname, state dir and daemon')
  .option('--lab <name>', 'lab name; several labs can run side by side', process.env.SHOAL_LAB ?? 'lab')
  .option('--base-dir <dir>', 'where labs keep their state', process.env.SHOAL_LAB_BASE ?? DEFAULT_BASE_DIR)
  .enablePositionalOptions()
  .showHelpAfterError();

// Every subcommand also takes --lab/--base-dir (before its arguments), so
// both `shoal-lab --lab x status` and `shoal-lab status --lab x` work.
let current: Command = program;

function lab(extra: Partial<ConstructorParameters<typeof Lab>[0]> = {}): Lab {
  const g = program.opts<GlobalOpts>();
  const s = current.opts<Partial<GlobalOpts>>();
  return new Lab({ name: s.lab ?? g.lab, baseDir: s.baseDir ?? g.baseDir, log: (l) => console.log(l), ...extra });
}

program.hook('preAction', (_root, sub) => {
  current = sub;
});

program
  .command('up')
  .description('create what is missing (namespaces, bridge, veths, addresses, daemons); safe to re-run')
  .option('--hosts <n>', 'number of hosts (host1..hostN); default 3 for a new lab', positiveInt)
  .option('--subnet <cidr>', `lab network (default ${DEFAULT_SUBNET}; host i gets .10+i)`)
  .option('--daemon-cmd <template>', `daemon command template (default: ${DEFAULT_DAEMON_CMD})`)
  .option('--sidecar <name=template>', 'another process per host, started before the daemon (repeatable)', parseSidecar)
  .option('--containerd', 'a containerd per host (sidecar), shoald pointed at it (--containerd-socket/--containerd-namespace)')
  .option('--registry [host]', 'with --containerd: a docker-registry on HOST (default host1) at <its ip>:5000, shoald told to pull from it over HTTP')
  .option('--no-daemon', 'network only, start no processes')
  .action(async (o: { hosts?: number; subnet?: string; daemonCmd?: string; sidecar?: ProcSpec[]; containerd?: boolean; registry?: string | true; daemon: boolean }) => {
    let { daemonCmd, sidecar: sidecars } = o;
    if (o.registry !== undefined && !o.containerd) throw new Error('--registry needs --containerd');
    if (o.containerd) {
      const c = containerdLabOptions({ daemonCmd, subnet: o.subnet, registryHost: o.registry === undefined ? undefined : o.registry === true ? 'host1' : o.registry });
      daemonCmd = c.daemonCmd;
      sidecars = [...c.sidecars, ...(sidecars ?? [])];
    }
    await lab({ hosts: o.hosts, subnet: o.subnet, daemonCmd, sidecars }).up({ noDaemon: !o.daemon });
  });

program
  .command('exec')
  .description('run a command in a host (its network namespace and hostname); its exit code passes through')
  .argument('<host>')
  .argument('<cmd...>')
  .passThroughOptions()
  .action(async (host: string, cmd: string[]) => {
    const child = lab().spawnIn(host, cmd, { stdio: 'inherit' });
    // The terminal's ^C reaches the child (same process group); just wait for it.
    process.on('SIGINT', () => {});
    const code = await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, s) => resolve(exitCode(c, s, signalNumbers())));
    });
    process.exitCode = code;
  });

const procOption = () => new Option('--proc <name>', 'which process: the daemon or a sidecar').default(MAIN_PROC);

program
  .command('start')
  .description("start a host's daemon if it is not running")
  .argument('<host>')
  .addOption(procOption())
  .action(async (host: string, o: { proc: string }) => {
    await lab().startDaemon(host, o.proc);
  });

program
  .command('kill')
  .description("SIGKILL a host's daemon (only if the pid is still the one the lab started)")
  .argument('<host>')
  .addOption(procOption())
  .action(async (host: string, o: { proc: string }) => {
    await lab().killDaemon(host, o.proc);
  });

program
  .command('restart')
  .description("SIGKILL then start a host's daemon")
  .argument('<host>')
  .addOption(procOption())
  .action(async (host: string, o: { proc: string }) => {
    await lab().restartDaemon(host, o.proc);
  });

program
  .command('load-image')
  .description("load an OCI layout tarball into the hosts' containerds (up --containerd), over their sockets")
  .argument('<tar>')
  .option('--host <host>', 'only this host (default: every host)')
  .option('--namespace <ns>', "containerd namespace (default: the host's own, <lab>-<host>, which its shoald uses)")
  .action(async (tar: string, o: { host?: string; namespace?: string }) => {
    const l = lab();
    const hosts = o.host ? [o.host] : l.hosts();
    await Promise.all(hosts.map(async (h) => {
      const t0 = Date.now();
      const imgs = await preloadImage(l, h, tar, o.namespace);
      console.log(`${h}: loaded ${imgs.map((i) => `${i.name} (${i.digest})`).join(', ')} in ${Date.now() - t0} ms`);
    }));
  });

program
  .command('push-image')
  .description('push an OCI layout tarball into the lab registry (up --containerd --registry) as REPO:TAG')
  .argument('<tar>')
  .argument('<ref>', 'REPO:TAG, e.g. busybox:1')
  .option('--host <host>', 'the host the registry runs on (default: where its sidecar runs)')
  .action(async (tar: string, ref: string, o: { host?: string }) => {
    console.log(`pushed ${await pushImage(lab(), tar, ref, { host: o.host })}`);
  });

program
  .command('partition')
  .description('cut all traffic between two hosts, both ways')
  .argument('<a>')
  .argument('<b>')
  .action(async (a: string, b: string) => {
    await lab().partition(a, b);
  });

program
  .command('heal')
  .description('remove all partitions (or only the one between A and B)')
  .argument('[a]')
  .argument('[b]')
  .action(async (a?: string, b?: string) => {
    if ((a === undefined) !== (b === undefined)) throw new Error('heal takes two hosts or none');
    await lab().heal(a, b);
  });

program
  .command('status')
  .description('hosts, namespaces, addresses, daemon pids and liveness')
  .option('--json', 'machine-readable')
  .action((o: { json?: boolean }) => {
    const s = lab().status();
    if (o.json) {
      console.log(JSON.stringify(s, null, 2));
      return;
    }
    if (!s.exists) {
      console.log(`lab ${s.lab} is not up`);
      return;
    }
    console.log(`lab ${s.lab}: subnet ${s.subnet}, state in ${s.baseDir}/${s.lab}`);
    process.stdout.write(formatStatus(s.hosts, s.procNames, s.partitions));
  });

program
  .command('down')
  .description('kill the daemons and delete the namespaces, links and rules the lab made')
  .option('--purge', 'also delete the state dirs (daemon state, logs)')
  .option('--kill-stragglers', "also SIGKILL other processes left in the lab's namespaces")
  .action(async (o: { purge?: boolean; killStragglers?: boolean }) => {
    await lab().down({ purge: !!o.purge, killStragglers: !!o.killStragglers });
  });

program
  .command('check')
  .description('check that this machine can run the lab (root, iproute2, nftables, util-linux)')
  .action(() => {
    const p = checkPrerequisites();
    if (p.ok) console.log('ok');
    else {
      for (const line of p.problems) console.error(`shoal-lab: ${line}`);
      process.exitCode = 1;
    }
  });

for (const cmd of program.commands) {
  cmd.option('--lab <name>', 'lab name (same as the global option)').option('--base-dir <dir>', 'state base (same as the global option)');
}

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(`shoal-lab: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
