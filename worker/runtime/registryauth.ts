// Registry credentials for pulls, from a Docker client config file: the one
// `docker login` writes (~/.docker/config.json), so an operator logs a node in
// the way they know. Read at each pull that needs it (re-read when the file
// changes); the node's login is never stored in the swarm (a service's own, from
// `service create --with-registry-auth`, is: the CLI reads it with this module).
// Credential helpers (credsStore, credHelpers) are programs of Docker's: shoald
// does not run them (nor does Docker's daemon); `credentialHelper` only says which
// one a config names, for the CLI's --with-registry-auth, which runs it.
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { RegistryCredentials } from './registry.js';

/** Where the Docker client keeps its config: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function defaultDockerConfig(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json');
}

/** The registry a config key names, as image references name it: no scheme or path; Docker Hub's keys are docker.io. */
export function registryKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}

/** `auths` of a Docker config: registry -> username and password (`auth` is base64 of user:password). */
export function parseDockerConfig(text: string, file: string): Map<string, RegistryCredentials> {
  const bad = (why: string): never => {
    throw new Error(`registry credentials in ${file}: ${why}`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return bad(`not JSON (${(e as Error).message})`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return bad('expected an object with "auths"');
  const auths = (doc as { auths?: unknown }).auths ?? {};
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) return bad('"auths" must be an object of registry -> { "auth": base64 of user:password }');
  const out = new Map<string, RegistryCredentials>();
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    const e = (entry ?? {}) as { auth?: unknown; username?: unknown; password?: unknown };
    let username: string;
    let password: string;
    if (typeof e.auth === 'string' && e.auth !== '') {
      const plain = Buffer.from(e.auth, 'base64').toString('utf8');
      const colon = plain.indexOf(':');
      if (colon <= 0) bad(`auths["${key}"].auth must be base64 of user:password`);
      username = plain.slice(0, colon);
      password = plain.slice(colon + 1);
    } else if (typeof e.username === 'string' && typeof e.password === 'string') {
      username = e.username;
      password = e.password;
    } else {
      continue; // kept by a credential helper, or empty: nothing for us
    }
    out.set(registryKey(key), { username, password });
  }
  return out;
}

/**
 * The credential helper a Docker config names for a registry, as the docker CLI picks it:
 * `credHelpers` for that registry, else `credsStore`; undefined when the file's own `auths` hold
 * the login. The helper is the program `docker-credential-<name>`.
 */
export function credentialHelper(text: string, file: string, domain: string): string | undefined {
  let doc: { credHelpers?: unknown; credsStore?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch (e) {
    throw new Error(`registry credentials in ${file}: not JSON (${(e as Error).message})`);
  }
  const want = registryKey(domain);
  if (doc.credHelpers && typeof doc.credHelpers === 'object') {
    for (const [key, name] of Object.entries(doc.credHelpers as Record<string, unknown>)) {
      if (registryKey(key) === want && typeof name === 'string' && name) return name;
    }
  }
  return typeof doc.credsStore === 'string' && doc.credsStore ? doc.credsStore : undefined;
}

/** The server address a credential helper knows a registry by (Docker Hub's is its v1 URL). */
export function helperServerUrl(domain: string): string {
  return registryKey(domain) === 'docker.io' ? 'https://index.docker.io/v1/' : registryKey(domain);
}

/** A Docker config file, read again whenever it changed; a missing file holds no credentials. */
export class RegistryAuthFile {
  private seen?: { mtimeMs: number; size: number; creds: Map<string, RegistryCredentials> };

  constructor(readonly path: string) {}

  /** Credentials for the registry (host[:port], as in image references); throws when the file cannot be read as a config. */
  credentials(domain: string): RegistryCredentials | undefined {
    let st;
    try {
      st = statSync(this.path);
    } catch {
      this.seen = undefined;
      return undefined;
    }
    if (!this.seen || this.seen.mtimeMs !== st.mtimeMs || this.seen.size !== st.size) {
      this.seen = { mtimeMs: st.mtimeMs, size: st.size, creds: parseDockerConfig(readFileSync(this.path, 'utf8'), this.path) };
    }
    return this.seen.creds.get(registryKey(domain));
  }
}
