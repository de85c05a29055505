// When a node says its runtime is down: only after several pings in a row
// that could not reach it at all; a slow runtime never counts.
import { describe, expect, it } from 'vitest';
import { RuntimeHealth, isUnreachable } from '../../../worker/agent/runtimehealth.js';

const unavailable = Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 });
const deadline = Object.assign(new Error('4 DEADLINE_EXCEEDED'), { code: 4 });
const refused = Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' });
const wrapped = Object.assign(new Error('docker engine unreachable'), { cause: refused });

describe('isUnreachable', () => {
  it.each([
    ['gRPC UNAVAILABLE', unavailable, true],
    ['ECONNREFUSED', refused, true],
    ['a cause that is ECONNREFUSED', wrapped, true],
    ['DEADLINE_EXCEEDED (slow, not gone)', deadline, false],
    ['any other error', new Error('boom'), false],
  ])('%s', (_what, e, want) => expect(isUnreachable(e)).toBe(want));
});

describe('RuntimeHealth', () => {
  /** Runs the pings in order (no timers): each entry is a ping's outcome. */
  async function run(outcomes: Array<'ok' | Error>, downAfter?: number): Promise<string[]> {
    let i = 0;
    const seen: string[] = [];
    const h = new RuntimeHealth({
      runtime: { endpoint: 'containerd at /x.sock', ping: async () => { const o = outcomes[i++]!; if (o !== 'ok') throw o; return '1.6'; } },
      downAfter,
    });
    h.stop(); // no timer: the test drives check()
    for (let k = 0; k < outcomes.length; k++) {
      await h.check();
      seen.push(h.problem);
    }
    return seen;
  }

  it('reports down after two unreachable pings in a row (the default), with the reason, and up at the first answer', async () => {
    const seen = await run([unavailable, unavailable, unavailable, 'ok']);
    expect(seen[0]).toBe('');
    expect(seen[1]).toBe('container runtime unavailable (containerd at /x.sock): 14 UNAVAILABLE: No connection established');
    expect(seen[2]).toBe(seen[1]);
    expect(seen[3]).toBe('');
  });

  it('downAfter sets how many misses in a row it takes', async () => {
    expect((await run([unavailable, unavailable, unavailable], 3)).map((p) => p !== '')).toEqual([false, false, true]);
  });

  it('an answer in between starts the count again', async () => {
    expect(await run([unavailable, 'ok', unavailable, 'ok', unavailable])).toEqual(['', '', '', '', '']);
  });

  it('a runtime that is only slow is never reported down', async () => {
    expect(await run([deadline, deadline, deadline, deadline, deadline])).toEqual(['', '', '', '', '']);
  });

  it('slow pings neither count nor reset: down stays down until an answer', async () => {
    const seen = await run([unavailable, unavailable, deadline, 'ok']);
    expect(seen[2]).toMatch(/container runtime unavailable/);
    expect(seen[3]).toBe('');
  });
});
