// A local image registry on a lab host: Debian's docker-registry (distribution
// 2.x) as a lab sidecar on one host, listening on <host ip>:5000 with its
// storage under that host's dir. Lab hosts pull from it with
// `--insecure-registry <ip>:5000` on shoald (containerdLabOptions({ registryHost })).
//
// The registry is reachable only inside the lab network, so pushing an OCI
// tarball into it runs the pusher (registry-push.ts) in the registry's host.
// Node built-ins only, like the rest of the lab's core.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Lab } from './lab.js';
import type { ProcSpec } from './plan.js';

export const REGISTRY_PORT = 5000;
export const REGISTRY_PROC = 'registry';

/**
 * The same registry storage behind a login (the lab's user and password, htpasswd), on
 * another port: what is pushed to the open registry can only be pulled from here with them.
 */
export const AUTH_REGISTRY_PORT = 5001;
export const AUTH_REGISTRY_PROC = 'registry-auth';
export const LAB_REGISTRY_USER = 'shoal-lab';
export const LAB_REGISTRY_PASSWORD = 'lab-registry-pass';
/** htpasswd -nbB of the pair above (docker-registry takes bcrypt only). */
const LAB_HTPASSWD = 'shoal-lab:$2y$05$vnosmfUfuaOqr3IXd7xvKO8lgHHs9gsXNZE/C0G3numfGUF2suYqO\n';

/** docker-registry's config.yml (hostDir and ip may be the {hostDir} {ip} placeholders of a sidecar template). */
export function registryConfig(hostDir: string, ip: string, opts: { port?: number; htpasswd?: string } = {}): string {
  return [
    '# Written by shoal-lab (deploy/lab/registry.ts) before each start of this registry.',
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(hostDir, 'registry', 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${ip}:${opts.port ?? REGISTRY_PORT}`,
    ...(opts.htpasswd ? ['auth:', '  htpasswd:', '    realm: shoal-lab', `    path: ${opts.htpasswd}`] : []),
    '',
  ].join('\n');
}

/** The registry as a sidecar of one host: <its ip>:5000, storage in <hostDir>/registry/data. */
export function registrySidecar(host: string): ProcSpec {
  const config = path.join('{hostDir}', 'registry', 'config.yml');
  return { name: REGISTRY_PROC, cmd: `docker-registry serve ${config}`, hosts: [host], files: { [config]: registryConfig('{hostDir}', '{ip}') } };
}

/** The registry's storage served at <ip>:5001 to the lab's user only (LAB_REGISTRY_USER / LAB_REGISTRY_PASSWORD). */
export function authRegistrySidecar(host: string): ProcSpec {
  const dir = path.join('{hostDir}', 'registry');
  const config = path.join(dir, 'config-auth.yml');
  const htpasswd = path.join(dir, 'htpasswd');
  return {
    name: AUTH_REGISTRY_PROC,
    cmd: `docker-registry serve ${config}`,
    hosts: [host],
    files: { [config]: registryConfig('{hostDir}', '{ip}', { port: AUTH_REGISTRY_PORT, htpasswd }), [htpasswd]: LAB_HTPASSWD },
  };
}

/** host:port of the registry on `host` (default: the host its sidecar runs on, else host1). */
export function registryAddress(lab: Lab, host?: string): string {
  return `${lab.hostIp(host ?? registryHost(lab))}:${REGISTRY_PORT}`;
}

/** The host the lab's registry sidecar runs on (host1 when none is configured). */
export function registryHost(lab: Lab): string {
  return lab.procSpecs().find((s) => s.name === REGISTRY_PROC)?.hosts?.[0] ?? 'host1';
}

/**
 * Pushes an OCI layout tarball into the lab's registry as REPO:TAG (busybox:1,
 * say), from inside the registry's host (the registry is only reachable
 * there). Needs the build (runs dist/deploy/lab/registry-push.js). Waits up to
 * 30 s for the registry to answer. Returns the full reference lab hosts pull:
 * <ip>:5000/REPO:TAG.
 */
export async function pushImage(lab: Lab, tarPath: string, ref: string, opts: { host?: string; timeoutMs?: number } = {}): Promise<string> {
  const host = opts.host ?? registryHost(lab);
  const addr = registryAddress(lab, host);
  const script = path.join(lab.repo, 'dist/deploy/lab/registry-push.js');
  if (!existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first`);
  const r = await lab.exec(host, [process.execPath, script, addr, path.resolve(tarPath), ref], { timeoutMs: opts.timeoutMs ?? 120_000 });
  if (r.code !== 0) throw new Error(`pushing ${tarPath} to ${addr}/${ref} on ${host} failed (code ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return `${addr}/${ref}`;
}
