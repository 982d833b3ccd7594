// 3. Loss under faults: posts retried by client_msg_id until stored while, mid-run, redis-server,
// the relay (CDC relay / NOTIFY listener) or the api is killed; then what the clients received
// against what was stored, and what never reached the bus (an observer on Redis).
import { Redis } from 'ioredis';
import type { Pool } from '../../src/db/pool.js';
import { createPool } from '../../src/db/pool.js';
import { allStats, plan, sleep, type PostResult } from '../lib/measure.js';
import { scenario, type Context, type Values } from '../lib/scenario.js';
import { createChannels, methodUrl, startStack, type Stack } from '../lib/stack.js';
import { startWorkers } from '../lib/workers.js';
import type { BenchDelays, Source } from '../sources/index.js';

export type Fault = 'broker' | 'relay' | 'api';
export const FAULTS: Record<Fault, string> = {
  broker: 'redis-server SIGKILL, restarted after the outage',
  relay: 'relay (CDC relay / NOTIFY listener) SIGKILL, restarted after the outage',
  api: 'api SIGKILL (between commit and publish for direct), restarted at once; posts retried with client_msg_id',
};

export interface FaultRow {
  source: Source;
  fault: Fault;
  stored: number;
  postAttempts: number;
  postErrors: number;
  subscriptions: number;
  expected: number;
  received: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  /** Frames whose message id differs from the row stored at that seq (a published, never committed row). */
  wrong: number;
  /** Seqs that never reached the bus (seen by an observer subscribed to Redis), before any gateway repair. */
  busLost: number;
  busDuplicated: number;
  catchUpMs: number;
}

export const faults = scenario({
  name: 'faults',
  summary: 'loss, duplicates and wrong rows when Redis, the relay or the api is killed mid-run',
  suite: true,
  options: {
    rate: { type: 'number', default: 80, quick: 40, description: 'posts per second' },
    seconds: { type: 'number', default: 6, quick: 1, description: 'seconds of posting per fault' },
    faultAt: { type: 'number', default: 2, quick: 0.4, description: 'seconds into the posting when the fault strikes' },
    outageMs: { type: 'number', default: 1500, quick: 300, description: 'how long Redis or the relay stays down, ms' },
    channels: { type: 'number', default: 4, quick: 2, description: 'channels, 2 subscribers each (one per gateway)' },
    windowMs: { type: 'number', default: 20, description: 'commit→publish (direct) or publish→commit (direct-in-tx) sleep the api kill aims at, ms' },
  },
  async run(o, ctx): Promise<FaultRow[]> {
    const db = await ctx.db();
    const rows: FaultRow[] = [];
    const pool = createPool(db.url, 2, 'bench');
    try {
      for (const source of ctx.sources) {
        // Widen the windows each fault is aimed at: commit -> publish (direct), publish -> commit (direct-in-tx).
        const delays: BenchDelays = {};
        if (source === 'direct') delays.publishDelayMs = o.windowMs;
        if (source === 'direct-in-tx') delays.commitDelayMs = o.windowMs;
        const stack = await startStack(db, source, delays);
        try {
          for (const fault of Object.keys(FAULTS) as Fault[]) {
            ctx.log(`faults: ${source} / ${fault}`);
            rows.push(await oneFault(stack, pool, o, ctx, fault));
          }
        } finally {
          await stack.close();
        }
      }
    } finally {
      await pool.end();
    }
    return rows;
  },
});

export type FaultSettings = Values<typeof faults.options>;

