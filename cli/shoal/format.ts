// Output like docker's: aligned tables with upper-case headers, durations as
// "5s" / "1m30s" / "2160h", and JSON for --format json.

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "90s", "1m30s", "2160h", "500ms" -> milliseconds; throws with a clear message otherwise. */
export function parseDuration(s: string, flag: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (!s || matched !== s.length) {
    throw new Error(`invalid duration "${s}" for ${flag}: use a number with a unit, e.g. 500ms, 5s, 1m30s, 2160h`);
  }
  return total;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function titleCase(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
}

/** How long ago, in docker's words (units.HumanDuration, lower case): "5 seconds ago", "about a minute ago". */
export function ago(ms: number, now = Date.now()): string {
  const d = Math.max(0, now - ms);
  const seconds = Math.floor(d / 1000);
  const minutes = Math.floor(d / 60_000);
  const hours = Math.round(d / 3_600_000);
  let s: string;
  if (seconds < 1) s = 'less than a second';
  else if (seconds === 1) s = '1 second';
  else if (seconds < 60) s = `${seconds} seconds`;
  else if (minutes === 1) s = 'about a minute';
  else if (minutes < 60) s = `${minutes} minutes`;
  else if (hours === 1) s = 'about an hour';
  else if (hours < 48) s = `${hours} hours`;
  else if (hours < 24 * 7 * 2) s = `${Math.floor(hours / 24)} days`;
  else if (hours < 24 * 30 * 2) s = `${Math.floor(hours / 24 / 7)} weeks`;
  else if (hours < 24 * 365 * 2) s = `${Math.floor(hours / 24 / 30)} months`;
  else s = `${Math.floor(d / 3_600_000 / 24 / 365)} years`;
  return `${s} ago`;
}

/** A digest as a listing shows it: the algorithm and 12 hex digits, as docker shortens image IDs. */
export function shortDigest(digest: string): string {
  const m = /^([a-z0-9]+):([0-9a-f]+)$/.exec(digest);
  return m ? `${m[1]}:${m[2]!.slice(0, 12)}` : digest;
}
