// An on-demand CPU profile of a running shoald, for finding where a busy
// manager or agent spends its time: with --cpu-profile <prefix> the V8
// profiler runs from the start, and every SIGUSR2 writes what it recorded
// since the last one to <prefix>.<n>.cpuprofile (open it in Chrome's DevTools
// or speedscope) and starts recording anew. SIGUSR1 is Node's own (inspector).
import { writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Session } from 'node:inspector/promises';

export interface ProfilerLog {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

export async function startCpuProfiler(prefix: string, log: ProfilerLog): Promise<void> {
  mkdirSync(dirname(prefix), { recursive: true });
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  // 1 ms between samples: shoald's work is short callbacks.
  await session.post('Profiler.setSamplingInterval', { interval: 1000 });
  await session.post('Profiler.start');
  let n = 0;
  let busy = false;
  process.on('SIGUSR2', () => {
    if (busy) return;
    busy = true;
    void (async () => {
      try {
        const { profile } = await session.post('Profiler.stop');
        await session.post('Profiler.start');
        const file = `${prefix}.${++n}.cpuprofile`;
        writeFileSync(`${file}.tmp`, JSON.stringify(profile));
        renameSync(`${file}.tmp`, file);
        log.info({ file }, 'cpu profile written');
      } catch (e) {
        log.warn({ err: String(e) }, 'cpu profile not written');
      } finally {
        busy = false;
      }
    })();
  });
  log.info({ prefix }, 'cpu profiler running: SIGUSR2 writes a profile');
}
