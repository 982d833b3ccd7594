// Replication slot administration and safety, against a real PostgreSQL: the CLI commands,
// heartbeats keeping retained WAL bounded while walcast's tables are idle, and a slot that
// PostgreSQL invalidates (max_slot_wal_keep_size) recovered with no gap at the client.
import t from 'tap';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Relay } from '../src/cdc/relay.js';
import { createLogger } from '../src/log.js';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';

const BIN = fileURLToPath(new URL('../bin/walcast-dev.js', import.meta.url));
const db = await startTestDatabase(t);

function cli(args: string[], slot: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'slot', ...args], { env: { ...process.env, DATABASE_URL: db.url, WALCAST_SLOT: slot, WALCAST_LOG_LEVEL: 'error' } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

const q = async <T = any>(sql: string, params: unknown[] = []): Promise<T[]> => {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ connectionString: db.adminUrl });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
};

t.test('slot commands: create, status, check, drop, reset', async (t) => {
  const slot = 'cli_slot';
  let r = await cli(['status'], slot);
  t.equal(r.code, 1, 'status of a missing slot exits 1');
  t.match(r.out, /does not exist/);
  r = await cli(['check'], slot);
  t.equal(r.code, 2, 'check: a missing slot is critical');
  t.match(r.out, /^WALCAST SLOT CRITICAL/);

  r = await cli(['create'], slot);
  t.equal(r.code, 0);
  t.match(r.out, /created slot cli_slot/);
  r = await cli(['create'], slot);
  t.match(r.out, /already exists/, 'create is idempotent');

  r = await cli(['status', '--json'], slot);
  t.equal(r.code, 0);
  const s = JSON.parse(r.out);
  t.match(s, { slot_name: slot, exists: true, plugin: 'pgoutput', database: 'walcast', active: false, publication: 'walcast', publication_tables: ['public.channel_events', 'public.messages'] });
  t.type(s.retained_wal_bytes, 'number');
  t.type(s.lag_bytes, 'number');
  t.ok(s.wal_status === 'reserved' || s.wal_status === 'extended', `wal_status ${s.wal_status}`);

  r = await cli(['status'], slot);
  t.match(r.out, /retained WAL/);
  t.match(r.out, /publication\s+walcast: public.channel_events, public.messages/);

  r = await cli(['check'], slot);
  t.equal(r.code, 1, 'an idle slot nobody streams is a warning');
  t.match(r.out, /WARNING.*no relay is streaming/);
  r = await cli(['check', '--warn-bytes', '0', '--crit-bytes', '0'], slot);
  t.equal(r.code, 2, 'over the critical threshold');

  r = await cli(['create', '--failover'], 'failover_slot');
  t.equal(r.code, 0);
  t.same(await q(`SELECT failover FROM pg_replication_slots WHERE slot_name = 'failover_slot'`), [{ failover: true }], 'a PostgreSQL 17 failover slot');
  t.match((await cli(['status'], 'failover_slot')).out, /failover\s+yes/);
  await cli(['drop'], 'failover_slot');

  r = await cli(['reset'], slot);
  t.equal(r.code, 0);
  t.match(r.out, /dropped slot cli_slot[\s\S]*created slot cli_slot/);
  r = await cli(['drop'], slot);
  t.equal(r.code, 0);
  t.match(r.out, /re-sync/, 'drop says what it costs');
  t.same(await q('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]), []);
});

t.test('drop refuses while a relay streams the slot, unless --force', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'busy_slot' } });
  await until(() => w.node.relay!.isStreaming(), 'relay streaming');
  let r = await cli(['drop'], 'busy_slot');
  t.equal(r.code, 1);
  t.match(r.out, /is streaming to PID \d+/);
  r = await cli(['check'], 'busy_slot');
  t.equal(r.code, 0, 'healthy while streamed and caught up');
  t.match(r.out, /^WALCAST SLOT OK/);
  r = await cli(['drop', '--force'], 'busy_slot');
  t.equal(r.code, 0);
  // The relay notices, recreates the slot, and streams again.
  await until(async () => (await q('SELECT active FROM pg_replication_slots WHERE slot_name = $1', ['busy_slot']))[0]?.active === true, 'slot recreated and streamed', 20_000);
});

