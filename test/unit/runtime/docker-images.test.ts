// OCI image layout -> `docker save` archive for the Docker adapter's
// loadImage, checked by reading the produced archive back; and which
// registries the engine reaches over plain HTTP.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { buildImage, digestOf, layerFiles, type BuiltImage } from '../../../deploy/images/oci-layout.js';
import { tar, type TarFile } from '../../../deploy/images/tar.js';
import { engineTreatsInsecure, planLoad, repoTag, saveArchive, saveManifest, tarHeader, type EngineRegistryConfig } from '../../../worker/runtime/docker/images.js';
import { indexTar, readTarEntry } from '../../../worker/runtime/tar.js';

const dir = mkdtempSync(join(tmpdir(), 'shoal-dkimg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const write = (data: Buffer): string => {
  const p = join(dir, `t${n++}.tar`);
  writeFileSync(p, data);
  return p;
};
const file = (name: string, data: Buffer | string): TarFile => ({ name, type: 'file', mode: 0o644, mtime: 0, data: Buffer.from(data) });

function image(name: string, gzip = true, files = [{ path: 'etc/hello', data: `hello from ${name}\n` }]): BuiltImage {
  return buildImage({ name, layers: [layerFiles(files), layerFiles([{ path: 'etc/second', data: 'two\n' }])], config: { Cmd: ['sh'] }, gzip });
}

async function convert(path: string, name?: string): Promise<{ entries: Map<string, Buffer>; plan: Awaited<ReturnType<typeof planLoad>> }> {
  const plan = await planLoad(path, name);
  const chunks: Buffer[] = [];
  for await (const c of saveArchive(plan)) chunks.push(c as Buffer);
  const out = write(Buffer.concat(chunks));
  const entries = new Map<string, Buffer>();
  for (const [k, e] of await indexTar(out)) entries.set(k, await readTarEntry(out, e));
  return { entries, plan };
}

describe('OCI layout -> docker save archive', () => {
  for (const gzip of [true, false]) {
    it(`one image, ${gzip ? 'gzip' : 'plain'} layers: manifest.json, config and layers byte for byte`, async () => {
      const img = image('shoal.local/busybox:1', gzip);
      const { entries, plan } = await convert(write(img.tarball));
      expect(plan.images).toHaveLength(1);
      expect(plan.images[0]).toMatchObject({ names: ['shoal.local/busybox:1'], manifestDigest: img.manifest.digest, configDigest: img.config.digest });
      const manifest = JSON.parse(entries.get('manifest.json')!.toString()) as unknown;
      const cfgName = `${img.config.digest.slice(7)}.json`;
      const layerNames = img.layers.map((l) => `${l.digest.slice(7)}/layer.tar`);
      expect(manifest).toEqual([{ Config: cfgName, RepoTags: ['shoal.local/busybox:1'], Layers: layerNames }]);
      expect(digestOf(entries.get(cfgName)!)).toBe(img.config.digest);
      img.layers.forEach((l, i) => expect(entries.get(layerNames[i]!)!.equals(l.data)).toBe(true));
      expect([...entries.keys()].sort()).toEqual(['manifest.json', cfgName, ...layerNames].sort());
    });
  }

  it('the name given wins for a single image; names are normalized', async () => {
    const img = image('shoal.local/busybox:1');
    const { plan } = await convert(write(img.tarball), 'busybox');
    expect(plan.images[0]!.names).toEqual(['docker.io/library/busybox:latest']);
    expect(saveManifest(plan)[0]!.RepoTags).toEqual(['docker.io/library/busybox:latest']);
  });

  it('several names of one manifest make one entry; shared layers are written once', async () => {
    const a = image('shoal.local/a:1');
    const b = image('shoal.local/b:1', true, [{ path: 'etc/hello', data: 'other\n' }]);
    const blobs = [...a.layers, a.config, a.manifest, ...b.layers, b.config, b.manifest];
    const seen = new Set<string>();
    const desc = (img: BuiltImage, name: string): object => ({
      mediaType: img.manifest.mediaType,
      digest: img.manifest.digest,
      size: img.manifest.size,
      annotations: { 'io.containerd.image.name': name },
    });
    const index = { schemaVersion: 2, manifests: [desc(a, 'shoal.local/a:1'), desc(a, 'shoal.local/a:latest'), desc(b, 'shoal.local/b:1')] };
    const layout = tar([
      file('oci-layout', '{"imageLayoutVersion":"1.0.0"}'),
      file('index.json', JSON.stringify(index)),
      ...blobs.filter((x) => !seen.has(x.digest) && seen.add(x.digest)).map((x) => file(`blobs/sha256/${x.digest.slice(7)}`, x.data)),
    ]);
    const { entries, plan } = await convert(write(layout));
    expect(plan.images.map((i) => i.names)).toEqual([['shoal.local/a:1', 'shoal.local/a:latest'], ['shoal.local/b:1']]);
    const m = JSON.parse(entries.get('manifest.json')!.toString()) as { RepoTags: string[]; Layers: string[] }[];
    expect(m.map((e) => e.RepoTags)).toEqual([['shoal.local/a:1', 'shoal.local/a:latest'], ['shoal.local/b:1']]);
    // The second layer (etc/second) is the same in both images.
    expect(m[0]!.Layers[1]).toBe(m[1]!.Layers[1]);
    expect([...entries.keys()].filter((k) => k.endsWith('/layer.tar'))).toHaveLength(3);
  });

  it('picks this platform’s manifest from a nested index', async () => {
    const img = image('x');
    const inner = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size, platform: { os: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch } },
          { mediaType: img.manifest.mediaType, digest: `sha256:${'0'.repeat(64)}`, size: 1, platform: { os: 'windows', architecture: 'amd64' } },
        ],
      }),
    );
    const index = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: digestOf(inner), size: inner.length, annotations: { 'org.opencontainers.image.ref.name': 'shoal.local/multi:2' } }] };
    const layout = tar([file('index.json', JSON.stringify(index)), file(`blobs/sha256/${digestOf(inner).slice(7)}`, inner), ...[...img.layers, img.config, img.manifest].map((x) => file(`blobs/sha256/${x.digest.slice(7)}`, x.data))]);
    const { plan } = await convert(write(layout));
    expect(plan.images[0]).toMatchObject({ names: ['shoal.local/multi:2'], manifestDigest: img.manifest.digest });
  });

  it('a layer that does not match its digest breaks the stream', async () => {
    const img = image('shoal.local/bad:1', false);
    const t = Buffer.from(img.tarball);
    const at = t.indexOf(Buffer.from('hello from shoal.local/bad:1'));
    expect(at).toBeGreaterThan(0);
    t[at] = 'j'.charCodeAt(0);
    const plan = await planLoad(write(t));
    await expect(async () => {
      for await (const _ of saveArchive(plan)) void _;
    }).rejects.toThrow(/does not match its digest/);
  });

  const bad: { name: string; layout: () => Buffer; error: RegExp }[] = [
    { name: 'a docker save archive', layout: () => tar([file('manifest.json', '[]')]), error: /no index.json.*docker save/ },
    { name: 'no names', layout: () => tar([file('index.json', JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'1'.repeat(64)}`, size: 2 }, { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'2'.repeat(64)}`, size: 2 }] }))]), error: /no image name.*pass one/ },
    {
      name: 'a missing blob',
      layout: () => {
        const img = image('shoal.local/x:1');
        const idx = JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size, annotations: { 'io.containerd.image.name': 'shoal.local/x:1' } }] });
        return tar([file('index.json', idx), file(`blobs/sha256/${img.manifest.digest.slice(7)}`, img.manifest.data)]);
      },
      error: /blob sha256:[0-9a-f]{64} is missing/,
    },
    {
      name: 'a zstd layer',
      layout: () => {
        const layer = gzipSync(Buffer.from('not really zstd'));
        const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${'3'.repeat(64)}`] } }));
        const man = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(cfg), size: cfg.length },
            layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: digestOf(layer), size: layer.length }],
          }),
        );
        const idx = JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf(man), size: man.length, annotations: { 'io.containerd.image.name': 'shoal.local/z:1' } }] });
        return tar([file('index.json', idx), ...[layer, cfg, man].map((b) => file(`blobs/sha256/${digestOf(b).slice(7)}`, b))]);
      },
      error: /tar\+zstd; the Docker Engine 20.10 loads only tar and tar\+gzip layers/,
    },
  ];
  for (const c of bad) {
    it(`refuses ${c.name}`, async () => expect(planLoad(write(c.layout()))).rejects.toThrow(c.error));
  }
});

describe('repoTag', () => {
  const cases: [string, string | undefined][] = [
    ['shoal.local/busybox:1', 'shoal.local/busybox:1'],
    ['busybox', 'docker.io/library/busybox:latest'],
    [`127.0.0.1:5000/a/b:2@sha256:${'a'.repeat(64)}`, '127.0.0.1:5000/a/b:2'],
    [`shoal.local/x@sha256:${'a'.repeat(64)}`, undefined],
  ];
  for (const [name, want] of cases) it(name, () => expect(repoTag(name)).toBe(want));
});

describe('tarHeader', () => {
  it('makes headers that tar readers accept, sizes beyond 8 GiB included', async () => {
    const small = Buffer.concat([tarHeader('a/layer.tar', 3), Buffer.from('abc'), Buffer.alloc(509), Buffer.alloc(1024)]);
    const p = write(small);
    const e = (await indexTar(p)).get('a/layer.tar')!;
    expect(e).toMatchObject({ type: 'file', size: 3, mode: 0o644 });
    expect((await readTarEntry(p, e)).toString()).toBe('abc');
    const big = 9 * 1024 ** 3 + 5;
    // Only the header: the reader stops at the end of the file.
    expect((await indexTar(write(tarHeader('big/layer.tar', big)))).get('big/layer.tar')!.size).toBe(big);
  });
  it('refuses names ustar cannot hold in its name field', () => {
    expect(() => tarHeader('x'.repeat(101), 1)).toThrow(/too long/);
  });
});

describe('engineTreatsInsecure', () => {
  const rc: EngineRegistryConfig = {
    InsecureRegistryCIDRs: ['127.0.0.0/8', '10.20.0.0/16'],
    IndexConfigs: { 'docker.io': { Secure: true }, '10.250.0.1:5000': { Secure: false }, 'registry.lab:5000': { Secure: false }, '127.0.0.1:7000': { Secure: true } },
  };
  const cases: [string, boolean | undefined][] = [
    ['10.250.0.1:5000', true], // listed by name
    ['registry.lab:5000', true],
    ['docker.io', false],
    ['127.0.0.1:5000', true], // in a CIDR
    ['127.1.2.3', true],
    ['localhost:5000', true],
    ['10.20.3.4:443', true],
    ['10.21.0.1:5000', false],
    ['10.250.0.1:5001', false], // other port: not the listed name, not in a CIDR
    ['127.0.0.1:7000', false], // a listed name decides over the CIDR
    ['registry.example:5000', undefined], // the engine would resolve the name first
    ['[::1]:5000', undefined],
  ];
  for (const [domain, want] of cases) it(domain, () => expect(engineTreatsInsecure(rc, domain)).toBe(want));
  it('no config: only listed names and CIDRs count', () => {
    expect(engineTreatsInsecure({}, '127.0.0.1:5000')).toBe(false);
    expect(engineTreatsInsecure({ InsecureRegistryCIDRs: ['0.0.0.0/0'] }, '8.8.8.8')).toBe(true);
  });
});
