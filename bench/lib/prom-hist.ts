// A Prometheus histogram of a walcast process over a window: the difference of two scrapes
// (harness/load/metrics.ts), and its quantiles as the upper bound of the bucket that holds them.
import type { Scrape } from '../../harness/load/metrics.js';

export interface WindowHist {
  count: number;
  /** Seconds, summed. */
  sum: number;
  /** Upper bounds (ms) of the buckets holding p50 / p95 / p99; Infinity past the last bucket. */
  p50: number;
  p95: number;
  p99: number;
}

function buckets(s: Scrape, name: string): Map<number, number> {
  const out = new Map<number, number>();
  const re = new RegExp(`^${name}_bucket\\{(?:.*,)?le="([^"]+)"`);
  for (const [k, v] of Object.entries(s)) {
    const m = re.exec(k);
    if (!m) continue;
    const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
    out.set(le, (out.get(le) ?? 0) + v);
  }
  return out;
}

/** `name` over the window between two scrapes (summed over label sets and processes). */
export function windowHist(before: Scrape[], after: Scrape[], name: string): WindowHist {
  const total = new Map<number, number>();
  for (const s of after) for (const [le, c] of buckets(s, name)) total.set(le, (total.get(le) ?? 0) + c);
  for (const s of before) for (const [le, c] of buckets(s, name)) total.set(le, (total.get(le) ?? 0) - c);
  const sorted = [...total.entries()].sort((a, b) => a[0] - b[0]);
  const count = sorted.at(-1)?.[1] ?? 0;
  const at = (q: number) => (count === 0 ? NaN : (sorted.find(([, c]) => c >= q * count)?.[0] ?? Infinity) * 1000);
  const sum = (ss: Scrape[]) => ss.reduce((a, s) => a + (s[`${name}_sum`] ?? 0), 0);
  return { count, sum: sum(after) - sum(before), p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

/** "≤ 2 ms" for a bucket bound. */
export const bound = (ms: number) => (Number.isNaN(ms) ? '-' : ms === Infinity ? '> 5 s' : `≤ ${ms >= 1 ? ms.toFixed(0) : ms.toFixed(1)}`);
