#!/usr/bin/env node
// The `shoal` command's entry point. It runs the CLI (program.ts) from the
// bundle the build makes of it (shoal.cjs beside this file) through a V8 code
// cache, so a command does not parse and compile the 1 MB bundle each time.
// Without a bundle, or with one older than program.js (tsc ran since), it
// imports program.js as is.
//
// The cache is named by the bundle's content hash: V8 itself checks only the
// source's length before trusting a cache. It is written after the first run
// (so the functions that ran are in it), atomically, and only where this user
// may write; any failure just means running without it.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const dir = dirname(fileURLToPath(import.meta.url));
const bundle = join(dir, 'shoal.cjs');

function bundleIsCurrent(): boolean {
  try {
    return statSync(bundle).mtimeMs >= statSync(join(dir, 'program.js')).mtimeMs;
  } catch {
    return false;
  }
}

function runBundle(): void {
  const source = readFileSync(bundle, 'utf8');
  const cacheName = `shoal.cjs.${createHash('sha1').update(source).digest('hex').slice(0, 16)}.cache`;
  const cacheFile = join(dir, cacheName);
  let cached: Buffer | undefined;
  try {
    cached = readFileSync(cacheFile);
  } catch {
    // the first run of this bundle
  }
  // As Node's own CommonJS loader does: a leading #! line is not JavaScript.
  const body = source.startsWith('#!') ? `//${source.slice(2)}` : source;
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${body}\n})`;
  const script = new vm.Script(wrapped, { filename: bundle, cachedData: cached });
  if (!cached || script.cachedDataRejected) {
    process.once('exit', () => {
      try {
        const tmp = `${cacheFile}.${process.pid}.tmp`;
        writeFileSync(tmp, script.createCachedData());
        renameSync(tmp, cacheFile);
        // Caches of earlier bundles are dead weight.
        for (const f of readdirSync(dir)) if (/^shoal\.cjs\.[0-9a-f]{16}\.cache$/.test(f) && f !== cacheName) unlinkSync(join(dir, f));
      } catch {
        // a read-only install, or another user's: run uncached
      }
    });
  }
  const cjs = { exports: {} };
  const run = script.runInThisContext() as (e: object, r: NodeJS.Require, m: object, f: string, d: string) => void;
  run(cjs.exports, createRequire(bundle), cjs, bundle, dir);
}

if (bundleIsCurrent()) runBundle();
else await import('./program.js');
