// 4. Ingest (issue 12): chat.postMessage throughput against what the same PostgreSQL does with
// single-row autocommit INSERTs, in one run on the run's one PostgreSQL:
//  - raw: pgbench, a 100-byte single-row INSERT per transaction into a table shaped like
//    messages (bench/lib/pgbench.ts), `connections` clients; measured before any walcast process
//    (and its replication slot) exists, with default and with slow WAL flushes;
//  - walcast start (api + relay + gateway in one process, in-process bus, fair-use limits off)
//    on that PostgreSQL: `connections` closed-loop posters (--poster: lean or autocannon, in its own process) over
//    `channels` channels, all on one hot channel, and one post at a time; then with slow WAL
//    flushes (commit_delay = 4 ms, commit_siblings = 0: every flush waits 4 ms, as on network
//    storage) one hot channel and the spread;
//  - the split roles per --sources (api with the Redis bus, relay, 2 gateways, redis-server: the
//    suite's stack), spread and hot: what the relay costs when it is its own process, and the
//    comparison sources' write paths.
// Per workload: posts/s, POST → response percentiles, the ratio to raw, the group-commit batch
// sizes (walcast_write_batch_size on /metrics, before/after delta), the write queue and the
// relay's pipeline depth (sampled), and the CPU of every process, of the load generator and of
// the rest of the machine (other work sharing it shows there).
// --quick: the raw rows and walcast start's (spread, hot, one at a time, slow hot) at a tiny
// load; no split roles, no direct calls. hot-ingest (walcast start alone, hot against spread)
// is folded in here: the same workloads, now beside the raw baseline on the same database.
// Options for looking deeper: --cpu-prof DIR (a CPU profile of `walcast start` under the spread
// load, summarised), --pg-stats 1 (pg_stat_statements per workload).
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { cpuMs, type PidGroups } from '../../harness/proc-stats.js';
import { scrape, type Scrape } from '../../harness/load/metrics.js';
import type { Postgres } from '../../harness/postgres.js';
import { summarizeProfile, type ProfileSummary } from '../lib/cpuprofile.js';
import { batchTable, ingestTable, ingestTargets, roundsTable, rowName } from '../lib/ingest-report.js';
import { Hist, type HistData } from '../lib/hist.js';
import { sleep } from '../lib/measure.js';
import { createRawTables, dropRawTables, findPgbench, postBatchScript, rawInsertScript, runPgbench } from '../lib/pgbench.js';
import { scenario, type Values } from '../lib/scenario.js';
import { apiCaller } from '../../harness/load/api.js';
import { BENCH_ENV, methodUrl, startStack } from '../lib/stack.js';
import { startStandalone, type Standalone } from '../lib/standalone.js';
import { startWorkers, type Worker } from '../lib/workers.js';
import type { Source } from '../sources/index.js';

/**
 * raw: pgbench's single-row INSERTs on PostgreSQL alone; function: pgbench calling
 * walcast_post_batch2 directly (walcast's write without its API); start: `walcast start`; a
 * source: the split roles with it.
 */
export type IngestSystem = 'raw' | 'function' | 'start' | Source;
export type IngestWorkload = 'spread' | 'hot' | 'one at a time';
export type Flush = 'default' | 'slow';

export interface BatchStats {
  /** Group-commit transactions in the window. */
  transactions: number;
  posts: number;
  mean: number;
  /** walcast_write_batch_size buckets: [upper bound, transactions in the window]. */
  buckets: [number, number][];
  /** Mean duration of a batch (the call and its commit), ms. */
  meanMs: number;
}

export interface Gauge {
  max: number;
  mean: number;
}

export interface PgStatement {
  query: string;
  toplevel: boolean;
  calls: number;
  totalMs: number;
  meanMs: number;
  rows: number;
}

