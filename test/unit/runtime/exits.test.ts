// ExitEvents against a scripted containerd: when a wait trusts the event
// stream, when it looks the task up, which exits it ignores, and when it
// falls back to a Wait call each. (test/system/runtime/containerd.test.ts runs
// it against the real containerd.)
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { containerd } from '../../../proto/gen/containerd.js';
import { EXIT_TOPIC, ExitEvents } from '../../../worker/runtime/containerd/exits.js';
import { ContainerNotFoundError } from '../../../worker/runtime/runtime.js';

const TaskExit = containerd.services.events.v1.TaskExit;

class FakeStream extends EventEmitter {
  cancelled = false;
  cancel(): void {
    this.cancelled = true;
  }
}

/** containerd as ExitEvents sees it: one Subscribe stream at a time, Publish echoes the marker (unless told not to). */
class FakeContainerd {
  readonly namespace = 'ns';
  streams: FakeStream[] = [];
  echoMarker = true;
  subscribeError: number | undefined;
  published = 0;

  get current(): FakeStream {
    return this.streams[this.streams.length - 1]!;
  }

  stream(): FakeStream {
    const s = new FakeStream();
    this.streams.push(s);
    if (this.subscribeError !== undefined) {
      const code = this.subscribeError;
      setImmediate(() => s.emit('error', Object.assign(new Error('refused'), { code })));
    }
    return s;
  }

  async call(_m: unknown, req: { topic: string; event: { value: Uint8Array } }): Promise<object> {
    this.published++;
    const s = this.current;
    if (this.echoMarker) setImmediate(() => s.emit('data', { topic: req.topic, namespace: this.namespace, event: { value: req.event.value } }));
    return {};
  }

  exit(containerId: string, exitStatus: number, o: { pid?: number; at?: number; id?: string } = {}): void {
    const at = o.at ?? Date.now();
    const value = TaskExit.encode({ containerId, id: o.id ?? containerId, pid: o.pid ?? 0, exitStatus, exitedAt: { seconds: Math.floor(at / 1000), nanos: (at % 1000) * 1e6 } }).finish();
    this.current.emit('data', { topic: EXIT_TOPIC, namespace: this.namespace, event: { typeUrl: 'containerd.events.TaskExit', value } });
  }
}

const tick = () => new Promise((r) => setImmediate(r));
const settled = async <T>(p: Promise<T>): Promise<{ value?: T; error?: unknown } | undefined> => {
  let out: { value?: T; error?: unknown } | undefined;
  p.then((value) => (out = { value }), (error: unknown) => (out = { error }));
  for (let i = 0; i < 5; i++) await tick();
  return out;
};

