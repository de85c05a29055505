// The lab's pure pieces: names, address allocation, templates, the argv that
// enters a host, the partition ruleset and the status table.
import { describe, expect, it } from 'vitest';
import {
  buildCommand,
  defaultHostNames,
  exitCode,
  formatStatus,
  hostAddress,
  hostMac,
  hostArgv,
  hostNetns,
  parseSubnet,
  partitionKey,
  partitionRuleset,
  splitWords,
  substitute,
  switchNetns,
  switchPort,
  validateHostName,
  validateLabName,
  DEFAULT_DAEMON_CMD,
} from '../../../deploy/lab/plan.js';

describe('subnets and host addresses', () => {
  it.each([
    ['10.231.0.0/24', 1, '10.231.0.11'],
    ['10.231.0.0/24', 3, '10.231.0.13'],
    ['10.231.0.0/24', 244, '10.231.0.254'],
    ['10.232.0.0/16', 250, '10.232.1.4'],
    ['192.168.7.64/26', 2, '192.168.7.76'],
    ['10.0.0.0/8', 1000, '10.0.3.242'],
  ])('%s host %i -> %s', (subnet, index, ip) => {
    expect(hostAddress(subnet, index)).toBe(ip);
  });

  it.each([
    ['10.231.0.0/24', 245, /no room for host 245/], // .255 is the broadcast address
    ['10.231.0.0/28', 5, /no room/],
    ['10.231.0.0/24', 0, /index must be >= 1/],
    ['10.231.0.0/24', 1.5, /index must be >= 1/],
  ])('%s host %s is refused', (subnet, index, err) => {
    expect(() => hostAddress(subnet, index)).toThrow(err);
  });

  it.each([
    ['10.231.0.11', '02:00:0a:e7:00:0b'],
    ['192.168.255.1', '02:00:c0:a8:ff:01'],
  ])('host %s has the fixed MAC %s', (ip, mac) => {
    expect(hostMac(ip)).toBe(mac);
  });

  it.each([
    ['10.231.0.0/24', { network: 0x0ae70000, prefix: 24 }],
    ['0.0.0.0/8', { network: 0, prefix: 8 }],
    ['255.255.255.0/24', { network: 0xffffff00, prefix: 24 }],
  ])('parses %s', (cidr, want) => {
    expect(parseSubnet(cidr)).toEqual(want);
  });

  it.each([
    ['10.231.0.1/24', /host bits set \(network is 10\.231\.0\.0\/24\)/],
    ['10.231.0.0', /a\.b\.c\.d\/len/],
    ['10.231.0/24', /not an IPv4 address/],
    ['10.256.0.0/24', /not an IPv4 address/],
    ['10.231.0.0/30', /prefix length must be 8\.\.29/],
    ['10.0.0.0/4', /prefix length/],
  ])('refuses %s', (cidr, err) => {
    expect(() => parseSubnet(cidr)).toThrow(err);
  });
});

describe('names', () => {
  it.each(['lab', 't12345', 'a', 'abcdefghijklmnop'])('lab name %s is fine', (n) => {
    expect(() => validateLabName(n)).not.toThrow();
  });
  it.each(['', 'Lab', '1lab', 'my-lab', 'abcdefghijklmnopq', 'a b', 'a_b'])('lab name %j is refused', (n) => {
    expect(() => validateLabName(n)).toThrow(/lab name/);
  });
  it.each(['host1', 'db-2', 'abcdefghijkl'])('host name %s is fine', (n) => {
    expect(() => validateHostName(n)).not.toThrow();
  });
  it.each(['', 'Host1', '2host', 'abcdefghijklm', 'web-', 'a.b'])('host name %j is refused', (n) => {
    expect(() => validateHostName(n)).toThrow(/host name/);
  });
  it('reserves sw for the switch namespace', () => {
    expect(() => validateHostName('sw')).toThrow(/reserved/);
  });
  it('derives namespace and port names that fit the kernel limits', () => {
    expect(switchNetns('t1')).toBe('t1-sw');
    expect(hostNetns('t1', 'host2')).toBe('t1-host2');
    expect(switchPort('abcdefghijkl')).toBe('to-abcdefghijkl');
    expect(switchPort('abcdefghijkl').length).toBeLessThanOrEqual(15); // IFNAMSIZ - 1
  });
  it.each([
    [1, ['host1']],
    [3, ['host1', 'host2', 'host3']],
  ])('%i default hosts', (n, want) => {
    expect(defaultHostNames(n)).toEqual(want);
  });
  it.each([0, -1, 2.5, 201])('%s hosts is refused', (n) => {
    expect(() => defaultHostNames(n)).toThrow(/host count/);
  });
});