export interface IngestRow {
  system: IngestSystem;
  /** Another build of walcast start (--compare-bin), by its label. */
  variant?: string;
  workload: IngestWorkload;
  /** Channels posted to (raw: values of channel_id). */
  channels: number;
  flush: Flush;
  connections: number;
  /** Successful posts (raw: transactions) per second. */
  rps: number;
  total: number;
  seconds: number;
  /** POST → response (raw: transaction) latency, ms. */
  latency: HistData;
  non2xx: number;
  errors: number;
  /**
   * % of one core over the window: each process group, 'load generator', 'kernel irq' (softirq
   * and irq time: mostly this workload's loopback networking) and 'other processes' (whatever
   * else ran: other work sharing the machine).
   */
  cpu: Record<string, number>;
  batches?: BatchStats;
  queue?: Gauge;
  pipeline?: Gauge;
  loadavg: [number, number];
  pgStats?: PgStatement[];
  /** Rounds 2.. of --rounds (raw and walcast start over the spread, measured again, alternately). */
  round?: number;
}

export interface IngestRun {
  rows: IngestRow[];
  /** The pgbench command line, or why there is no raw baseline. */
  pgbench: string;
  profile?: ProfileSummary;
}

export const ingest = scenario({
  name: 'ingest',
  summary: 'chat.postMessage throughput against raw PostgreSQL single-row INSERTs (pgbench), spread, one hot channel, one at a time, slow WAL flushes; walcast start and split roles',
  suite: true,
  options: {
    seconds: { type: 'number', default: 10, quick: 1, description: 'seconds per workload' },
    connections: { type: 'number', default: 32, quick: 8, description: 'concurrent posters (autocannon connections, pgbench clients)' },
    channels: { type: 'number', default: 16, quick: 4, description: 'channels of the spread workload' },
    warmup: { type: 'number', default: 3, quick: 0, description: 'seconds of posting before the measurements of a walcast process (then ANALYZE)' },
    commitDelayUs: { type: 'number', default: 4000, description: 'commit_delay of the slow-flush workloads, µs (0: skip them)' },
    writeConcurrency: { type: 'number', default: 0, description: 'WALCAST_WRITE_CONCURRENCY for the walcast processes (0: walcast\'s default)' },
    writeBatchMax: { type: 'number', default: 0, description: 'WALCAST_WRITE_BATCH_MAX for the walcast processes (0: walcast\'s default)' },
    pgbenchMode: { type: 'string', default: 'prepared', description: 'pgbench -M (simple, extended, prepared)' },
    pgbench: { type: 'string', default: '', description: 'pgbench binary (default: on the PATH, else /usr/lib/postgresql/<newest>/bin/pgbench)' },
    fnBatches: { type: 'numbers', default: [1, 4, 16], quick: [], description: 'posts per call of the rows that call walcast_post_batch2 directly through pgbench, no API (empty: none)' },
    fnClients: { type: 'number', default: 0, description: 'pgbench clients of those rows, each on its own channel (0: walcast\'s lanes, --write-concurrency or 4)' },
    compareBin: { type: 'string', default: '', description: "another checkout's bin/walcast.js (e.g. before group commit): its walcast start runs the same workloads, on the same PostgreSQL" },
    compareLabel: { type: 'string', default: 'before', description: 'what the --compare-bin rows are called' },
    cpuProf: { type: 'string', default: '', description: 'directory: also profile `walcast start` (node --cpu-prof) under the spread load, and summarise it' },
    rounds: { type: 'number', default: 3, quick: 2, description: 'times raw and walcast start are measured over the spread, alternately, each alone on the database; the 60 % target is judged on the median ratio' },
    poster: { type: 'string', default: 'lean', description: "the posters' HTTP client: lean (bench/lib/lean-http.ts: requests rendered once, answers read as far as status and length) or autocannon" },
    pgStats: { type: 'number', default: 0, description: '1: load pg_stat_statements (restarts PostgreSQL) and report the top statements of each workload' },
    only: { type: 'string', default: '', description: 'run only these parts, a,b,...: raw, start (spread, hot, one at a time), fn, slow, split (default: all)' },
    analyze: { type: 'number', default: 1, description: '0: no ANALYZE after the warm-up (the planner then knows nothing of a fresh messages table)' },
    pgSet: { type: 'string', default: '', description: 'PostgreSQL settings for the whole scenario, name=value,... (ALTER SYSTEM, reload; reset at the end)' },
  },
  async run(o, ctx): Promise<IngestRun> {
    if (o.poster !== 'lean' && o.poster !== 'autocannon') throw new Error(`--poster: lean or autocannon, not ${o.poster}`);
    const db = await ctx.db();
    const rows: IngestRow[] = [];
    const bin = o.pgbench || findPgbench();
    const run: IngestRun = { rows, pgbench: bin ? '' : 'no pgbench found: no raw baseline' };
    const walcastEnv = {
      ...BENCH_ENV,
      ...(o.writeConcurrency ? { WALCAST_WRITE_CONCURRENCY: String(o.writeConcurrency) } : {}),
      ...(o.writeBatchMax ? { WALCAST_WRITE_BATCH_MAX: String(o.writeBatchMax) } : {}),
    };
    const part = (p: 'raw' | 'start' | 'fn' | 'slow' | 'split') => !o.only || o.only.split(',').includes(p);
    const slow = o.commitDelayUs > 0 && part('slow');
    const [worker] = await startWorkers(1);
    const sql = new Sql(db.adminUrl);
    try {
      if (o.pgStats) await pgStats(db, sql, true);
      await sql.settings(o.pgSet, true);
      const m = new Measure(ctx, o, db, sql, worker!, rows, Boolean(o.pgStats));

      // Raw PostgreSQL, before any walcast process or replication slot exists.
      if (bin && part('raw')) {
        await createRawTables(db.url, o.channels);
        run.pgbench = await m.raw(bin, 'default', o.connections);
        if (!ctx.quick) await m.raw(bin, 'default', 1);
        if (slow) {
          await sql.flush(o.commitDelayUs);
          try {
            await m.raw(bin, 'slow', o.connections);
          } finally {
            await sql.flush(0);
          }
        }
        await dropRawTables(db.url);
      }

      // walcast start: one process, in-process bus, on the run's PostgreSQL (and another build of it).
      const builds = part('start') || part('fn') || slow ? [[undefined, undefined], ...(o.compareBin ? [[path.resolve(o.compareBin), o.compareLabel]] : [])] : [];
      for (const [walcastBin, variant] of builds as [string | undefined, string | undefined][]) {
        ctx.log(`ingest: walcast start${variant ? ` (${variant}: ${walcastBin})` : ''}`);
        const node = await startStandalone({ ...walcastEnv, DATABASE_URL: db.url }, { bin: walcastBin });
        try {
          const t = startTarget(node, db, variant);
          const spread = await createChannels(t, 'ingest', o.channels);
          const [hot] = await createChannels(t, 'hot', 1);
          await m.warmup(t, [...spread, hot!], o.warmup);
          if (part('start')) {
            await m.http(t, 'spread', spread, 'default', o.connections);
            await m.http(t, 'hot', [hot!], 'default', o.connections);
            await m.http(t, 'one at a time', [hot!], 'default', 1);
          }
          if (slow) {
            await sql.flush(o.commitDelayUs);
            try {
              await m.http(t, 'hot', [hot!], 'slow', o.connections);
              if (!ctx.quick) await m.http(t, 'spread', spread, 'slow', o.connections);
            } finally {
              await sql.flush(0);
            }
          }
          // PostgreSQL's share: the same call without the API, walcast idle but its relay streaming.
          if (bin && !variant && part('fn')) for (const k of o.fnBatches) await m.fn(bin, t, spread, k, o.fnClients || o.writeConcurrency || 4);
        } finally {
          await node.stop();
          await sql.dropIdleSlots();
        }
      }

      // More rounds of the spread (--rounds): raw, then walcast start, again, each alone on the
      // database (walcast stopped and its slot dropped before raw runs), so that one noisy minute
      // of a shared machine does not decide the ratio.
      if (bin && part('raw') && part('start')) {
        for (let r = 2; r <= o.rounds; r++) {
          m.round = r;
          await createRawTables(db.url, o.channels);
          await m.raw(bin, 'default', o.connections);
          await dropRawTables(db.url);
          const node = await startStandalone({ ...walcastEnv, DATABASE_URL: db.url });
          try {
            const t = startTarget(node, db);
            const spread = await createChannels(t, 'ingest', o.channels);
            await m.warmup(t, spread, o.warmup);
            await m.http(t, 'spread', spread, 'default', o.connections);
          } finally {
            await node.stop();
            await sql.dropIdleSlots();
          }
        }
        m.round = 0;
      }

      // The split roles, per source.
      // (Not in --quick: a stack takes seconds to start, and its parts are the suite's.)
      for (const source of part('split') && !ctx.quick ? ctx.sources : []) {
        ctx.log(`ingest: split roles, ${source}`);
        const stack = await startStack(db, source);
        try {
          const t: Target = { system: source, api: stack.api.url, relay: stack.relays[0]!.url, token: stack.token, groups: { ...stack.cpuGroups(db), ...pgGroups(db) } };
          const spread = await createChannels(t, 'ingest', o.channels);
          const [hot] = await createChannels(t, 'hot', 1);
          await m.warmup(t, [...spread, hot!], Math.min(1, o.warmup));
          await m.http(t, 'spread', spread, 'default', o.connections);
          if (!ctx.quick) await m.http(t, 'hot', [hot!], 'default', o.connections);
        } finally {
          await stack.close();
        }
      }

      // A CPU profile of walcast start under the spread load (not one of the measured rows).
      if (o.cpuProf) run.profile = await m.profile(walcastEnv, path.resolve(o.cpuProf));
    } finally {
      await sql.flush(0).catch(() => {});
      await sql.settings(o.pgSet, false).catch(() => {});
      await worker!.close();
      if (o.pgStats) await pgStats(db, sql, false).catch((e) => ctx.log(`ingest: could not unload pg_stat_statements: ${e}`));
      await sql.end();
    }
    ctx.log(`ingest results:\n${ingestTable(rows)}\n\n${batchTable(rows)}\n\n${rows.some((r) => r.round) ? `${roundsTable(rows)}\n\n` : ''}${ingestTargets(rows).join('\n')}`);
    return run;
  },
});

