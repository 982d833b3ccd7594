// The CDC relay under faults: its stream cut, the relay stopped and replaced mid-stream. A
// client subscribed throughout must see every message once, in order.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { Relay } from '../src/cdc/relay.js';
import { createLogger } from '../src/log.js';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url);
const api = new Api(w.base, await w.token('alice'));
const relays: Relay[] = [];
t.teardown(() => Promise.all(relays.map((r) => r.stop())));

/** Posts `n` messages one after another, calling `fault` once after `at` of them. */
async function postThrough(channel: string, n: number, at: number, fault: () => Promise<void>): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 1; i <= n; i++) {
    seqs.push((await api.call('chat.postMessage', { channel, text: `m${i}` })).message.seq);
    if (i === at) await fault();
  }
  return seqs;
}

const slotLsn = async () =>
  (await w.node.pool.query<{ lsn: string }>(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`, [w.config.slot])).rows[0]!.lsn;

t.test('walsender terminated mid-stream: the relay reconnects from the slot, nothing lost or duplicated', async (t) => {
  const { channel } = await api.call('conversations.create', { name: 'cut' });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id);
  const restartsBefore = (await w.metric('walcast_relay_stream_restarts_total')) ?? 0;
  const seqs = await postThrough(channel.id, 120, 40, async () => {
    const r = await w.node.pool.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active`, [w.config.slot]);
    t.equal(r.rowCount, 1, 'terminated the walsender');
  });
  t.ok(contiguous(seqs, 1, 120));
  await ws.waitForSeq(channel.id, 120, 30_000);
  t.ok(contiguous(ws.seqs(channel.id), 1, 120), 'client saw 1..120 once each, in order');
  t.ok(((await w.metric('walcast_relay_stream_restarts_total')) ?? 0) > restartsBefore, 'the stream was restarted');
  await until(() => w.node.relay!.isStreaming(), 'relay streaming again');
});

t.test('relay stopped and a new one started mid-stream: at-least-once upstream, exactly-once at the client', async (t) => {
  const { channel } = await api.call('conversations.create', { name: 'swap' });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id);
  let replacement: Relay | null = null;
  const seqs = await postThrough(channel.id, 100, 30, async () => {
    await w.node.relay!.stop();
    t.notOk(w.node.relay!.isStreaming());
    // Messages committed while no relay runs wait in the WAL, held by the slot.
    for (let i = 0; i < 10; i++) await api.call('chat.postMessage', { channel: channel.id, text: `while down ${i}` });
    replacement = new Relay(
      { databaseUrl: db.url, slot: w.config.slot, heartbeatMs: 500 },
      w.node.pool,
      w.node.bus,
      createLogger('error'),
      w.node.metrics,
    );
    replacement.start();
  });
  // The replacement keeps serving the rest of this file.
  if (replacement) relays.push(replacement);
  t.equal(seqs.length, 100);
  await ws.waitForSeq(channel.id, 110, 30_000);
  t.ok(contiguous(ws.seqs(channel.id), 1, 110), 'client saw 1..110 once each, in order');
});

t.test('changes committed while no relay runs (an edit between its commit and its publish) are delivered once after', async (t) => {
  const { channel } = await api.call('conversations.create', { name: 'edit-gap' });
  // Random (incompressible), over 2 kB: PostgreSQL stores it out of line (TOAST).
  const big = randomBytes(2900).toString('base64');
  const m = (await api.call('chat.postMessage', { channel: channel.id, text: big })).message;
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id, 0);
  await ws.waitForSeq(channel.id, 1);
  const current = relays.at(-1) ?? w.node.relay!;
  await current.stop();
  // Committed, not published: the relay is gone between the commit and the bus.
  const edited = (await api.call('chat.update', { channel: channel.id, seq: m.seq, text: `${big} (edited)` })).message;
  await api.call('reactions.add', { channel: channel.id, seq: m.seq, name: 'fire' });
  await api.call('chat.delete', { channel: channel.id, seq: m.seq });
  const next = new Relay({ databaseUrl: db.url, slot: w.config.slot, heartbeatMs: 500 }, w.node.pool, w.node.bus, createLogger('error'), w.node.metrics);
  relays.push(next);
  next.start();
  await ws.waitForSeq(channel.id, 4, 30_000);
  t.ok(contiguous(ws.seqs(channel.id), 1, 4), 'each change once, in order');
  t.same(
    ws.changes(channel.id).slice(1).map((f) => f.type),
    ['message_changed', 'reaction_added', 'message_deleted'],
  );
  t.same(ws.changes(channel.id)[1]!.message, edited, 'the edit, with its whole (long) text');
});

t.test('acknowledgements follow publishes, and heartbeats move the slot while walcast tables are idle', async (t) => {
  await until(async () => (await w.node.pool.query(`SELECT active FROM pg_replication_slots WHERE slot_name = $1`, [w.config.slot])).rows[0]?.active === true, 'a relay streaming');
  await w.node.pool.query('CREATE TABLE IF NOT EXISTS unrelated (id serial primary key, payload text)');
  await w.node.pool.query(`INSERT INTO unrelated (payload) SELECT repeat('x', 500) FROM generate_series(1, 5000)`);
  const { rows } = await w.node.pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  const target = rows[0]!.lsn;
  await until(
    async () => (await w.node.pool.query<{ ok: boolean }>(`SELECT $1::pg_lsn <= $2::pg_lsn AS ok`, [target, await slotLsn()])).rows[0]!.ok,
    'confirmed_flush_lsn to pass the unrelated writes',
    20_000,
  );
  t.pass(`slot confirmed past ${target}`);
});
