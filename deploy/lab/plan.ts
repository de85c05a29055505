// The pure parts of the lab: names, addresses, command templates, the argv
// that runs a command inside a host, the partition ruleset and the status
// table. No I/O here, so every rule is covered by table-driven unit tests.

export const DEFAULT_SUBNET = '10.231.0.0/24';
export const DEFAULT_BASE_DIR = '/var/lib/shoal-lab';
/** Host i gets the subnet's address number HOST_OFFSET + i (10.231.0.11, .12, ...). */
export const HOST_OFFSET = 10;
export const BRIDGE = 'br0';
export const HOST_IFACE = 'eth0';
/** The bridge-family nftables table in the switch namespace that holds partitions. */
export const NFT_TABLE = 'shoal-lab';
// A 1 MiB young generation keeps an idle shoald ~8 MiB smaller (V8 reads the flag only at start).
export const DEFAULT_DAEMON_CMD =
  '{node} --max-semi-space-size=1 {repo}/dist/cli/shoald/main.js --state-dir {stateDir} --listen-addr {ip}:4377 ' +
  '--advertise-addr {ip}:4377 --socket {socket}';
export const MAIN_PROC = 'daemon';

/** A process the lab runs in hosts, from a command template. Stored in lab.json. */
export interface ProcSpec {
  name: string;
  cmd: string;
  /** Only on these hosts (default: every host). The daemon runs everywhere. */
  hosts?: string[];
  /**
   * Files written before each start (a config, say): path template -> content
   * template, with the command's placeholders substituted in both.
   */
  files?: Record<string, string>;
  /** Added to the environment it inherits: name -> value template, placeholders substituted. */
  env?: Record<string, string>;
  /**
   * A unix socket (path template): the process counts as started once the
   * socket accepts connections, so what starts after it (the daemon) finds it
   * serving.
   */
  readySocket?: string;
}

const PROC_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** Checks a sidecar's name and hosts; the daemon's name is taken. */
export function validateSidecar(s: ProcSpec): void {
  if (!PROC_NAME.test(s.name) || s.name === MAIN_PROC) throw new Error(`invalid sidecar name '${s.name}'`);
  if (s.hosts !== undefined) {
    if (s.hosts.length === 0) throw new Error(`sidecar ${s.name}: an empty host list (leave hosts out for every host)`);
    s.hosts.forEach(validateHostName);
  }
}

/** Whether a process of this spec belongs on the host. */
export function runsOn(spec: ProcSpec, host: string): boolean {
  return spec.hosts === undefined || spec.hosts.includes(host);
}

// No '-' in lab names: namespaces are '<lab>-<host>', and 'a-b' + 'c' would
// collide with 'a' + 'b-c'.
const LAB_NAME = /^[a-z][a-z0-9]{0,15}$/;
// Hosts name interfaces in the switch namespace ('to-<host>', 15 chars max).
const HOST_NAME = /^[a-z][a-z0-9-]{0,11}$/;

export function validateLabName(name: string): void {
  if (!LAB_NAME.test(name)) {
    throw new Error(`lab name '${name}' is invalid: use 1-16 of [a-z0-9], starting with a letter (no '-')`);
  }
}

export function validateHostName(name: string): void {
  if (!HOST_NAME.test(name) || name.endsWith('-')) {
    throw new Error(`host name '${name}' is invalid: use 1-12 of [a-z0-9-], starting with a letter`);
  }
  // '<lab>-sw' is the switch namespace.
  if (name === 'sw') throw new Error(`host name 'sw' is reserved for the lab's switch namespace`);
}

export function defaultHostNames(n: number): string[] {
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new Error(`host count must be 1..200, got ${n}`);
  return Array.from({ length: n }, (_, i) => `host${i + 1}`);
}

export function switchNetns(lab: string): string {
  return `${lab}-sw`;
}

export function hostNetns(lab: string, host: string): string {
  return `${lab}-${host}`;
}

/** The bridge port (switch side of the veth) that leads to a host. */
export function switchPort(host: string): string {
  return `to-${host}`;
}

export interface Subnet {
  /** Network address as a 32-bit unsigned number. */
  network: number;
  prefix: number;
}

function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`'${ip}' is not an IPv4 address`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`'${ip}' is not an IPv4 address`);
    n = n * 256 + Number(p);
  }
  return n;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseSubnet(cidr: string): Subnet {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr);
  if (!m) throw new Error(`subnet '${cidr}' is not in a.b.c.d/len form`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 29) throw new Error(`subnet '${cidr}': prefix length must be 8..29`);
  const addr = ipToInt(m[1]!);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if ((addr & ~mask) >>> 0 !== 0) throw new Error(`subnet '${cidr}' has host bits set (network is ${intToIp((addr & mask) >>> 0)}/${prefix})`);
  return { network: addr, prefix };
}

/** Address of the index-th host (1-based), without the prefix length. */
export function hostAddress(subnet: Subnet | string, index: number): string {
  const s = typeof subnet === 'string' ? parseSubnet(subnet) : subnet;
  if (!Number.isInteger(index) || index < 1) throw new Error(`host index must be >= 1, got ${index}`);
  const size = 2 ** (32 - s.prefix);
  const offset = HOST_OFFSET + index;
  // Keep the network and broadcast addresses out.
  if (offset >= size - 1) {
    throw new Error(`subnet ${intToIp(s.network)}/${s.prefix} has no room for host ${index} (address offset ${offset})`);
  }
  return intToIp(s.network + offset);
}

/**
 * A fixed MAC for a host's eth0, derived from its address (locally
 * administered, 02:00:a:b:c:d). When up recreates a host's link, the peers'
 * ARP caches (REACHABLE for up to ~45 s) still point at the right MAC, so the
 * repaired host is reachable at once.
 */