export type IngestSettings = Values<typeof ingest.options>;

interface Target {
  /** For /metrics (walcast start prints its own; the split roles take the harness's). */
  adminToken?: string;
  system: IngestSystem;
  variant?: string;
  /** Base URLs of the process taking the posts and of the relay (the same for walcast start). */
  api: string;
  relay: string;
  token: string;
  groups: PidGroups;
}

/** The run's database, for settings and housekeeping between workloads (connects on first use). */
class Sql {
  private client: pg.Client | null = null;

  constructor(private readonly url: string) {}

  async query<T extends pg.QueryResultRow = any>(text: string): Promise<T[]> {
    if (!this.client) {
      const c = new pg.Client({ connectionString: this.url });
      await c.connect();
      this.client = c;
    }
    return (await this.client.query<T>(text)).rows;
  }

  /** commit_delay in µs with commit_siblings 0 (every commit's flush waits), or both reset (0). */
  async flush(delayUs: number): Promise<void> {
    for (const q of delayUs > 0 ? [`ALTER SYSTEM SET commit_delay = ${Math.round(delayUs)}`, 'ALTER SYSTEM SET commit_siblings = 0'] : ['ALTER SYSTEM RESET commit_delay', 'ALTER SYSTEM RESET commit_siblings']) await this.query(q);
    await this.query(`SELECT pg_reload_conf()`);
    // Backends apply it at their next command after the signal; give the reload a moment.
    await sleep(200);
  }

