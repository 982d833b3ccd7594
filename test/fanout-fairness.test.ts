// The fan-out budget, shown deterministically: a burst of events for a hot channel (many live
// subscribers) and one event for a quiet channel arrive in the same bus callback. One observer
// socket subscribes to both, so its frames are in the gateway's send order. With the budget,
// the quiet frame goes out after about one budget of hot work; without it (budget 0), behind
// the hot channel's whole burst.
import t from 'tap';
import { messageEvent, type BusEvent } from '../src/bus/bus.js';
import { testMessage } from './helpers/messages.js';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, type Running } from './helpers/walcast.js';
import { Api, WsClient } from './helpers/clients.js';

const db = await startTestDatabase(t);
const HOT_SUBSCRIBERS = 200;
const BURST = 600;

async function hotFramesBeforeQuiet(t: Tap, w: Running): Promise<number> {
  const api = new Api(w.base, await w.token('alice'));
  const hot = (await api.call('conversations.create', { name: 'hot' })).channel.id as string;
  const quiet = (await api.call('conversations.create', { name: 'quiet' })).channel.id as string;
  const token = await w.token('alice');
  const crowd = await Promise.all(Array.from({ length: HOT_SUBSCRIBERS }, () => WsClient.connect(w.ws, token)));
  const observer = await WsClient.connect(w.ws, token);
  t.teardown(() => Promise.all([observer, ...crowd].map((c) => c.socket.terminate())));
  for (const c of crowd) await c.subscribe(hot);
  await observer.subscribe(hot);
  await observer.subscribe(quiet);

  // Straight onto the bus, as a relay would publish a large committed backlog.
  const ev = (channel: string, seq: number): BusEvent => messageEvent(testMessage(channel, seq, { user: 'alice', text: `m${seq}` }));
  const events = Array.from({ length: BURST }, (_, i) => ev(hot, i + 1));
  events.push(ev(quiet, 1));
  await w.node.bus.publish(events);
  await observer.waitForSeq(quiet, 1);
  await observer.waitForSeq(hot, BURST);
  const order = observer.messages();
  return order.findIndex((f) => f.channel === quiet);
}
type Tap = { teardown(f: () => unknown): void };

t.test('with the budget, a quiet channel is not queued behind a hot burst', async (t) => {
  const fair = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'fair', WALCAST_FANOUT_BUDGET: '4000' } });
  const before = await hotFramesBeforeQuiet(t, fair);
  const deferred = (await fair.node.metrics.fanoutDeferred.get()).values[0]?.value ?? 0;
  t.ok(before < BURST / 4, `the quiet frame went out after ${before} of ${BURST} hot frames`);
  t.ok(deferred > 0, `the hot channel yielded ${deferred} times`);
  await fair.close();

  const unfair = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'unfair', WALCAST_FANOUT_BUDGET: '0' } });
  const behind = await hotFramesBeforeQuiet(t, unfair);
  t.equal(behind, BURST, `without the budget it waited behind all ${BURST} hot frames`);
  t.comment(`quiet frame position among the observer's frames: budget 4000 -> ${before}, budget 0 -> ${behind}`);
});
