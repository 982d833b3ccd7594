// The five scenarios of the suite. Each returns plain data (kept whole in the JSON) that
// bench/lib/render.ts turns into the report. Stacks come from bench/lib/stack.ts, clients from
// bench/worker.ts processes.
import { Redis } from 'ioredis';
import pg from 'pg';
import { Channels } from '../src/chat/channels.js';
import type { Source } from '../src/config.js';
import { createPool } from '../src/db/pool.js';
import { cpuWindow, type PidGroups } from './lib/cpu.js';
import { Hist, type HistData } from './lib/hist.js';
import { createChannels, startPeer, startStack, type Db, type Stack } from './lib/stack.js';
import { startWorkers, type Worker } from './lib/workers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (...a: unknown[]) => console.error('[bench]', ...a);

export interface Settings {
  quick: boolean;
  sources: Source[];
  latency: { rates: number[]; seconds: number; channels: number; subsPerChannel: number; workers: number };
  race: { commitDelayMs: number; rate: number; seconds: number; channels: number };
  faults: { rate: number; seconds: number; faultAt: number; outageMs: number; channels: number; windowMs: number };
  ingest: { seconds: number; connections: number; channels: number };
  fanout: { subscribers: number; workers: number; rates: number[]; stepSeconds: number; maxFailures: number };
}

interface StatsResult {
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
}

interface PostResult {
  sent: number;
  ok: number;
  errors: number;
  attempts: number;
  resp: HistData;
  maxBehindMs: number;
  seconds: number;
  posted: Record<string, number>;
}

const clientCpu = (stats: { cpuMs: number; wallMs: number }[]) => Math.round(stats.reduce((a, s) => a + (s.cpuMs / s.wallMs) * 100, 0) * 10) / 10;

async function allStats(workers: Worker[], truth?: Record<string, Record<number, string>>): Promise<StatsResult[]> {
  return Promise.all(workers.map((w) => w.send<StatsResult>({ op: 'stats', truth })));
}

async function waitDeliveries(workers: Worker[], expected: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const s = await allStats(workers);
    if (s.reduce((a, x) => a + x.deliveries, 0) >= expected) return;
    await sleep(100);
  }
}

/** Spread subscriptions over `n` workers, alternating between the stack's gateways. */
function plan(urls: string[], channels: string[], perChannel: number, n: number): { url: string; channels: string[] }[][] {
  const out: { url: string; channels: string[] }[][] = Array.from({ length: n }, () => []);
  let k = 0;
  for (const ch of channels) for (let i = 0; i < perChannel; i++, k++) out[k % n]!.push({ url: urls[i % urls.length]!, channels: [ch] });
  return out;
}

function serverGroups(stack: Stack, db: Db, workers: Worker[], poster?: Worker): PidGroups {
  return { ...stack.cpuGroups(db), clients: () => [...workers.flatMap((w) => w.pid()), ...(poster?.pid() ?? [])] };
}

// 1. Latency ----------------------------------------------------------------------------------

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

export async function latency(db: Db, s: Settings): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (const source of s.sources) {
    log(`latency: ${source}`);
    const stack = await startStack(db, source);
    const workers = await startWorkers(s.latency.workers);
    const [poster] = await startWorkers(1);
    try {
      const channels = await createChannels(stack, 'lat', s.latency.channels);
      const plans = plan(stack.wsUrls(), channels, s.latency.subsPerChannel, workers.length);
      await Promise.all(workers.map((w, i) => w.send({ op: 'connect', mode: 'walcast', token: stack.token, subs: plans[i]! })));
      const url = `${stack.api.url}/v1/chat.postMessage`;
      // Warm-up (JIT, pools, prepared paths), not measured.
      await poster!.send({ op: 'post', url, token: stack.token, channels, rate: 100, seconds: s.quick ? 0.3 : 1 });
      await sleep(300);
      for (const rate of s.latency.rates) {
        await Promise.all(workers.map((w) => w.send({ op: 'reset' })));
        const cpu = cpuWindow(serverGroups(stack, db, workers, poster));
        const p = await poster!.send<PostResult>({ op: 'post', url, token: stack.token, channels, rate, seconds: s.latency.seconds });
        const expected = p.ok * s.latency.subsPerChannel;
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
        log(`  ${source} ${rate}/s: p50 ${sm.p50.toFixed(2)} p99 ${sm.p99.toFixed(2)} max ${sm.max.toFixed(1)} ms, delivered ${rows.at(-1)!.delivered}/${expected}`);
        await sleep(300);
      }
    } finally {
      await Promise.all([...workers, poster!].map((w) => w.close()));
      await stack.close();
    }
  }
  return rows;
}