  /** `name=value,...` set (ALTER SYSTEM) or reset, then reloaded. */
  async settings(list: string, on: boolean): Promise<void> {
    const pairs = list.split(',').filter(Boolean).map((x) => x.split('=').map((y) => y.trim()) as [string, string?]);
    if (!pairs.length) return;
    for (const [name, value] of pairs) {
      if (!/^[a-z_.]+$/.test(name)) throw new Error(`--pg-set: not a setting name: ${name}`);
      await this.query(on ? `ALTER SYSTEM SET ${name} = '${(value ?? '').replace(/'/g, "''")}'` : `ALTER SYSTEM RESET ${name}`);
    }
    await this.query('SELECT pg_reload_conf()');
    await sleep(200);
  }

  async dropIdleSlots(): Promise<void> {
    await this.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active`);
  }

  async end(): Promise<void> {
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => {});
  }
}

/** Loads (restart) or unloads pg_stat_statements, tracking nested statements too. */
async function pgStats(db: Postgres, sql: Sql, on: boolean): Promise<void> {
  const statements = on
    ? [`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`, `ALTER SYSTEM SET pg_stat_statements.track = 'all'`]
    : ['DROP EXTENSION IF EXISTS pg_stat_statements', 'ALTER SYSTEM RESET shared_preload_libraries', 'ALTER SYSTEM RESET pg_stat_statements.track'];
  for (const q of statements) await sql.query(q);
  await sql.end();
  await db.stop();
  await db.start();
  if (on) await sql.query(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`);
}

