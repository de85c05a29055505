// `service create --with-registry-auth`: the credentials this client has for the
// image's registry (the Docker client's config, as `docker login` writes it), encoded
// for the service, so that every node can pull the image without a login of its own.
import { readFileSync } from 'node:fs';
import { encodeRegistryAuth } from '../../proto/registryauth.js';
import { parseRef } from '../../worker/runtime/reference.js';
import { defaultDockerConfig, parseDockerConfig } from '../../worker/runtime/registryauth.js';
import { FlagError } from './serviceflags.js';

/** The encoded credentials for `image`'s registry from `file` (default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json). */
export function registryAuthFor(image: string, file: string = defaultDockerConfig()): string {
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
  let creds;
  try {
    creds = parseDockerConfig(text, file).get(domain);
  } catch (e) {
    throw new FlagError(`--with-registry-auth: ${(e as Error).message}`);
  }
  if (!creds) {
    throw new FlagError(`--with-registry-auth: ${file} has no username and password for ${domain} (credential helpers are not read): log in with \`docker login ${domain}\`, or leave the flag out to use each node's own login`);
  }
  return encodeRegistryAuth({ ...creds, serveraddress: domain });
}
