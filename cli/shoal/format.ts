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

export function ago(ms: number, now = Date.now()): string {
  const d = Math.max(0, now - ms);
  if (d < 60_000) return `${Math.round(d / 1000)} seconds ago`;
  if (d < 3_600_000) return `${Math.round(d / 60_000)} minutes ago`;
  if (d < 86_400_000) return `${Math.round(d / 3_600_000)} hours ago`;
  return `${Math.round(d / 86_400_000)} days ago`;
}
