// What every bus must do, run against each backend (memory, Redis, ...) by its own test file,
// as socket.io's redis-adapter runs one suite against every adapter. A fixture makes buses that
// share one broker; one that can stop and restart its broker also gets the outage tests.
import type { Test } from 'tap';
import { messageEvent, type Bus, type BusEvent } from '../../src/bus/bus.js';
import { testMessage } from '../helpers/messages.js';
import type { Logger } from '../../src/log.js';

export interface BusFixture {
  /** A new bus on the shared broker; `log` collects what it warns about. */
  make(log: Logger): Bus;
  /** Kill the broker (SIGKILL) and bring it back: only backends with a broker to lose. */
  outage?: { kill(): Promise<void>; revive(): Promise<void> };
  /** Send a raw payload on a topic, bypassing the bus (malformed input); only where it means something. */
  injectRaw?(topic: 'control' | { channel: string }, payload: string): Promise<void>;
  /** The broker drops every subscriber connection (CLIENT KILL TYPE pubsub), the broker itself stays up. */
  dropSubscribers?(): Promise<void>;
}

const CH = 'CAAAAAAAAAAA1';
const OTHER = 'CAAAAAAAAAAA2';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what: string, pred: () => boolean, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Collects warnings so a test can see the bus complained instead of crashing. */
export function captureLog(): Logger & { warns: string[] } {
  const warns: string[] = [];
  const log = {
    warns,
    debug() {},
    info() {},
    warn(msg: string) {
      warns.push(msg);
    },
    error(msg: string) {
      warns.push(msg);
    },
    child: () => log,
  };
  return log;
}

export const message = (channel: string, seq: number): BusEvent => messageEvent(testMessage(channel, seq));

const label = (e: BusEvent) => (e.kind === 'change' ? `${e.channel}:${e.seq}` : e.kind);

/** A bus with everything it delivers and every state change it reports. */
function tracked(f: BusFixture) {
  const log = captureLog();
  const bus = f.make(log);
  const events: BusEvent[] = [];
  const states: boolean[] = [];
  /** Channels the bus reported re-subscribed (backends that say which: Redis Cluster). */
  const resubscribed: string[] = [];
  bus.onEvent((e) => events.push(e));
  bus.onState((up) => states.push(up));
  bus.onResubscribed?.((channels) => resubscribed.push(...channels));
  return { bus, events, states, resubscribed, log };
}

