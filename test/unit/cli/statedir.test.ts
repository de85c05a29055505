// shoald's state directory is its owner's alone: it holds the node's key, the raft log
// (the cluster CA's key, the registry credentials services carry) and the local socket.
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StateDir } from '../../../cli/shoald/identity.js';
import { tempDir } from '../../support/tempdir.js';

const modeOf = (p: string) => statSync(p).mode & 0o777;

describe('shoald state directory', () => {
  it.each([
    ['made by shoald', (base: string) => path.join(base, 'new', 'state')],
    ['made before, readable by all', (base: string) => {
      const d = path.join(base, 'old');
      mkdirSync(d, { mode: 0o755 });
      return d;
    }],
  ])('%s: mode 0700, its certs directory too', (_name, make) => {
    const dir = make(tempDir('shoal-state-'));
    new StateDir(dir);
    expect(modeOf(dir)).toBe(0o700);
    expect(modeOf(path.join(dir, 'certs'))).toBe(0o700);
  });
});
