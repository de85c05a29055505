// Installing shoal on a host (deploy/install): the program with only its
// production dependencies, `shoal` and `shoald` commands that run it, a
// systemd unit that systemd itself accepts, a rerun that keeps the node's
// state, and an uninstall that removes what was installed. Everything goes to
// directories of the test's own (the scripts' --prefix, --bin-dir, --unit-dir
// and --state-dir), and nothing is started through systemd. Needs root and
// systemd-analyze (package systemd): skipped without them, except under
// CI=true, where that fails.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../support/wait.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const inCI = process.env.CI === 'true';
const root = process.getuid?.() === 0;
const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
const built = existsSync(path.join(repo, 'dist/cli/shoald/main.js'));
const problems = [!root && 'root', !analyze && 'systemd-analyze (apt-get install systemd)', !built && 'a build (npm run build)'].filter(Boolean);
if (problems.length && !inCI) console.log(`skipping the install test: needs ${problems.join(', ')}`);

interface Run { code: number; stdout: string; stderr: string }

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: repo, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(problems.length > 0 && !inCI)('deploy/install: shoal on a host', () => {
  let dir: string;
  let dirs: { prefix: string; bin: string; units: string; state: string };
  let flags: string[];
  let daemon: ChildProcess | undefined;

  beforeAll(() => {
    if (problems.length) throw new Error(`the install test cannot run: needs ${problems.join(', ')}`);
    dir = mkdtempSync(path.join(tmpdir(), 'shoal-install-'));
    dirs = { prefix: path.join(dir, 'opt/shoal'), bin: path.join(dir, 'bin'), units: path.join(dir, 'units'), state: path.join(dir, 'state') };
    flags = ['--prefix', dirs.prefix, '--bin-dir', dirs.bin, '--unit-dir', dirs.units, '--state-dir', dirs.state];
  });

  afterAll(() => {
    daemon?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const install = (...extra: string[]) => run('bash', ['deploy/install/install.sh', ...flags, '--no-start', '--no-packages', '--no-build', ...extra]);

  it('installs the program with its production dependencies only, and the two commands', async () => {
    const r = await install();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const modules = readdirSync(path.join(dirs.prefix, 'node_modules'));
    for (const m of ['@grpc', 'commander', 'dockerode', 'node-forge', 'pino', 'protobufjs']) expect(modules).toContain(m);
    for (const m of ['vitest', 'typescript', 'eslint', 'esbuild']) expect(modules).not.toContain(m);
    expect(existsSync(path.join(dirs.prefix, 'dist/test'))).toBe(false);
    expect(existsSync(path.join(dirs.prefix, 'dist/cli/shoal/shoal.cjs'))).toBe(true);
    // The node that ran the install, by its path (a service's PATH may not lead to it).
    const node = (await run('sh', ['-c', 'command -v node'])).stdout.trim();
    for (const b of ['shoal', 'shoald']) expect(readFileSync(path.join(dirs.bin, b), 'utf8')).toMatch(new RegExp(`exec (env SHOAL_SOCKET=\\S+ )?${node} [^\\n]*-- ${dirs.prefix}/dist/cli/${b}/main\\.js "\\$@"`));
  }, 120_000);

  it('writes a unit that systemd accepts, naming the installed shoald and the state directory', async () => {
    const unit = readFileSync(path.join(dirs.units, 'shoald.service'), 'utf8');
    expect(unit).not.toMatch(/@[A-Z_]+@/);
    expect(unit).toContain(`ExecStart=${dirs.bin}/shoald --state-dir ${dirs.state}\n`);
    for (const line of ['Restart=always', 'CPUWeight=1000', 'Nice=-10', 'OOMScoreAdjust=-500', 'WantedBy=multi-user.target']) expect(unit).toContain(`${line}\n`);
    const v = await run(analyze!, ['verify', path.join(dirs.units, 'shoald.service')]);
    expect(v.stderr).toBe(''); // an unknown key or a bad value is only a warning there
    expect(v.code).toBe(0);
  }, 60_000);

  it('the installed shoald serves the installed shoal on the state directory\'s socket; a --env-file reaches shoal, not node; SIGTERM stops it', async () => {
    daemon = spawn(path.join(dirs.bin, 'shoald'), ['--state-dir', dirs.state, '--listen-addr', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    daemon.stdout!.on('data', (b: Buffer) => (log += b.toString()));
    daemon.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    await waitFor('shoald ready', () => (log.includes('shoald ready') ? true : undefined), 30_000);
    const info = await run(path.join(dirs.bin, 'shoal'), ['info'], { SHOAL_SOCKET: '' });
    expect(info.stdout).toContain('Swarm: inactive');
    const bad = await run(path.join(dirs.bin, 'shoal'), ['service', 'create', '--env-file', path.join(dir, 'missing.env'), 'busybox']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`cannot read --env-file ${path.join(dir, 'missing.env')}: no such file`);
    const exited = new Promise<number | null>((resolve) => daemon!.on('exit', (code) => resolve(code)));
    daemon.kill('SIGTERM');
    expect(await exited).toBe(0);
    daemon = undefined;
  }, 60_000);

  it('a rerun replaces the program, keeps the node\'s state, and clears what an interrupted run left', async () => {
    writeFileSync(path.join(dirs.state, 'marker'), 'kept');
    writeFileSync(path.join(dirs.prefix, 'stale-file'), 'from the last install');
    // What a run killed halfway leaves beside the prefix: its staging, and the old install it was swapping out.
    for (const d of ['.shoal.new.4242', '.shoal.new.4242.old']) mkdirSync(path.join(path.dirname(dirs.prefix), d, 'dist'), { recursive: true });
    const r = await install();
    expect(r.code).toBe(0);
    expect(readFileSync(path.join(dirs.state, 'marker'), 'utf8')).toBe('kept');
    expect(existsSync(path.join(dirs.prefix, 'stale-file'))).toBe(false);
    expect(readdirSync(path.dirname(dirs.prefix))).toEqual(['shoal']); // no staging left beside it
  }, 120_000);

  it.each([
    { args: ['--prefix', 'relative/dir'], error: 'install.sh: relative/dir: give an absolute path' },
    { args: ['--frobnicate'], error: 'install.sh: unknown option --frobnicate' },
  ])('refuses $args with a reason, installing nothing', async ({ args, error }) => {
    const r = await run('bash', ['deploy/install/install.sh', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(error);
  });

  it('uninstall removes the program, the commands and the unit; the state stays unless --purge', async () => {
    const u = await run('bash', ['deploy/install/uninstall.sh', ...flags]);
    expect(u.code).toBe(0);
    for (const p of [dirs.prefix, path.join(dirs.bin, 'shoal'), path.join(dirs.bin, 'shoald'), path.join(dirs.units, 'shoald.service')]) expect(existsSync(p)).toBe(false);
    expect(existsSync(path.join(dirs.state, 'marker'))).toBe(true);
    const p = await run('bash', ['deploy/install/uninstall.sh', ...flags, '--purge']);
    expect(p.code).toBe(0);
    expect(existsSync(dirs.state)).toBe(false);
  }, 60_000);

  it('uninstall leaves a --prefix alone that is not a shoal install', async () => {
    const other = path.join(dir, 'precious');
    mkdirSync(other, { recursive: true });
    writeFileSync(path.join(other, 'package.json'), '{"name": "something-else"}');
    const r = await run('bash', ['deploy/install/uninstall.sh', ...flags, '--prefix', other]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${other} does not look like a shoal install; left alone`);
    expect(existsSync(path.join(other, 'package.json'))).toBe(true);
  });
});
