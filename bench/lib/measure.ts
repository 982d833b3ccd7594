// What the suite scenarios share: the results the client workers report, waiting for
// deliveries, spreading subscriptions over workers and gateways, and the CPU groups of a window.
import type { Postgres } from '../../harness/postgres.js';
import type { PidGroups } from '../../harness/proc-stats.js';
import type { HistData } from './hist.js';
import type { Stack } from './stack.js';
import type { Worker } from './workers.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a client worker saw since its last reset (bench/worker.ts `stats`). */
export interface StatsResult {
  hist: HistData;
  deliveries: number;
  open: number;
  disconnects: number;
  cpuMs: number;
  wallMs: number;
  perSub: Record<string, { received: number; distinct: number; outOfOrder: number; wrong: number; seqs: number[] }>[];
  ghosts: { channel: string; seq: number }[];
  getChecks: number;
  getErrors: number;
  /** With stampScheduled posts: latency from the actual send (hist is from the due time). */
  histSent: HistData;
  /** check: message frame bytes, first and last frame times (monotonic ms), seq faults, frames per socket. */
  frameBytes: number;
  firstAt: number;
  lastAt: number;
  seqGaps: number;
  seqRepeats: number;
  perSubCounts: number[];
  /** Event-loop utilisation since the reset (1: never idle, the worker is the limit). */
  elu: number;
}

/** What a poster worker did (bench/worker.ts `post`). */
export interface PostResult {
  sent: number;
  ok: number;
  errors: number;
  attempts: number;
  resp: HistData;
  maxBehindMs: number;
  seconds: number;
  posted: Record<string, number>;
  /** When the first post was due (monotonic ms, the clock of the frames' stamps). */
  startedAt: number;
}

/** The client workers' CPU, in % of one core, summed. */
export const clientCpu = (stats: { cpuMs: number; wallMs: number }[]) => Math.round(stats.reduce((a, s) => a + (s.cpuMs / s.wallMs) * 100, 0) * 10) / 10;

export async function allStats(workers: Worker[], truth?: Record<string, Record<number, string>>): Promise<StatsResult[]> {
  return Promise.all(workers.map((w) => w.send<StatsResult>({ op: 'stats', truth })));
}

export async function waitDeliveries(workers: Worker[], expected: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const s = await allStats(workers);
    if (s.reduce((a, x) => a + x.deliveries, 0) >= expected) return;
    await sleep(100);
  }
}

/** Spread subscriptions over `n` workers, alternating between the stack's gateways. */
export function plan(urls: string[], channels: string[], perChannel: number, n: number): { url: string; channels: string[] }[][] {
  const out: { url: string; channels: string[] }[][] = Array.from({ length: n }, () => []);
  let k = 0;
  for (const ch of channels) for (let i = 0; i < perChannel; i++, k++) out[k % n]!.push({ url: urls[i % urls.length]!, channels: [ch] });
  return out;
}

/** The stack's server processes and the client workers, for cpuWindow. */
export function serverGroups(stack: Stack, db: Postgres, workers: Worker[], poster?: Worker): PidGroups {
  return { ...stack.cpuGroups(db), clients: () => [...workers.flatMap((w) => w.pid()), ...(poster?.pid() ?? [])] };
}

/** Least squares y = a + b·x. */
export function fit(points: [number, number][]): { a: number; b: number } {
  const n = points.length;
  if (n === 0) return { a: NaN, b: NaN };
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const sxx = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  const b = sxx === 0 ? 0 : points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0) / sxx;
  return { a: my - b * mx, b };
}
