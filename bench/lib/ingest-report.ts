// The ingest scenario's part of the report (bench/lib/report.ts): the throughput table with the
// ratio to raw PostgreSQL, the group-commit batch sizes, issue 12's targets, and the optional CPU
// profile and pg_stat_statements tables.
import { table } from '../../harness/load/format.js';
import type { IngestRow, IngestRun, IngestSettings } from '../scenarios/ingest.js';
import type { ProfileSummary } from './cpuprofile.js';
import { Hist } from './hist.js';

/** Not server processes. */
export const NOT_SERVER = new Set(['load generator', 'kernel irq', 'other processes']);

export const rowName = (r: Pick<IngestRow, 'system' | 'variant' | 'workload' | 'flush' | 'channels' | 'batches'>) =>
  r.system === 'function'
    ? `walcast batch call direct, ${r.batches?.mean} posts per call, ${r.channels} clients`
    : `${r.system === 'raw' ? 'raw' : r.system === 'start' ? `walcast start${r.variant ? ` (${r.variant})` : ''}` : `split ${r.system}`} ${r.workload === 'spread' ? `${r.channels} channels` : r.workload === 'hot' ? '1 hot channel' : 'one at a time'}${r.flush === 'slow' ? ', slow flush' : ''}`;

const f = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');
const pct = (v: number) => (Number.isFinite(v) ? `${Math.round(v * 100)} %` : '-');

export const setupName = (r: IngestRow) =>
  r.system === 'raw' ? 'raw PostgreSQL (pgbench)' : r.system === 'function' ? 'walcast batch call via pgbench (no API)' : r.system === 'start' ? `walcast start${r.variant ? ` (${r.variant})` : ''}` : `split roles, ${r.system}`;
export const workloadName = (r: IngestRow) =>
  r.system === 'function' ? `${r.batches?.mean} posts per call, ${r.channels} channels` : r.workload === 'spread' ? `${r.channels} channels` : r.workload === 'hot' ? '1 hot channel' : r.system === 'raw' ? '1 client' : 'one post at a time';

/** The raw row a row compares with: same flush; 1 client for one at a time, else the N-client run. */
export function rawFor(rows: IngestRow[], r: IngestRow): IngestRow | undefined {
  const one = r.workload === 'one at a time';
  return rows.find((x) => x.system === 'raw' && x.flush === r.flush && (x.workload === 'one at a time') === one && x.round === r.round);
}

export const find = (rows: IngestRow[], system: IngestRow['system'], workload: IngestRow['workload'], flush: IngestRow['flush'] = 'default') =>
  rows.find((x) => x.system === system && x.workload === workload && x.flush === flush && !x.variant && !x.round);