export function hostMac(ip: string): string {
  const n = ipToInt(ip);
  return ['02', '00', ...[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export function formatSubnet(s: Subnet): string {
  return `${intToIp(s.network)}/${s.prefix}`;
}

/**
 * Splits a command template into argv the way a shell would split words:
 * whitespace separates, '...' is literal, "..." and backslash escape. No
 * expansion of any kind: the lab runs the result without a shell.
 */
export function splitWords(template: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  while (i < template.length) {
    const c = template[i]!;
    if (c === "'") {
      const end = template.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in command: ${template}`);
      cur += template.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= template.length) throw new Error(`unterminated " in command: ${template}`);
        const d = template[i]!;
        if (d === '"') break;
        if (d === '\\' && i + 1 < template.length && '"\\'.includes(template[i + 1]!)) {
          cur += template[i + 1];
          i += 2;
        } else {
          cur += d;
          i++;
        }
      }
      inWord = true;
      i++;
    } else if (c === '\\') {
      if (i + 1 >= template.length) throw new Error(`trailing \\ in command: ${template}`);
      cur += template[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      i++;
    } else {
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

export type TemplateVars = Record<string, string>;

/** Replaces {name} in one string; an unknown name is an error so typos surface at once. */
export function substitute(text: string, vars: TemplateVars): string {
  return text.replace(/\{([A-Za-z]+)\}/g, (_, key: string) => {
    const v = vars[key];
    if (v === undefined) throw new Error(`unknown placeholder {${key}} (known: ${Object.keys(vars).map((k) => `{${k}}`).join(' ')})`);
    return v;
  });
}

/**
 * Template -> argv. Words are split before substitution, so a value with a
 * space (a state dir, say) stays one argument.
 */
export function buildCommand(template: string, vars: TemplateVars): string[] {
  const argv = splitWords(template).map((w) => substitute(w, vars));
  if (argv.length === 0) throw new Error('command template is empty');
  return argv;
}

/**
 * Argv that runs `argv` in a host: its network namespace (only: keeping the
 * machine's mounts is what lets a containerd in there work; `ip netns exec`
 * would remount /sys) and a fresh UTS namespace carrying the host's name.
 * Every step execs, so the pid of the spawned nsenter ends up being the pid of
 * the command itself. The command goes through "$@", never through the shell's
 * parser.
 */
export function hostArgv(netns: string, hostname: string, argv: readonly string[]): string[] {
  if (argv.length === 0) throw new Error('no command given');
  return [
    'nsenter',
    `--net=/run/netns/${netns}`,
    'unshare',
    '--uts',
    '--',
    'sh',
    '-c',
    'hostname "$0" && exec "$@"',
    hostname,
    ...argv,
  ];
}

/** Normalised pair, so (a, b) and (b, a) are the same partition. */
export function partitionKey(a: string, b: string): [string, string] {
  return a < b ? [a, b] : [b, a];
}

/**
 * The whole partition table as one nft script, applied atomically. Declaring
 * and then deleting the table first makes it replace whatever was there; with
 * no partitions it just removes the table. Matching on bridge ports rather
 * than addresses cuts everything between two hosts (ARP, IPv6, any address a
 * daemon adds later) and leaves the hosts' own namespaces, where shoald keeps
 * its nftables rules, untouched.
 */
export function partitionRuleset(partitions: ReadonlyArray<readonly [string, string]>): string {
  const lines = [`table bridge ${NFT_TABLE}`, `delete table bridge ${NFT_TABLE}`];
  if (partitions.length > 0) {
    lines.push(`table bridge ${NFT_TABLE} {`, '  chain forward {', '    type filter hook forward priority 0; policy accept;');
    for (const [a, b] of partitions) {
      lines.push(`    iifname "${switchPort(a)}" oifname "${switchPort(b)}" drop`);
      lines.push(`    iifname "${switchPort(b)}" oifname "${switchPort(a)}" drop`);
    }
    lines.push('  }', '}');
  }
  return lines.join('\n') + '\n';
}

export interface StatusRow {
  host: string;
  netns: string;
  ip: string;
  up: boolean;
  procs: Record<string, { pid: number | null; alive: boolean }>;
}

/** Fixed-width table: host, namespace, ip, then pid and liveness of each process. */
export function formatStatus(rows: readonly StatusRow[], procNames: readonly string[], partitions: ReadonlyArray<readonly [string, string]>): string {
  const header = ['HOST', 'NAMESPACE', 'IP', 'NETNS'];
  for (const p of procNames) header.push(`${p.toUpperCase()} PID`, 'ALIVE');
  const table = [header];
  for (const r of rows) {
    const line = [r.host, r.netns, r.ip, r.up ? 'up' : 'missing'];
    for (const p of procNames) {
      const s = r.procs[p];
      line.push(s?.pid == null ? '-' : String(s.pid), s?.alive ? 'yes' : 'no');
    }
    table.push(line);
  }
  const widths = header.map((_, i) => Math.max(...table.map((l) => l[i]!.length)));
  const out = table.map((l) => l.map((c, i) => (i === l.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
  out.push(`partitions: ${partitions.length === 0 ? 'none' : partitions.map(([a, b]) => `${a}<->${b}`).join(' ')}`);
  return out.join('\n') + '\n';
}

/** Exit status of a child the way a shell reports it. */
export function exitCode(code: number | null, signal: NodeJS.Signals | null, signalNumbers: Record<string, number>): number {
  if (code !== null) return code;
  if (signal !== null) return 128 + (signalNumbers[signal] ?? 0);
  return 1;
}
