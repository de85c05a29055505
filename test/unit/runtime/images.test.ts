// Image plumbing without a daemon: references, chain IDs, platform choice, the
// tar reader, and the deterministic OCI layout builder of deploy/images.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { normalizeRef, parseRef } from '../../../worker/runtime/reference.js';
import { chainIds, selectManifest, sha256, type Index } from '../../../worker/runtime/oci.js';
import { indexTar, readTarEntry } from '../../../worker/runtime/tar.js';
import { FIXED_MTIME, buildImage, digestOf, layerFiles } from '../../../deploy/images/oci-layout.js';
import { GROUP, PASSWD, buildBusyboxImage } from '../../../deploy/images/busybox.js';
import { tar } from '../../../deploy/images/tar.js';

const tmp = mkdtempSync(join(tmpdir(), 'shoal-img-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('image references', () => {
  const cases: [string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['someone/app:2', 'docker.io/someone/app:2'],
    ['index.docker.io/someone/app', 'docker.io/someone/app:latest'],
    ['shoal.local/busybox:1', 'shoal.local/busybox:1'],
    ['127.0.0.1:5000/web', '127.0.0.1:5000/web:latest'],
    ['localhost/web:v2', 'localhost/web:v2'],
    ['registry.local/a/b/c:1.0-rc.1', 'registry.local/a/b/c:1.0-rc.1'],
    [`web@sha256:${'a'.repeat(64)}`, `docker.io/library/web@sha256:${'a'.repeat(64)}`],
    [`r.io/web:1@sha256:${'b'.repeat(64)}`, `r.io/web:1@sha256:${'b'.repeat(64)}`],
  ];
  for (const [ref, want] of cases) it(ref, () => expect(normalizeRef(ref)).toBe(want));
  it('splits domain, path, tag', () => {
    expect(parseRef('127.0.0.1:5000/shoal/web:3')).toMatchObject({ domain: '127.0.0.1:5000', path: 'shoal/web', tag: '3' });
  });
  for (const bad of ['', 'UPPER/case', 'web:', 'web@sha256:123', ' web', 'a//b']) {
    it(`rejects "${bad}"`, () => expect(() => parseRef(bad)).toThrow(/invalid image reference/));
  }
});

describe('chain IDs and platforms', () => {
  it('follow the image spec', () => {
    const a = sha256('a');
    const b = sha256('b');
    const c = sha256('c');
    const ab = sha256(`${a} ${b}`);
    expect(chainIds([a, b, c])).toEqual([a, ab, sha256(`${ab} ${c}`)]);
    expect(chainIds([])).toEqual([]);
  });
  it('pick this platform, else an unannotated manifest', () => {
    const m = (arch: string | undefined, d: string): Index['manifests'][number] => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: d,
      size: 1,
      ...(arch ? { platform: { os: 'linux', architecture: arch } } : {}),
    });
    const idx: Index = { schemaVersion: 2, manifests: [m('arm64', 'x'), m('amd64', 'y'), m(undefined, 'z')] };
    expect(selectManifest(idx, { os: 'linux', architecture: 'amd64' })?.digest).toBe('y');
    expect(selectManifest(idx, { os: 'linux', architecture: 'riscv64' })?.digest).toBe('z');
    expect(selectManifest({ schemaVersion: 2, manifests: [m('arm64', 'x')] }, { os: 'linux', architecture: 'amd64' })).toBeUndefined();
  });
});

describe('tar', () => {
  it('reads back what the writer wrote, long names included', async () => {
    const long = `${'d'.repeat(80)}/${'e'.repeat(60)}/file.txt`;
    const files = layerFiles([
      { path: 'bin/tool', data: 'x'.repeat(1000), mode: 0o755 },
      { path: 'bin/alias', symlink: 'tool' },
      { path: long, data: 'deep' },
      { path: 'empty', data: '' },
      { path: 'tmp', mode: 0o1777 },
    ]);
    const p = join(tmp, 'a.tar');
    writeFileSync(p, tar(files));
    const idx = await indexTar(p);
    expect([...idx.keys()].sort()).toEqual(files.map((f) => f.name).sort());
    expect(idx.get('bin/tool')).toMatchObject({ type: 'file', mode: 0o755, size: 1000 });
    expect(idx.get('bin/alias')).toMatchObject({ type: 'symlink', linkname: 'tool' });
    expect(idx.get('tmp')).toMatchObject({ type: 'dir', mode: 0o1777 });
    expect((await readTarEntry(p, idx.get(long)!)).toString()).toBe('deep');
    expect((await readTarEntry(p, idx.get('empty')!)).length).toBe(0);
    // GNU tar agrees with the writer.
    expect(execFileSync('tar', ['-tvf', p], { encoding: 'utf8' })).toContain('bin/alias -> tool');
  });

  it('reads GNU and pax archives made by tar(1)', async () => {
    const src = join(tmp, 'src');
    const deep = join(src, 'x'.repeat(120), 'y'.repeat(120));
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, 'z.txt'), 'zzz');
    for (const format of ['gnu', 'pax']) {
      const p = join(tmp, `${format}.tar`);
      execFileSync('tar', ['-C', src, `--format=${format}`, '-cf', p, '.']);
      const idx = await indexTar(p);
      const name = `${'x'.repeat(120)}/${'y'.repeat(120)}/z.txt`;
      expect(idx.get(name), format).toMatchObject({ type: 'file', size: 3 });
      expect((await readTarEntry(p, idx.get(name)!)).toString()).toBe('zzz');
    }
  });

  it('refuses what is not a tar', async () => {
    const p = join(tmp, 'junk.tar');
    writeFileSync(p, Buffer.alloc(1024, 7));
    await expect(indexTar(p)).rejects.toThrow(/not a tar archive/);
  });
});

