// RedisBus against a real redis-server of its own: ordering, unsubscribe, control events,
// failing fast while Redis is down, and recovery (state, subscriptions, publishing) after it returns.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { Redis } from 'ioredis';
import type { BusEvent } from '../src/bus/bus.js';
import { RedisBus } from '../src/bus/redis.js';
import type { Logger } from '../src/log.js';

const CH = 'CAAAAAAAAAAA1';
const OTHER = 'CAAAAAAAAAAA2';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function startRedis(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      cwd: tmpdir(),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve(child);
    });
  });
}

function stopRedis(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

async function waitFor(what: string, pred: () => boolean, ms = 8000): Promise<void> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Collects warnings so a test can see the bus complained instead of crashing. */
function captureLog(): Logger & { warns: string[] } {
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

const message = (channel: string, seq: number): BusEvent => ({
  kind: 'message',
  channel,
  seq,
  message: { id: `m${seq}`, channel, seq, user: 'u1', text: `hello ${seq}`, client_msg_id: null, created_at: new Date(0).toISOString() },
});

/** A bus with everything it delivers and every state change it reports. */
function tracked(url: string) {
  const log = captureLog();
  const bus = new RedisBus(url, log);
  const events: BusEvent[] = [];
  const states: boolean[] = [];
  bus.onEvent((e) => events.push(e));
  bus.onState((up) => states.push(up));
  return { bus, events, states, log };
}

if (spawnSync('redis-server', ['--version']).error) {
  t.fail('redis-server not found on PATH: install the Debian package redis-server (apt-get install redis-server)');
} else {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let server: ChildProcess | null = await startRedis(port);
  const buses: RedisBus[] = [];
  t.teardown(async () => {
    await Promise.all(buses.map((b) => b.close()));
    await stopRedis(server);
  });

  const pub = tracked(url);
  const sub = tracked(url);
  const ctl = tracked(url); // subscribes to no channel: control events only
  buses.push(pub.bus, sub.bus, ctl.bus);
  await waitFor('buses up', () => [pub, sub, ctl].every((b) => b.bus.isUp() && b.states.length === 1));

  t.test('messages of subscribed channels arrive in order', async (t) => {
    t.same(sub.states, [true], 'reported up once after the first connection');
    await sub.bus.subscribe(CH);
    await sub.bus.subscribe(CH); // idempotent
    const first = Array.from({ length: 50 }, (_, i) => message(CH, i + 1));
    await pub.bus.publish([...first, message(OTHER, 1)]);
    await pub.bus.publish([message(CH, 51), message(CH, 52)]);
    await waitFor('52 messages', () => sub.events.length >= 52);
    await sleep(50);
    t.same(
      sub.events.map((e) => (e.kind === 'message' ? `${e.channel}:${e.seq}` : e.kind)),
      Array.from({ length: 52 }, (_, i) => `${CH}:${i + 1}`),
      'in order, nothing from an unsubscribed channel',
    );
    t.same(sub.events[0], first[0], 'the event round-trips intact');
    t.equal(ctl.events.length, 0, 'a bus without channels gets no messages');
    sub.events.length = 0;
  });

  t.test('unsubscribe stops delivery', async (t) => {
    await sub.bus.unsubscribe(CH);
    await sub.bus.unsubscribe(CH); // idempotent
    await pub.bus.publish([message(CH, 53)]);
    await sleep(150);
    t.equal(sub.events.length, 0);
  });

  t.test('control events reach every bus, malformed payloads are dropped', async (t) => {
    const raw = new Redis(url);
    await raw.spublish('walcast:ctl', 'not json');
    await raw.spublish('walcast:ctl', JSON.stringify({ kind: 'message', channel: CH, seq: 1 }));
    raw.disconnect();
    const kick: BusEvent = { kind: 'kick', channel: CH, user: 'u2' };
    const resync: BusEvent = { kind: 'resync', epoch: 'e1' };
    await pub.bus.publish([kick, resync]);
    await waitFor('control events', () => ctl.events.length >= 2 && sub.events.length >= 2);
    t.same(ctl.events, [kick, resync], 'to a bus subscribed to no channel');
    t.same(sub.events, [kick, resync], 'and to one that unsubscribed its last channel');
    t.equal(ctl.log.warns.filter((w) => w.startsWith('redis bus: dropping')).length, 2, 'both bad payloads logged');
    sub.events.length = 0;
    ctl.events.length = 0;
  });

  t.test('while Redis is down, publish and subscribe fail fast', async (t) => {
    await sub.bus.subscribe(CH);
    await stopRedis(server);
    server = null;
    await waitFor('down reported', () => sub.states.length === 2);
    t.same(sub.states, [true, false]);
    t.notOk(sub.bus.isUp());
    const started = Date.now();
    await t.rejects(pub.bus.publish([message(CH, 54)]), 'publish rejects');
    await t.rejects(sub.bus.subscribe(OTHER), 'subscribe rejects');
    t.ok(Date.now() - started < 500, `rejected within ${Date.now() - started} ms`);
  });

  t.test('after Redis returns: up again, subscriptions restored, publishing works', async (t) => {
    server = await startRedis(port);
    await waitFor('up reported', () => sub.states.length === 3 && ctl.states.length === 3);
    t.same(sub.states, [true, false, true], 'down, then up');
    t.same(ctl.states, [true, false, true]);
    // The relay's way: retry until the publisher has reconnected too.
    let attempts = 0;
    for (;;) {
      attempts++;
      try {
        await pub.bus.publish([message(CH, 55), message(OTHER, 2), { kind: 'resync', epoch: 'e2' }]);
        break;
      } catch {
        await sleep(50);
      }
    }
    t.ok(pub.bus.isUp(), `publisher back after ${attempts} attempt(s)`);
    await waitFor('restored delivery', () => sub.events.length >= 2 && ctl.events.length >= 1);
    await sleep(50);
    t.same(
      sub.events.map((e) => (e.kind === 'message' ? `${e.channel}:${e.seq}` : e.kind)),
      [`${CH}:55`, 'resync'],
      'the channel subscribed before the outage is delivered again; the failed subscribe left nothing behind',
    );
    t.same(ctl.events, [{ kind: 'resync', epoch: 'e2' }], 'control topic restored');
  });

  t.test('close quits both connections', async (t) => {
    await Promise.all(buses.map((b) => b.close()));
    t.notOk(sub.bus.isUp());
    await t.rejects(pub.bus.publish([message(CH, 56)]), /closed/);
    t.same(sub.states, [true, false, true], 'closing is not reported as an outage');
  });
}
