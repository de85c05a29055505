// --filter on the listings: docker's keys, values of one key widen, keys narrow, bad ones refused.
import { describe, expect, it } from 'vitest';
import type { shoal } from '../../../proto/gen/api.js';
import { api } from '../../../proto/services.js';
import { NODE_FILTERS, SERVICE_FILTERS, TASK_FILTER_KEYS, labelMatches, parseFilters, taskFilters } from '../../../cli/shoal/filters.js';

type Task = shoal.api.Task.$Properties;
type Service = shoal.api.Service.$Properties;
type Node = shoal.api.Node.$Properties;
const S = api.TaskState;

const services: Service[] = [
  { id: 'aaa111', spec: { name: 'web', labels: { tier: 'front', team: 'a' }, replicated: { replicas: 3 } } },
  { id: 'aab222', spec: { name: 'web-admin', labels: { tier: 'back' }, global: {} } },
  { id: 'bbb333', spec: { name: 'db', labels: {}, replicatedJob: { maxConcurrent: 1, totalCompletions: 1 } } },
  { id: 'ccc444', spec: { name: 'agent', globalJob: {} } },
];

const nodes: Node[] = [
  { id: 'n1aaa', spec: { desiredRole: api.NodeRole.ROLE_MANAGER, labels: { zone: 'eu' } }, description: { hostname: 'host1' } },
  { id: 'n2bbb', spec: { desiredRole: api.NodeRole.ROLE_WORKER, labels: { zone: 'us', ssd: '' } }, description: { hostname: 'host2' } },
  { id: 'n3ccc', spec: { desiredRole: api.NodeRole.ROLE_WORKER }, description: { hostname: 'other' } },
];

const tasks: Task[] = [
  { id: 't1', serviceName: 'web', slot: 1, nodeId: 'n1aaa', desiredState: S.TASK_RUNNING },
  { id: 't2', serviceName: 'web', slot: 2, nodeId: 'n2bbb', desiredState: S.TASK_ACCEPTED },
  { id: 't3', serviceName: 'web', slot: 1, nodeId: 'n1aaa', desiredState: S.TASK_SHUTDOWN },
  { id: 'u4', serviceName: 'agent', slot: 0, nodeId: 'n2bbb', desiredState: S.TASK_REMOVE },
  { id: 'u5', serviceName: 'web', slot: 10, nodeId: '', desiredState: S.TASK_RUNNING },
];
const hostnames = new Map([['n1aaa', 'host1'], ['n2bbb', 'host2']]);

describe('service ls --filter', () => {
  it.each([
    { flags: [], want: ['aaa111', 'aab222', 'bbb333', 'ccc444'] },
    { flags: ['name=web'], want: ['aaa111', 'aab222'] }, // a prefix, as docker's
    { flags: ['name=web-'], want: ['aab222'] },
    { flags: ['id=aa'], want: ['aaa111', 'aab222'] },
    { flags: ['label=tier'], want: ['aaa111', 'aab222'] },
    { flags: ['label=tier=front'], want: ['aaa111'] },
    { flags: ['label=tier=front', 'label=tier=back'], want: ['aaa111', 'aab222'] }, // one key: any
    { flags: ['name=web', 'label=team'], want: ['aaa111'] }, // keys: all
    { flags: ['mode=replicated'], want: ['aaa111'] },
    { flags: ['mode=global'], want: ['aab222'] },
    { flags: ['mode=replicated-job', 'mode=global-job'], want: ['bbb333', 'ccc444'] },
    { flags: ['name=nope'], want: [] },
  ])('$flags', ({ flags, want }) => {
    expect(services.filter(parseFilters(flags, SERVICE_FILTERS).keep).map((s) => s.id)).toEqual(want);
  });
});

describe('node ls --filter', () => {
  it.each([
    { flags: ['role=manager'], want: ['n1aaa'] },
    { flags: ['role=worker'], want: ['n2bbb', 'n3ccc'] },
    { flags: ['name=host'], want: ['n1aaa', 'n2bbb'] },
    { flags: ['id=n3'], want: ['n3ccc'] },
    { flags: ['node.label=zone'], want: ['n1aaa', 'n2bbb'] },
    { flags: ['node.label=zone=us'], want: ['n2bbb'] },
    { flags: ['node.label=ssd='], want: ['n2bbb'] }, // present with an empty value
    { flags: ['role=worker', 'node.label=zone'], want: ['n2bbb'] },
  ])('$flags', ({ flags, want }) => {
    expect(nodes.filter(parseFilters(flags, NODE_FILTERS).keep).map((n) => n.id)).toEqual(want);
  });
});

