// 5. Fan-out: one channel, many subscribers over several client processes, posts at a rising
// rate; walcast (api + relay + 2 gateways, cdc) against the Socket.IO + Redis adapter peer.
import { cpuWindow, type PidGroups } from '../../harness/proc-stats.js';
import { Channels } from '../../src/chat/channels.js';
import { createPool } from '../../src/db/pool.js';
import { Hist, type HistData } from '../lib/hist.js';
import { allStats, clientCpu, plan, sleep, waitDeliveries, type PostResult } from '../lib/measure.js';
import { scenario, type Values } from '../lib/scenario.js';
import { createChannels, methodUrl, startPeer, startStack } from '../lib/stack.js';
import { startWorkers } from '../lib/workers.js';

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

export const fanout = scenario({
  name: 'fanout',
  summary: 'one channel, many subscribers, rising post rate: walcast (cdc) against Socket.IO + @socket.io/redis-adapter',
  suite: true,
  options: {
    subscribers: { type: 'number', default: 3000, quick: 40, description: 'subscribers of the channel, half on each server process' },
    workers: { type: 'number', default: 4, quick: 2, description: 'subscriber processes, each on its own loopback address' },
    rates: { type: 'numbers', default: [2, 5, 10, 20, 40, 60, 80, 100, 150, 200], quick: [10], description: 'post rates, msg/s, one step each' },
    stepSeconds: { type: 'number', default: 4, quick: 1, description: 'seconds per step' },
    maxFailures: { type: 'number', default: 2, quick: 1, description: 'stop after this many steps that fall behind' },
  },
  async run(o, ctx): Promise<FanoutRun[]> {
    const db = await ctx.db();
    const out: FanoutRun[] = [];
    for (const system of ['walcast', 'socket.io'] as const) {
      ctx.log(`fanout: ${system}, ${o.subscribers} subscribers`);
      const workers = await startWorkers(o.workers);
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
        postUrl = methodUrl(stack.api.url, 'chat.postMessage');
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
        const plans = plan(wsUrls, [channel], o.subscribers, workers.length);
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
        ctx.log(`  ${subscribers} subscribers connected in ${run.connectMs} ms (${run.connectFailed} failed)`);
        const all = { ...groups, clients: () => [...workers.flatMap((w) => w.pid()), ...poster!.pid()] };
        await poster!.send({ op: 'post', url: postUrl, token, channels: [channel], rate: 5, seconds: ctx.quick ? 0.2 : 1 });
        await sleep(ctx.quick ? 200 : 1000);
        let failures = 0;
        for (const rate of o.rates) {
          await Promise.all(workers.map((w) => w.send({ op: 'reset' })));
          const cpu = cpuWindow(all);
          const t0 = performance.now();
          const p = await poster!.send<PostResult>({ op: 'post', url: postUrl, token, channels: [channel], rate, seconds: o.stepSeconds });
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
          ctx.log(`  ${system} ${rate} msg/s: ${step.deliveriesPerS} deliveries/s, p50 ${h.q(0.5).toFixed(1)} p99 ${p99.toFixed(1)} ms, ${delivered}/${expected}, clients ${step.clientWorkersCpu}% cpu`);
          if (step.sustained) {
            if (!run.best || step.deliveriesPerS > run.best.deliveriesPerS) run.best = step;
          } else if (delivered < expected * 0.999 || p99 > 500) {
            // Not merely over the p99 target but falling behind: stop after maxFailures such steps.
            if (++failures >= o.maxFailures) break;
          }
          await sleep(ctx.quick ? 100 : 1000);
        }
        out.push(run);
      } finally {
        await Promise.all([...workers, poster!].map((w) => w.close()));
        await close();
      }
    }
    return out;
  },
});

export type FanoutSettings = Values<typeof fanout.options>;
