// Plain-text tables for bench output, plus number formatting helpers.

export type Align = 'left' | 'right';

export interface Column {
  header: string;
  /** Default: left for the first column, right for the others. */
  align?: Align;
}

/** Render rows as an aligned text table with a header rule. */
export function renderTable(columns: Array<Column | string>, rows: string[][]): string {
  const cols: Column[] = columns.map((c) => (typeof c === 'string' ? { header: c } : c));
  const widths = cols.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)));
  const alignOf = (i: number): Align => cols[i]!.align ?? (i === 0 ? 'left' : 'right');
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (alignOf(i) === 'left' ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(cols.map((c) => c.header)), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows) out.push(line(cols.map((_, i) => r[i] ?? '')));
  return out.join('\n');
}

export function printTable(columns: Array<Column | string>, rows: string[][]): void {
  process.stdout.write(renderTable(columns, rows) + '\n');
}

/** Print a value as pretty JSON on stdout (for --json). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** 2283.4 -> "2,283". */
export function fmtInt(n: number): string {
  if (!Number.isFinite(n)) return '-';
  return Math.round(n).toLocaleString('en-US');
}

/** Milliseconds with a precision that suits the magnitude. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1) return ms.toFixed(3);
  if (ms < 100) return ms.toFixed(2);
  return ms.toFixed(0);
}

/** Ratio a/b as "1.23x", "-" when undefined. */
export function fmtRatio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '-';
  return (a / b).toFixed(2) + 'x';
}
