// Pushes the image of an OCI layout tarball into a registry over its HTTP API
// v2: blobs first (monolithic POST + PUT uploads, skipped when the registry
// has them), then the manifest under the tag. Run where the registry is
// reachable (registry.ts's pushImage runs it inside the lab host):
//   node dist/deploy/lab/registry-push.js HOST:PORT TAR REPO:TAG
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { indexTar, readTarEntry, type TarEntry } from '../../worker/runtime/tar.js';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

interface ManifestJson {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/** REPO:TAG -> [repo, tag]; a missing tag is `latest`. */
export function splitRepoTag(ref: string): [string, string] {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  const [repo, tag] = colon > slash ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, 'latest'];
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(repo)) throw new Error(`'${repo}' is not a repository name (lower case, like busybox or team/app)`);
  if (!/^[\w][\w.-]{0,127}$/.test(tag)) throw new Error(`'${tag}' is not a tag`);
  return [repo, tag];
}

/** Pushes the image of an OCI layout tarball to http://<registry>/v2/<repo> under tag; returns the manifest digest. */
export async function pushOciTarball(registry: string, tarPath: string, ref: string): Promise<string> {
  const [repo, tag] = splitRepoTag(ref);
  const entries = await indexTar(tarPath);
  const entry = (name: string): TarEntry => {
    const e = entries.get(name);
    if (!e) throw new Error(`${tarPath}: ${name} is missing`);
    return e;
  };
  const blob = (d: Descriptor): Promise<Buffer> => readTarEntry(tarPath, entry(`blobs/${d.digest.replace(':', '/')}`));
  const index = JSON.parse((await readTarEntry(tarPath, entry('index.json'))).toString('utf8')) as ManifestJson;
  const top = index.manifests?.[0];
  if (!top) throw new Error(`${tarPath}: index.json lists no manifests`);
  const base = `http://${registry}/v2/${repo}`;

  const pushBlob = async (d: Descriptor): Promise<void> => {
    if ((await fetch(`${base}/blobs/${d.digest}`, { method: 'HEAD' })).status === 200) return;
    const data = await blob(d);
    const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST' });
    if (start.status !== 202) throw new Error(`${registry}: starting an upload of ${d.digest}: HTTP ${start.status} ${await start.text()}`);
    const loc = new URL(start.headers.get('location') ?? '', base);
    loc.searchParams.set('digest', d.digest);
    const put = await fetch(loc, { method: 'PUT', body: new Uint8Array(data), headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`${registry}: uploading ${d.digest}: HTTP ${put.status} ${await put.text()}`);
  };
  // Children before their parent: the registry refuses a manifest whose blobs it lacks.
  const pushManifest = async (d: Descriptor, reference: string): Promise<void> => {
    const data = await blob(d);
    const m = JSON.parse(data.toString('utf8')) as ManifestJson;
    for (const child of m.manifests ?? []) await pushManifest(child, child.digest);
    for (const b of [...(m.config ? [m.config] : []), ...(m.layers ?? [])]) await pushBlob(b);
    const res = await fetch(`${base}/manifests/${reference}`, { method: 'PUT', body: new Uint8Array(data), headers: { 'content-type': m.mediaType ?? d.mediaType } });
    if (res.status !== 201) throw new Error(`${registry}: putting manifest ${reference}: HTTP ${res.status} ${await res.text()}`);
  };
  await pushManifest(top, tag);
  return top.digest;
}

async function waitRegistry(registry: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const r = await fetch(`http://${registry}/v2/`);
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`registry ${registry} does not answer after ${timeoutMs} ms (${last})`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function main(argv: string[]): Promise<void> {
  const [registry, tarPath, ref] = argv;
  if (!registry || !tarPath || !ref) throw new Error('usage: registry-push.js HOST:PORT TAR REPO:TAG');
  await waitRegistry(registry, 30_000);
  const digest = await pushOciTarball(registry, tarPath, ref);
  process.stdout.write(`pushed ${registry}/${ref} ${digest}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`registry-push.js: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
