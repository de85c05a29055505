// Task log reading: the logger's line format parsed, tail read from the end,
// since, follow with appends, a partial last line held back, a missing file.
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseLogLine, readTaskLog, type LogQuery } from '../../../worker/agent/logs.js';
import type { LogLine } from '../../../proto/services.js';
import { waitFor } from '../../support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'shoal-logs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(dir, `t${++n}.log`);

const T0 = Date.parse('2026-11-23T18:29:08Z');
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const line = (i: number, stream = 'stdout', at = T0 + i * 1000): string => `${iso(at)} ${stream} line ${i}\n`;
const text = (ls: LogLine[]): string[] => ls.map((l) => Buffer.from(l.data).toString());

async function read(path: string, q: Partial<LogQuery>): Promise<LogLine[]> {
  const out: LogLine[] = [];
  await readTaskLog(path, 'task-1', 'node-1', { follow: false, tail: -1, since: 0, ...q }, (ls) => out.push(...ls), new AbortController().signal);
  return out;
}

/** A follow reader running in the background; stop() ends it. */
function follow(path: string, q: Partial<LogQuery> = {}): { lines: LogLine[]; stop: () => Promise<void> } {
  const lines: LogLine[] = [];
  const ac = new AbortController();
  const done = readTaskLog(path, 'task-1', 'node-1', { follow: true, tail: -1, since: 0, ...q }, (ls) => lines.push(...ls), ac.signal);
  return {
    lines,
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

describe('parseLogLine', () => {
  const cases: { name: string; raw: string; want: Partial<LogLine> & { text: string } }[] = [
    { name: 'stdout', raw: '2026-11-23T18:29:08Z stdout hello world', want: { timestamp: T0, stream: 0, text: 'hello world' } },
    { name: 'stderr', raw: '2026-11-23T18:29:09Z stderr oops', want: { timestamp: T0 + 1000, stream: 1, text: 'oops' } },
    { name: 'empty text', raw: '2026-11-23T18:29:08Z stdout ', want: { timestamp: T0, stream: 0, text: '' } },
    { name: 'spaces kept', raw: '2026-11-23T18:29:08Z stdout  a  b ', want: { timestamp: T0, stream: 0, text: ' a  b ' } },
    { name: 'not the format', raw: 'raw output', want: { timestamp: 0, stream: 0, text: 'raw output' } },
    { name: 'unknown stream', raw: '2026-11-23T18:29:08Z stdlog x', want: { timestamp: 0, stream: 0, text: '2026-11-23T18:29:08Z stdlog x' } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const l = parseLogLine(Buffer.from(c.raw), 'task-1', 'node-1');
      expect({ taskId: l.taskId, nodeId: l.nodeId, timestamp: l.timestamp, stream: l.stream, text: Buffer.from(l.data).toString() }).toEqual({ taskId: 'task-1', nodeId: 'node-1', ...c.want });
    });
  }
});

describe('readTaskLog', () => {
  it('reads every line with its time and stream', async () => {
    const p = fresh();
    writeFileSync(p, line(0) + line(1, 'stderr') + line(2));
    const ls = await read(p, {});
    expect(text(ls)).toEqual(['line 0', 'line 1', 'line 2']);
    expect(ls.map((l) => [l.timestamp, l.stream])).toEqual([[T0, 0], [T0 + 1000, 1], [T0 + 2000, 0]]);
  });

  const tails: { tail: number; want: number[] }[] = [
    { tail: -1, want: [0, 1, 2, 3, 4] },
    { tail: 0, want: [] },
    { tail: 2, want: [3, 4] },
    { tail: 5, want: [0, 1, 2, 3, 4] },
    { tail: 50, want: [0, 1, 2, 3, 4] },
  ];
  for (const c of tails) {
    it(`tail ${c.tail}`, async () => {
      const p = fresh();
      writeFileSync(p, [0, 1, 2, 3, 4].map((i) => line(i)).join(''));
      expect(text(await read(p, { tail: c.tail }))).toEqual(c.want.map((i) => `line ${i}`));
    });
  }

  it('tail of a big file crosses chunk boundaries and reads only the end', async () => {
    const p = fresh();
    const body: string[] = [];
    for (let i = 0; i < 20_000; i++) body.push(line(i));
    writeFileSync(p, body.join('')); // ~800 KB: a dozen chunks
    expect(text(await read(p, { tail: 3 }))).toEqual(['line 19997', 'line 19998', 'line 19999']);
    expect(await read(p, { tail: -1 })).toHaveLength(20_000);
  });

  it('since keeps the lines of since’s second and later; tail and since together', async () => {
    const p = fresh();
    writeFileSync(p, [0, 1, 2, 3, 4].map((i) => line(i)).join(''));
    expect(text(await read(p, { since: T0 + 2500 }))).toEqual(['line 2', 'line 3', 'line 4']);
    expect(text(await read(p, { since: T0 + 2000, tail: 1 }))).toEqual(['line 4']);
    expect(await read(p, { since: T0 + 60_000 })).toEqual([]);
  });

  it('leaves out a partial last line when not following; tail does not count it', async () => {
    const p = fresh();
    writeFileSync(p, line(0) + line(1) + `${iso(T0)} stdout unfinis`);
    expect(text(await read(p, {}))).toEqual(['line 0', 'line 1']);
    expect(text(await read(p, { tail: 1 }))).toEqual(['line 1']);
  });

  it('a missing file yields nothing', async () => {
    expect(await read(join(dir, 'nope.log'), {})).toEqual([]);
  });

  it('follows appends; a partial line is held until its newline', async () => {
    const p = fresh();
    writeFileSync(p, line(0));
    const f = follow(p);
    try {
      await waitFor('the first line', () => (f.lines.length === 1 ? true : undefined));
      appendFileSync(p, line(1) + `${iso(T0 + 2000)} stderr half a `);
      await waitFor('the second line', () => (f.lines.length >= 2 ? true : undefined));
      // The reader has read to the end of the file, partial line included: it must not have emitted it.
      expect(text(f.lines)).toEqual(['line 0', 'line 1']);
      appendFileSync(p, 'line\n' + line(3));
      await waitFor('the rest', () => (f.lines.length >= 4 ? true : undefined));
      expect(text(f.lines)).toEqual(['line 0', 'line 1', 'half a line', 'line 3']);
      expect(f.lines[2]!.stream).toBe(1);
    } finally {
      await f.stop();
    }
  });

  it('follow with tail 0 gives only new lines', async () => {
    const p = fresh();
    writeFileSync(p, line(0) + line(1));
    const f = follow(p, { tail: 0 });
    try {
      // The reader starts at some point after this: append until lines arrive, one per poll.
      let k = 2;
      await waitFor('new lines', () => {
        if (f.lines.length) return true;
        appendFileSync(p, line(k++));
        return undefined;
      });
      await waitFor('every appended line', () => (f.lines.length && text(f.lines).at(-1) === `line ${k - 1}` ? true : undefined));
      const got = text(f.lines);
      const first = Number(got[0]!.split(' ')[1]);
      expect(first).toBeGreaterThanOrEqual(2);
      expect(got).toEqual(Array.from({ length: k - first }, (_, i) => `line ${first + i}`));
    } finally {
      await f.stop();
    }
  });

  it('follow waits for a missing file, and starts over when the file is replaced', async () => {
    const p = fresh();
    const f = follow(p);
    try {
      writeFileSync(p, line(0));
      await waitFor('the file’s line', () => (f.lines.length >= 1 ? true : undefined));
      rmSync(p);
      writeFileSync(p, line(1));
      await waitFor('the new file’s line', () => (f.lines.length >= 2 ? true : undefined));
      expect(text(f.lines)).toEqual(['line 0', 'line 1']);
    } finally {
      await f.stop();
    }
  });

  it('ends at once when aborted', async () => {
    const f = follow(join(dir, 'never.log'));
    await f.stop();
    expect(f.lines).toEqual([]);
  });
});