/** Raw and walcast start over the spread, per round of --rounds (round 1: the main rows), with walcast's share of raw. */
export function rounds(rows: IngestRow[]): { round: number; raw: IngestRow; start: IngestRow; ratio: number }[] {
  const out = [];
  for (const round of [undefined, ...new Set(rows.flatMap((r) => (r.round ? [r.round] : [])))]) {
    const pick = (system: IngestRow['system']) => rows.find((x) => x.system === system && x.workload === 'spread' && x.flush === 'default' && !x.variant && x.round === round);
    const raw = pick('raw');
    const start = pick('start');
    if (raw && start) out.push({ round: round ?? 1, raw, start, ratio: start.rps / raw.rps });
  }
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** The --rounds table: each round's raw and walcast start, and the median ratio. */
export function roundsTable(rows: IngestRow[]): string {
  const rs = rounds(rows);
  const perPost = (r: IngestRow, group: string) => (r.cpu[group] === undefined ? '' : `${Math.round((r.cpu[group]! * 1e4) / r.rps)}`);
  return [
    table(
      ['round', 'raw rows/s', 'walcast posts/s', 'of raw', 'walcast CPU µs per post', 'postgres CPU µs per post (walcast)'],
      rs.map((x) => [x.round, Math.round(x.raw.rps), Math.round(x.start.rps), pct(x.ratio), perPost(x.start, 'walcast'), perPost(x.start, 'postgres')]),
    ),
    '',
    `Median of ${rs.length}: ${pct(median(rs.map((x) => x.ratio)))} of raw (walcast ${Math.round(median(rs.map((x) => x.start.rps)))} posts/s, raw ${Math.round(median(rs.map((x) => x.raw.rps)))} rows/s).`,
  ].join('\n');
}

/** The server processes' CPU. */
const cpuText = (c: Record<string, number>) =>
  Object.entries(c)
    .filter(([k, v]) => !NOT_SERVER.has(k) && v >= 0.5)
    .map(([k, v]) => `${k} ${v.toFixed(0)}%`)
    .join(', ') || '0%';

export function ingestTable(all: IngestRow[]): string {
  const rows = all.filter((r) => !r.round);
  return table(
    ['setup', 'workload', 'WAL flush', 'posters', 'posts/s', 'of raw', 'p50 ms', 'p95 ms', 'p99 ms', 'posts per tx (mean)', 'tx/s', 'write queue max', 'relay pipeline max', 'server CPU (% of a core)', 'load generator CPU', 'kernel irq', 'other processes', 'failed'],
    rows.map((r) => {
      const h = Hist.from(r.latency).summary();
      const raw = rawFor(rows, r);
      return [
        setupName(r),
        workloadName(r),
        r.flush === 'slow' ? 'slow' : 'default',
        r.connections,
        Math.round(r.rps),
        raw && raw !== r ? pct(r.rps / raw.rps) : '',
        f(h.p50),
        f(h.p95),
        f(h.p99),
        r.batches ? f(r.batches.mean, 1) : '',
        r.batches ? Math.round(r.batches.transactions / r.seconds) : r.system === 'raw' ? Math.round(r.rps) : '',
        r.queue ? r.queue.max : '',
        r.pipeline ? r.pipeline.max : '',
        cpuText(r.cpu),
        `${f(r.cpu['load generator'] ?? 0, 0)}%`,
        `${f(r.cpu['kernel irq'] ?? 0, 0)}%`,
        `${f(r.cpu['other processes'] ?? 0, 0)}%${disturbed(r) ? ' (busy)' : ''}`,
        r.non2xx + r.errors,
      ];
    }),
  );
}

const BOUNDS = (le: number, prev: number) => (le === Infinity ? `>${prev}` : le - prev === 1 ? String(le) : `${prev + 1}-${le}`);

/** Share of the group-commit transactions by posts per transaction (walcast_write_batch_size). */
export function batchTable(rows: IngestRow[]): string {
  const withBatches = rows.filter((r) => !r.round && r.batches && r.batches.transactions > 0);
  if (!withBatches.length) return '(no batches recorded)';
  const les = [...new Set(withBatches.flatMap((r) => r.batches!.buckets.filter(([, c]) => c > 0).map(([le]) => le)))].sort((a, b) => a - b);
  const all = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, Infinity];
  const shown = all.filter((le) => le <= Math.max(...les));
  const head = shown.map((le, i) => BOUNDS(le, i ? shown[i - 1]! : 0));
  return table(
    ['setup', 'workload', 'WAL flush', 'transactions', ...head, 'mean posts', 'mean ms per batch'],
    withBatches.map((r) => {
      const b = r.batches!;
      const share = (le: number) => (b.buckets.find(([x]) => x === le)?.[1] ?? 0) / b.transactions;
      return [setupName(r), workloadName(r), r.flush, b.transactions, ...shown.map((le) => (share(le) ? `${f(share(le) * 100, 0)}%` : '')), f(b.mean, 1), f(b.meanMs, 2)];
    }),
  );
}

/** Other work took more than 15 % of a core during the row: its figures are pessimistic. */
export const disturbed = (r: IngestRow) => (r.cpu['other processes'] ?? 0) > 15;

const caveat = (...rows: IngestRow[]) => {
  const busy = rows.filter(disturbed);
  return busy.length ? ` (other work took up to ${Math.max(...busy.map((r) => Math.round(r.cpu['other processes']!)))} % of a core during ${busy.map(rowName).join(' and ')}: pessimistic)` : '';
};