/** A `walcast start` process as the workloads address it. */
const startTarget = (node: Standalone, db: Postgres, variant?: string): Target => ({
  system: 'start',
  variant,
  api: node.base,
  relay: node.base,
  token: node.token,
  adminToken: node.adminToken || undefined,
  groups: { walcast: node.pids, ...pgGroups(db) },
});

/**
 * The run's PostgreSQL as two groups: 'postgres' (postmaster, backends, background processes)
 * and 'walsender' (the walsender decoding the WAL for the relay: CDC's cost inside PostgreSQL).
 */
function pgGroups(db: Postgres): PidGroups {
  const isWalsender = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('postgres: walsender');
    } catch {
      return false;
    }
  };
  const all = cached(() => {
    const pids = db.pids();
    return { walsender: pids.filter(isWalsender), other: pids.filter((p) => !isWalsender(p)) };
  });
  return { postgres: () => all().other, walsender: () => all().walsender };
}

/** Finding processes walks /proc: the samplers below do it at most every 500 ms. */
function cached<T>(fn: () => T, ms = 500): () => T {
  let at = -Infinity;
  let value: T;
  return () => {
    if (performance.now() - at > ms) (value = fn()), (at = performance.now());
    return value;
  };
}

/** Machine-wide CPU time from /proc/stat, ms (all cores): busy, and the part in irq/softirq. */
function machineCpuMs(): { busy: number; irq: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is inside user)
  return { busy: (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) * 10, irq: (f[5]! + f[6]!) * 10 };
}

/**
 * CPU of process groups over a window, in % of one core, like harness/proc-stats cpuWindow, but
 * read every 100 ms as well: processes that end inside the window (pgbench and its backends)
 * keep what they used up to their last reading.
 */
function cpuSampler(groups: PidGroups): () => Record<string, number> {
  const t0 = performance.now();
  const seen = new Map<string, Map<number, { first: number; last: number }>>();
  const read = (initial: boolean) => {
    for (const [g, pids] of Object.entries(groups)) {
      let m = seen.get(g);
      if (!m) seen.set(g, (m = new Map()));
      for (const p of pids()) {
        const ms = cpuMs(p);
        const e = m.get(p);
        if (!e) m.set(p, { first: initial ? ms : 0, last: ms });
        else if (ms >= e.last) e.last = ms;
      }
    }
  };
  read(true);
  const timer = setInterval(() => read(false), 100);
  return () => {
    read(false);
    clearInterval(timer);
    const dt = performance.now() - t0;
    const out: Record<string, number> = {};
    for (const [g, m] of seen) out[g] = Math.round(([...m.values()].reduce((a, e) => a + e.last - e.first, 0) / dt) * 1000) / 10;
    return out;
  };
}

