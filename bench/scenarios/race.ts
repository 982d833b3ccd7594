// 2. Race: a frame before its commit. Every post sleeps between its INSERT and COMMIT; each
// client calls chat.getMessage the moment a frame arrives, and a 404 is a ghost. Only a source
// that publishes before COMMIT (direct-in-tx) can ghost.
import type { HistData } from '../lib/hist.js';
import { allStats, plan, sleep, waitDeliveries, type PostResult } from '../lib/measure.js';
import { scenario, type Values } from '../lib/scenario.js';
import { createChannels, methodUrl, startStack } from '../lib/stack.js';
import { startWorkers } from '../lib/workers.js';
import type { Source } from '../sources/index.js';

export interface RaceRow {
  source: Source;
  commitDelayMs: number;
  posted: number;
  frames: number;
  getChecks: number;
  ghosts: number;
  ghostsCommittedLater: number;
  getErrors: number;
  e2e: HistData;
}

export const race = scenario({
  name: 'race',
  summary: 'ghosts: frames whose row chat.getMessage cannot find yet, with commits slowed down',
  suite: true,
  options: {
    commitDelayMs: { type: 'number', default: 500, quick: 100, description: 'sleep between INSERT and COMMIT of every post (WALCAST_BENCH_COMMIT_DELAY_MS), ms' },
    rate: { type: 'number', default: 20, description: 'posts per second' },
    seconds: { type: 'number', default: 6, quick: 1, description: 'seconds of posting' },
    channels: { type: 'number', default: 20, quick: 4, description: 'channels, 2 subscribers each (one per gateway)' },
  },
  async run(o, ctx): Promise<RaceRow[]> {
    const db = await ctx.db();
    const rows: RaceRow[] = [];
    for (const source of ctx.sources) {
      ctx.log(`race: ${source}`);
      const stack = await startStack(db, source, { commitDelayMs: o.commitDelayMs });
      const [w, poster] = await startWorkers(2);
      try {
        const channels = await createChannels(stack, 'race', o.channels);
        const subs = plan(stack.wsUrls(), channels, 2, 1)[0]!;
        await w!.send({ op: 'connect', mode: 'walcast', token: stack.token, subs, getMessage: { apiUrl: stack.api.url, token: stack.token } });
        await w!.send({ op: 'reset' });
        const p = await poster!.send<PostResult>({ op: 'post', url: methodUrl(stack.api.url, 'chat.postMessage'), token: stack.token, channels, rate: o.rate, seconds: o.seconds });
        await waitDeliveries([w!], p.ok * 2, 5000);
        await sleep(500); // the last getMessage answers
        const st = (await allStats([w!]))[0]!;
        await sleep(o.commitDelayMs + 500);
        const re = await w!.send<{ ghosts: number; committedLater: number }>({ op: 'recheck' });
        rows.push({
          source,
          commitDelayMs: o.commitDelayMs,
          posted: p.ok,
          frames: st.deliveries,
          getChecks: st.getChecks,
          ghosts: st.ghosts.length,
          ghostsCommittedLater: re.committedLater,
          getErrors: st.getErrors,
          e2e: st.hist,
        });
        ctx.log(`  ${source}: ${st.ghosts.length} ghosts of ${st.getChecks} frames`);
      } finally {
        await Promise.all([w!, poster!].map((x) => x.close()));
        await stack.close();
      }
    }
    return rows;
  },
});

export type RaceSettings = Values<typeof race.options>;