describe('ExitEvents', () => {
  let exits: ExitEvents | undefined;
  afterEach(() => exits?.close());

  function make(c: FakeContainerd, lookups: Record<string, number | 'running' | 'missing'> = {}, opts: { confirmTimeoutMs?: number } = {}) {
    const looked: string[] = [];
    const waited: string[] = [];
    exits = new ExitEvents(c as never, async (id) => {
      looked.push(id);
      const r = lookups[id] ?? 'running';
      if (r === 'missing') throw new ContainerNotFoundError(id);
      return r;
    }, async (id) => {
      waited.push(id);
      return 42;
    }, opts);
    return { exits, looked, waited };
  }

  it('a container started while the stream is live: its exit comes from the stream, with no look-up', async () => {
    const c = new FakeContainerd();
    const { exits, looked } = make(c);
    await exits.wait('warm', AbortSignal.timeout(1)).catch(() => undefined); // opens the stream
    await tick();
    exits.starting('a');
    exits.started('a', 100);
    const w = exits.wait('a');
    expect(await settled(w)).toBeUndefined();
    c.exit('a', 3, { pid: 100 });
    expect(await w).toBe(3);
    expect(looked).not.toContain('a');
    // An exit before the wait is kept for it.
    exits.starting('b');
    c.exit('b', 0);
    expect(await exits.wait('b')).toBe(0);
  });

  it('ignores an exec\'s exit, another pid\'s, and one stamped before the run started', async () => {
    const c = new FakeContainerd();
    const { exits } = make(c);
    exits.starting('x');
    await tick();
    await tick();
    exits.started('x', 7);
    const w = exits.wait('x');
    await tick();
    c.exit('x', 1, { id: 'exec-1', pid: 7 });
    c.exit('x', 2, { pid: 8 });
    c.exit('x', 4, { pid: 7, at: Date.now() - 60_000 });
    expect(await settled(w)).toBeUndefined();
    c.exit('x', 5, { pid: 7 });
    expect(await w).toBe(5);
  });

  it('a container it did not start (adopted): looked up once after registering; an exited one answers from the look-up', async () => {
    const c = new FakeContainerd();
    const { exits, looked } = make(c, { done: 9, alive: 'running', gone: 'missing' });
    expect(await exits.wait('done')).toBe(9);
    const alive = exits.wait('alive');
    expect(await settled(alive)).toBeUndefined();
    expect(looked).toEqual(['done', 'alive']);
    c.exit('alive', 0);
    expect(await alive).toBe(0);
    await expect(exits.wait('gone')).rejects.toBeInstanceOf(ContainerNotFoundError);
  });

  it('a broken stream: pending waits are looked up again once a new one is live (exits meanwhile were missed)', async () => {
    const c = new FakeContainerd();
    const lookups: Record<string, number | 'running'> = {};
    const { exits, looked } = make(c, lookups);
    exits.starting('warm'); // opens the stream
    await settled(exits.wait('warm'));
    exits.starting('a');
    const w = exits.wait('a');
    await settled(w);
    expect(looked).not.toContain('a');
    expect(exits.generation).toBe(1);
    lookups.a = 137; // it exited while containerd was away
    c.current.emit('error', Object.assign(new Error('gone'), { code: grpc.status.UNAVAILABLE }));
    expect(await w).toBe(137);
    expect(looked.filter((x) => x === 'a')).toEqual(['a']);
    expect(exits.generation).toBe(2);
  });

  it('forget (the container removed) ends its waits with ContainerNotFoundError', async () => {
    const c = new FakeContainerd();
    const { exits } = make(c);
    exits.starting('a');
    const w = exits.wait('a');
    await settled(w);
    exits.forget('a');
    await expect(w).rejects.toBeInstanceOf(ContainerNotFoundError);
  });

  it('close() ends pending waits, and a wait after it fails at once', async () => {
    const c = new FakeContainerd();
    const { exits } = make(c);
    exits.starting('a');
    const w = exits.wait('a');
    await settled(w);
    exits.close();
    await expect(w).rejects.toThrow('closed');
    await expect(exits.wait('a')).rejects.toThrow('closed');
  });

  it('an abort ends a wait without touching others', async () => {
    const c = new FakeContainerd();
    const { exits } = make(c);
    exits.starting('a');
    const ac = new AbortController();
    const w1 = exits.wait('a', ac.signal);
    const w2 = exits.wait('a');
    await settled(w1);
    ac.abort(new Error('stopped'));
    await expect(w1).rejects.toThrow('stopped');
    c.exit('a', 0);
    expect(await w2).toBe(0);
  });

  it.each([
    ['the event service is missing (UNIMPLEMENTED)', (c: FakeContainerd) => (c.subscribeError = grpc.status.UNIMPLEMENTED)],
    ['the marker never comes back', (c: FakeContainerd) => (c.echoMarker = false)],
  ])('falls back to a Wait call each when %s', async (_name, breakIt) => {
    const c = new FakeContainerd();
    breakIt(c);
    const { exits, waited } = make(c, {}, { confirmTimeoutMs: 30 });
    exits.starting('a');
    expect(await exits.wait('a')).toBe(42);
    expect(waited).toEqual(['a']);
    expect(exits.fallingBack).toBe(true);
  });
});
