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
  async function run(outcomes: Array<'ok' | Error>, downAfter = 3): Promise<string[]> {
    let i = 0;
    const seen: string[] = [];
    const h = new RuntimeHealth({
      runtime: { ping: async () => { const o = outcomes[i++]!; if (o !== 'ok') throw o; return '1.6'; } },
      describe: 'containerd at /x.sock', downAfter,
    });
    h.stop(); // no timer: the test drives check()
    for (let k = 0; k < outcomes.length; k++) {
      await h.check();
      seen.push(h.problem);
    }
    return seen;
  }

  it('reports down after three unreachable pings in a row, with the reason, and up at the first answer', async () => {
    const seen = await run([unavailable, unavailable, unavailable, unavailable, 'ok']);
    expect(seen.slice(0, 2)).toEqual(['', '']);
    expect(seen[2]).toBe('container runtime unavailable (containerd at /x.sock): 14 UNAVAILABLE: No connection established');
    expect(seen[3]).toBe(seen[2]);
    expect(seen[4]).toBe('');
  });

  it('an answer in between starts the count again', async () => {
    expect(await run([unavailable, unavailable, 'ok', unavailable, unavailable])).toEqual(['', '', '', '', '']);
  });

  it('a runtime that is only slow is never reported down', async () => {
    expect(await run([deadline, deadline, deadline, deadline, deadline])).toEqual(['', '', '', '', '']);
  });

  it('slow pings neither count nor reset: down stays down until an answer', async () => {
    const seen = await run([unavailable, unavailable, unavailable, deadline, 'ok']);
    expect(seen[3]).toMatch(/container runtime unavailable/);
    expect(seen[4]).toBe('');
  });
});
