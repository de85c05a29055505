// The test image: Debian's busybox-static as one layer (/bin/busybox and a
// symlink per applet, a minimal /etc/passwd and /etc/group), tagged
// shoal.local/busybox:1 by default. Deterministic: the same busybox binary
// gives the same digests.
//
//   node dist/deploy/images/busybox.js [--out /var/lib/shoal-images/busybox.tar] [--name shoal.local/busybox:1]
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage, layerFiles, type BuiltImage } from './oci-layout.js';

export const DEFAULT_BUSYBOX = '/usr/bin/busybox';
export const DEFAULT_NAME = 'shoal.local/busybox:1';
export const DEFAULT_OUT = '/var/lib/shoal-images/busybox.tar';

export const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
export const GROUP = 'root:x:0:\nnogroup:x:65534:\n';

export interface BusyboxOptions {
  /** A statically linked busybox (default /usr/bin/busybox from Debian's busybox-static). */
  busybox?: string;
  name?: string;
  /** Applets to link in /bin (default: every applet the binary lists). */
  applets?: string[];
  gzip?: boolean;
}

export function busyboxApplets(busybox = DEFAULT_BUSYBOX): string[] {
  return execFileSync(busybox, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s && s !== 'busybox' && /^[\w.[-]+$/.test(s))
    .sort();
}

export function buildBusyboxImage(opts: BusyboxOptions = {}): BuiltImage {
  const busybox = opts.busybox ?? DEFAULT_BUSYBOX;
  const bin = readFileSync(busybox);
  if (bin.subarray(0, 4).toString('latin1') !== '\x7fELF') throw new Error(`${busybox} is not an ELF binary`);
  const applets = opts.applets ?? busyboxApplets(busybox);
  const files = layerFiles([
    { path: 'bin/busybox', data: bin, mode: 0o755 },
    ...applets.map((a) => ({ path: `bin/${a}`, symlink: 'busybox' })),
    { path: 'etc/passwd', data: PASSWD },
    { path: 'etc/group', data: GROUP },
    { path: 'dev' },
    { path: 'proc' },
    { path: 'sys' },
    { path: 'root', mode: 0o700 },
    { path: 'tmp', mode: 0o1777 },
    { path: 'var/www' },
  ]);
  return buildImage({ name: opts.name ?? DEFAULT_NAME, layers: [files], config: { Cmd: ['sh'] }, gzip: opts.gzip });
}

/** Write the image's OCI layout tarball atomically. */
export function writeImage(img: BuiltImage, out: string): void {
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  writeFileSync(tmp, img.tarball);
  renameSync(tmp, out);
}

function main(argv: string[]): void {
  const arg = (k: string): string | undefined => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const out = resolve(arg('--out') ?? DEFAULT_OUT);
  const img = buildBusyboxImage({ busybox: arg('--busybox'), name: arg('--name') });
  writeImage(img, out);
  process.stdout.write(`${img.name} ${img.manifest.digest} -> ${out} (${img.tarball.length} bytes)\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