describe('service ps / node ps --filter', () => {
  it.each([
    { flags: [], want: ['t1', 't2', 't3', 'u4', 'u5'] },
    { flags: ['desired-state=running'], want: ['t1', 't2', 'u5'] },
    { flags: ['desired-state=shutdown'], want: ['t3', 'u4'] },
    { flags: ['desired-state=accepted'], want: ['t2'] },
    { flags: ['desired-state=accepted', 'desired-state=shutdown'], want: ['t2', 't3', 'u4'] },
    { flags: ['node=host1'], want: ['t1', 't3'] },
    { flags: ['node=n2bbb'], want: ['t2', 'u4'] },
    { flags: ['node=host1', 'node=host2'], want: ['t1', 't2', 't3', 'u4'] },
    { flags: ['name=web.1'], want: ['t1', 't3', 'u5'] }, // a prefix: web.1 and web.10
    { flags: ['name=agent.'], want: ['u4'] },
    { flags: ['id=t'], want: ['t1', 't2', 't3'] },
    { flags: ['name=web.1', 'desired-state=running'], want: ['t1', 'u5'] },
  ])('$flags', ({ flags, want }) => {
    expect(tasks.filter(parseFilters(flags, taskFilters(hostnames)).keep).map((t) => t.id)).toEqual(want);
  });
});

describe('a bad filter is refused with what is wrong and the keys there are', () => {
  it.each([
    { flags: ['nmae=web'], keys: SERVICE_FILTERS, error: /invalid --filter "nmae=web": unknown key "nmae"; use key=value with one of: id=<prefix>, name=<prefix>, label=<key>\[=<value>\], mode=replicated\|global\|replicated-job\|global-job/ },
    { flags: ['web'], keys: SERVICE_FILTERS, error: /invalid --filter "web": unknown key "web"/ },
    { flags: ['name'], keys: SERVICE_FILTERS, error: /invalid --filter "name": no value; use key=value/ },
    { flags: ['name='], keys: SERVICE_FILTERS, error: /invalid --filter "name=": no value/ },
    { flags: ['=web'], keys: SERVICE_FILTERS, error: /invalid --filter "=web": no key/ },
    { flags: ['mode=replica'], keys: SERVICE_FILTERS, error: /invalid --filter "mode=replica": mode is one of replicated, global, replicated-job, global-job/ },
    { flags: ['role=leader'], keys: NODE_FILTERS, error: /invalid --filter "role=leader": role is one of manager, worker/ },
    { flags: ['label=zone'], keys: NODE_FILTERS, error: /unknown key "label"; use key=value with one of: id=<prefix>, name=<hostname prefix>, role=manager\|worker, node.label=/ },
    { flags: ['desired-state=done'], keys: TASK_FILTER_KEYS, error: /invalid --filter "desired-state=done": desired-state is one of running, shutdown, accepted/ },
    { flags: ['toString=x'], keys: TASK_FILTER_KEYS, error: /unknown key "toString"/ }, // no inherited keys
  ])('$flags', ({ flags, keys, error }) => {
    expect(() => parseFilters(flags, keys as never)).toThrow(error);
  });
});

describe('labelMatches', () => {
  it.each<{ labels: Record<string, string> | null; v: string; want: boolean }>([
    { labels: { a: '1' }, v: 'a', want: true },
    { labels: { a: '1' }, v: 'a=1', want: true },
    { labels: { a: '1' }, v: 'a=2', want: false },
    { labels: { a: 'x=y' }, v: 'a=x=y', want: true }, // the value may hold '='
    { labels: {}, v: 'a', want: false },
    { labels: null, v: 'a', want: false },
    { labels: {}, v: 'constructor', want: false },
  ])('$labels ~ $v: $want', ({ labels, v, want }) => {
    expect(labelMatches(labels, v)).toBe(want);
  });
});
