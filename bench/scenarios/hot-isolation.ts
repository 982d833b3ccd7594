// Hot channel isolation at the broker (seed 000, 3.3): one channel posted as fast as it goes while
// 100 quiet channels get 1 msg/s each; the quiet channels' POST → frame latency with the hot one
// off and on, on one Redis and on a Redis Cluster. In the cluster the quiet channels are split by
// shard: those sharing the hot channel's master and those on the other masters.
// Writes <report>/<tag>-hot-isolation.md and -raw.json (--report '' to only print).
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuWindow } from '../../harness/proc-stats.js';
import { machine, table } from '../../harness/load/format.js';
import { startBusStack, statsDelta, type BusMode } from '../lib/bus-stack.js';
import { Hist, type HistData } from '../lib/hist.js';
import { sleep, type PostResult, type StatsResult } from '../lib/measure.js';
import { scenario } from '../lib/scenario.js';
import { methodUrl } from '../lib/stack.js';
import { startWorkers, type Worker } from '../lib/workers.js';

export interface HotRow {
  mode: BusMode;
  hot: boolean;
  /** Quiet channels on the hot channel's shard / on the others (one Redis: all on its shard). */
  quietSameShard: { channels: number; latency: HistData; delivered: number };
  quietOtherShards: { channels: number; latency: HistData; delivered: number };
  quietPosted: number;
  hotPosted: number;
  hotPostErrors: number;
  hotPerS: number;
  hotLatency: HistData;
  cpu: Record<string, number>;
  /** SPUBLISH calls per node over the window (where the hot load went). */
  spublishByNode: Record<string, number>;
  loadavg: number;
}

export const hotIsolation = scenario({
  name: 'hot-isolation',
  summary: "one hot channel at full speed vs 100 quiet channels at 1 msg/s: the quiet channels' latency, one Redis vs Redis Cluster",
  suite: false,
  options: {
    hotRate: { type: 'number', default: 1500, quick: 50, description: 'posts per second offered to the hot channel (open loop; the achieved rate is reported)' },
    hotSubscribers: { type: 'number', default: 20, quick: 2, description: 'subscribers of the hot channel' },
    quietChannels: { type: 'number', default: 100, quick: 10, description: 'quiet channels, 1 msg/s each, one subscriber each' },
    seconds: { type: 'number', default: 10, quick: 2, description: 'measured seconds per phase' },
    modes: { type: 'string', default: 'redis,cluster', description: 'buses to compare: redis, cluster' },
    report: { type: 'string', default: 'bench/results', quick: '', description: "directory for <tag>-hot-isolation.md/-raw.json ('' : print only)" },
    reportTag: { type: 'string', default: new Date().toISOString().slice(0, 10), description: 'file name prefix of the report' },
  },
  async run(o, ctx): Promise<{ rows: HotRow[]; start: number[]; files: string[] }> {
    const db = await ctx.db();
    const rows: HotRow[] = [];
    const start = os.loadavg();
    for (const mode of o.modes.split(',') as BusMode[]) {
      ctx.log(`hot-isolation: ${mode}`);
      const stack = await startBusStack(db, mode, 2);
      const workers: Worker[] = [];
      try {
        const [hot, ...quiet] = await stack.channels(`hot-${mode}`, 1 + o.quietChannels);
        const shardOf = async (ch: string) => (stack.cluster ? await stack.cluster.masterOf(`walcast:ch:${ch}`) : stack.redis!.port);
        const hotShard = await shardOf(hot!);
        const same: string[] = [];
        const other: string[] = [];
        for (const ch of quiet) ((await shardOf(ch)) === hotShard ? same : other).push(ch);
        const [wSame, wOther, wHot, quietPoster, hotPoster] = await startWorkers(5);
        workers.push(wSame!, wOther!, wHot!, quietPoster!, hotPoster!);
        const subsOf = (chs: string[]) => chs.map((ch, i) => ({ url: stack.wsUrl(i % 2), channels: [ch] }));
        await wSame!.send({ op: 'connect', mode: 'walcast', token: stack.token, subs: subsOf(same) });
        await wOther!.send({ op: 'connect', mode: 'walcast', token: stack.token, subs: subsOf(other) });
        await wHot!.send({ op: 'connect', mode: 'walcast', token: stack.token, subs: Array.from({ length: o.hotSubscribers }, (_, i) => ({ url: stack.wsUrl(i % 2), channels: [hot!] })) });
        const url = methodUrl(stack.api.url, 'chat.postMessage');
        await quietPoster!.send({ op: 'post', url, token: stack.token, channels: quiet, rate: 100, seconds: ctx.quick ? 0.3 : 1 }); // warm-up
        for (const hotOn of [false, true]) {
          await sleep(ctx.quick ? 200 : 1000);
          await Promise.all([wSame, wOther, wHot].map((w) => w!.send({ op: 'reset' })));
          const cpu = cpuWindow({ ...stack.cpuGroups(db), clients: () => workers.flatMap((w) => w.pid()) });
          const s0 = await stack.stats();
          const hotRun = hotOn ? hotPoster!.send<PostResult>({ op: 'post', url, token: stack.token, channels: [hot!], rate: o.hotRate, seconds: o.seconds }) : null;
          const q = await quietPoster!.send<PostResult>({ op: 'post', url, token: stack.token, channels: quiet, rate: quiet.length, seconds: o.seconds });
          const h = hotRun ? await hotRun : null;
          await sleep(ctx.quick ? 500 : 2000); // the hot backlog drains
          const used = cpu();
          const s1 = await stack.stats();
          const [a, b, c] = (await Promise.all([wSame, wOther, wHot].map((w) => w!.send<StatsResult>({ op: 'stats' })))) as [StatsResult, StatsResult, StatsResult];
          const d = statsDelta(s0, s1);
          const row: HotRow = {
            mode,
            hot: hotOn,
            quietSameShard: { channels: same.length, latency: a.hist, delivered: a.deliveries },
            quietOtherShards: { channels: other.length, latency: b.hist, delivered: b.deliveries },
            quietPosted: q.ok,
            hotPosted: h?.ok ?? 0,
            hotPostErrors: h?.errors ?? 0,
            hotPerS: h ? h.ok / h.seconds : 0,
            hotLatency: c.hist,
            cpu: used,
            spublishByNode: Object.fromEntries(d.nodes.filter((n) => n.role === 'master').map((n) => [`${n.port}${n.port === hotShard ? ' (hot)' : ''}`, n.spublish])),
            loadavg: os.loadavg()[0]!,
          };
          rows.push(row);
          const qs = (x: HistData) => Hist.from(x).summary();
          ctx.log(
            `  ${mode} hot ${hotOn ? 'on' : 'off'}: quiet p99 ${qs(a.hist).p99.toFixed(1)} (hot shard) / ${qs(b.hist).p99.toFixed(1)} (others) ms, hot ${row.hotPerS.toFixed(0)} msg/s p99 ${qs(c.hist).p99.toFixed(1)} ms, load ${row.loadavg.toFixed(2)}`,
          );
        }
      } finally {
        await Promise.all(workers.map((w) => w.close()));
        await stack.close();
      }
    }
    const files: string[] = [];
    if (o.report) {
      const dir = path.resolve(o.report);
      mkdirSync(dir, { recursive: true });
      const base = path.join(dir, `${o.reportTag}-hot-isolation`);
      writeFileSync(`${base}-raw.json`, JSON.stringify({ machine: machine(), loadavgAtStart: start, options: o, rows }, null, 1) + '\n');
      writeFileSync(`${base}.md`, hotReport(rows, o, start));
      files.push(`${base}.md`, `${base}-raw.json`);
    }
    return { rows, start, files };
  },
  print: (r, o) => hotReport(r.rows, o, r.start) + (r.files.length ? `\nwritten: ${r.files.join(', ')}\n` : ''),
});

