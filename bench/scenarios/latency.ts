// 1. Latency by source: fixed open-loop post rates over a few channels, subscribers split over
// the two gateways; POST start (poster process) → frame (subscriber process), per source, each
// on a fresh stack, with the CPU of every process over each window.
import { cpuWindow } from '../../harness/proc-stats.js';
import { Hist, type HistData } from '../lib/hist.js';
import { allStats, clientCpu, plan, serverGroups, sleep, waitDeliveries, type PostResult } from '../lib/measure.js';
import { scenario, type Values } from '../lib/scenario.js';
import { createChannels, methodUrl, startStack } from '../lib/stack.js';
import { startWorkers } from '../lib/workers.js';
import type { Source } from '../sources/index.js';

export interface LatencyRow {
  source: Source;
  rate: number;
  posted: number;
  postErrors: number;
  expected: number;
  delivered: number;
  e2e: HistData;
  post: HistData;
  posterMaxBehindMs: number;
  cpu: Record<string, number>;
  clientWorkersCpu: number;
}

export const latency = scenario({
  name: 'latency',
  summary: 'POST → frame latency by source at fixed post rates (every --sources, a fresh stack each)',
  suite: true,
  options: {
    rates: { type: 'numbers', default: [100, 500, 1000, 2000], quick: [50], description: 'post rates, msg/s' },
    seconds: { type: 'number', default: 6, quick: 1, description: 'measured seconds per rate (after a warm-up)' },
    channels: { type: 'number', default: 8, quick: 2, description: 'channels posted to, round robin' },
    subsPerChannel: { type: 'number', default: 4, quick: 2, description: 'subscribers per channel, alternating between the two gateways' },
    workers: { type: 'number', default: 2, quick: 1, description: 'subscriber processes (plus one poster process)' },
  },
  async run(o, ctx): Promise<LatencyRow[]> {
    const db = await ctx.db();
    const rows: LatencyRow[] = [];
    for (const source of ctx.sources) {
      ctx.log(`latency: ${source}`);
      const stack = await startStack(db, source);
      const workers = await startWorkers(o.workers);
      const [poster] = await startWorkers(1);
      try {
        const channels = await createChannels(stack, 'lat', o.channels);
        const plans = plan(stack.wsUrls(), channels, o.subsPerChannel, workers.length);
        await Promise.all(workers.map((w, i) => w.send({ op: 'connect', mode: 'walcast', token: stack.token, subs: plans[i]! })));
        const url = methodUrl(stack.api.url, 'chat.postMessage');
        // Warm-up (JIT, pools, prepared paths), not measured.
        await poster!.send({ op: 'post', url, token: stack.token, channels, rate: 100, seconds: ctx.quick ? 0.3 : 1 });
        await sleep(300);
        for (const rate of o.rates) {
          await Promise.all(workers.map((w) => w.send({ op: 'reset' })));
          const cpu = cpuWindow(serverGroups(stack, db, workers, poster));
          const p = await poster!.send<PostResult>({ op: 'post', url, token: stack.token, channels, rate, seconds: o.seconds });
          const expected = p.ok * o.subsPerChannel;
          await waitDeliveries(workers, expected, 5000);
          const used = cpu();
          const st = await allStats(workers);
          const e2e = new Hist();
          for (const x of st) e2e.merge(x.hist);
          rows.push({
            source,
            rate,
            posted: p.ok,
            postErrors: p.errors,
            expected,
            delivered: st.reduce((a, x) => a + x.deliveries, 0),
            e2e: e2e.data(),
            post: p.resp,
            posterMaxBehindMs: p.maxBehindMs,
            cpu: used,
            clientWorkersCpu: clientCpu(st),
          });
          const sm = e2e.summary();
          ctx.log(`  ${source} ${rate}/s: p50 ${sm.p50.toFixed(2)} p99 ${sm.p99.toFixed(2)} max ${sm.max.toFixed(1)} ms, delivered ${rows.at(-1)!.delivered}/${expected}`);
          await sleep(300);
        }
      } finally {
        await Promise.all([...workers, poster!].map((w) => w.close()));
        await stack.close();
      }
    }
    return rows;
  },
});

export type LatencySettings = Values<typeof latency.options>;