// 2. Race -------------------------------------------------------------------------------------

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

export async function race(db: Db, s: Settings): Promise<RaceRow[]> {
  const rows: RaceRow[] = [];
  for (const source of s.sources) {
    log(`race: ${source}`);
    const stack = await startStack(db, source, { env: { WALCAST_BENCH_COMMIT_DELAY_MS: String(s.race.commitDelayMs) } });
    const [w, poster] = await startWorkers(2);
    try {
      const channels = await createChannels(stack, 'race', s.race.channels);
      const subs = plan(stack.wsUrls(), channels, 2, 1)[0]!;
      await w!.send({ op: 'connect', mode: 'walcast', token: stack.token, subs, getMessage: { apiUrl: stack.api.url, token: stack.token } });
      await w!.send({ op: 'reset' });
      const p = await poster!.send<PostResult>({ op: 'post', url: `${stack.api.url}/v1/chat.postMessage`, token: stack.token, channels, rate: s.race.rate, seconds: s.race.seconds });
      await waitDeliveries([w!], p.ok * 2, 5000);
      await sleep(500); // the last getMessage answers
      const st = (await allStats([w!]))[0]!;
      await sleep(s.race.commitDelayMs + 500);
      const re = await w!.send<{ ghosts: number; committedLater: number }>({ op: 'recheck' });
      rows.push({
        source,
        commitDelayMs: s.race.commitDelayMs,
        posted: p.ok,
        frames: st.deliveries,
        getChecks: st.getChecks,
        ghosts: st.ghosts.length,
        ghostsCommittedLater: re.committedLater,
        getErrors: st.getErrors,
        e2e: st.hist,
      });
      log(`  ${source}: ${st.ghosts.length} ghosts of ${st.getChecks} frames`);
    } finally {
      await Promise.all([w!, poster!].map((x) => x.close()));
      await stack.close();
    }
  }
  return rows;
}

// 3. Loss under faults ------------------------------------------------------------------------

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

export async function faults(db: Db, s: Settings): Promise<FaultRow[]> {
  const rows: FaultRow[] = [];
  const pool = createPool(db.url, 2, 'bench');
  try {
    for (const source of s.sources) {
      // Widen the windows each fault is aimed at: commit -> publish (direct), publish -> commit (direct-in-tx).
      const env: Record<string, string> = {};
      if (source === 'direct') env.WALCAST_BENCH_PUBLISH_DELAY_MS = String(s.faults.windowMs);
      if (source === 'direct-in-tx') env.WALCAST_BENCH_COMMIT_DELAY_MS = String(s.faults.windowMs);
      const stack = await startStack(db, source, { env });
      try {
        for (const fault of Object.keys(FAULTS) as Fault[]) {
          log(`faults: ${source} / ${fault}`);
          rows.push(await oneFault(stack, pool, s, fault));
        }
      } finally {
        await stack.close();
      }
    }
  } finally {
    await pool.end();
  }
  return rows;
}

