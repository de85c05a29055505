// Which parts of a service's task template an update changes. Running tasks
// keep the template they were made from: the orchestrators read a service's
// restart policy live, and registry credentials matter only to the next pull,
// but any other change needs the tasks replaced (a rolling update). Shared by
// the control API (does an update start one?), the orchestrator (which tasks
// are of an older template?) and the CLI (which tasks are of the current one?).
const APPLIED_IN_PLACE = new Set(['restart_policy', 'container.pull_options']);

/**
 * The fields whose values differ between two task templates (paths under task_template, two
 * levels deep at most, in snake_case as the API names them: `container.image`,
 * `resources.limits`), leaving out what applies without replacing tasks. Values a proto3 reader
 * cannot tell from absent (0, '', false, empty lists and maps) count as absent, so a spec read
 * back and sent again compares equal to the stored one.
 */
export function templateChanges(current: unknown, next: unknown): string[] {
  const out: string[] = [];
  diff(canonical(current), canonical(next), [], out);
  return out;
}

function diff(a: unknown, b: unknown, path: string[], out: string[]): void {
  const name = path.map(snake).join('.');
  if (APPLIED_IN_PLACE.has(name)) return;
  // Deeper than two levels are maps (labels) and sub-records: the field that holds them is named.
  if (path.length < 2 && (isRecord(a) || isRecord(b)) && (isRecord(a) || a === undefined) && (isRecord(b) || b === undefined)) {
    // A record set on one side only: name the fields set in it.
    const ra = (a ?? {}) as Record<string, unknown>;
    const rb = (b ?? {}) as Record<string, unknown>;
    for (const k of [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort()) diff(ra[k], rb[k], [...path, k], out);
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(name);
}

/** Plain data with defaults dropped, keys sorted, 64-bit numbers as numbers. */
function canonical(v: unknown): unknown {
  if (v === null || v === undefined || v === '' || v === 0 || v === false) return undefined;
  if (Array.isArray(v)) return v.length === 0 ? undefined : v.map((x) => canonical(x) ?? null);
  if (ArrayBuffer.isView(v)) return v.byteLength === 0 ? undefined : Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  if (isLong(o)) {
    const bits = (BigInt((o.high as number) >>> 0) << 32n) | BigInt((o.low as number) >>> 0);
    return canonical(Number(o.unsigned ? bits : BigInt.asIntN(64, bits)));
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o).sort()) {
    if (typeof o[k] === 'function') continue;
    const c = canonical(o[k]);
    if (c !== undefined) out[k] = c;
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isLong = (o: Record<string, unknown>): boolean =>
  typeof o.low === 'number' && typeof o.high === 'number' && typeof o.unsigned === 'boolean' && Object.keys(o).length === 3;
const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
