// SHOAL_CRASH_AT: which points a value arms, and the refusal of a name that is no point.
import { describe, expect, it } from 'vitest';
import { CRASH_POINTS, parseCrashPoints } from '../../../cli/shoald/crashpoints.js';

describe('SHOAL_CRASH_AT', () => {
  it.each([
    [undefined, []],
    ['', []],
    [' , ', []],
    ['join:after-raft-add', ['join:after-raft-add']],
    [' join:after-raft-add ,join:after-raft-add', ['join:after-raft-add']],
  ])('%j arms %j', (value, points) => {
    expect([...parseCrashPoints(value)]).toEqual(points);
  });

  it.each([
    ['join:after-raft-ad', ['"join:after-raft-ad"']],
    ['join:after-raft-add,bogus,JOIN:AFTER-RAFT-ADD', ['"bogus"', '"JOIN:AFTER-RAFT-ADD"']],
    ['toString', ['"toString"']],
  ])('%j is refused, naming %j and the points there are', (value, named) => {
    let err: Error | undefined;
    try {
      parseCrashPoints(value);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toMatch(/^SHOAL_CRASH_AT: no crash point named /);
    for (const n of named) expect(err?.message).toContain(n);
    for (const p of Object.keys(CRASH_POINTS)) expect(err?.message).toContain(p);
  });
});
