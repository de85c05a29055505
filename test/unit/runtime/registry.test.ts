// The registry client against a fake registry on loopback that wants a bearer
// token, redirects blob downloads, and can be told to hand out wrong bytes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, RegistryError, RegistryPuller, parseChallenge, type PullTarget } from '../../../worker/runtime/registry.js';
import { parseRef } from '../../../worker/runtime/reference.js';
import { ImageNotFoundError } from '../../../worker/runtime/runtime.js';
import { buildImage, layerFiles, type BuiltImage } from '../../../deploy/images/oci-layout.js';
import type { Descriptor } from '../../../worker/runtime/oci.js';

describe('WWW-Authenticate', () => {
  it('parses bearer and basic challenges', () => {
    expect(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
    });
    expect(parseChallenge('Basic realm="basic-realm"')).toEqual({ scheme: 'basic', params: { realm: 'basic-realm' } });
  });
  it('speaks plain HTTP only to loopback and listed hosts', () => {
    const c = new RegistryClient({ insecure: ['registry.lab:5000'] });
    expect(c.baseUrl('127.0.0.1:5000')).toBe('http://127.0.0.1:5000');
    expect(c.baseUrl('localhost:5000')).toBe('http://localhost:5000');
    expect(c.baseUrl('registry.lab:5000')).toBe('http://registry.lab:5000');
    expect(c.baseUrl('registry.lab')).toBe('https://registry.lab');
    expect(c.baseUrl('docker.io')).toBe('https://registry-1.docker.io');
  });
});

describe('registry client', () => {
  let server: Server;
  let base: string;
  let img: BuiltImage;
  const blobs = new Map<string, Buffer>();
  const stats = { tokens: 0, unauthorized: 0 };
  let tamper = false;

  beforeAll(async () => {
    img = buildImage({ name: 'x', layers: [layerFiles([{ path: 'hello', data: 'world\n' }])], config: { Cmd: ['/hello'] } });
    for (const b of [img.manifest, img.config, ...img.layers]) blobs.set(b.digest, b.data);
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', base);
      if (url.pathname === '/token') {
        stats.tokens++;
        expect(url.searchParams.get('service')).toBe('fake');
        expect(url.searchParams.get('scope')).toBe('repository:shoal/web:pull');
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ token: 'tok-1' }));
        return;
      }
      if (url.pathname.startsWith('/storage/')) {
        const data = blobs.get(url.pathname.slice(9))!;
        res.end(tamper ? Buffer.concat([data.subarray(0, -1), Buffer.from([data[data.length - 1]! ^ 1])]) : data);
        return;
      }
      if (req.headers.authorization !== 'Bearer tok-1') {
        stats.unauthorized++;
        res.statusCode = 401;
        res.setHeader('www-authenticate', `Bearer realm="${base}/token",service="fake",scope="repository:shoal/web:pull"`);
        res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      const m = /^\/v2\/shoal\/web\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
      if (m?.[1] === 'manifests' && (m[2] === '1' || m[2] === img.manifest.digest)) {
        res.setHeader('content-type', img.manifest.mediaType);
        res.setHeader('docker-content-digest', img.manifest.digest);
        res.end(img.manifest.data);
        return;
      }
      if (m?.[1] === 'blobs' && blobs.has(m[2]!)) {
        res.statusCode = 307;
        res.setHeader('location', `${base}/storage/${m[2]}`);
        res.end();
        return;
      }
      res.statusCode = 404;
      res.end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const ref = (): ReturnType<typeof parseRef> => parseRef(`${base.slice(7)}/shoal/web:1`);

  it('fetches a manifest by tag after a bearer challenge, then by digest with the cached token', async () => {
    const c = new RegistryClient();
    const m = await c.manifest(ref(), '1');
    expect(m.desc).toEqual({ mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size });
    expect(m.data.equals(img.manifest.data)).toBe(true);
    const before = { ...stats };
    await c.manifest(ref(), img.manifest.digest);
    expect(stats).toEqual(before);
  });

  it('streams blobs through redirects and checks their digest', async () => {
    const c = new RegistryClient();
    const layer = img.layers[0]!;
    expect((await c.blobBytes(ref(), layer)).equals(layer.data)).toBe(true);
    tamper = true;
    try {
      await expect(c.blobBytes(ref(), layer)).rejects.toThrow(/arrived as sha256:/);
    } finally {
      tamper = false;
    }
  });

  it('a missing tag is ImageNotFoundError naming the image', async () => {
    const c = new RegistryClient();
    const err = await c.manifest(ref(), '2').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageNotFoundError);
    expect((err as Error).message).toContain(`${base.slice(7)}/shoal/web:1`);
  });

  it('a registry nobody answers for is named, with what to check', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const err = await new RegistryClient().manifest(parseRef(`127.0.0.1:${port}/shoal/web:1`), '1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(new RegExp(`^cannot reach registry 127\\.0\\.0\\.1:${port} \\(GET http://127\\.0\\.0\\.1:${port}/v2/shoal/web/manifests/1: .*ECONNREFUSED.*\\): check the image name`));
    expect((err as Error).message).toContain('shoal image load');
  });

  it('a manifest fetched by digest must have that digest', async () => {
    const c = new RegistryClient();
    const wrong = `sha256:${'0'.repeat(64)}`;
    await expect(c.manifest(ref(), wrong)).rejects.toThrow(/not found|has digest/);
  });

  it('a pull hands the store every blob this platform needs and names the image', async () => {
    const got = new Map<string, Buffer>();
    const images: [string, Descriptor][] = [];
    const store: PullTarget = {
      withLease: (_p, fn) => fn('lease-1'),
      ingest: async (d, source) => {
        const man = JSON.parse((await source.read(d)).toString());
        for (const b of [man.config, ...man.layers] as Descriptor[]) {
          expect(source.has(b, true)).toBe(true);
          const parts: Buffer[] = [];
          for await (const c of await source.stream(b)) parts.push(Buffer.from(c));
          got.set(b.digest, Buffer.concat(parts));
        }
        return true;
      },
      putImage: async (name, target) => {
        images.push([name, target]);
      },
    };
    await new RegistryPuller().pull(`${base.slice(7)}/shoal/web:1`, store);
    expect(images).toEqual([[`${base.slice(7)}/shoal/web:1`, { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size }]]);
    expect(got.get(img.config.digest)?.equals(img.config.data)).toBe(true);
    expect(got.get(img.layers[0]!.digest)?.equals(img.layers[0]!.data)).toBe(true);
  });
});