function hotReport(rows: HotRow[], o: { hotRate: number; quietChannels: number; seconds: number; hotSubscribers: number }, start: number[]): string {
  const f = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  const q = (x: HistData) => Hist.from(x).summary();
  return [
    '# Hot channel isolation: one Redis vs Redis Cluster',
    '',
    machine(),
    '',
    `Load average at the start ${start.map((v) => v.toFixed(2)).join(' / ')}; the machine was shared with other work. One api, one relay, two gateways, PostgreSQL, Redis (or 6 cluster nodes) and the client processes on this machine.`,
    `${o.quietChannels} quiet channels at 1 msg/s (one subscriber each), a hot channel offered ${o.hotRate} msg/s (${o.hotSubscribers} subscribers), ${o.seconds} s per phase.`,
    '',
    table(
      ['bus', 'hot', 'quiet on the hot shard: n, p50 / p95 / p99 ms', 'quiet on other shards: n, p50 / p95 / p99 ms', 'hot msg/s achieved', 'hot p99 ms', 'SPUBLISH by master', 'server CPU % of a core', 'load'],
      rows.map((r) => {
        const a = q(r.quietSameShard.latency);
        const b = q(r.quietOtherShards.latency);
        const { clients: _c, ...server } = r.cpu;
        return [
          r.mode,
          r.hot ? 'on' : 'off',
          `${r.quietSameShard.channels}: ${f(a.p50)} / ${f(a.p95)} / ${f(a.p99)}`,
          r.quietOtherShards.channels ? `${r.quietOtherShards.channels}: ${f(b.p50)} / ${f(b.p95)} / ${f(b.p99)}` : '-',
          r.hot ? f(r.hotPerS, 0) : '-',
          r.hot ? f(q(r.hotLatency).p99) : '-',
          Object.entries(r.spublishByNode).map(([k, v]) => `${k}: ${v}`).join(', '),
          Object.entries(server).filter(([, v]) => v >= 1).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', '),
          f(r.loadavg, 2),
        ];
      }),
    ),
    '',
  ].join('\n');
}
