// The pure half of log copying. The engine keeps a container's output in its
// own json-file log; the adapter follows GET /containers/{id}/logs
// (follow, stdout, stderr, timestamps) and appends it to the task's logPath
// (taggedLine, or the raw bytes). The stream is multiplexed: frames of an 8-byte header (stream byte,
// 3 zero bytes, big-endian length) and a payload, here one log message each,
// prefixed by its RFC 3339 timestamp with nanoseconds and a space.
//
// Where copying stands is kept in logPath + '.pos' (the last timestamp written
// and how many messages carried it), so a restarted agent asks the engine for
// `since=<timestamp>` and skips what it already wrote: nothing lost, nothing
// doubled (unless shoald dies between a write and its position update: then
// that one batch comes twice).

export interface Frame {
  /** 0 stdin, 1 stdout, 2 stderr. */
  stream: number;
  data: Buffer;
}

const HEADER = 8;

/** Splits the engine's multiplexed stream into frames; chunks may cut frames anywhere. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Frame[] = [];
    let pos = 0;
    while (this.buf.length - pos >= HEADER) {
      const stream = this.buf[pos]!;
      if (stream > 2 || this.buf[pos + 1] !== 0 || this.buf[pos + 2] !== 0 || this.buf[pos + 3] !== 0) {
        throw new Error(`log stream: bad frame header at byte ${pos} (is the container running with a TTY?)`);
      }
      const len = this.buf.readUInt32BE(pos + 4);
      if (this.buf.length - pos - HEADER < len) break;
      out.push({ stream, data: this.buf.subarray(pos + HEADER, pos + HEADER + len) });
      pos += HEADER + len;
    }
    this.buf = pos === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(pos));
    return out;
  }

  /** Bytes of an incomplete frame held back. */
  get pending(): number {
    return this.buf.length;
  }
}

/** A log timestamp: whole seconds since the epoch and nanoseconds. */
export interface LogTime {
  sec: number;
  nanos: number;
}

const TS_RE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/;

/** `2024-05-01T10:00:00.123456789Z` (or with an offset) -> LogTime. */
export function parseTimestamp(s: string): LogTime | undefined {
  const m = TS_RE.exec(s);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return { sec: Math.floor(ms / 1000), nanos: Number((m[2] ?? '').padEnd(9, '0')) };
}

/** The engine's `since` parameter: `<seconds>.<nanoseconds>`. */
export function formatSince(t: LogTime): string {
  return `${t.sec}.${String(t.nanos).padStart(9, '0')}`;
}

export function parseSince(s: string): LogTime | undefined {
  const m = /^(\d+)\.(\d{9})$/.exec(s);
  return m ? { sec: Number(m[1]), nanos: Number(m[2]) } : undefined;
}

export function compareTime(a: LogTime, b: LogTime): number {
  return a.sec !== b.sec ? a.sec - b.sec : a.nanos - b.nanos;
}

/** A frame's payload -> its timestamp and the bytes the container wrote (undefined time when there is no prefix). */
export function splitTimestamped(payload: Buffer): { time?: LogTime; line: Buffer } {
  const sp = payload.indexOf(0x20);
  // The longest form: 2006-01-02T15:04:05.999999999+07:00 (35 characters).
  if (sp > 0 && sp <= 35) {
    const time = parseTimestamp(payload.toString('latin1', 0, sp));
    if (time) return { time, line: payload.subarray(sp + 1) };
  }
  return { line: payload };
}

/** What logPath + '.pos' holds. */
export interface LogPosition {
  /** Full ID of the container the position belongs to (a new container under the same logPath starts over). */
  container: string;
  /** Timestamp of the last message written, as formatSince. */
  since: string;
  /** How many messages with exactly that timestamp were written. */
  count: number;
  /** Set once the container had exited and everything up to its end was copied: its State.FinishedAt. */
  finishedAt?: string;
}

export function parsePosition(text: string): LogPosition | undefined {
  try {
    const p = JSON.parse(text) as Partial<LogPosition>;
    if (typeof p.container !== 'string' || typeof p.since !== 'string' || !parseSince(p.since) || typeof p.count !== 'number') return undefined;
    return { container: p.container, since: p.since, count: p.count, ...(typeof p.finishedAt === 'string' ? { finishedAt: p.finishedAt } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * Decides which messages still need writing. The engine's `since` is
 * inclusive, so after a resume the messages at exactly the stored timestamp
 * come again: the first `count` of them are skipped.
 */
export class LogCursor {
  private last?: LogTime;
  private count = 0;
  private skip = 0;
  /** Where this copy resumed: everything stamped before it was written by an earlier one. */
  private readonly floor?: LogTime;

  constructor(from?: { since: string; count: number }) {
    const t = from ? parseSince(from.since) : undefined;
    if (t) {
      this.last = this.floor = t;
      this.count = from!.count;
      this.skip = from!.count;
    }
  }

  /** Should a message with this timestamp be written? Call once per message, in stream order. */
  accept(t: LogTime | undefined): boolean {
    // A message without a timestamp belongs with the one before it.
    if (!t) return true;
    if (this.floor && compareTime(t, this.floor) < 0) return false;
    const c = this.last ? compareTime(t, this.last) : 1;
    // Stamped before the last one, yet new: the engine stamps stdout and stderr as it reads
    // them and writes them to its log in the order it gets the lock, so their stamps can
    // go back in time. Written; the cursor stays at the latest stamp (a resume from there
    // does not bring this one again, as the engine's since leaves out what is older).
    if (c < 0) return true;
    if (c === 0) {
      if (this.skip > 0) {
        this.skip--;
        return false;
      }
      this.count++;
      return true;
    }
    this.last = t;
    this.count = 1;
    this.skip = 0;
    return true;
  }

  /** The `since` to resume from, or undefined before the first message. */
  get since(): string | undefined {
    return this.last ? formatSince(this.last) : undefined;
  }

  get position(): { since: string; count: number } | undefined {
    return this.last ? { since: formatSince(this.last), count: this.count } : undefined;
  }
}

/**
 * One message in the line format `<UTC time, seconds> <stdout|stderr> <text>\n`
 * (the format worker/agent/logs.ts reads). A message without its own newline
 * (the engine cuts lines longer than 16 KiB, and the last output may have
 * none) still gets one: it becomes a line of its own.
 */
export function taggedLine(time: LogTime | undefined, stream: number, line: Buffer): Buffer {
  const ts = new Date((time?.sec ?? 0) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const text = line.length && line[line.length - 1] === 0x0a ? line : Buffer.concat([line, Buffer.from('\n')]);
  return Buffer.concat([Buffer.from(`${ts} ${stream === 2 ? 'stderr' : 'stdout'} `), text]);
}