export async function busContract(t: Test, f: BusFixture): Promise<void> {
  const pub = tracked(f);
  const sub = tracked(f);
  const ctl = tracked(f); // subscribes to no channel: control events only
  const all = [pub, sub, ctl];
  t.teardown(() => Promise.all(all.map((b) => b.bus.close())));
  await waitFor('buses up', () => all.every((b) => b.bus.isUp() && b.states.length === 1));

  await t.test('reported up once, after connecting', async (t) => {
    for (const b of all) t.same(b.states, [true]);
  });

  await t.test('messages of subscribed channels arrive in order, others not at all', async (t) => {
    await sub.bus.subscribe(CH);
    await sub.bus.subscribe(CH); // idempotent
    const first = Array.from({ length: 50 }, (_, i) => message(CH, i + 1));
    await pub.bus.publish([...first, message(OTHER, 1)]);
    await pub.bus.publish([message(CH, 51), message(CH, 52)]);
    await waitFor('52 messages', () => sub.events.length >= 52);
    await sleep(50);
    t.same(sub.events.map(label), Array.from({ length: 52 }, (_, i) => `${CH}:${i + 1}`), 'in order, nothing from an unsubscribed channel');
    t.same(sub.events[0], first[0], 'the event round-trips intact');
    t.equal(ctl.events.length, 0, 'a bus without channels gets no messages');
    sub.events.length = 0;
  });

  await t.test('many publishes in flight keep their order', async (t) => {
    const sends = Array.from({ length: 200 }, (_, i) => pub.bus.publish([message(CH, 100 + i)]));
    await Promise.all(sends);
    await waitFor('200 messages', () => sub.events.length >= 200);
    t.same(sub.events.map(label), Array.from({ length: 200 }, (_, i) => `${CH}:${100 + i}`));
    sub.events.length = 0;
  });

  await t.test('unsubscribe stops delivery', async (t) => {
    await sub.bus.unsubscribe(CH);
    await sub.bus.unsubscribe(CH); // idempotent
    await pub.bus.publish([message(CH, 53)]);
    await sleep(150);
    t.equal(sub.events.length, 0);
  });

  await t.test('control events reach every bus; malformed payloads are dropped, not fatal', async (t) => {
    if (f.injectRaw) {
      await f.injectRaw('control', 'not json');
      await f.injectRaw('control', JSON.stringify(message(CH, 1)));
    }
    const resync: BusEvent = { kind: 'resync', epoch: 'e1' };
    const again: BusEvent = { kind: 'resync', epoch: 'e1b' };
    await pub.bus.publish([resync, again]);
    await waitFor('control events', () => ctl.events.length >= 2 && sub.events.length >= 2);
    t.same(ctl.events, [resync, again], 'to a bus subscribed to no channel');
    t.same(sub.events, [resync, again], 'and to one that unsubscribed its last channel');
    if (f.injectRaw) t.equal(ctl.log.warns.filter((w) => w.includes('dropping')).length, 2, 'both bad payloads logged');
    sub.events.length = 0;
    ctl.events.length = 0;
  });

  if (f.dropSubscribers) {
    const drop = f.dropSubscribers;
    await t.test('a lapsed subscription is reported only once it is active again, so a re-sync after the report misses nothing', async (t) => {
      await sub.bus.subscribe(CH);
      sub.events.length = 0;
      let armed = false;
      // A backend that says which channels came back reports CH itself; the others report "up",
      // which for them means every subscription is confirmed again.
      const perChannel = typeof sub.bus.onResubscribed === 'function';
      const probe = () => {
        if (!armed) return;
        armed = false;
        // Published the moment the bus says "back": it must be delivered (a re-read of the
        // database at this moment would otherwise miss what follows).
        void pub.bus.publish([message(CH, 900)]).catch((e: unknown) => t.fail(`probe publish failed: ${e}`));
      };
      if (perChannel) sub.bus.onResubscribed!((channels) => channels.includes(CH) && probe());
      else sub.bus.onState((up) => up && probe());
      await new Promise((r) => setImmediate(r)); // past the "already up" report (a microtask) of a late onState registration
      const states = sub.states.length;
      armed = true;
      await drop();
      await waitFor('the lapse reported', () => (perChannel ? sub.resubscribed.includes(CH) : sub.states.length >= states + 2 && sub.bus.isUp()), 30_000);
      if (!perChannel) t.same(sub.states.slice(states), [false, true], 'down, then up');
      await waitFor('the probe published at the report delivered', () => sub.events.some((e) => e.kind === 'change' && e.seq === 900), 10_000);
      t.pass(`reported ${perChannel ? 'per channel' : 'by the bus state'}; the probe arrived`);
      await waitFor('every bus up again', () => all.every((b) => b.bus.isUp()), 30_000);
      sub.events.length = 0;
      ctl.events.length = 0;
    });
  }

  if (f.outage) {
    const { kill, revive } = f.outage;
    const base = new Map(all.map((b) => [b, b.states.length]));
    const since = (b: (typeof all)[number]) => b.states.slice(base.get(b));
    let resubBase = 0;
    await t.test('while the broker is down, publish and subscribe fail fast', async (t) => {
      for (const b of all) base.set(b, b.states.length);
      resubBase = sub.resubscribed.length;
      await sub.bus.subscribe(CH);
      await kill();
      await waitFor('down reported', () => all.every((b) => since(b).length === 1));
      t.same(since(sub), [false]);
      t.notOk(sub.bus.isUp());
      const started = Date.now();
      await t.rejects(pub.bus.publish([message(CH, 54)]), 'publish rejects');
      await t.rejects(sub.bus.subscribe(OTHER), 'subscribe rejects');
      t.ok(Date.now() - started < 1000, `rejected within ${Date.now() - started} ms`);
    });

    await t.test('after the broker returns: up again, subscriptions restored, publishing works', async (t) => {
      await revive();
      // "Up" is reported only once every subscription is confirmed again, for every bus.
      await waitFor('up reported by every bus', () => all.every((b) => since(b).length === 2 && b.bus.isUp()), 60_000);
      for (const b of all) t.same(since(b), [false, true], 'down, then up');
      // A backend that reports channels itself may confirm the control topic first.
      if (sub.bus.onResubscribed) await waitFor('the channel reported re-subscribed', () => sub.resubscribed.slice(resubBase).includes(CH), 30_000);
      await pub.bus.publish([message(CH, 55), message(OTHER, 2), { kind: 'resync', epoch: 'e2' }]);
      await waitFor('restored delivery', () => sub.events.length >= 2 && ctl.events.length >= 1);
      await sleep(50);
      // Sorted: order holds per topic, not across topics (a cluster puts them on different shards).
      t.same(sub.events.map(label).sort(), [`${CH}:55`, 'resync'].sort(), 'the channel subscribed before the outage is delivered again; the failed subscribe left nothing behind');
      t.same(ctl.events, [{ kind: 'resync', epoch: 'e2' }], 'control topic restored');
      sub.events.length = 0;
      ctl.events.length = 0;
    });
  }

  await t.test('close: no more publishing, not reported as an outage', async (t) => {
    const before = sub.states.length;
    await Promise.all(all.map((b) => b.bus.close()));
    t.notOk(sub.bus.isUp());
    await t.rejects(pub.bus.publish([message(CH, 56)]), /closed/);
    t.equal(sub.states.length, before, 'closing reports no state change');
  });
}
