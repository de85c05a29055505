// Generates static protobufjs code for every proto/*.proto into proto/gen/<name>.js + .d.ts.
// Run by `npm run proto` (and so by `npm run build`); proto/gen is not committed.
import { mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { stdout } from 'node:process';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { pbjs, pbts } = require('protobufjs-cli');

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'gen');

const pbjsFlags = [
  '-t', 'static-module',
  // Our own copy of the es6 wrapper: it switches Long off (see wrapper.js.tmpl). pbjs only treats
  // its built-in names as ESM, hence the explicit --es6.
  '-w', join(here, 'wrapper.js.tmpl'), '--es6',
  // protobufjs has no "exports" map, so Node's ESM resolver needs the file extension.
  '--dependency', 'protobufjs/minimal.js',
  '--force-number',
  // Only encode/decode are used on the hot path; the rest is dead weight. Comments stay
  // because pbts derives the typings from them.
  '--no-create', '--no-verify', '--no-convert', '--no-delimited', '--no-typeurl', '--no-service',
  '-p', here,
];

function run(tool, args) {
  return new Promise((resolve, reject) => {
    tool.main(args, (err, output) => (err ? reject(err) : resolve(output)));
  });
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

// One module per protobuf package (shoal.raft -> gen/raft.js, shoal.api -> gen/api.js): files of
// one package that import each other must share a module, or both would define the same types.
const protos = readdirSync(here).filter((f) => f.endsWith('.proto')).sort();
const byPackage = new Map();
for (const file of protos) {
  // containerd's own API keeps its real package names (containerd.services.tasks.v1, ...), all
  // in one module: gen/containerd.js.
  const m = /^package\s+(?:shoal\.(\w+)|(containerd)(?:\.[\w.]+)?)\s*;/m.exec(readFileSync(join(here, file), 'utf8'));
  if (!m) throw new Error(`proto/${file}: expected "package shoal.<name>;" or "package containerd.<...>;"`);
  const name = m[1] ?? m[2];
  if (!byPackage.has(name)) byPackage.set(name, []);
  byPackage.get(name).push(file);
}
for (const [name, files] of byPackage) {
  const js = join(out, `${name}.js`);
  // A root of its own per module: with the shared default root, the second module loaded would
  // replace the `shoal` namespace object and drop the first module's package from it.
  await run(pbjs, [...pbjsFlags, '-r', `shoal_${name}`, '-o', js, ...files.map((f) => join(here, f))]);
  const dts = join(out, `${name}.d.ts`);
  await run(pbts, ['-o', dts, js]);
  // With --force-number nothing in the typings names Long; drop pbts' unconditional
  // `import Long = require("long")`, which is CommonJS syntax in an ES module declaration.
  const typings = readFileSync(dts, 'utf8').replace(/^import Long = require\(["']long["']\);\r?\n/m, '');
  writeFileSync(dts, typings);
  stdout.write(`proto: ${files.join(' + ')} -> gen/${name}.js, gen/${name}.d.ts\n`);
}
