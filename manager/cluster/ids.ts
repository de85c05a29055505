// Identifiers: node and cluster IDs like Swarm's (25 base-36 characters), raft
// IDs as random positive safe integers.
import { randomBytes, randomInt } from 'node:crypto';

export function newObjectId(): string {
  let s = '';
  const b = randomBytes(25);
  for (let i = 0; i < 25; i++) s += (b[i]! % 36).toString(36);
  return s;
}

export function newRaftId(): number {
  return randomInt(1, 2 ** 47);
}