/** Issue 12's "done when", from one run. */
export function ingestTargets(rows: IngestRow[]): string[] {
  const out: string[] = [];
  const raw = find(rows, 'raw', 'spread');
  const spread = find(rows, 'start', 'spread');
  const hot = find(rows, 'start', 'hot');
  const slowHot = find(rows, 'start', 'hot', 'slow');
  const one = find(rows, 'start', 'one at a time');
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const rs = rounds(rows);
  if (rs.length > 1) {
    const r = median(rs.map((x) => x.ratio));
    out.push(`- walcast over ${spread!.channels} channels ≥ 60 % of raw single-row INSERTs: median of ${rs.length} rounds ${pct(r)} (${rs.map((x) => pct(x.ratio)).join(', ')}), ${met(r >= 0.6)}${caveat(...rs.flatMap((x) => [x.raw, x.start]))}.`);
  } else if (raw && spread) {
    const r = spread.rps / raw.rps;
    out.push(`- walcast over ${spread.channels} channels ≥ 60 % of raw single-row INSERTs: ${Math.round(spread.rps)} / ${Math.round(raw.rps)} = ${pct(r)}, ${met(r >= 0.6)}${caveat(raw, spread)}.`);
  }
  if (spread && hot) {
    const r = hot.rps / spread.rps;
    out.push(`- one hot channel ≥ 80 % of the ${spread.channels}-channel rate: ${Math.round(hot.rps)} / ${Math.round(spread.rps)} = ${pct(r)}, ${met(r >= 0.8)}${caveat(spread, hot)}.`);
  }
  if (slowHot) out.push(`- with ~4 ms WAL flushes one hot channel ≥ 2,000 posts/s: ${Math.round(slowHot.rps)}, ${met(slowHot.rps >= 2000)}${caveat(slowHot)}.`);
  if (one) {
    const p50 = Hist.from(one.latency).q(0.5);
    out.push(`- one post at a time p50 ≤ 3 ms POST → response: ${f(p50)} ms (p99 ${f(Hist.from(one.latency).q(0.99))} ms), ${met(p50 <= 3)}${caveat(one)}.`);
  }
  return out;
}

export function profileSection(p: ProfileSummary): string {
  const busy = p.totalMs - p.idleMs;
  const rows = (x: [string, number][]) => x.filter(([k]) => k !== 'idle').slice(0, 15).map(([k, ms]) => [k, ms, pct(ms / busy)]);
  return [
    `Profile \`${p.file}\`: ${(p.totalMs / 1000).toFixed(1)} s sampled, ${(busy / 1000).toFixed(1)} s busy (${pct(busy / p.totalMs)}). The profiler samples wall time on the main thread: a socket write that lets a woken process run first is counted as the write.`,
    '',
    'Where the busy time goes (each sample in the first matching bucket):',
    '',
    table(['bucket', 'ms', 'share'], p.budget.filter(([k]) => k !== 'idle').map(([k, ms]) => [k, ms, pct(ms / busy)])),
    '',
    'Self time by area (share of the busy time):',
    '',
    table(['area', 'ms', 'share'], rows(p.self)),
    '',
    'Time with the area anywhere on the stack (areas overlap):',
    '',
    table(['area', 'ms', 'share'], rows(p.inclusive)),
    '',
    'Functions by self time:',
    '',
    table(['function', 'ms', 'share'], p.top.filter(([k]) => !k.startsWith('(idle)')).slice(0, 20).map(([k, ms]) => [k.replace(/\|/g, '\\|'), ms, pct(ms / busy)])),
  ].join('\n');
}

export function pgStatsSection(rows: IngestRow[]): string {
  const parts: string[] = [];
  for (const r of rows.filter((x) => x.pgStats?.length)) {
    parts.push(`${rowName(r)} (${r.total} posts):`, '');
    parts.push(
      table(
        ['statement', 'top level', 'calls', 'total ms', 'mean ms', 'rows', 'ms per post'],
        r.pgStats!.map((s) => [`\`${s.query.slice(0, 100).replace(/\|/g, '\\|')}\``, s.toplevel ? 'yes' : 'no', s.calls, s.totalMs, f(s.meanMs, 3), s.rows, f(s.totalMs / Math.max(1, r.total), 3)]),
      ),
      '',
    );
  }
  return parts.join('\n');
}

