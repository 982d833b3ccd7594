// 4. Ingest: chat.postMessage throughput by source with autocannon (in its own process), spread
// over channels, with one hot channel taking half, and all on one channel; no subscribers.
import { cpuWindow } from '../../harness/proc-stats.js';
import { sleep } from '../lib/measure.js';
import { scenario, type Values } from '../lib/scenario.js';
import { createChannels, methodUrl, startStack } from '../lib/stack.js';
import { startWorkers } from '../lib/workers.js';
import type { Source } from '../sources/index.js';

export interface IngestRow {
  source: Source;
  workload: string;
  connections: number;
  rps: number;
  total: number;
  latency: { p50: number; p90: number; p99: number; max: number; mean: number };
  non2xx: number;
  errors: number;
  cpu: Record<string, number>;
}

export const ingest = scenario({
  name: 'ingest',
  summary: 'chat.postMessage throughput by source (autocannon): spread, one hot channel among them, one channel',
  suite: true,
  options: {
    seconds: { type: 'number', default: 8, quick: 1, description: 'seconds per workload' },
    connections: { type: 'number', default: 32, quick: 8, description: 'autocannon connections' },
    channels: { type: 'number', default: 16, quick: 4, description: 'channels of the spread workload' },
  },
  async run(o, ctx): Promise<IngestRow[]> {
    const db = await ctx.db();
    const rows: IngestRow[] = [];
    for (const source of ctx.sources) {
      ctx.log(`ingest: ${source}`);
      const stack = await startStack(db, source);
      try {
        const spread = await createChannels(stack, 'ingest', o.channels);
        const [hot] = await createChannels(stack, 'hot', 1);
        const workloads: [string, string[]][] = [
          [`${o.channels} channels`, spread],
          ...(ctx.quick ? [] : [[`${o.channels} channels + 1 hot (half the posts)`, spread.flatMap((c) => [c, hot!])] as [string, string[]]]),
          ['1 hot channel', [hot!]],
        ];
        for (const [workload, channels] of workloads) {
          const [w] = await startWorkers(1);
          try {
            await w!.send({ op: 'reset' });
            const cpu = cpuWindow({ ...stack.cpuGroups(db), autocannon: () => w!.pid() });
            const r = await w!.send<Omit<IngestRow, 'source' | 'workload' | 'connections' | 'cpu'>>({
              op: 'autocannon',
              url: methodUrl(stack.api.url, 'chat.postMessage'),
              token: stack.token,
              channels,
              connections: o.connections,
              seconds: o.seconds,
            });
            rows.push({ source, workload, connections: o.connections, ...r, cpu: cpu() });
            ctx.log(`  ${source} ${workload}: ${Math.round(r.rps)} req/s p99 ${r.latency.p99} ms`);
          } finally {
            await w!.close();
          }
          await sleep(ctx.quick ? 100 : 500); // the relay drains the WAL before the next workload
        }
      } finally {
        await stack.close();
      }
    }
    return rows;
  },
});

export type IngestSettings = Values<typeof ingest.options>;
