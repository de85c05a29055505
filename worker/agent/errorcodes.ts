// Runtime failures come as gRPC errors (numeric code) or Node system errors
// (errno string), sometimes wrapped as another error's cause.

/** True if e, or an error it wraps (up to two causes deep), has a code that `match` accepts. */
export function hasCode(e: unknown, match: (code: number | string) => boolean): boolean {
  for (let x = e as { code?: unknown; cause?: unknown } | undefined, i = 0; x && i < 3; x = x.cause as typeof x, i++) {
    if ((typeof x.code === 'number' || typeof x.code === 'string') && match(x.code)) return true;
  }
  return false;
}