describe('OCI layout builder', () => {
  const def = {
    name: 'shoal.local/two:1',
    layers: [layerFiles([{ path: 'bin/a', data: 'A', mode: 0o755 }]), layerFiles([{ path: 'etc/motd', data: 'hi\n' }])],
    config: { Cmd: ['/bin/a'], User: '33', StopSignal: 'SIGQUIT' },
  };

  it('is deterministic', () => {
    const a = buildImage(def);
    const b = buildImage(def);
    expect(a.manifest.digest).toBe(b.manifest.digest);
    expect(digestOf(a.tarball)).toBe(digestOf(b.tarball));
  });

  it('writes a layout whose documents agree with each other', async () => {
    const img = buildImage(def);
    const p = join(tmp, 'two.tar');
    writeFileSync(p, img.tarball);
    const idx = await indexTar(p);
    const read = async (n: string): Promise<Buffer> => readTarEntry(p, idx.get(n)!);
    expect(JSON.parse((await read('oci-layout')).toString())).toEqual({ imageLayoutVersion: '1.0.0' });
    const index = JSON.parse((await read('index.json')).toString());
    expect(index.manifests).toEqual([
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.manifest.digest, size: img.manifest.size, annotations: { 'io.containerd.image.name': 'shoal.local/two:1', 'org.opencontainers.image.ref.name': '1' } },
    ]);
    const blob = (d: string): Promise<Buffer> => read(`blobs/sha256/${d.slice(7)}`);
    const manifest = JSON.parse((await blob(img.manifest.digest)).toString());
    expect(digestOf(await blob(img.manifest.digest))).toBe(img.manifest.digest);
    const config = JSON.parse((await blob(manifest.config.digest)).toString());
    expect(config.config).toMatchObject({ Cmd: ['/bin/a'], User: '33', StopSignal: 'SIGQUIT' });
    expect(manifest.layers).toHaveLength(2);
    for (const [i, l] of manifest.layers.entries()) {
      const data = await blob(l.digest);
      expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
      expect(digestOf(data)).toBe(l.digest);
      expect(data.length).toBe(l.size);
      expect(digestOf(gunzipSync(data))).toBe(config.rootfs.diff_ids[i]);
    }
  });

  it('can leave layers uncompressed', () => {
    const img = buildImage({ ...def, gzip: false });
    expect(img.layers[0]!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
    expect(img.layers[0]!.digest).toBe(img.layers[0]!.diffId);
  });

  it('layer files: parents first, sorted, fixed mtime', () => {
    const f = layerFiles([{ path: 'usr/bin/x', data: '1' }, { path: 'a', symlink: 'usr/bin/x' }]);
    expect(f.map((e) => `${e.type}:${e.name}`)).toEqual(['symlink:a', 'dir:usr', 'dir:usr/bin', 'file:usr/bin/x']);
    expect(new Set(f.map((e) => e.mtime))).toEqual(new Set([FIXED_MTIME]));
  });

  it('busybox image: the binary, a link per applet, passwd and group', async () => {
    // Any ELF stands in for busybox here; the system tests run the real one.
    const img = buildBusyboxImage({ busybox: '/bin/true', applets: ['sh', 'sleep', 'echo'], name: 'shoal.local/bb:1' });
    const p = join(tmp, 'layer.tar');
    writeFileSync(p, gunzipSync(img.layers[0]!.data));
    const idx = await indexTar(p);
    expect(idx.get('bin/busybox')).toMatchObject({ type: 'file', mode: 0o755 });
    for (const a of ['sh', 'sleep', 'echo']) expect(idx.get(`bin/${a}`)).toMatchObject({ type: 'symlink', linkname: 'busybox' });
    expect((await readTarEntry(p, idx.get('etc/passwd')!)).toString()).toBe(PASSWD);
    expect((await readTarEntry(p, idx.get('etc/group')!)).toString()).toBe(GROUP);
    expect(idx.get('tmp')).toMatchObject({ type: 'dir', mode: 0o1777 });
    expect(buildBusyboxImage({ busybox: '/bin/true', applets: ['sh', 'sleep', 'echo'], name: 'shoal.local/bb:1' }).manifest.digest).toBe(img.manifest.digest);
    expect(() => buildBusyboxImage({ busybox: '/etc/passwd', applets: [] })).toThrow(/not an ELF/);
  });
});
