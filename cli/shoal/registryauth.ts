// `service create --with-registry-auth`: the credentials this client has for the
// image's registry, found as the docker CLI finds them (its config file, or the
// credential helper the file names), encoded for the service, so that every node
// can pull the image without a login of its own.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { encodeRegistryAuth } from '../../proto/registryauth.js';
import { parseRef } from '../../worker/runtime/reference.js';
import { credentialHelper, defaultDockerConfig, helperServerUrl, parseDockerConfig } from '../../worker/runtime/registryauth.js';
import type { RegistryCredentials } from '../../worker/runtime/registry.js';
import { FlagError } from './serviceflags.js';

export interface RegistryAuthOptions {
  /** The Docker client config (default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json). */
  file?: string;
  /** Where credential helpers are looked for (PATH); default this process's environment. */
  env?: NodeJS.ProcessEnv;
}

/** The encoded credentials for `image`'s registry. */
export function registryAuthFor(image: string, opts: RegistryAuthOptions = {}): string {
  const file = opts.file ?? defaultDockerConfig(opts.env);
  let domain: string;
  try {
    domain = parseRef(image).domain;
  } catch (e) {
    throw new FlagError(`--with-registry-auth: ${(e as Error).message}`);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read (${(e as Error).message})`;
    throw new FlagError(`--with-registry-auth: no credentials for ${domain}: ${file} ${why}; log in first (\`docker login ${domain}\` writes it), or set DOCKER_CONFIG to the directory of your config.json`);
  }
  let creds: RegistryCredentials | undefined;
  try {
    const helper = credentialHelper(text, file, domain);
    creds = helper ? fromHelper(helper, domain, file, opts.env) : parseDockerConfig(text, file).get(domain);
  } catch (e) {
    throw e instanceof FlagError ? e : new FlagError(`--with-registry-auth: ${(e as Error).message}`);
  }
  if (!creds) {
    throw new FlagError(`--with-registry-auth: ${file} has no username and password for ${domain}: log in with \`docker login ${domain}\`, or leave the flag out to use each node's own login`);
  }
  return encodeRegistryAuth({ ...creds, serveraddress: domain });
}

/** Asks `docker-credential-<helper> get` (the docker CLI's protocol: the server on stdin, JSON out). */
function fromHelper(helper: string, domain: string, file: string, env?: NodeJS.ProcessEnv): RegistryCredentials {
  const program = `docker-credential-${helper}`;
  let out: string;
  try {
    out = execFileSync(program, ['get'], { input: helperServerUrl(domain), encoding: 'utf8', timeout: 30_000, env: env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (err.code === 'ENOENT') throw new FlagError(`--with-registry-auth: ${file} keeps logins in the credential helper "${helper}", but ${program} is not installed here`);
    const said = `${err.stdout ?? ''} ${err.stderr ?? ''}`.trim();
    if (/credentials not found/i.test(said)) throw new FlagError(`--with-registry-auth: the credential helper "${helper}" has no login for ${domain}: log in with \`docker login ${domain}\``);
    throw new FlagError(`--with-registry-auth: the credential helper ${program} failed: ${said || err.message}`);
  }
  let doc: { Username?: unknown; Secret?: unknown };
  try {
    doc = JSON.parse(out) as typeof doc;
  } catch {
    throw new FlagError(`--with-registry-auth: ${program} answered something that is not JSON`);
  }
  if (doc.Username === '<token>') throw new FlagError(`--with-registry-auth: the login for ${domain} in "${helper}" is an identity token, which shoal cannot pass on: log in with a username and password`);
  if (typeof doc.Username !== 'string' || typeof doc.Secret !== 'string' || !doc.Username || !doc.Secret) {
    throw new FlagError(`--with-registry-auth: ${program} gave no username and password for ${domain}`);
  }
  return { username: doc.Username, password: doc.Secret };
}
