// The services test harness's cluster, runnable from dist/: the harness finds
// the CLI relative to its own file (right under vitest, which runs the
// sources; one level off when compiled into dist/), so the bench runs the CLI
// from the repo root it finds itself. Everything else is the harness's.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../lib/proc.js';
import { ServicesCluster, labRuntimePrerequisites, type RunResult, type ServicesClusterOptions } from '../../system/services/harness.js';

export const REPO = repoRoot();
export const CLI = path.join(REPO, 'dist/cli/shoal/main.js');

export class BenchCluster extends ServicesCluster {
  override run(host: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
    const t0 = Date.now();
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, '--socket', this.lab.hostState(host).socket, ...args],
        { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 16 << 20 },
        (err, stdout, stderr) => {
          const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string }) | null;
          const code = !e ? 0 : typeof e.code === 'number' ? e.code : e.signal ? 137 : 1;
          resolve({ code, stdout, stderr, ms: Date.now() - t0 });
        });
    });
  }
}

/** What is missing to run the bench (empty: nothing). */
export function benchPrerequisites(): string[] {
  const problems = [...labRuntimePrerequisites('bench:converge', { needBuild: false }).problems];
  for (const f of [CLI, path.join(REPO, 'dist/cli/shoald/main.js')]) {
    if (!existsSync(f)) problems.push(`${path.relative(REPO, f)} is missing: run \`npm run build\` first`);
  }
  return problems;
}

/** startServicesCluster with BenchCluster: lab up, busybox preloaded, swarm formed, all Ready; torn down (logs kept) on failure. */
export async function startBenchCluster(opts: ServicesClusterOptions): Promise<BenchCluster> {
  const c = new BenchCluster(opts);
  try {
    await c.start();
  } catch (e) {
    await c.teardown({ keepLogs: true, why: 'the cluster did not come up' });
    throw e;
  }
  return c;
}
