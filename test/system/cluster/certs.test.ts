// Certificate renewal on real lab hosts: a cluster made with a 40 s
// certificate lifetime lives well past the expiry of every certificate it
// started with. Its own lab (three hosts: two managers, one worker), so it
// does not depend on the story in cluster.test.ts.
//
// Needs root and the lab's packages (and a build): without them the suite is
// skipped with the reason printed; under CI=true it fails instead.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readTlsFiles } from '../../../proto/tlsfiles.js';
import { ClusterLab, byHost, clusterPrerequisites, leaders, managerHosts, repo, sleep, summary, type NodeView } from './harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const PROBE = path.join(here, 'control-probe.mjs');
const pre = clusterPrerequisites('certificate renewal system tests');

const HOSTS = ['host1', 'host2', 'host3'];
const EXPIRY_MS = 40_000;
const ALT_PORT = 4477;

describe.skipIf(pre.skip)('certificate renewal on lab hosts', () => {
  let c: ClusterLab;
  let saved = '';
  let failed = false;

  beforeAll(async () => {
    if (!pre.ok) throw new Error(`cluster system test prerequisites missing: ${pre.problems.join('; ')}`);
    c = new ClusterLab(`r${process.pid}`, 3, '10.232.11.0/24');
    await c.up();
    saved = mkdtempSync('/tmp/shoal-certs-');
  }, 120_000);

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') failed = true;
  });

  afterAll(async () => {
    await c?.down({ keepLogs: failed });
    if (saved) rmSync(saved, { recursive: true, force: true });
  }, 60_000);

  it('with --cert-expiry 40s every node renews in time: past the first certificates\' expiry the cluster works and no node went down', async () => {
    // The managers serve on a port of their own choosing (--listen-addr), not shoald's default 4377.
    const alt = (h: string) => `${c.ip(h)}:${ALT_PORT}`;
    const bad = await c.shoal('host1', ['swarm', 'init', '--listen-addr', 'nope', '--advertise-addr', alt('host1')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid --listen-addr "nope": use HOST:PORT/);
    expect((await c.info('host1')).LocalNodeState).toBe('inactive');
    await c.ok('host1', ['swarm', 'init', '--listen-addr', alt('host1'), '--advertise-addr', alt('host1'), '--cert-expiry', '40s']);
    await c.ok('host2', ['swarm', 'join', '--listen-addr', alt('host2'), '--advertise-addr', alt('host2'), '--token', await c.joinToken('host1', 'manager'), alt('host1')], 60_000);
    await c.ok('host3', ['swarm', 'join', '--token', await c.joinToken('host1', 'worker'), alt('host1')], 60_000);
    await c.waitNodes('three Ready nodes, two managers', 'host1', (ns) =>
      ns.every((n) => !n.ManagerStatus || n.ManagerStatus.Addr.endsWith(`:${ALT_PORT}`)) && ns.length === 3 && ns.every((n) => n.Status.State === 'ready') && managerHosts(ns).join() === 'host1,host2' && leaders(ns).length === 1);

    // Keep host2's first certificate: once it expires it must be refused.
    const certs = path.join(c.lab.hostState('host2').stateDir, 'certs');
    const firstPair = readTlsFiles({ caFile: path.join(certs, 'ca.pem'), certFile: path.join(certs, 'node.pem'), keyFile: path.join(certs, 'node-key.pem') });
    for (const [f, pem] of [['ca.pem', firstPair.caPem], ['node.pem', firstPair.certPem], ['node-key.pem', firstPair.keyPem]] as const) writeFileSync(path.join(saved, f), pem);
    const firstNotAfter = Date.parse(new X509Certificate(readFileSync(path.join(saved, 'node.pem'))).validTo);

    const first: Record<string, number> = {};
    for (const h of HOSTS) {
      first[h] = Date.parse((await c.info(h)).CertificateExpiry);
      // The cluster's --cert-expiry is what the nodes got.
      expect(first[h]! - Date.now(), h).toBeLessThanOrEqual(EXPIRY_MS + 2_000);
      expect(first[h]! - Date.now(), h).toBeGreaterThan(0);
    }

    // Live through the expiry of every first certificate, watching the cluster through both managers.
    const until = Math.max(firstNotAfter, ...Object.values(first)) + 3_000;
    const notReady: string[] = [];
    let polls = 0;
    const watchFrom = Date.now();
    while (Date.now() < until) {
      const via = HOSTS[polls++ % 2]!;
      const r = await c.shoal(via, ['node', 'ls', '--format', 'json'], 15_000);
      if (r.code !== 0) {
        notReady.push(`${new Date().toISOString()} node ls on ${via} failed: ${r.stderr.trim()}`);
      } else {
        const ns = JSON.parse(r.stdout) as NodeView[];
        if (ns.length !== 3 || ns.some((n) => n.Status.State !== 'ready')) notReady.push(`${new Date().toISOString()} via ${via}: ${summary(ns)}`);
      }
      await sleep(500);
    }
    console.log(`certificate renewal: watched the cluster ${polls} times over ${Math.round((Date.now() - watchFrom) / 1000)} s, until 3 s past the last first certificate's expiry`);
    expect(notReady, 'the cluster misbehaved while certificates turned over').toEqual([]);

    // Every node now holds a later certificate, and the cluster shows it too.
    const ns = await c.nodes('host2');
    for (const h of HOSTS) {
      const now = Date.parse((await c.info(h)).CertificateExpiry);
      expect(now, `${h}'s certificate expiry`).toBeGreaterThan(first[h]!);
      expect(now, `${h}'s certificate is still valid`).toBeGreaterThan(Date.now());
      expect(Date.parse(byHost(ns, h).Certificate!.NotAfter)).toBeGreaterThan(first[h]!);
      // Renewal happens once per half-life or so, not in a loop: a 40 s
      // certificate renews about every 20-24 s: once or twice in this window.
      const renewals = c.log(h).split('\n').filter((l) => l.includes('certificate renewed')).length;
      console.log(`certificate renewal: ${h} renewed ${renewals} times`);
      expect(renewals, `${h} renewals`).toBeGreaterThanOrEqual(1);
      expect(renewals, `${h} renewals`).toBeLessThanOrEqual(5);
    }

    // The expiry is enforced: host2's first certificate no longer opens the
    // control API, while the one it holds now does.
    const leader = leaders(ns)[0]!;
    const probe = async (dir: string) => {
      const r = await c.lab.exec('host3', [process.execPath, PROBE, repo, `${c.ip(leader)}:${ALT_PORT}`, ...['ca.pem', 'node.pem', 'node-key.pem'].map((f) => path.join(dir, f))], { timeoutMs: 30_000 });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { ok: boolean; nodes?: number; codeName?: string; details?: string };
    };
    const expired = await probe(saved);
    expect(expired).toMatchObject({ ok: false, codeName: 'UNAUTHENTICATED' });
    expect(expired.details).toMatch(/the control API needs a cluster client certificate \(none was presented, or it did not verify: expired/);
    expect(await probe(certs)).toEqual({ ok: true, nodes: 3 });
  }, 150_000);
});
