// `image pull`'s (and `image load`'s) display: a line per layer in the order first seen, Docker's meter while
// bytes move, and for a non-terminal a signature that changes with the status only.
import { describe, expect, it } from 'vitest';
import { PullDisplay, meter } from '../../../cli/shoal/pullprogress.js';

describe('image pull display', () => {
  it.each([
    ['nothing yet', { current: 0, total: 2048 }, ` [>${' '.repeat(49)}] 0B/2KiB`],
    ['half way', { current: 1024, total: 2048 }, ` [${'='.repeat(25)}>${' '.repeat(24)}] 1KiB/2KiB`],
    ['all of it', { current: 2048, total: 2048 }, ` [${'='.repeat(50)}] 2KiB/2KiB`],
    ['more than the total (never drawn past the end)', { current: 4096, total: 2048 }, ` [${'='.repeat(50)}] 4KiB/2KiB`],
    ['no total known', { current: 10, total: 0 }, ''],
  ])('meter: %s', (_name, p, want) => {
    expect(meter({ id: 'a', status: 'Downloading', ...p })).toBe(want);
  });

  it('image load\'s Loading layer has the meter too', () => {
    expect(meter({ id: 'a', status: 'Loading layer', current: 1024, total: 2048 })).toBe(` [${'='.repeat(25)}>${' '.repeat(24)}] 1KiB/2KiB`);
  });

  it('no meter for a status without bytes moving', () => {
    expect(meter({ id: 'a', status: 'Download complete', current: 5, total: 5 })).toBe('');
  });

  it('keeps one line per layer, in the order first seen, with its latest status', () => {
    const d = new PullDisplay();
    d.add({ id: 'aaaaaaaaaaaa', status: 'Downloading', current: 0, total: 100 });
    d.add({ id: 'bbbbbbbbbbbb', status: 'Already exists', current: 0, total: 0 });
    d.add({ id: 'aaaaaaaaaaaa', status: 'Downloading', current: 50, total: 100 });
    d.add({ id: '', status: 'Digest: sha256:abc', current: 0, total: 0 });
    const f = d.frame();
    expect(f.map((l) => l.text)).toEqual([`aaaaaaaaaaaa: Downloading${meter({ id: 'x', status: 'Downloading', current: 50, total: 100 })}`, 'bbbbbbbbbbbb: Already exists', 'Digest: sha256:abc']);
    // A non-terminal prints a line again only when its signature changes: bytes alone do not.
    expect(f[0]!.sig).toBe('aaaaaaaaaaaa: Downloading');
    d.add({ id: 'aaaaaaaaaaaa', status: 'Download complete', current: 100, total: 100 });
    expect(d.frame()[0]).toEqual({ key: 'aaaaaaaaaaaa', text: 'aaaaaaaaaaaa: Download complete', sig: 'aaaaaaaaaaaa: Download complete' });
  });
});
