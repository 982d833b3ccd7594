// The bus contract against ClusterBus on a real local Redis Cluster (3 masters, 3 replicas,
// harness/redis-cluster.ts), including the whole cluster killed (SIGKILL) and restarted; then
// what only a cluster does: one shard's subscriptions lost while the others stay (reported per
// channel, no global outage), a master SIGKILLed and its replica promoted, a slot moved.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Cluster } from 'ioredis';
import { ClusterBus, keySlot } from '../../src/bus/cluster.js';
import type { BusEvent } from '../../src/bus/bus.js';
import type { Logger } from '../../src/log.js';
import { startRedisCluster, type RedisCluster } from '../../harness/redis-cluster.js';
import { busContract, captureLog, message, waitFor } from './contract.js';

if (spawnSync('redis-server', ['--version']).error) {
  t.fail('redis-server not found on PATH: install the Debian package redis-server (apt-get install redis-server)');
} else {
  const cluster: RedisCluster = await startRedisCluster();
  t.teardown(() => cluster.stop());
  const make = (log: Logger = captureLog()) => new ClusterBus(cluster.seeds, log, { refreshMs: 500 });
  const killPubsub = (ports: number[]) => Promise.all(ports.map((p) => cluster.command(p, 'CLIENT', 'KILL', 'TYPE', 'pubsub').catch(() => 0)));

  await t.test('contract', async (t) => {
    await busContract(t, {
      make,
      outage: {
        kill: () => cluster.killAll(),
        revive: async () => {
          await cluster.reviveAll();
          await cluster.waitHealthy(60_000);
        },
      },
      injectRaw: async (topic, payload) => {
        const raw = new Cluster(cluster.seeds.slice(0, 1));
        await raw.spublish(topic === 'control' ? 'walcast:ctl' : `walcast:ch:${topic.channel}`, payload);
        raw.disconnect();
      },
      dropSubscribers: async () => void (await killPubsub(cluster.ports)),
    });
  });

  t.test('closed while a slot-map refresh is in flight: nothing keeps the process alive', async (t) => {
    // Every node paused, so the refresh that starts next hangs until the pause ends; the bus is
    // closed meanwhile. ioredis' own periodic refresh re-armed itself after close in that case
    // and kept its process alive for good (test/bus/close-during-refresh.ts is the child).
    const child = spawn(process.execPath, ['--import=tsx', fileURLToPath(new URL('./close-during-refresh.ts', import.meta.url)), cluster.env], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    t.teardown(() => void child.kill('SIGKILL'));
    await waitFor('the child bus is up', () => out.includes('up'), 30_000);
    await Promise.all(cluster.ports.map((p) => cluster.command(p, 'CLIENT', 'PAUSE', 1500, 'ALL')));
    await new Promise((r) => setTimeout(r, 500)); // a 200 ms refresh round has started and hangs
    child.stdin!.write('close\n');
    await waitFor('the child closed its bus', () => out.includes('closed'), 30_000);
    const code = await Promise.race([exited, new Promise<'alive'>((r) => setTimeout(() => r('alive'), 10_000).unref())]);
    t.equal(code, 0, 'the process exited on its own after close()');
  });

  t.test('hash slots as the server computes them', async (t) => {
    for (const key of ['walcast:ctl', 'walcast:ch:CAAAAAAAAAAA1', 'walcast:ch:C0123456789AB', 'a{tag}b', '{}x', 'é'])
      t.equal(keySlot(key), Number(await cluster.command(cluster.ports[0]!, 'CLUSTER', 'KEYSLOT', key)), key);
  });

  t.test('publishes in flight for one channel: in order, coalesced into fewer SPUBLISH', async (t) => {
    let spublish = 0;
    let events = 0;
    const pub = new ClusterBus(cluster.seeds, captureLog(), {
      observer: { published: (_s, n) => ((spublish += 1), (events += n)), publishFailed() {}, subscribed() {}, subscribeFailed() {}, lapsed() {} },
    });
    const sub = make();
    t.teardown(() => Promise.all([pub.close(), sub.close()]));
    const got: BusEvent[] = [];
    sub.onEvent((e) => got.push(e));
    await waitFor('buses up', () => sub.isUp() && pub.isUp());
    await sub.subscribe('CCOALESCE0001');
    await Promise.all(Array.from({ length: 300 }, (_, i) => pub.publish([message('CCOALESCE0001', i + 1)])));
    await waitFor('300 delivered', () => got.length >= 300);
    t.same(seqsOf(got, 'CCOALESCE0001'), Array.from({ length: 300 }, (_, i) => i + 1), 'in order');
    t.equal(events, 300, 'every event published');
    t.ok(spublish < 300, `in ${spublish} SPUBLISH`);
  });

  /** A subscribing bus, a publishing bus, and one channel on each master. */
  async function setup(t: Test) {
    const log = captureLog();
    const sub = make(log);
    const pub = make();
    t.teardown(async () => {
      await sub.close();
      await pub.close();
    });
    const events: BusEvent[] = [];
    const states: boolean[] = [];
    const resubscribed: string[] = [];
    sub.onEvent((e) => events.push(e));
    sub.onState((up) => states.push(up));
    sub.onResubscribed((c) => resubscribed.push(...c));
    await waitFor('buses up', () => sub.isUp() && pub.isUp());
    const masters = (await cluster.nodes()).filter((n) => n.role === 'master' && n.slots > 0).map((n) => n.port);
    const byMaster = new Map<number, string>();
    for (let i = 0; byMaster.size < masters.length && i < 10_000; i++) {
      const ch = `C${String(i).padStart(12, '0')}`;
      const m = await cluster.masterOf(`walcast:ch:${ch}`);
      if (!byMaster.has(m)) byMaster.set(m, ch);
    }
    for (const ch of byMaster.values()) await sub.subscribe(ch);
    const control = await cluster.masterOf('walcast:ctl');
    return { sub, pub, events, states, resubscribed, byMaster, control, log };
  }

  const seqsOf = (events: BusEvent[], ch: string) => events.flatMap((e) => (e.kind === 'change' && e.channel === ch ? [e.seq] : []));

  t.test("one shard's subscriber connections killed: only its channels are re-subscribed and reported, no outage", async (t) => {
    const s = await setup(t);
    const [port, ch] = [...s.byMaster].find(([p]) => p !== s.control)!;
    await killPubsub([port]);
    await waitFor(`${ch} reported re-subscribed`, () => s.resubscribed.includes(ch));
    t.same(s.resubscribed, [ch], 'only the channel of that shard');
    t.same(s.states, [true], 'no global down/up');
    await s.pub.publish([message(ch, 1)]);
    await waitFor('delivered after the re-subscription', () => seqsOf(s.events, ch).includes(1));
    t.pass();
  });

  t.test('a master SIGKILLed: publishes to its shard fail fast, its channels come back on the promoted replica', async (t) => {
    const s = await setup(t);
    const [port, ch] = [...s.byMaster].find(([p]) => p !== s.control)!;
    const other = [...s.byMaster.values()].find((c) => c !== ch)!;
    const killing = cluster.killMaster(port);
    t.teardown(async () => {
      await cluster.restartNode(port); // back, as a replica
      await cluster.waitHealthy();
    });
    // Until the replica is promoted, publishing to that shard rejects quickly (the relay retries).
    let rejectedFast = 0;
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline) {
      const t0 = Date.now();
      const ok = await s.pub.publish([message(ch, 1)]).then(() => true, () => false);
      if (!ok && Date.now() - t0 < 1000) rejectedFast++;
      if (rejectedFast > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    t.ok(rejectedFast > 0, 'publish to the dead shard rejected in under a second');
    await s.pub.publish([message(other, 1)]);
    await waitFor('the other shards deliver meanwhile', () => seqsOf(s.events, other).includes(1));
    const { promoted, failoverMs } = await killing;
    t.comment(`replica ${promoted} promoted ${failoverMs} ms after the kill`);
    await waitFor(`${ch} reported re-subscribed`, () => s.resubscribed.includes(ch), 30_000);
    t.notOk(s.resubscribed.includes(other), 'channels of the other shards were not lost');
    // The publisher's slot map may still name the dead master for a moment: it fails fast, the relay would retry.
    for (let i = 0; !(await s.pub.publish([message(ch, 2)]).then(() => true, () => false)); i++) {
      if (i > 100) throw new Error('publishing to the promoted replica kept failing');
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor('delivered by the promoted replica', () => seqsOf(s.events, ch).includes(2));
    t.same(s.states, [true], 'no global down/up (the control topic is on another shard)');
  });

  t.test("a channel's slot moved: re-subscribed on the new master and reported", async (t) => {
    const s = await setup(t);
    // A channel among the lowest 50 slots of its master (reshard moves the lowest first).
    let ch = '';
    let from = 0;
    let n = 0;
    for (let i = 0; !ch && i < 100_000; i++) {
      const cand = `CR${String(i).padStart(11, '0')}`;
      const slot = keySlot(`walcast:ch:${cand}`);
      const m = await cluster.masterOf(`walcast:ch:${cand}`);
      const ranges = ((await cluster.command(m, 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][]).filter((r) => Number(r[2][1]) === m).sort((a, b) => a[0] - b[0]);
      let pos = 0;
      for (const [lo, hi] of ranges) {
        if (slot > hi) pos += hi - lo + 1;
        else if (slot >= lo) {
          pos += slot - lo;
          break;
        }
      }
      if (pos < 50) [ch, from, n] = [cand, m, pos + 1];
    }
    await s.sub.subscribe(ch);
    const to = (await cluster.nodes()).find((x) => x.role === 'master' && x.slots > 0 && x.port !== from)!.port;
    const ms = await cluster.reshard(from, to, n);
    t.comment(`moved ${n} slots in ${ms} ms`);
    t.equal(await cluster.masterOf(`walcast:ch:${ch}`), to, 'the slot moved');
    await waitFor(`${ch} reported re-subscribed`, () => s.resubscribed.includes(ch), 30_000);
    await s.pub.publish([message(ch, 7)]);
    await waitFor('delivered from the new master', () => seqsOf(s.events, ch).includes(7));
    t.pass();
  });
}
