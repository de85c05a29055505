// Constraint and preference parsing (shared with the control API's validation) and matching.
import { describe, expect, it } from 'vitest';
import {
  ConstraintError,
  PreferenceError,
  matchConstraint,
  parseConstraint,
  parseConstraints,
  parsePreference,
} from '../../../manager/scheduler/index.js';
import { node } from './helpers.js';

describe('parseConstraint accepts Swarm syntax', () => {
  it.each([
    ['node.id==abc123', { kind: 'id' }, '==', 'abc123'],
    ['node.hostname!=host-1', { kind: 'hostname' }, '!=', 'host-1'],
    ['node.role==manager', { kind: 'role' }, '==', 'manager'],
    ['node.role == Worker', { kind: 'role' }, '==', 'Worker'],
    ['node.platform.os==linux', { kind: 'os' }, '==', 'linux'],
    ['node.platform.arch==x86_64', { kind: 'arch' }, '==', 'x86_64'],
    ['node.labels.zone==eu', { kind: 'label', name: 'zone' }, '==', 'eu'],
    ['NODE.LABELS.Zone==eu', { kind: 'label', name: 'Zone' }, '==', 'eu'],
    ['engine.labels.storage!=hdd', { kind: 'engineLabel', name: 'storage' }, '!=', 'hdd'],
    ['  node.labels.rack == r1/a  ', { kind: 'label', name: 'rack' }, '==', 'r1/a'],
    ['node.labels.com.example.tier==front end', { kind: 'label', name: 'com.example.tier' }, '==', 'front end'],
  ])('%s', (text, attr, op, value) => {
    const c = parseConstraint(text);
    expect(c).toMatchObject({ text: text.trim(), attr, op, value });
  });
});

describe('parseConstraint refuses bad syntax, naming the constraint and the rule', () => {
  it.each([
    ['', 'a constraint must not be empty'],
    ['node.labels.zone=eu', 'the operator must be == or !='],
    ['node.labels.zone>eu', 'the operator must be == or !='],
    ['node.labels.zone==eu==us', 'only one operator (== or !=) is allowed'],
    ['node.role==manager!=worker', 'only one operator'],
    ['==eu', 'the key before == is missing'],
    ['node.labels.zone!=', 'the value after != is missing'],
    ['node.labels.==eu', 'a label name is required after node.labels.'],
    ['node.labels==eu', 'a label name is required after node.labels.'],
    ['engine.labels.==x', 'a label name is required after engine.labels.'],
    ['node.name==x', 'unknown key "node.name": expected node.id, node.hostname, node.role'],
    ['zone==eu', 'unknown key "zone"'],
    ['node labels.zone==eu', 'a key may contain only letters, digits'],
    ['1node.id==x', 'must not start with a digit'],
    ['node.labels.zone==eu;rm', 'a value may contain only letters, digits, spaces and'],
    ['node.role==boss', 'node.role can only be manager or worker, not "boss"'],
  ])('%j', (text, rule) => {
    let err: unknown;
    try {
      parseConstraint(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConstraintError);
    const ce = err as ConstraintError;
    expect(ce.constraint).toBe(text.trim());
    expect(ce.rule).toContain(rule);
    expect(ce.message).toBe(`invalid constraint "${text.trim()}": ${ce.rule}`);
  });

  it('parseConstraints reports the first bad one', () => {
    expect(() => parseConstraints(['node.role==manager', 'node.labels.x=1', 'bad'])).toThrow(
      'invalid constraint "node.labels.x=1"',
    );
  });
});

describe('parsePreference', () => {
  it.each([
    ['node.labels.zone', { kind: 'label', name: 'zone' }],
    ['engine.labels.rack', { kind: 'engineLabel', name: 'rack' }],
    ['node.hostname', { kind: 'hostname' }],
  ])('%s', (spread, attr) => expect(parsePreference({ spread })).toEqual(attr));

  it.each([
    ['', 'the attribute to spread over is missing'],
    ['node.labels.zone==eu', 'spread takes an attribute such as node.labels.zone, not a constraint'],
    ['node.labels.', 'a label name is required'],
    ['datacenter', 'unknown key "datacenter"'],
  ])('refuses %j', (spread, rule) => {
    expect(() => parsePreference({ spread })).toThrow(PreferenceError);
    expect(() => parsePreference({ spread })).toThrow(rule);
  });
});

describe('matchConstraint', () => {
  const n = node({
    id: 'n1',
    hostname: 'Host-1',
    role: 'manager',
    labels: { zone: 'EU', Disk: 'ssd' },
    engineLabels: { storage: 'nvme' },
    platform: { os: 'linux', arch: 'aarch64' },
  });
  it.each([
    ['node.id==n1', true],
    ['node.id==N1', true], // values compare case-insensitively, as in Swarm
    ['node.id!=n1', false],
    ['node.hostname==host-1', true],
    ['node.role==manager', true],
    ['node.role!=manager', false],
    ['node.role==worker', false],
    ['node.platform.os==linux', true],
    ['node.platform.arch==arm64', true], // aarch64 and arm64 are one architecture
    ['node.platform.arch==aarch64', true],
    ['node.platform.arch!=x86_64', true],
    ['node.labels.zone==eu', true],
    ['node.labels.zone!=eu', false],
    ['node.labels.zone==us', false],
    ['node.labels.disk==ssd', false], // label names are case-sensitive
    ['node.labels.Disk==ssd', true],
    ['node.labels.missing==x', false],
    ['node.labels.missing!=x', true], // a missing label reads as empty, so != holds
    ['engine.labels.storage==nvme', true],
    ['engine.labels.storage!=nvme', false],
  ])('%s -> %s', (text, want) => expect(matchConstraint(parseConstraint(text), n)).toBe(want));
});
