// The roles on a Redis Cluster under faults (issue 15): api, relay and two gateways as separate
// processes with REDIS_CLUSTER_NODES, on a local 3-master / 3-replica cluster
// (harness/redis-cluster.ts). Messages flow on 50 channels spread over every shard, each held by
// a resuming subscriber on each gateway. Mid-stream a master is SIGKILLed (its replica takes
// over; once one that does not hold the control topic, once the one that does), or slots move
// to another master (`redis-cli --cluster reshard`). Every subscriber must
// end with every message of its channel exactly once, in order.
import t, { type Test } from 'tap';
import { metric, scrape } from '../harness/load/metrics.js';
import { startTopology, type ClusterTopology } from '../harness/topology.js';
import { Tokens } from '../src/auth/tokens.js';
import { keySlot } from '../src/bus/cluster.js';
import { ResumingClient, startAll } from './helpers/resuming.js';
import { contiguous } from './helpers/clients.js';

const CHANNELS = 50;

const topo: ClusterTopology = await startTopology({ relays: 1, gateways: 2, redisCluster: true });
t.teardown(() => topo.close());
const token = await new Tokens(topo.secret).sign('alice', 3600);
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
const wsUrl = (port: number) => `ws://127.0.0.1:${port}/v1/ws`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function call(method: string, body: unknown): Promise<any> {
  const r = await fetch(`${topo.api.url}/v1/${method}`, { method: 'POST', headers, body: JSON.stringify(body) });
  const json = (await r.json()) as any;
  if (!json.ok) throw new Error(`${method}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/** Stores one message, retried with its client_msg_id until stored. */
async function post(channel: string, i: number): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await call('chat.postMessage', { channel, text: `m${i}`, client_msg_id: `p-${i}` });
      return;
    } catch (e) {
      if (attempt > 100) throw e;
      await sleep(100);
    }
  }
}

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(25);
  }
}

/** Sum of a counter over the gateways' /metrics. */
async function gatewayCounter(name: string): Promise<number> {
  let sum = 0;
  for (const g of topo.gateways) sum += metric(await scrape(g.url), name);
  return sum;
}

const report: string[] = [];

/**
 * 50 new channels, a resuming subscriber per channel on each gateway, rounds of one post per
 * channel; `fault` starts after a few rounds and posting goes on until it is over and a while
 * after. Returns the channels with the master owning each at the start.
 */
async function scenario(t: Test, name: string, fault: (channels: { id: string; master: number }[]) => Promise<string>) {
  const channels: { id: string; master: number }[] = [];
  for (let i = 0; i < CHANNELS; i++) {
    const id = (await call('conversations.create', { name: `${name}-${i}` })).channel.id as string;
    channels.push({ id, master: await topo.cluster.masterOf(`walcast:ch:${id}`) });
  }
  const shards = new Set(channels.map((c) => c.master));
  const masters = (await topo.cluster.nodes()).filter((n) => n.role === 'master' && n.slots > 0);
  t.equal(shards.size, masters.length, `${CHANNELS} channels spread over all ${masters.length} shards`);
  const [g1, g2] = topo.gateways.map((g) => wsUrl(g.port)) as [string, string];
  const clients = channels.flatMap((c, i) => [
    new ResumingClient(`${c.id}@g1`, [g1, g2], token, c.id),
    new ResumingClient(`${c.id}@g2`, [g2, g1], token, c.id),
  ].map((x) => Object.assign(x, { channelIndex: i })));
  await startAll(clients, () =>
    topo.gateways.map((g) => `${g.name}: ${g.pids().length ? 'running' : 'exited'}; its output: ${g.output().slice(-2000) || '(none)'}`).join('\n'),
  );
  t.teardown(() => Promise.all(clients.map((c) => c.stop())));
  const lapsedBefore = await gatewayCounter('walcast_bus_shard_subscriptions_lapsed_total');

  let rounds = 0;
  let faultDone = 0;
  let faultNote = '';
  let faultRun: Promise<void> | null = null;
  const started = Date.now();
  while (!faultDone || Date.now() - faultDone < 1500) {
    rounds++;
    await Promise.all(channels.map((c) => post(c.id, rounds)));
    if (rounds === 5) {
      faultRun = fault(channels).then((note) => {
        faultNote = note;
        faultDone = Date.now();
      });
    }
    if (Date.now() - started > 60_000) throw new Error('the fault did not end within 60 s');
    await sleep(20);
  }
  await faultRun;
  const N = rounds;
  await waitUntil(() => clients.every((c) => c.seqs.includes(N)), `every subscriber to reach seq ${N}`, 45_000);
  await sleep(300); // let any late duplicate show up
  let lost = 0;
  let dup = 0;
  let bad = 0;
  let reconnects = 0;
  for (const c of clients) {
    const unique = new Set(c.seqs).size;
    lost += N - unique;
    dup += c.seqs.length - unique;
    reconnects += c.reconnects;
    if (!contiguous(c.seqs, 1, N)) {
      bad++;
      t.fail(`${c.name}: expected 1..${N} once, in order; got ${c.seqs.length} frames (${N - unique} lost, ${c.seqs.length - unique} duplicated)`);
    }
  }
  t.equal(bad, 0, `${clients.length} subscribers: each got 1..${N} of its channel exactly once, in order`);
  const lapsed = (await gatewayCounter('walcast_bus_shard_subscriptions_lapsed_total')) - lapsedBefore;
  report.push(
    `${name}: ${faultNote}; ${CHANNELS} channels x ${N} messages over ${shards.size} shards, ${clients.length} subscribers: lost ${lost}, duplicated ${dup}, ` +
      `subscriber reconnects ${reconnects}, gateway subscriptions lapsed and re-subscribed ${lapsed}, ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return { lapsed };
}

t.test('a master SIGKILLed mid-stream: its replica takes over, nothing lost or duplicated', async (t) => {
  let killed = 0;
  const { lapsed } = await scenario(t, 'kill', async (channels) => {
    const control = await topo.cluster.masterOf('walcast:ctl');
    // A master that is not the control topic's: its failover is reported per channel.
    killed = channels.map((c) => c.master).find((m) => m !== control)!;
    const { promoted, failoverMs } = await topo.cluster.killMaster(killed);
    return `master ${killed} SIGKILLed, replica ${promoted} promoted after ${failoverMs} ms`;
  });
  t.ok(lapsed > 0, `the gateways saw ${lapsed} subscriptions lapse and re-subscribed them`);
  await topo.cluster.restartNode(killed); // back as a replica
  await topo.cluster.waitHealthy();
});

t.test("the control topic's master SIGKILLed: every gateway re-syncs everything, nothing lost or duplicated", async (t) => {
  let killed = 0;
  const resyncsBefore = await gatewayCounter('walcast_gateway_resyncs_total');
  await scenario(t, 'kill-control', async () => {
    killed = await topo.cluster.masterOf('walcast:ctl');
    const { promoted, failoverMs } = await topo.cluster.killMaster(killed);
    return `master ${killed} (the control topic's) SIGKILLed, replica ${promoted} promoted after ${failoverMs} ms`;
  });
  const resyncs = (await gatewayCounter('walcast_gateway_resyncs_total')) - resyncsBefore;
  t.ok(resyncs >= 2 * CHANNELS, `the gateways re-synced every channel they serve (${resyncs} channel re-syncs)`);
  await topo.cluster.restartNode(killed);
  await topo.cluster.waitHealthy();
});

t.test('slots moved mid-stream (redis-cli --cluster reshard): nothing lost or duplicated', async (t) => {
  const { lapsed } = await scenario(t, 'reshard', async (channels) => {
    const masters = (await topo.cluster.nodes()).filter((n) => n.role === 'master' && n.slots > 0).map((n) => n.port);
    // From the master with the most channels, enough of its lowest slots to move at least 5 of them.
    const count = (m: number) => channels.filter((c) => c.master === m).length;
    const from = masters.sort((a, b) => count(b) - count(a))[0]!;
    const to = masters.find((m) => m !== from)!;
    const ranges = ((await topo.cluster.command(from, 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][])
      .filter((r) => Number(r[2][1]) === from)
      .sort((a, b) => a[0] - b[0]);
    const order = ranges.flatMap(([lo, hi]) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i));
    const positions = channels.filter((c) => c.master === from).map((c) => order.indexOf(keySlot(`walcast:ch:${c.id}`))).sort((a, b) => a - b);
    const n = positions[Math.min(4, positions.length - 1)]! + 1;
    const ms = await topo.cluster.reshard(from, to, n);
    const moved = channels.filter((c) => c.master === from && order.indexOf(keySlot(`walcast:ch:${c.id}`)) < n).length;
    return `${n} slots (${moved} of the channels) moved ${from} -> ${to} in ${ms} ms`;
  });
  t.ok(lapsed > 0, `the gateways saw ${lapsed} subscriptions lapse and re-subscribed them`);
});

t.test('report', async (t) => {
  for (const line of report) t.comment(line);
  t.pass(`${report.length} scenarios`);
});
