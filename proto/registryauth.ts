// The registry credentials a service carries (ContainerSpec.pull_options.registry_auth):
// Docker's encoding for its X-Registry-Auth header, base64url of a JSON object. The CLI
// writes it (`service create --with-registry-auth`), the control API checks it, and the
// agents read it when they pull the task's image.

export interface RegistryAuth {
  username: string;
  password: string;
  /** The registry the credentials are for, as the image reference names it (e.g. 10.0.0.1:5000). */
  serveraddress?: string;
}

export function encodeRegistryAuth(a: RegistryAuth): string {
  return Buffer.from(JSON.stringify({ username: a.username, password: a.password, ...(a.serveraddress ? { serveraddress: a.serveraddress } : {}) })).toString('base64url');
}

/** The credentials in an encoded registry_auth; throws an Error saying what is wrong with it. */
export function decodeRegistryAuth(encoded: string): RegistryAuth {
  // Docker's clients write base64url; Node's base64 decoder takes both alphabets, padded or not.
  if (!/^[A-Za-z0-9+/_-]+=*$/.test(encoded)) throw new Error('not base64 (it is base64url of a JSON object, as `shoal service create --with-registry-auth` writes it)');
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
  } catch {
    throw new Error('its base64 does not hold JSON (it is base64url of a JSON object with username and password)');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('its JSON is not an object with username and password');
  const o = doc as Record<string, unknown>;
  if (typeof o.identitytoken === 'string' && o.identitytoken !== '' && !o.password) {
    throw new Error('it holds an identity token, which shoal cannot use: log in to the registry with a username and password');
  }
  for (const k of ['username', 'password', 'serveraddress'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'string') throw new Error(`its "${k}" is not a string`);
  }
  if (!o.username) throw new Error('it has no username');
  if (!o.password) throw new Error('it has no password');
  return { username: o.username as string, password: o.password as string, ...(o.serveraddress ? { serveraddress: o.serveraddress as string } : {}) };
}