async function oneFault(stack: Stack, pool: pg.Pool, s: Settings, fault: Fault): Promise<FaultRow> {
  const channels = await createChannels(stack, `fault-${fault}`, s.faults.channels);
  const [w, poster] = await startWorkers(2);
  // What reached the bus, before any gateway repair: an observer on the channels' Redis topics.
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
      url: `${stack.api.url}/v1/chat.postMessage`,
      token: stack.token,
      channels,
      rate: s.faults.rate,
      seconds: s.faults.seconds,
      retry: true,
      idPrefix: `f-${fault}`,
    });
    // The api restart keeps its port, so the poster's retries reach the new process.
    await sleep(s.faults.faultAt * 1000);
    if (fault === 'broker') {
      await stack.redis.kill('SIGKILL');
      await sleep(s.faults.outageMs);
      stack.redis = await stack.redis.restart();
    } else if (fault === 'relay') {
      await stack.relays[0]!.kill('SIGKILL');
      await sleep(s.faults.outageMs);
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
    await sleep(s.quick ? 200 : 500); // late duplicates
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
    log(`  stored ${row.stored}, lost ${lost}, dup ${duplicated}, wrong ${wrong}, bus-lost ${busLost}`);
    return row;
  } finally {
    observer.disconnect();
    await Promise.all([w!, poster!].map((x) => x.close()));
  }
}

// 4. Ingest -----------------------------------------------------------------------------------

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

export async function ingest(db: Db, s: Settings): Promise<IngestRow[]> {
  const rows: IngestRow[] = [];
  for (const source of s.sources) {
    log(`ingest: ${source}`);
    const stack = await startStack(db, source);
    try {
      const spread = await createChannels(stack, 'ingest', s.ingest.channels);
      const [hot] = await createChannels(stack, 'hot', 1);
      const workloads: [string, string[]][] = [
        [`${s.ingest.channels} channels`, spread],
        ...(s.quick ? [] : [[`${s.ingest.channels} channels + 1 hot (half the posts)`, spread.flatMap((c) => [c, hot!])] as [string, string[]]]),
        ['1 hot channel', [hot!]],
      ];
      for (const [workload, channels] of workloads) {
        const [w] = await startWorkers(1);
        try {
          await w!.send({ op: 'reset' });
          const cpu = cpuWindow({ ...stack.cpuGroups(db), autocannon: () => w!.pid() });
          const r = await w!.send<Omit<IngestRow, 'source' | 'workload' | 'connections' | 'cpu'>>({
            op: 'autocannon',
            url: `${stack.api.url}/v1/chat.postMessage`,
            token: stack.token,
            channels,
            connections: s.ingest.connections,
            seconds: s.ingest.seconds,
          });
          rows.push({ source, workload, connections: s.ingest.connections, ...r, cpu: cpu() });
          log(`  ${source} ${workload}: ${Math.round(r.rps)} req/s p99 ${r.latency.p99} ms`);
        } finally {
          await w!.close();
        }
        await sleep(s.quick ? 100 : 500); // the relay drains the WAL before the next workload
      }
    } finally {
      await stack.close();
    }
  }
  return rows;
}

// 5. Fan-out ----------------------------------------------------------------------------------

export interface FanoutStep {
  rate: number;
  posted: number;
  expected: number;
  delivered: number;
  deliveriesPerS: number;
  latency: HistData;
  cpu: Record<string, number>;
  clientWorkersCpu: number;
  sustained: boolean;
}

export interface FanoutRun {
  system: 'walcast' | 'socket.io';
  subscribers: number;
  connectFailed: number;
  connectMs: number;
  steps: FanoutStep[];
  best: FanoutStep | null;
}

