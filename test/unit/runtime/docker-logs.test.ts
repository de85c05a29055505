// The pure half of the Docker adapter's log copying: the engine's multiplexed
// frames, its timestamps, and the cursor that resumes after a restart without
// losing or doubling a message.
import { describe, expect, it } from 'vitest';
import {
  FrameDecoder,
  LogCursor,
  compareTime,
  formatSince,
  parsePosition,
  parseSince,
  parseTimestamp,
  splitTimestamped,
  taggedLine,
  type LogTime,
} from '../../../worker/runtime/docker/logs.js';
import { mulberry32 } from '../../support/random.js';

function frame(stream: number, payload: string | Buffer): Buffer {
  const data = Buffer.from(payload);
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
}

describe('FrameDecoder', () => {
  it('splits whole frames', () => {
    const d = new FrameDecoder();
    const got = d.push(Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n'), frame(1, '')]));
    expect(got.map((f) => [f.stream, f.data.toString()])).toEqual([
      [1, 'out\n'],
      [2, 'err\n'],
      [1, ''],
    ]);
    expect(d.pending).toBe(0);
  });

  it('reassembles frames cut anywhere, whatever the chunk sizes', () => {
    const payloads = Array.from({ length: 50 }, (_, i) => `${'x'.repeat(i * 7)} line ${i}\n`);
    const all = Buffer.concat(payloads.map((p, i) => frame(1 + (i % 2), p)));
    const rand = mulberry32(7);
    for (let run = 0; run < 20; run++) {
      const d = new FrameDecoder();
      const out: string[] = [];
      for (let pos = 0; pos < all.length; ) {
        const n = 1 + Math.floor(rand() * 40);
        for (const f of d.push(all.subarray(pos, pos + n))) out.push(f.data.toString());
        pos += n;
      }
      expect(out).toEqual(payloads);
      expect(d.pending).toBe(0);
    }
  });

  it('holds back an incomplete frame', () => {
    const d = new FrameDecoder();
    const f = frame(1, 'hello');
    expect(d.push(f.subarray(0, 10))).toEqual([]);
    expect(d.pending).toBe(10);
    expect(d.push(f.subarray(10)).map((x) => x.data.toString())).toEqual(['hello']);
  });

  it('refuses a stream that is not multiplexed (a TTY container)', () => {
    expect(() => new FrameDecoder().push(Buffer.from('plain text output\n'))).toThrow(/bad frame header/);
  });
});

describe('timestamps', () => {
  const cases: { s: string; want: LogTime | undefined }[] = [
    { s: '2024-05-01T10:00:00.123456789Z', want: { sec: 1714557600, nanos: 123456789 } },
    { s: '2024-05-01T10:00:00.5Z', want: { sec: 1714557600, nanos: 500000000 } },
    { s: '2024-05-01T10:00:00Z', want: { sec: 1714557600, nanos: 0 } },
    { s: '2024-05-01T12:00:00.000000001+02:00', want: { sec: 1714557600, nanos: 1 } },
    { s: '2024-05-01 10:00:00Z', want: undefined },
    { s: 'hello', want: undefined },
  ];
  for (const c of cases) {
    it(c.s, () => expect(parseTimestamp(c.s)).toEqual(c.want));
  }
  it('since: seconds and nine digits of nanoseconds, both ways', () => {
    expect(formatSince({ sec: 1714557600, nanos: 5 })).toBe('1714557600.000000005');
    expect(parseSince('1714557600.000000005')).toEqual({ sec: 1714557600, nanos: 5 });
    expect(parseSince('1714557600')).toBeUndefined();
  });
  it('compares', () => {
    expect(compareTime({ sec: 1, nanos: 9 }, { sec: 2, nanos: 0 })).toBeLessThan(0);
    expect(compareTime({ sec: 2, nanos: 1 }, { sec: 2, nanos: 0 })).toBeGreaterThan(0);
    expect(compareTime({ sec: 2, nanos: 1 }, { sec: 2, nanos: 1 })).toBe(0);
  });
  it('splits a payload into timestamp and raw bytes (spaces and all)', () => {
    const { time, line } = splitTimestamped(Buffer.from('2024-05-01T10:00:00.000000007Z  two spaces \n'));
    expect(time).toEqual({ sec: 1714557600, nanos: 7 });
    expect(line.toString()).toBe(' two spaces \n');
    expect(splitTimestamped(Buffer.from('no timestamp here\n'))).toEqual({ line: Buffer.from('no timestamp here\n') });
  });
});

describe('LogCursor', () => {
  const t = (sec: number, nanos = 0): LogTime => ({ sec, nanos });

  it('accepts everything in order from the start', () => {
    const c = new LogCursor();
    expect(c.since).toBeUndefined();
    expect([t(1), t(2), t(2), t(3)].map((x) => c.accept(x))).toEqual([true, true, true, true]);
    expect(c.position).toEqual({ since: '3.000000000', count: 1 });
  });

  it('counts messages that share a timestamp', () => {
    const c = new LogCursor();
    [t(5, 1), t(5, 1), t(5, 1)].forEach((x) => c.accept(x));
    expect(c.position).toEqual({ since: '5.000000001', count: 3 });
  });

  it('resumes: skips what was written at the stored timestamp, takes what came after', () => {
    // Written before: ..., (5,1), (5,1). The engine's since is inclusive, so both come again.
    const c = new LogCursor({ since: '5.000000001', count: 2 });
    expect(c.since).toBe('5.000000001');
    const replay = [t(5, 1), t(5, 1), t(5, 1), t(6), t(4)];
    expect(replay.map((x) => c.accept(x))).toEqual([false, false, true, true, false]);
    expect(c.position).toEqual({ since: '6.000000000', count: 1 });
  });

  it('a message stamped before the previous one (stdout and stderr race into the engine\'s log) is written, and the cursor stays at the latest', () => {
    const c = new LogCursor();
    expect([t(1), t(3), t(2), t(3), t(4)].map((x) => c.accept(x))).toEqual([true, true, true, true, true]);
    expect(c.position).toEqual({ since: '4.000000000', count: 1 });
    // After a resume, what is older than where it resumed was written before.
    const r = new LogCursor({ since: '3.000000000', count: 1 });
    expect([t(3), t(2), t(5), t(4)].map((x) => r.accept(x))).toEqual([false, false, true, true]);
    expect(r.position).toEqual({ since: '5.000000000', count: 1 });
  });

  it('a message without a timestamp goes with the previous one', () => {
    const c = new LogCursor({ since: '5.000000000', count: 1 });
    expect(c.accept(undefined)).toBe(true);
    expect(c.position).toEqual({ since: '5.000000000', count: 1 });
  });

  it('copying in pieces with restarts writes every message exactly once', () => {
    const rand = mulberry32(11);
    // Messages with deliberately repeated timestamps.
    const msgs = Array.from({ length: 200 }, (_, i) => ({ time: t(100 + Math.floor(i / 3), (i % 3) === 2 ? 1 : 0), text: `m${i}` }));
    const written: string[] = [];
    let pos: { since: string; count: number } | undefined;
    let produced = 0;
    while (written.length < msgs.length) {
      produced = Math.min(msgs.length, produced + 1 + Math.floor(rand() * 30));
      const c = new LogCursor(pos);
      const since = c.since ? parseSince(c.since)! : undefined;
      // What the engine sends for since: everything not older than it.
      for (const m of msgs.slice(0, produced).filter((m) => !since || compareTime(m.time, since) >= 0)) {
        if (c.accept(m.time)) written.push(m.text);
      }
      pos = c.position;
    }
    expect(written).toEqual(msgs.map((m) => m.text));
  });
});

describe('position file', () => {
  it('reads what is written', () => {
    const p = { container: 'abc', since: '1.000000002', count: 3, finishedAt: '2024-05-01T10:00:00.1Z' };
    expect(parsePosition(JSON.stringify(p))).toEqual(p);
    expect(parsePosition(JSON.stringify({ container: 'abc', since: '1.000000002', count: 0 }))).toEqual({ container: 'abc', since: '1.000000002', count: 0 });
  });
  it('ignores what it cannot trust', () => {
    for (const text of ['', '{', 'null', '{"container":"a","since":"1","count":1}', '{"since":"1.000000000","count":1}']) expect(parsePosition(text)).toBeUndefined();
  });
});

describe('taggedLine', () => {
  const t = parseTimestamp('2026-11-23T18:29:08.987654321Z');
  const cases: { name: string; stream: number; line: string; want: string }[] = [
    { name: 'stdout', stream: 1, line: 'hello\n', want: '2026-11-23T18:29:08Z stdout hello\n' },
    { name: 'stderr', stream: 2, line: 'oops\n', want: '2026-11-23T18:29:08Z stderr oops\n' },
    { name: 'no newline of its own', stream: 1, line: 'partial', want: '2026-11-23T18:29:08Z stdout partial\n' },
    { name: 'empty line', stream: 1, line: '\n', want: '2026-11-23T18:29:08Z stdout \n' },
  ];
  for (const c of cases) it(c.name, () => expect(taggedLine(t, c.stream, Buffer.from(c.line)).toString()).toBe(c.want));
});
