// Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
// Jitter"): the cap doubles per attempt up to `maxMs`, and the delay is uniform below it, so
// clients that failed together do not come back together. Pure: the SDK uses it too.

export interface BackoffOptions {
  /** The cap of the first attempt (attempt 0), ms. */
  baseMs: number;
  /** The cap never grows beyond this, ms. */
  maxMs: number;
  /** The delay is never below this, ms (default 0). */
  minMs?: number;
  /** Random source in [0, 1). */
  random?: () => number;
}

export function backoff(attempt: number, o: BackoffOptions): number {
  const cap = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  const min = Math.min(o.minMs ?? 0, cap);
  return min + (o.random ?? Math.random)() * (cap - min);
}
