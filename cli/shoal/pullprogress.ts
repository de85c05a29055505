// `image pull`'s and `image load`'s display, pure: a line per layer as Docker draws it
// ("3f4d90098f5b: Downloading [=====>     ]  1.2MB/3.4MB"), updated in place
// by ProgressWriter on a terminal; elsewhere a line each time a layer's status
// changes (not at every byte count).
import type { Line } from './progress.js';
import { bytesHuman } from './views.js';

export interface PullStep {
  /** A layer's short digest; empty for a step of the whole image. */
  id: string;
  status: string;
  current: number;
  total: number;
}

const BAR = 50;

/** Docker's meter: ` [====>    ] 1.2MB/3.4MB` while bytes move and their total is known, else nothing. */
export function meter(p: PullStep): string {
  if (!(p.total > 0) || !/^(Downloading|Extracting|Loading layer)$/.test(p.status)) return '';
  const filled = Math.min(BAR, Math.floor((BAR * Math.max(0, p.current)) / p.total));
  const head = filled < BAR ? '>' : '';
  return ` [${'='.repeat(filled)}${head}${' '.repeat(BAR - filled - head.length)}] ${bytesHuman(p.current)}/${bytesHuman(p.total)}`;
}

export class PullDisplay {
  /** Latest step per layer (or per image-wide status), in the order first seen. */
  private readonly steps = new Map<string, PullStep>();

  add(p: PullStep): void {
    this.steps.set(p.id || `image:${p.status}`, p);
  }

  frame(): Line[] {
    return [...this.steps].map(([key, p]) => {
      const sig = p.id ? `${p.id}: ${p.status}` : p.status;
      return { key, text: sig + meter(p), sig };
    });
  }
}