/** Section 4 of the report. */
export function ingestSection(run: IngestRun, s: IngestSettings): string {
  const L: string[] = [];
  L.push(
    `In one run on the run's PostgreSQL, ${s.seconds} s per workload, 100-byte texts, ${s.connections} concurrent closed-loop posters. ` +
      `**Raw**: \`${run.pgbench}\`, a single-row autocommit INSERT into \`raw_messages\` (created \`LIKE messages INCLUDING ALL\`: same columns, primary key and unique indexes, plus the foreign key to a channels table), measured before any walcast process or replication slot exists. ` +
      `**walcast start**: api, relay and gateway in one process with the in-process bus, on the same PostgreSQL, fair-use limits off; posts from ${s.poster === 'autocannon' ? 'autocannon' : 'a lean closed-loop HTTP client (bench/lib/lean-http.ts: keep-alive, requests rendered once per channel; `--poster autocannon` for autocannon)'} in its own process. ` +
      `**walcast batch call via pgbench** (no API): the one SQL call (walcast_post_batch2) walcast's writer makes per batch, k posts of the client's channel per call, over the extended protocol as node-postgres sends it, from as many clients as walcast has write lanes, each on its own channel, while walcast start idles with its relay streaming (its walsender decodes these rows too): what PostgreSQL alone does with walcast's write. ` +
      `**Split roles**: the suite's stack (api with the Redis bus, relay, 2 gateways, redis-server) per source. ` +
      `Each walcast process posts for ${s.warmup} s first${s.analyze ? ', then `ANALYZE`' : ' (no `ANALYZE`: --analyze 0)'}; every workload starts after a \`CHECKPOINT\`. ` +
      `walcast's write settings: ${s.writeConcurrency ? `WALCAST_WRITE_CONCURRENCY=${s.writeConcurrency}` : 'default WALCAST_WRITE_CONCURRENCY'}, ${s.writeBatchMax ? `WALCAST_WRITE_BATCH_MAX=${s.writeBatchMax}` : 'default WALCAST_WRITE_BATCH_MAX'}${s.pgSet ? `; PostgreSQL settings for this scenario: \`${s.pgSet}\`` : ''}. ` +
      `**Slow flush**: \`commit_delay = ${s.commitDelayUs}\`, \`commit_siblings = 0\` (every WAL flush waits ${s.commitDelayUs / 1000} ms, as on network storage), reset afterwards. ` +
      `"of raw" compares with the raw row of the same flush setting (one post at a time: with 1 pgbench client). Latency is POST → response at the load generator (raw: per transaction, from pgbench's log). ` +
      `CPU in % of one core over the window (2 cores = 200 %); "kernel irq" is the machine's irq and softirq time (mostly this workload's loopback networking), "other processes" everything else the kernel counted as busy: other work sharing the machine shows there, and when it is large the row is pessimistic.`,
    '',
  );
  L.push(ingestTable(run.rows), '');
  L.push('Posts per group-commit transaction (walcast_write_batch_size, share of the transactions in the window):', '');
  L.push(batchTable(run.rows), '');
  if (run.rows.some((r) => r.round)) L.push(`Rounds (\`--rounds ${s.rounds}\`): raw, then walcast start, over the spread, again and again, each alone on the database; the 60 % target is judged on the median:`, '', roundsTable(run.rows), '');
  if (run.rows.some((r) => r.pgStats?.length)) L.push('pg_stat_statements per workload (`track = all`: the statements inside walcast_post_batch2 are listed too, not top level):', '', pgStatsSection(run.rows), '');
  if (run.profile) L.push('CPU profile of `walcast start` under the spread load (`--cpu-prof`):', '', profileSection(run.profile), '');
  return L.join('\n');
}
