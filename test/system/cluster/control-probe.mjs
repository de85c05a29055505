// Calls Control.ListNodes on a manager's cluster port over TLS, as an outside
// client would, and prints the outcome as one JSON line:
//   {"ok":true,"nodes":N}  or  {"ok":false,"code":N,"codeName":"...","details":"..."}
// Run inside a lab host (the cluster port is only reachable there):
//   node control-probe.mjs REPO ADDR CA.pem [CERT.pem KEY.pem]
// Without CERT/KEY the client presents no certificate at all. With
// PROBE_CALL=heartbeat it makes one unary Dispatcher.Heartbeat call instead
// (what agents before the heartbeat stream sent): {"ok":true,"periodMs":N}.
/* global process */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [repo, addr, caFile, certFile, keyFile] = process.argv.slice(2);
if (!repo || !addr || !caFile) {
  process.stderr.write('usage: control-probe.mjs REPO ADDR CA.pem [CERT.pem KEY.pem]\n');
  process.exit(2);
}
const load = (rel) => import(pathToFileURL(path.join(repo, rel)).href);
const grpc = createRequire(path.join(repo, 'package.json'))('@grpc/grpc-js');
const { managerClient, call } = await load('dist/proto/client.js');
const { ControlService, DispatcherService } = await load('dist/proto/services.js');

const { readTlsFiles } = await load('dist/proto/tlsfiles.js');

// A node's live certs dir is read as a pair: it may be renewing right now.
const tls = certFile && keyFile ? readTlsFiles({ caFile, certFile, keyFile }) : { caPem: readFileSync(caFile, 'utf8') };
const client = managerClient(addr, tls);
let result;
try {
  if (process.env.PROBE_CALL === 'heartbeat') {
    const res = await call(client, DispatcherService.heartbeat, { runtimeError: '' }, 10_000);
    result = { ok: true, periodMs: res.periodMs };
  } else {
    const res = await call(client, ControlService.listNodes, {}, 10_000);
    result = { ok: true, nodes: (res.nodes ?? []).length };
  }
} catch (e) {
  result = { ok: false, code: e.code, codeName: grpc.status[e.code] ?? String(e.code), details: e.details ?? String(e) };
}
client.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
