// The sources a benchmark stack can run: how a stored row becomes a bus event. `cdc` is walcast
// (the relay tails the WAL); the others are the designs walcast replaces, which exist only here,
// in the benchmarks. A stack runs them through bench/sources/serve.ts (see bench/lib/stack.ts).
export const SOURCES = ['cdc', 'notify', 'direct', 'direct-in-tx'] as const;
export type Source = (typeof SOURCES)[number];

export const isSource = (s: unknown): s is Source => typeof s === 'string' && (SOURCES as readonly string[]).includes(s);

/** Knobs that widen the windows the comparison designs leave open (0: off). */
export interface BenchDelays {
  /** A sleep between the INSERT and COMMIT of chat.postMessage (after the publish for direct-in-tx). */
  commitDelayMs?: number;
  /** `direct` only: a sleep between COMMIT and the publish. */
  publishDelayMs?: number;
}

/** The environment serve.ts reads (and removes before src's loadConfig, which knows only `cdc`). */
export const ENV = {
  source: 'WALCAST_SOURCE',
  commitDelayMs: 'WALCAST_BENCH_COMMIT_DELAY_MS',
  publishDelayMs: 'WALCAST_BENCH_PUBLISH_DELAY_MS',
} as const;

export function sourceEnv(source: Source, d: BenchDelays = {}): Record<string, string> {
  return {
    [ENV.source]: source,
    ...(d.commitDelayMs ? { [ENV.commitDelayMs]: String(d.commitDelayMs) } : {}),
    ...(d.publishDelayMs ? { [ENV.publishDelayMs]: String(d.publishDelayMs) } : {}),
  };
}