export async function fanout(db: Db, s: Settings): Promise<FanoutRun[]> {
  const out: FanoutRun[] = [];
  for (const system of ['walcast', 'socket.io'] as const) {
    log(`fanout: ${system}, ${s.fanout.subscribers} subscribers`);
    const workers = await startWorkers(s.fanout.workers);
    const [poster] = await startWorkers(1);
    let close: () => Promise<void>;
    let groups: PidGroups;
    let wsUrls: string[];
    let postUrl: string;
    let token: string | undefined;
    let channel: string;
    if (system === 'walcast') {
      const stack = await startStack(db, 'cdc');
      close = stack.close;
      groups = stack.cpuGroups(db);
      wsUrls = stack.wsUrls();
      postUrl = `${stack.api.url}/v1/chat.postMessage`;
      token = stack.token;
      channel = (await createChannels(stack, 'fanout', 1))[0]!;
    } else {
      const peer = await startPeer(db);
      close = peer.close;
      groups = peer.cpuGroups(db);
      wsUrls = peer.wsUrls();
      postUrl = `${peer.servers[0]!.url}/post`;
      const pool = createPool(db.url, 1, 'bench');
      channel = (await new Channels(pool).create('bench', 'fanout-sio', false)).id;
      await pool.end();
    }
    try {
      const plans = plan(wsUrls, [channel], s.fanout.subscribers, workers.length);
      const conn = await Promise.all(
        workers.map((w, i) =>
          w.send<{ connected: number; failed: number; ms: number }>({
            op: 'connect',
            mode: system === 'walcast' ? 'walcast' : 'socketio',
            token,
            subs: plans[i]!,
            // Several loopback source addresses: room for more than one address's ephemeral ports.
            localAddress: `127.0.0.${2 + i}`,
          }),
        ),
      );
      const subscribers = conn.reduce((a, c) => a + c.connected, 0);
      const run: FanoutRun = { system, subscribers, connectFailed: conn.reduce((a, c) => a + c.failed, 0), connectMs: Math.max(...conn.map((c) => c.ms)), steps: [], best: null };
      log(`  ${subscribers} subscribers connected in ${run.connectMs} ms (${run.connectFailed} failed)`);
      const all = { ...groups, clients: () => [...workers.flatMap((w) => w.pid()), ...poster!.pid()] };
      await poster!.send({ op: 'post', url: postUrl, token, channels: [channel], rate: 5, seconds: s.quick ? 0.2 : 1 });
      await sleep(s.quick ? 200 : 1000);
      let failures = 0;
      for (const rate of s.fanout.rates) {
        await Promise.all(workers.map((w) => w.send({ op: 'reset' })));
        const cpu = cpuWindow(all);
        const t0 = performance.now();
        const p = await poster!.send<PostResult>({ op: 'post', url: postUrl, token, channels: [channel], rate, seconds: s.fanout.stepSeconds });
        const expected = p.ok * subscribers;
        await waitDeliveries(workers, expected, 5000);
        const elapsed = (performance.now() - t0) / 1000;
        const used = cpu();
        const st = await allStats(workers);
        const h = new Hist();
        for (const x of st) h.merge(x.hist);
        const delivered = st.reduce((a, x) => a + x.deliveries, 0);
        const p99 = h.q(0.99);
        const step: FanoutStep = {
          rate,
          posted: p.ok,
          expected,
          delivered,
          // Deliveries over the posting window plus the drain after it.
          deliveriesPerS: Math.round(delivered / elapsed),
          latency: h.data(),
          cpu: used,
          clientWorkersCpu: clientCpu(st),
          sustained: delivered >= expected * 0.999 && p99 < 100 && p.ok === p.sent,
        };
        run.steps.push(step);
        log(`  ${system} ${rate} msg/s: ${step.deliveriesPerS} deliveries/s, p50 ${h.q(0.5).toFixed(1)} p99 ${p99.toFixed(1)} ms, ${delivered}/${expected}, clients ${step.clientWorkersCpu}% cpu`);
        if (step.sustained) {
          if (!run.best || step.deliveriesPerS > run.best.deliveriesPerS) run.best = step;
        } else if (delivered < expected * 0.999 || p99 > 500) {
          // Not merely over the p99 target but falling behind: stop after maxFailures such steps.
          if (++failures >= s.fanout.maxFailures) break;
        }
        await sleep(s.quick ? 100 : 1000);
      }
      out.push(run);
    } finally {
      await Promise.all([...workers, poster!].map((w) => w.close()));
      await close();
    }
  }
  return out;
}