/** Sums the samples of a metric whose key starts with `name`. */
const sum = (m: Scrape, name: string) => Object.entries(m).reduce((a, [k, v]) => (k === name || k.startsWith(name + '{') ? a + v : a), 0);

function batchStats(before: Scrape, after: Scrape, seconds: number): BatchStats | undefined {
  if (!('walcast_write_batch_size_count' in after)) return undefined;
  const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  const transactions = d('walcast_write_batch_size_count');
  const posts = d('walcast_write_batch_size_sum');
  const cumulative = Object.keys(after)
    .map((k) => [k, /^walcast_write_batch_size_bucket\{le="([^"]+)"\}$/.exec(k)?.[1]] as const)
    .filter(([, le]) => le !== undefined && le !== '+Inf')
    .map(([k, le]) => [Number(le), d(k)] as [number, number])
    .sort((a, b) => a[0] - b[0]);
  const buckets: [number, number][] = cumulative.map(([le, c], i) => [le, c - (i ? cumulative[i - 1]![1] : 0)]);
  buckets.push([Infinity, transactions - (cumulative.at(-1)?.[1] ?? 0)]);
  void seconds;
  return {
    transactions,
    posts,
    mean: transactions ? posts / transactions : 0,
    buckets: buckets.filter(([le, c]) => c > 0 || le !== Infinity),
    meanMs: transactions ? (d('walcast_write_batch_seconds_sum') / transactions) * 1000 : 0,
  };
}

/** Samples gauges every 100 ms until stopped. */
function sampler(url: string, name: string, adminToken?: string): { stop(): Promise<Gauge | undefined> } {
  const values: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const m = await scrape(url, adminToken);
        if (Object.keys(m).some((k) => k === name || k.startsWith(name + '{'))) values.push(sum(m, name));
      } catch {}
      await sleep(100);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return values.length ? { max: Math.max(...values), mean: values.reduce((a, b) => a + b, 0) / values.length } : undefined;
    },
  };
}

/** The workloads, their measurement windows and their rows. */
class Measure {
  constructor(
    private readonly ctx: { quick: boolean; log(...a: unknown[]): void },
    private readonly o: IngestSettings,
    private readonly db: Postgres,
    private readonly sql: Sql,
    private readonly worker: Worker,
    private readonly rows: IngestRow[],
    private readonly pgStats: boolean,
  ) {}

  /** Set while measuring rounds 2.. of --rounds: the rows carry it. */
  round = 0;

  /** What every window starts with: a checkpoint (no flush of an earlier workload's pages inside it). */
  private async prepare(): Promise<void> {
    await this.sql.query('CHECKPOINT');
    if (this.pgStats) await this.sql.query('SELECT pg_stat_statements_reset()');
  }

  private async topStatements(): Promise<PgStatement[] | undefined> {
    if (!this.pgStats) return undefined;
    const r = await this.sql.query(
      `SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, toplevel, calls, total_exec_time, rows
         FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT 8`,
    );
    return r.map((x) => ({ query: String(x.query).slice(0, 160), toplevel: x.toplevel, calls: Number(x.calls), totalMs: Math.round(x.total_exec_time), meanMs: x.total_exec_time / Number(x.calls), rows: Number(x.rows) }));
  }

  private window(groups: PidGroups): () => Record<string, number> {
    const cpu = cpuSampler(groups);
    const t0 = performance.now();
    const m0 = machineCpuMs();
    return () => {
      const used = cpu();
      const m1 = machineCpuMs();
      const dt = performance.now() - t0;
      const irq = ((m1.irq - m0.irq) / dt) * 100;
      const all = ((m1.busy - m0.busy) / dt) * 100;
      const ours = Object.values(used).reduce((a, b) => a + b, 0);
      const r1 = (v: number) => Math.max(0, Math.round(v * 10) / 10);
      return { ...used, 'kernel irq': r1(irq), 'other processes': r1(all - irq - ours) };
    };
  }

