import { describe, expect, it } from 'vitest';
import { ago, formatDuration, parseDuration, table, shortDigest } from '../../../cli/shoal/format.js';

describe('durations, as docker writes them', () => {
  it.each([
    ['500ms', 500], ['5s', 5000], ['1m30s', 90_000], ['2160h', 2160 * 3_600_000], ['1.5s', 1500], ['1h1m1s', 3_661_000],
  ])('%s is %i ms', (s, ms) => {
    expect(parseDuration(s, '--x')).toBe(ms);
  });

  it.each(['', '5', 's', '5 s', '5sec', '-5s', '5s junk', '1d'])('"%s" is refused with the flag named and an example', (s) => {
    expect(() => parseDuration(s, '--cert-expiry')).toThrow(/invalid duration .* for --cert-expiry: use a number with a unit, e\.g\. 500ms/);
  });

  it.each([[500, '500ms'], [5000, '5s'], [90_000, '90s'], [120_000, '2m'], [7_200_000, '2h']])('%i ms prints as %s', (ms, s) => {
    expect(formatDuration(ms)).toBe(s);
  });
});

describe('tables', () => {
  it('aligns columns three spaces apart under upper-case headers, without trailing spaces', () => {
    const t = table(['ID', 'HOSTNAME', 'STATUS'], [['abc *', 'host1', 'Ready'], ['defghij', 'h2', '']]);
    expect(t.split('\n')).toEqual([
      'ID        HOSTNAME   STATUS',
      'abc *     host1      Ready',
      'defghij   h2',
    ]);
  });
});

describe('how long ago, in docker\'s words', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  it.each([
    [400, 'less than a second ago'], [1000, '1 second ago'], [59_999, '59 seconds ago'], [60_000, 'about a minute ago'], [119_000, 'about a minute ago'],
    [120_000, '2 minutes ago'], [59 * 60_000, '59 minutes ago'], [3_600_000, 'about an hour ago'], [5 * 3_600_000, '5 hours ago'],
    [47 * 3_600_000, '47 hours ago'], [3 * 86_400_000, '3 days ago'], [20 * 86_400_000, '2 weeks ago'], [90 * 86_400_000, '3 months ago'],
    [800 * 86_400_000, '2 years ago'], [-5000, 'less than a second ago'],
  ])('%i ms before now: %s', (d, words) => {
    expect(ago(now - d, now)).toBe(words);
  });
});

describe('digests in listings', () => {
  it.each([
    [`sha256:${'ab12'.repeat(16)}`, 'sha256:ab12ab12ab12'],
    ['sha256:abc', 'sha256:abc'],
    ['not-a-digest', 'not-a-digest'],
    ['', ''],
  ])('%s -> %s', (d, want) => expect(shortDigest(d)).toBe(want));
});
