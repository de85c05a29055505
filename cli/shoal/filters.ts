// `--filter key=value` for the listings, with docker's keys and meaning: values
// of one key widen (any of them), different keys narrow (all of them). Each
// listing names the keys it knows; any other is refused with the list.
import type { shoal } from '../../proto/gen/api.js';
import { api } from '../../proto/services.js';
import { modeOf, taskName } from './views.js';

type Service = shoal.api.Service.$Properties;
type Node = shoal.api.Node.$Properties;
type Task = shoal.api.Task.$Properties;

/** One key: how it is written in help and refusals, its closed set of values if it has one, and what it keeps. */
export interface FilterKey<T> {
  usage: string;
  values?: readonly string[];
  match(item: T, value: string): boolean;
}

export type FilterKeys<T> = Record<string, FilterKey<T>>;

export interface Filters<T> {
  /** The values given per key. */
  values: Map<string, string[]>;
  keep(item: T): boolean;
}

/** The keys for --help: "id=<prefix>, name=<prefix>, ...". */
export function filterUsage<T>(keys: FilterKeys<T>): string {
  return Object.values(keys).map((k) => k.usage).join(', ');
}

/** Reads the flags against the keys; a bad one is refused with what is wrong and the keys there are. */
export function parseFilters<T>(flags: string[], keys: FilterKeys<T>): Filters<T> {
  const values = new Map<string, string[]>();
  for (const f of flags) {
    const eq = f.indexOf('=');
    const key = eq < 0 ? f : f.slice(0, eq);
    const value = eq < 0 ? '' : f.slice(eq + 1);
    const k = Object.hasOwn(keys, key) ? keys[key] : undefined;
    if (!k || eq < 0 || value === '') {
      const why = !k ? (key ? `unknown key "${key}"` : 'no key') : 'no value';
      throw new Error(`invalid --filter "${f}": ${why}; use key=value with one of: ${filterUsage(keys)}`);
    }
    if (k.values && !k.values.includes(value)) {
      throw new Error(`invalid --filter "${f}": ${key} is one of ${k.values.join(', ')}`);
    }
    values.set(key, [...(values.get(key) ?? []), value]);
  }
  return {
    values,
    keep: (item) => [...values].every(([key, vs]) => vs.some((v) => keys[key]!.match(item, v))),
  };
}

/** `label=<key>` (present) or `label=<key>=<value>` (equal). */
export function labelMatches(labels: Record<string, string> | null | undefined, v: string): boolean {
  const eq = v.indexOf('=');
  const key = eq < 0 ? v : v.slice(0, eq);
  if (!labels || !Object.hasOwn(labels, key)) return false;
  return eq < 0 || labels[key] === v.slice(eq + 1);
}

const MODES = ['replicated', 'global', 'replicated-job', 'global-job'] as const;

/** `service ls`. */
export const SERVICE_FILTERS: FilterKeys<Service> = {
  id: { usage: 'id=<prefix>', match: (s, v) => (s.id ?? '').startsWith(v) },
  name: { usage: 'name=<prefix>', match: (s, v) => (s.spec?.name ?? '').startsWith(v) },
  label: { usage: 'label=<key>[=<value>]', match: (s, v) => labelMatches(s.spec?.labels, v) },
  mode: { usage: `mode=${MODES.join('|')}`, values: MODES, match: (s, v) => modeOf(s.spec) === v },
};

/** `node ls`. */
export const NODE_FILTERS: FilterKeys<Node> = {
  id: { usage: 'id=<prefix>', match: (n, v) => (n.id ?? '').startsWith(v) },
  name: { usage: 'name=<hostname prefix>', match: (n, v) => (n.description?.hostname ?? '').startsWith(v) },
  role: {
    usage: 'role=manager|worker',
    values: ['manager', 'worker'],
    match: (n, v) => (n.spec?.desiredRole === api.NodeRole.ROLE_MANAGER ? 'manager' : 'worker') === v,
  },
  'node.label': { usage: 'node.label=<key>[=<value>]', match: (n, v) => labelMatches(n.spec?.labels, v) },
};

export const DESIRED_STATES = ['running', 'shutdown', 'accepted'] as const;

const S = api.TaskState;

/**
 * `service ps` and `node ps`. desired-state: running is desired running or less, shutdown anything
 * past running (shut down, completed jobs, removed), accepted exactly accepted. node: its ID or hostname.
 */
export function taskFilters(hostnames: Map<string, string>): FilterKeys<Task> {
  return {
    'desired-state': {
      usage: `desired-state=${DESIRED_STATES.join('|')}`,
      values: DESIRED_STATES,
      match: (t, v) => {
        const d = t.desiredState ?? 0;
        if (v === 'running') return d <= S.TASK_RUNNING;
        if (v === 'shutdown') return d > S.TASK_RUNNING;
        return d === S.TASK_ACCEPTED;
      },
    },
    id: { usage: 'id=<prefix>', match: (t, v) => (t.id ?? '').startsWith(v) },
    name: { usage: 'name=<task name prefix>', match: (t, v) => taskName(t).startsWith(v) },
    node: { usage: 'node=<node ID or hostname>', match: (t, v) => !!t.nodeId && (t.nodeId === v || hostnames.get(t.nodeId) === v) },
  };
}

/** The task keys, for parsing before the hostnames are known (node= only matches once they are). */
export const TASK_FILTER_KEYS = taskFilters(new Map());