t.test('heartbeats keep retained WAL bounded while other tables take heavy writes', async (t) => {
  await q('CREATE TABLE IF NOT EXISTS busy_other (id bigserial primary key, payload text)');
  const retained = async (slot: string) =>
    Number((await q(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) AS b FROM pg_replication_slots WHERE slot_name = $1`, [slot]))[0].b);
  /** ~8 MB of WAL per round into a table walcast does not publish; the worst retained WAL seen. */
  const churn = async (slot: string, rounds: number) => {
    let worst = 0;
    for (let round = 0; round < rounds; round++) {
      await q(`INSERT INTO busy_other (payload) SELECT repeat(md5(g::text), 32) FROM generate_series(1, 6000) g`);
      // restart_lsn moves when the decoder passes a running-xacts record; a checkpoint writes one.
      await q('CHECKPOINT');
      await new Promise((r) => setTimeout(r, 300));
      worst = Math.max(worst, await retained(slot));
    }
    return worst;
  };
  const mb = (b: number) => (b / 1024 / 1024).toFixed(1);

  // The control first, alone: a relay with heartbeats off. Nothing it publishes changes, so it
  // acknowledges nothing and its slot pins every byte written elsewhere. (Heartbeats are
  // database-wide WAL messages: with another relay's heartbeats around, it would move too.)
  const control = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'nohb_slot', WALCAST_HEARTBEAT_MS: '0' } });
  await until(() => control.node.relay!.isStreaming(), 'control relay streaming');
  const pinned = await churn('nohb_slot', 5);
  t.ok(pinned > 32 * 1024 * 1024, `without heartbeats the slot pins what others write (${mb(pinned)} MB after ~40 MB)`);
  await control.close();
  // The walsender exits a moment after its client hung up.
  await until(async () => (await q(`SELECT active FROM pg_replication_slots WHERE slot_name = 'nohb_slot'`))[0]?.active === false, 'the control slot released');
  await q(`SELECT pg_drop_replication_slot('nohb_slot')`);

  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'hb_slot', WALCAST_HEARTBEAT_MS: '200' } });
  await until(() => w.node.relay!.isStreaming(), 'relay streaming');
  const worst = await churn('hb_slot', 5);
  t.ok(worst < 16 * 1024 * 1024, `with heartbeats retained WAL stays bounded (worst ${mb(worst)} MB while ~40 MB were written)`);
  t.comment(`control without heartbeats: ${mb(pinned)} MB retained; with heartbeats every 200 ms: worst ${mb(worst)} MB`);
  t.type(await w.metric('walcast_slot_retained_wal_bytes'), 'number', '/metrics reports the retained WAL');
});

t.test('a lost slot (max_slot_wal_keep_size exceeded) is recreated and clients see no gap', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'lost_slot', WALCAST_HEARTBEAT_MS: '500' } });
  await until(() => w.node.relay!.isStreaming(), 'relay streaming');
  const api = new Api(w.base, await w.token('alice'));
  const { channel } = await api.call('conversations.create', { name: 'survivor' });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id);
  for (let i = 1; i <= 10; i++) await api.call('chat.postMessage', { channel: channel.id, text: `before ${i}` });
  await ws.waitForSeq(channel.id, 10);

  // The relay goes away; the slot stops moving while WAL keeps being written.
  await w.node.relay!.stop();
  for (let i = 11; i <= 20; i++) await api.call('chat.postMessage', { channel: channel.id, text: `while down ${i}` });
  await q(`ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`);
  await q('SELECT pg_reload_conf()');
  t.teardown(async () => {
    await q('ALTER SYSTEM RESET max_slot_wal_keep_size');
    await q('SELECT pg_reload_conf()');
  });
  await q('CREATE TABLE IF NOT EXISTS filler (id bigserial primary key, payload text)');
  await until(
    async () => {
      await q(`INSERT INTO filler (payload) SELECT repeat(md5(g::text), 32) FROM generate_series(1, 20000) g`);
      await q('SELECT pg_switch_wal()');
      await q('CHECKPOINT');
      return (await q(`SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lost_slot'`))[0]?.wal_status === 'lost';
    },
    'PostgreSQL to invalidate the slot',
    60_000,
  );
  t.pass('the slot is lost');
  const check = await cli(['check'], 'lost_slot');
  t.equal(check.code, 2, 'check reports a lost slot as critical');
  t.match(check.out, /lost/);
  for (let i = 21; i <= 30; i++) await api.call('chat.postMessage', { channel: channel.id, text: `after loss ${i}` });

  const lostBefore = (await w.node.metrics.relaySlotLost.get()).values[0]?.value ?? 0;
  const relay = new Relay({ databaseUrl: db.url, slot: 'lost_slot', heartbeatMs: 500 }, w.node.pool, w.node.bus, createLogger('silent'), w.node.metrics);
  relay.start();
  t.teardown(() => relay.stop());
  await until(() => relay.isStreaming(), 'the new relay streaming', 20_000);
  t.equal((await w.node.metrics.relaySlotLost.get()).values[0]?.value, lostBefore + 1, 'the loss was counted in /metrics');
  // Messages 11..30 never went through a slot that could stream them: the resync brings them.
  await ws.waitForSeq(channel.id, 30, 20_000);
  for (let i = 31; i <= 35; i++) await api.call('chat.postMessage', { channel: channel.id, text: `after recovery ${i}` });
  await ws.waitForSeq(channel.id, 35);
  t.ok(contiguous(ws.seqs(channel.id), 1, 35), 'the client saw 1..35 once each, in order');
  const [row] = await q(`SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lost_slot'`);
  t.not(row?.wal_status, 'lost', 'a fresh slot streams');
});
