// Placement constraints and preferences in Swarm's syntax. Parsing is shared with the control API's
// validation, so every rule a spec can break has its own message naming the text and the rule.

import type { PlacementPreference, SchedulerNode } from './types.js';

/** A node attribute a constraint or a spread preference can refer to. */
export type Attribute =
  | { kind: 'id' | 'hostname' | 'role' | 'os' | 'arch' }
  | { kind: 'label' | 'engineLabel'; name: string };

export type Operator = '==' | '!=';

export interface Constraint {
  /** The constraint as written (trimmed), for messages. */
  text: string;
  attr: Attribute;
  op: Operator;
  value: string;
  /** The value as compared: lower case (Swarm compares values case-insensitively), arch aliases folded. */
  match: string;
}

export class ConstraintError extends Error {
  override name = 'ConstraintError';
  constructor(
    readonly constraint: string,
    readonly rule: string,
  ) {
    super(`invalid constraint "${constraint}": ${rule}`);
  }
}

export class PreferenceError extends Error {
  override name = 'PreferenceError';
  constructor(
    readonly preference: string,
    readonly rule: string,
  ) {
    super(`invalid placement preference "spread=${preference}": ${rule}`);
  }
}

const KNOWN_KEYS =
  'node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>';
// swarmkit's key and value alphabets, so a spec Docker accepts is accepted here too.
const KEY_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const VALUE_RE = /^[A-Za-z0-9:\-_\s.*()?+[\]\\^$|/]+$/;
const VALUE_RULE = 'a value may contain only letters, digits, spaces and : - _ . * ( ) ? + [ ] \\ ^ $ | /';

/** Parse one constraint like `node.labels.zone==eu`; throws ConstraintError naming the broken rule. */
export function parseConstraint(input: string): Constraint {
  const text = input.trim();
  const fail = (rule: string): never => {
    throw new ConstraintError(text, rule);
  };
  if (text === '') fail('a constraint must not be empty');
  const ops = [...text.matchAll(/==|!=/g)];
  if (ops.length === 0) {
    fail('expected <key>==<value> or <key>!=<value> (the operator must be == or !=)');
  }
  if (ops.length > 1) fail('only one operator (== or !=) is allowed');
  const at = ops[0]!.index!;
  const op = ops[0]![0] as Operator;
  const key = text.slice(0, at).trim();
  const value = text.slice(at + 2).trim();
  if (key === '') fail(`the key before ${op} is missing`);
  if (value === '') fail(`the value after ${op} is missing`);
  const attr = parseAttribute(key, (rule) => fail(rule));
  if (!VALUE_RE.test(value)) fail(VALUE_RULE);
  if (attr.kind === 'role') {
    const role = value.toLowerCase();
    if (role !== 'manager' && role !== 'worker') fail(`node.role can only be manager or worker, not "${value}"`);
  }
  return { text, attr, op, value, match: foldValue(attr, value) };
}

/** Parse a list of constraints; throws on the first bad one. */
export function parseConstraints(inputs: readonly string[]): Constraint[] {
  return inputs.map(parseConstraint);
}

/** Parse the attribute of a spread preference, e.g. `node.labels.zone`. */
export function parsePreference(pref: PlacementPreference): Attribute {
  const key = pref.spread.trim();
  if (key === '') throw new PreferenceError(key, 'the attribute to spread over is missing');
  if (/[=!]/.test(key)) throw new PreferenceError(key, 'spread takes an attribute such as node.labels.zone, not a constraint');
  return parseAttribute(key, (rule) => {
    throw new PreferenceError(key, rule);
  });
}

function parseAttribute(key: string, fail: (rule: string) => never): Attribute {
  if (!KEY_RE.test(key)) fail(`key "${key}": a key may contain only letters, digits, '_', '-' and '.' and must not start with a digit`);
  const lower = key.toLowerCase();
  switch (lower) {
    case 'node.id':
      return { kind: 'id' };
    case 'node.hostname':
      return { kind: 'hostname' };
    case 'node.role':
      return { kind: 'role' };
    case 'node.platform.os':
      return { kind: 'os' };
    case 'node.platform.arch':
      return { kind: 'arch' };
  }
  // The prefix is case-insensitive but label names are not (as in Swarm).
  for (const [prefix, kind] of [
    ['node.labels.', 'label'],
    ['engine.labels.', 'engineLabel'],
  ] as const) {
    if (lower.startsWith(prefix)) {
      const name = key.slice(prefix.length);
      if (name === '') fail(`a label name is required after ${prefix}`);
      return { kind, name };
    }
    if (lower === prefix.slice(0, -1)) fail(`a label name is required after ${prefix}`);
  }
  return fail(`unknown key "${key}": expected ${KNOWN_KEYS}`);
}

// Docker reports uname's names (x86_64), images use Go's (amd64): both must mean the same node.
const ARCH_ALIASES: Readonly<Record<string, string>> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  armv7l: 'arm',
  armhf: 'arm',
  i386: '386',
  i686: '386',
};

export function normalizeArch(arch: string): string {
  const a = arch.toLowerCase();
  return ARCH_ALIASES[a] ?? a;
}

function foldValue(attr: Attribute, value: string): string {
  return attr.kind === 'arch' ? normalizeArch(value) : value.toLowerCase();
}

/** The node's value for an attribute; a missing label reads as "" (so `!=` holds, as in Swarm). */
export function attributeValue(attr: Attribute, node: SchedulerNode): string {
  switch (attr.kind) {
    case 'id':
      return node.id;
    case 'hostname':
      return node.hostname;
    case 'role':
      return node.role;
    case 'os':
      return node.platform.os;
    case 'arch':
      return node.platform.arch;
    case 'label':
      return node.labels[attr.name] ?? '';
    case 'engineLabel':
      return node.engineLabels?.[attr.name] ?? '';
  }
}

/** For spread preferences: undefined when a node lacks the label, so such nodes form their own group. */
export function attributeGroup(attr: Attribute, node: SchedulerNode): string | undefined {
  if (attr.kind === 'label') return node.labels[attr.name];
  if (attr.kind === 'engineLabel') return node.engineLabels?.[attr.name];
  return attributeValue(attr, node);
}

export function matchConstraint(c: Constraint, node: SchedulerNode): boolean {
  const v = attributeValue(c.attr, node);
  const equal = (c.attr.kind === 'arch' ? normalizeArch(v) : v.toLowerCase()) === c.match;
  return c.op === '==' ? equal : !equal;
}

/** The index of the first constraint the node fails, or -1 when it satisfies them all. */
export function firstFailedConstraint(cs: readonly Constraint[], node: SchedulerNode): number {
  for (let i = 0; i < cs.length; i++) if (!matchConstraint(cs[i]!, node)) return i;
  return -1;
}
