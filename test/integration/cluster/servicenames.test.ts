// Service names are unique: a second create with a taken name is refused, and
// the refusal names only commands that exist (it once pointed at
// `shoal service update`, which the CLI does not have).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { useTestManagerWithApi } from '../../support/manager.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../dist/cli/shoal/main.js');
const spec = (name: string) => ({ name, replicated: { replicas: 1 }, taskTemplate: { container: { image: 'busybox' } } });

describe('service names', () => {
  const ctx = useTestManagerWithApi();

  it('a taken name is refused with ALREADY_EXISTS, and nothing is written', async () => {
    await ctx.api.services.createService({ spec: spec('web') as never });
    const before = (await ctx.api.services.listServices({} as never)).services.length;
    const err = await ctx.api.services.createService({ spec: spec('web') as never }).then(() => undefined, (e: unknown) => e as { code: number; message: string });
    expect(err?.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(err?.message).toBe('a service named "web" already exists: pick another --name, scale it with `shoal service scale web=N`, or remove it first with `shoal service rm web`');
    expect((await ctx.api.services.listServices({} as never)).services.length).toBe(before);
  });

  it('every `shoal service <command>` the refusal suggests exists in the CLI (its --help answers)', async () => {
    const err = await ctx.api.services.createService({ spec: spec('web') as never }).then(() => undefined, (e: unknown) => e as Error);
    const suggested = [...(err?.message ?? '').matchAll(/`shoal service (\w+)/g)].map((m) => m[1]!);
    expect(suggested).toEqual(['scale', 'rm']);
    for (const cmd of suggested) {
      const help = execFileSync(process.execPath, [CLI, 'service', cmd, '--help'], { encoding: 'utf8' });
      expect(help).toContain(`Usage: shoal service ${cmd}`);
    }
  });
});