async function oneFault(stack: Stack, pool: Pool, o: FaultSettings, ctx: Context, fault: Fault): Promise<FaultRow> {
  const channels = await createChannels(stack, `fault-${fault}`, o.channels);
  const [w, poster] = await startWorkers(2);
  // What reached the bus, before any gateway repair: an observer on the channels' topics of the
  // Redis bus (src/bus/redis.ts), retrying every 100 ms so it is back as soon as Redis is.
  const observer = new Redis(stack.redis.url, { lazyConnect: true, retryStrategy: () => 100, maxRetriesPerRequest: 0 });
  const onBus = new Map<string, number[]>();
  observer.on('smessage', (_t: string, payload: string) => {
    const e = JSON.parse(payload);
    if (e.kind !== 'message') return;
    const l = onBus.get(e.channel) ?? [];
    l.push(e.seq);
    onBus.set(e.channel, l);
  });
  observer.on('error', () => {});
  try {
    await observer.connect();
    await observer.ssubscribe(...channels.map((c) => `walcast:ch:${c}`));
    const subs = plan(stack.wsUrls(), channels, 2, 1)[0]!;
    await w!.send({ op: 'connect', mode: 'walcast', token: stack.token, subs, track: true });
    await w!.send({ op: 'reset' });
    const posting = poster!.send<PostResult>({
      op: 'post',
      url: methodUrl(stack.api.url, 'chat.postMessage'),
      token: stack.token,
      channels,
      rate: o.rate,
      seconds: o.seconds,
      retry: true,
      idPrefix: `f-${fault}`,
    });
    // The api restart keeps its port, so the poster's retries reach the new process.
    await sleep(o.faultAt * 1000);
    if (fault === 'broker') {
      await stack.redis.kill('SIGKILL');
      await sleep(o.outageMs);
      stack.redis = await stack.redis.restart();
    } else if (fault === 'relay') {
      await stack.relays[0]!.kill('SIGKILL');
      await sleep(o.outageMs);
      stack.relays[0] = await stack.relays[0]!.restart();
    } else {
      await stack.api.kill('SIGKILL');
      stack.api = await stack.api.restart();
    }
    const p = await posting;
    const t0 = performance.now();
    const { rows: stored } = await pool.query<{ channel_id: string; seq: number; id: string }>(
      'SELECT channel_id, seq, id FROM messages WHERE channel_id = ANY($1)',
      [channels],
    );
    const last: Record<string, number> = {};
    const truth: Record<string, Record<number, string>> = {};
    for (const r of stored) {
      last[r.channel_id] = Math.max(last[r.channel_id] ?? 0, Number(r.seq));
      (truth[r.channel_id] ??= {})[Number(r.seq)] = r.id;
    }
    const expected = subs.reduce((a, sub) => a + (last[sub.channels[0]!] ?? 0), 0);
    // Let repairs finish: every subscription at its channel's last seq, or give up after 8 s.
    let caughtUp = -1;
    for (const end = Date.now() + 8000; Date.now() < end; ) {
      const st = (await allStats([w!]))[0]!;
      const done = st.perSub.every((ps) => Object.entries(ps).every(([ch, x]) => x.seqs.length > 0 && x.seqs.at(-1)! >= (last[ch] ?? 0)));
      if (done) {
        caughtUp = performance.now() - t0;
        break;
      }
      await sleep(100);
    }
    await sleep(ctx.quick ? 200 : 500); // late duplicates
    const st = (await allStats([w!], truth))[0]!;
    let received = 0;
    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    let wrong = 0;
    for (const ps of st.perSub)
      for (const [ch, x] of Object.entries(ps)) {
        received += x.received;
        const inRange = x.seqs.filter((q) => q >= 1 && q <= (last[ch] ?? 0)).length;
        lost += (last[ch] ?? 0) - inRange;
        duplicated += x.received - x.distinct;
        outOfOrder += x.outOfOrder;
        wrong += x.wrong;
      }
    let busLost = 0;
    let busDuplicated = 0;
    for (const ch of channels) {
      const l = onBus.get(ch) ?? [];
      const distinct = new Set(l.filter((q) => q >= 1 && q <= (last[ch] ?? 0)));
      busLost += (last[ch] ?? 0) - distinct.size;
      busDuplicated += l.length - new Set(l).size;
    }
    const row: FaultRow = {
      source: stack.source,
      fault,
      stored: stored.length,
      postAttempts: p.attempts,
      postErrors: p.errors,
      subscriptions: subs.length,
      expected,
      received,
      lost,
      duplicated,
      outOfOrder,
      wrong,
      busLost,
      busDuplicated,
      catchUpMs: Math.round(caughtUp),
    };
    ctx.log(`  stored ${row.stored}, lost ${lost}, dup ${duplicated}, wrong ${wrong}, bus-lost ${busLost}`);
    return row;
  } finally {
    observer.disconnect();
    await Promise.all([w!, poster!].map((x) => x.close()));
  }
}