describe('command templates', () => {
  it.each([
    ['a b  c', ['a', 'b', 'c']],
    ['  lead and trail  ', ['lead', 'and', 'trail']],
    [`sh -c 'echo $HOME; x'`, ['sh', '-c', 'echo $HOME; x']],
    [`a "b c" d`, ['a', 'b c', 'd']],
    [`"say \\"hi\\"" x`, ['say "hi"', 'x']],
    [`a\\ b`, ['a b']],
    [`--x='1 2'3`, ['--x=1 23']],
    [`'' x`, ['', 'x']],
    ['', []],
  ])('splits %j', (t, want) => {
    expect(splitWords(t)).toEqual(want);
  });

  it.each([[`a 'b`], [`a "b`], ['a\\']])('refuses %j', (t) => {
    expect(() => splitWords(t)).toThrow(/unterminated|trailing/);
  });

  const vars = { ip: '10.231.0.12', host: 'host2', stateDir: '/var/lib/my lab/host2/state', socket: '/s.sock', repo: '/repo', node: '/usr/bin/node' };

  it.each([
    ['{ip}:4377', '10.231.0.12:4377'],
    ['{host}-{host}', 'host2-host2'],
    ['no placeholders', 'no placeholders'],
    ['{ not a placeholder }', '{ not a placeholder }'],
  ])('substitutes %j', (t, want) => {
    expect(substitute(t, vars)).toBe(want);
  });

  it('names the unknown placeholder', () => {
    expect(() => substitute('{stateDri}', vars)).toThrow(/unknown placeholder \{stateDri\}.*\{stateDir\}/);
  });

  it('keeps a substituted value with spaces as one argument', () => {
    expect(buildCommand('daemon --state-dir {stateDir} --listen {ip}:4377', vars)).toEqual([
      'daemon',
      '--state-dir',
      '/var/lib/my lab/host2/state',
      '--listen',
      '10.231.0.12:4377',
    ]);
  });

  it('builds the default shoald command', () => {
    expect(buildCommand(DEFAULT_DAEMON_CMD, vars)).toEqual([
      '/usr/bin/node',
      '--max-semi-space-size=1',
      '/repo/dist/cli/shoald/main.js',
      '--state-dir',
      '/var/lib/my lab/host2/state',
      '--listen-addr',
      '10.231.0.12:4377',
      '--advertise-addr',
      '10.231.0.12:4377',
      '--socket',
      '/s.sock',
    ]);
  });

  it('refuses an empty template', () => {
    expect(() => buildCommand('   ', vars)).toThrow(/empty/);
  });
});

describe('running in a host', () => {
  it('enters only the netns, sets the hostname in a fresh UTS namespace and passes argv untouched', () => {
    expect(hostArgv('t1-host2', 'host2', ['echo', 'a b', '$HOME', "'q'"])).toEqual([
      'nsenter',
      '--net=/run/netns/t1-host2',
      'unshare',
      '--uts',
      '--',
      'sh',
      '-c',
      'hostname "$0" && exec "$@"',
      'host2',
      'echo',
      'a b',
      '$HOME',
      "'q'",
    ]);
  });
  it('refuses an empty command', () => {
    expect(() => hostArgv('n', 'h', [])).toThrow(/no command/);
  });

  it.each([
    [0, null, 0],
    [3, null, 3],
    [null, 'SIGKILL', 137],
    [null, 'SIGTERM', 143],
    [null, null, 1],
  ] as const)('exit code %s / signal %s -> %i', (code, signal, want) => {
    expect(exitCode(code, signal, { SIGKILL: 9, SIGTERM: 15 })).toBe(want);
  });
});

describe('partitions', () => {
  it.each([
    [['host1', 'host2'], ['host1', 'host2']],
    [['host2', 'host1'], ['host1', 'host2']],
    [['b', 'a'], ['a', 'b']],
  ])('pair %j normalises to %j', ([a, b], want) => {
    expect(partitionKey(a!, b!)).toEqual(want);
  });

  it('with none, only removes the table', () => {
    expect(partitionRuleset([])).toBe('table bridge shoal-lab\ndelete table bridge shoal-lab\n');
  });

  it('drops both directions between the bridge ports of each pair', () => {
    expect(partitionRuleset([['host1', 'host2'], ['host2', 'host3']])).toBe(
      [
        'table bridge shoal-lab',
        'delete table bridge shoal-lab',
        'table bridge shoal-lab {',
        '  chain forward {',
        '    type filter hook forward priority 0; policy accept;',
        '    iifname "to-host1" oifname "to-host2" drop',
        '    iifname "to-host2" oifname "to-host1" drop',
        '    iifname "to-host2" oifname "to-host3" drop',
        '    iifname "to-host3" oifname "to-host2" drop',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });
});

describe('status table', () => {
  it('lists each host with its daemon and sidecar pids and liveness', () => {
    const out = formatStatus(
      [
        { host: 'host1', netns: 't1-host1', ip: '10.231.0.11', up: true, procs: { containerd: { pid: 10, alive: true }, daemon: { pid: 1234, alive: true } } },
        { host: 'host2', netns: 't1-host2', ip: '10.231.0.12', up: false, procs: { daemon: { pid: null, alive: false } } },
      ],
      ['containerd', 'daemon'],
      [['host1', 'host2']],
    );
    expect(out).toBe(
      [
        'HOST   NAMESPACE  IP           NETNS    CONTAINERD PID  ALIVE  DAEMON PID  ALIVE',
        'host1  t1-host1   10.231.0.11  up       10              yes    1234        yes',
        'host2  t1-host2   10.231.0.12  missing  -               no     -           no',
        'partitions: host1<->host2',
        '',
      ].join('\n'),
    );
  });
});