  async raw(bin: string, flush: Flush, connections: number): Promise<string> {
    await this.prepare();
    let pid = 0;
    const load0 = os.loadavg()[0]!;
    const cpu = this.window({ postgres: this.db.pids, 'load generator': () => (pid ? [pid] : []) });
    const r = await runPgbench({ bin, dbUrl: this.db.url, clients: connections, seconds: this.o.seconds, script: rawInsertScript(this.o.channels, 100), mode: this.o.pgbenchMode, onStart: (p) => (pid = p) });
    const used = cpu();
    const row: IngestRow = {
      ...(this.round ? { round: this.round } : {}),
      system: 'raw',
      workload: connections === 1 ? 'one at a time' : 'spread',
      channels: this.o.channels,
      flush,
      connections,
      rps: r.tps,
      total: r.transactions,
      seconds: r.seconds,
      latency: r.hist,
      non2xx: r.failed,
      errors: 0,
      cpu: used,
      loadavg: [round(load0), round(os.loadavg()[0]!)],
      pgStats: await this.topStatements(),
    };
    this.push(row);
    return r.command;
  }

  /** pgbench calling walcast_post_batch2 with `k` posts per call, `clients` clients each on its own channel (extended protocol, as node-postgres sends it). */
  async fn(bin: string, t: Target, channels: string[], k: number, clients: number): Promise<void> {
    await this.prepare();
    let pid = 0;
    const load0 = os.loadavg()[0]!;
    const own = channels.slice(0, clients);
    const cpu = this.window({ ...t.groups, 'load generator': () => (pid ? [pid] : []) });
    const r = await runPgbench({ bin, dbUrl: this.db.url, clients, seconds: this.o.seconds, script: postBatchScript(own, 'demo', k, 100), mode: 'extended', onStart: (p) => (pid = p) });
    const used = cpu();
    const bucket = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024].find((le) => k <= le) ?? Infinity;
    this.push({
      system: 'function',
      workload: 'spread',
      channels: own.length,
      flush: 'default',
      connections: clients,
      rps: r.tps * k,
      total: r.transactions * k,
      seconds: r.seconds,
      latency: r.hist,
      non2xx: r.failed,
      errors: 0,
      cpu: used,
      batches: { transactions: r.transactions, posts: r.transactions * k, mean: k, buckets: [[bucket, r.transactions]], meanMs: Hist.from(r.hist).summary().mean },
      loadavg: [round(load0), round(os.loadavg()[0]!)],
      pgStats: await this.topStatements(),
    });
  }

  async warmup(t: Target, channels: string[], seconds: number): Promise<void> {
    if (seconds > 0) await this.post(t, channels, this.o.connections, seconds);
    // Statistics for the planner, as a database in service has them: a fresh messages table
    // has none, and walcast_post_batch2's plans are chosen from them.
    if (this.o.analyze) await this.sql.query('ANALYZE messages, channels, channel_members');
  }

  private post(t: Target, channels: string[], connections: number, seconds: number) {
    return this.worker.send<{ rps: number; total: number; seconds: number; hist: HistData; non2xx: number; errors: number }>({
      op: this.o.poster === 'autocannon' ? 'autocannon' : 'lean-post',
      url: methodUrl(t.api, 'chat.postMessage'),
      token: t.token,
      channels,
      connections,
      seconds,
      textBytes: 100,
    });
  }

  async http(t: Target, workload: IngestWorkload, channels: string[], flush: Flush, connections: number): Promise<IngestRow> {
    await this.prepare();
    await this.worker.send({ op: 'reset' });
    const before = await scrape(t.api, t.adminToken);
    const queue = sampler(t.api, 'walcast_write_queue_depth', t.adminToken);
    const pipeline = sampler(t.relay, 'walcast_relay_pipeline_depth', t.adminToken);
    const load0 = os.loadavg()[0]!;
    const cpu = this.window({ ...t.groups, 'load generator': () => this.worker.pid() });
    const r = await this.post(t, channels, connections, this.o.seconds);
    const used = cpu();
    const [q, p] = await Promise.all([queue.stop(), pipeline.stop()]);
    const after = await scrape(t.api, t.adminToken);
    const row: IngestRow = {
      ...(this.round ? { round: this.round } : {}),
      system: t.system,
      ...(t.variant ? { variant: t.variant } : {}),
      workload,
      channels: channels.length,
      flush,
      connections,
      rps: r.rps,
      total: r.total,
      seconds: r.seconds,
      latency: r.hist,
      non2xx: r.non2xx,
      errors: r.errors,
      cpu: used,
      batches: batchStats(before, after, r.seconds),
      queue: q,
      pipeline: t.system === 'start' || t.system === 'cdc' ? p : undefined,
      loadavg: [round(load0), round(os.loadavg()[0]!)],
      pgStats: await this.topStatements(),
    };
    this.push(row);
    await sleep(this.ctx.quick ? 100 : 500); // the relay drains the WAL before the next workload
    return row;
  }

  private push(row: IngestRow): void {
    this.rows.push(row);
    const raw = this.rows.findLast((x) => x.system === 'raw' && x.flush === row.flush && x.round === row.round && x.workload === (row.workload === 'one at a time' ? 'one at a time' : 'spread'));
    const h = Hist.from(row.latency).summary();
    const b = row.batches;
    this.ctx.log(
      `  ${rowName(row)}: ${Math.round(row.rps)}/s${raw && row !== raw ? ` (${Math.round((row.rps / raw.rps) * 100)} % of raw)` : ''}, p50 ${h.p50.toFixed(2)} p95 ${h.p95.toFixed(2)} p99 ${h.p99.toFixed(2)} ms` +
        (b ? `, batches ${b.mean.toFixed(1)} posts mean over ${Math.round(b.transactions / row.seconds)} tx/s` : '') +
        (row.pipeline ? `, relay pipeline max ${row.pipeline.max}` : '') +
        `; CPU ${Object.entries(row.cpu).map(([k, v]) => `${k} ${Math.round(v)}%`).join(', ')}` +
        (row.non2xx || row.errors ? `; ${row.non2xx} failed, ${row.errors} errors` : ''),
    );
  }

  /**
   * `walcast start` with node --cpu-prof under the spread load (after a warm-up); the profile
   * covers its whole life, mostly that load. One file per thread (tsx's loader has its own):
   * the main thread's is the largest.
   */
  async profile(env: Record<string, string>, root: string): Promise<ProfileSummary> {
    const dir = path.join(root, `walcast-start-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    mkdirSync(dir, { recursive: true });
    this.ctx.log(`ingest: CPU profile of walcast start under the spread load, into ${dir}`);
    const node = await startStandalone({ ...env, DATABASE_URL: this.db.url }, { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] });
    try {
      const t: Target = { system: 'start', api: node.base, relay: node.base, token: node.token, groups: { walcast: node.pids, ...pgGroups(this.db) } };
      const spread = await createChannels(t, 'profile', this.o.channels);
      await this.post(t, spread, this.o.connections, Math.min(1, this.o.warmup));
      await this.post(t, spread, this.o.connections, this.o.seconds);
    } finally {
      await node.stop();
      await this.sql.dropIdleSlots();
    }
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => path.join(dir, f))
      .sort((a, b) => statSync(b).size - statSync(a).size);
    if (!files.length) throw new Error(`no CPU profile written to ${dir}`);
    return summarizeProfile(files[0]!);
  }
}

const round = (v: number) => Math.round(v * 100) / 100;

async function createChannels(t: Target, prefix: string, n: number): Promise<string[]> {
  const call = apiCaller(t.api, t.token);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await call('conversations.create', { name: `${prefix}-${i}` })).channel.id);
  return out;
}
