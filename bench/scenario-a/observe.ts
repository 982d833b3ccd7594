// What Scenario A watches besides the clients: the CPU time and RSS of every process (server
// roles, PostgreSQL's processes by kind, redis, load generators, this runner) from /proc, the
// machine's total CPU (so other work on the machine shows), kernel TCP memory, and a few
// Prometheus counters of the roles that say where time goes (write batches, commit → publish,
// commit → send).
import { cpuMs, machineCpuMs, postgresKind, rssBytes, tcpKernelBytes } from '../../harness/proc-stats.js';

export interface Proc {
  /** The group it is counted in (api, relay, gateway-1, postgres backends, clients, ...). */
  group: string;
  name: string;
  pid: number;
  /** A server process (its CPU counts towards "server CPU"), or the load generator's. */
  side: 'server' | 'load' | 'runner';
}

export interface Snapshot {
  at: number;
  cpu: Map<number, number>;
  machine: { busy: number; idle: number };
}

export function snapshot(procs: Proc[]): Snapshot {
  return { at: performance.now(), cpu: new Map(procs.map((p) => [p.pid, cpuMs(p.pid)])), machine: machineCpuMs() };
}

export interface ProcUsage extends Proc {
  /** % of one core over the window. */
  cpu: number;
  rssMB: number;
}

export interface WindowUsage {
  seconds: number;
  procs: ProcUsage[];
  /** % of one core per group. */
  groups: Record<string, number>;
  server: number;
  load: number;
  runner: number;
  /** The machine's busy CPU (all processes, ours and others'), % of one core; and what was not ours. */
  machine: number;
  others: number;
}

/** CPU over [a, b] of the processes alive at b (a process started meanwhile counts from 0). */
export function usage(a: Snapshot, b: Snapshot, procs: Proc[], withRss = true): WindowUsage {
  const ms = b.at - a.at;
  const pct = (used: number) => Math.round((used / ms) * 1000) / 10;
  const rows: ProcUsage[] = procs.map((p) => ({ ...p, cpu: pct((b.cpu.get(p.pid) ?? cpuMs(p.pid)) - (a.cpu.get(p.pid) ?? 0)), rssMB: withRss ? Math.round(rssBytes(p.pid) / 2 ** 20) : 0 }));
  const groups: Record<string, number> = {};
  for (const r of rows) groups[r.group] = Math.round(((groups[r.group] ?? 0) + r.cpu) * 10) / 10;
  const sum = (side: Proc['side']) => Math.round(rows.filter((r) => r.side === side).reduce((s, r) => s + r.cpu, 0) * 10) / 10;
  const machine = pct(b.machine.busy - a.machine.busy);
  const server = sum('server');
  const load = sum('load');
  const runner = sum('runner');
  return { seconds: ms / 1000, procs: rows, groups, server, load, runner, machine, others: Math.max(0, Math.round((machine - server - load - runner) * 10) / 10) };
}

/** PostgreSQL's processes, grouped by kind. */
export function postgresProcs(pids: number[]): Proc[] {
  return pids.map((pid) => {
    const kind = postgresKind(pid);
    const group = kind === 'backend' ? 'postgres backends' : kind === 'walsender' ? 'postgres walsender' : 'postgres other';
    return { group, name: `postgres ${kind} ${pid}`, pid, side: 'server' as const };
  });
}

export const tcpKernelMB = () => Math.round(tcpKernelBytes() / 2 ** 20);

// ---------------------------------------------------------------------------------- metrics

/** Sum of every sample of a metric (all label sets), by full sample name; histograms by `le` too. */
export type MetricSums = Map<string, number>;

export async function scrape(url: string, adminToken: string): Promise<MetricSums> {
  const out: MetricSums = new Map();
  try {
    const r = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${adminToken}` }, signal: AbortSignal.timeout(5000) });
    const text = await r.text();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const le = m[2] ? /le="([^"]+)"/.exec(m[2])?.[1] : undefined;
      const key = le !== undefined ? `${m[1]}|${le}` : m[1]!;
      const v = Number(m[3]);
      if (Number.isFinite(v)) out.set(key, (out.get(key) ?? 0) + v);
    }
  } catch {
    // a role that does not answer in time: its counters are missing from this window
  }
  return out;
}

export function mergeSums(list: MetricSums[]): MetricSums {
  const out: MetricSums = new Map();
  for (const s of list) for (const [k, v] of s) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}

export const delta = (a: MetricSums, b: MetricSums, key: string) => (b.get(key) ?? 0) - (a.get(key) ?? 0);

/** A histogram's count, mean and quantiles (linear within buckets) over a window, in the metric's unit. */
export function histWindow(a: MetricSums, b: MetricSums, name: string): { n: number; mean: number; p50: number; p99: number } {
  const n = delta(a, b, `${name}_count`);
  const sum = delta(a, b, `${name}_sum`);
  const bounds = [...b.keys()]
    .filter((k) => k.startsWith(`${name}_bucket|`))
    .map((k) => k.slice(name.length + 8))
    .map((le) => ({ le, at: le === '+Inf' ? Infinity : Number(le) }))
    .sort((x, y) => x.at - y.at);
  const q = (p: number) => {
    if (n <= 0) return NaN;
    const rank = p * n;
    let prevLe = 0;
    let prevC = 0;
    for (const { le, at } of bounds) {
      const c = delta(a, b, `${name}_bucket|${le}`);
      if (c >= rank) return at === Infinity ? prevLe : prevLe + ((at - prevLe) * (rank - prevC)) / Math.max(1e-9, c - prevC);
      prevLe = at;
      prevC = c;
    }
    return prevLe;
  };
  return { n, mean: n > 0 ? sum / n : NaN, p50: q(0.5), p99: q(0.99) };
}
