// Image references the way Docker and containerd spell them: a reference with
// no registry host means Docker Hub (docker.io/library/ for single names), and
// one with neither tag nor digest means :latest.

export interface ImageRef {
  /** Registry host[:port], e.g. docker.io, 127.0.0.1:5000. */
  domain: string;
  /** Repository path, e.g. library/busybox. */
  path: string;
  tag?: string;
  /** sha256:<hex> when the reference pins a digest. */
  digest?: string;
  /** The normalized string: domain/path[:tag][@digest]. */
  name: string;
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function parseRef(ref: string): ImageRef {
  const bad = (why: string): never => {
    throw new Error(`invalid image reference "${ref}": ${why}`);
  };
  if (!ref || ref !== ref.trim()) bad('empty or surrounded by spaces');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad('digest must be sha256:<64 hex>');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`bad tag "${tag}"`);
  }
  let domain = 'docker.io';
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  if (!path) bad('no repository');
  for (const c of path.split('/')) if (!PATH_COMPONENT.test(c)) bad(`bad repository component "${c}"`);
  if (!tag && !digest) tag = 'latest';
  const name = `${domain}/${path}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return { domain, path, tag, digest, name };
}

/** The normalized name of a reference (what containerd's image store holds). */
export function normalizeRef(ref: string): string {
  return parseRef(ref).name;
}
