// walcast behind a real PgBouncer in transaction mode, the way many deployments put a pooler in
// front of PostgreSQL: the api and the gateway connect through it, the relay directly (its
// replication connection cannot be pooled). In transaction mode consecutive transactions of one
// client connection run on whichever server connection is free, so a statement prepared by name
// in one transaction is missing (26000) or already there (42P05) in the next, unless the pooler
// tracks prepared statements (PgBouncer 1.21+, `max_prepared_statements`). Debian 12 ships 1.18.
import t from 'tap';
import pg from 'pg';
import { startPgBouncer } from '../harness/pgbouncer.js';
import { startRedis } from '../harness/redis.js';
import { startRole } from '../harness/roles.js';
import { Channels } from '../src/chat/channels.js';
import { MessageWriter } from '../src/chat/writer.js';
import { startTestDatabase, testPool } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';

const db = await startTestDatabase(t);
// Fewer server connections than the api's pool, so that its connections share them.
const bouncer = await startPgBouncer(db.url, { poolMode: 'transaction', poolSize: 2 });
t.teardown(() => bouncer.remove());

const redis = await startRedis();
t.teardown(() => redis.kill());
await startWalcast(t, db.url, { roles: ['relay'], env: { REDIS_URL: redis.url } });
const api = await startWalcast(t, bouncer.url, {
  roles: ['api', 'gateway'],
  env: { REDIS_URL: redis.url, WALCAST_WRITE_CONCURRENCY: '3', WALCAST_PG_POOL_MAX: '8' },
});

t.test('the writer notices that a named statement did not survive, switches to unnamed ones, and loses no post', async (t) => {
  const direct = testPool(t, db.url, 2);
  const pooled = testPool(t, bouncer.url, 4);
  const channel = (await new Channels(direct, { inviteUnknownUsers: true }).create('carol', 'writer-pooled', false)).id;
  const switched: string[] = [];
  const writer = new MessageWriter(pooled, { lanes: 2, batchMax: 10, observer: { batch: () => {}, queued: () => {}, unnamedStatements: (code) => switched.push(code) } });
  t.teardown(() => writer.close());

  // The first post prepares the statement on the server connection PgBouncer lent its client.
  t.equal((await writer.post({ channel, user: 'carol', text: 'first', clientMsgId: 'k1' })).message.seq, 1);
  t.same(switched, [], 'named while nothing went wrong');
  // PgBouncer lends the most recently used idle server connection first (server_round_robin = 0):
  // a transaction left open on another client takes that one, so the writer's next transaction
  // runs where its statement was never prepared.
  const blocker = new pg.Client({ connectionString: bouncer.url });
  await blocker.connect();
  t.teardown(() => blocker.end());
  await blocker.query('BEGIN');
  await blocker.query('SELECT 1');
  const second = await writer.post({ channel, user: 'carol', text: 'second', clientMsgId: 'k2' });
  await blocker.query('COMMIT');
  t.equal(second.message.seq, 2, 'the post was stored (run again, unnamed)');
  t.same(switched, ['26000'], 'switched once, because the statement was missing');
  t.equal((await writer.post({ channel, user: 'carol', text: 'third', clientMsgId: 'k3' })).message.seq, 3, 'and the next one too');
  const { rows } = await direct.query<{ seq: string; text: string }>('SELECT seq, text FROM messages WHERE channel_id = $1 ORDER BY seq', [channel]);
  t.same(rows.map((r) => [Number(r.seq), r.text]), [[1, 'first'], [2, 'second'], [3, 'third']], 'each stored once');
});

t.test('posts through a transaction-mode pooler: every one stored once, in order, delivered', async (t) => {
  const alice = new Api(api.base, await api.token('alice'));
  const channels: string[] = [];
  for (let i = 0; i < 4; i++) channels.push((await alice.call('conversations.create', { name: `pooled-${i}` })).channel.id);
  const ws = await WsClient.connect(api.ws, await api.token('alice'));
  t.teardown(() => ws.close());
  for (const c of channels) t.equal((await ws.subscribe(c)).type, 'subscribed');

  // Enough posts at once that batches of several lanes overlap, over and over, on 2 server connections.
  const perChannel = 100;
  const failures: string[] = [];
  await Promise.all(
    channels.map(async (channel) => {
      const inFlight = new Set<Promise<void>>();
      for (let i = 1; i <= perChannel; i++) {
        const p = alice.post('chat.postMessage', { channel, text: `m${i}`, client_msg_id: `${channel}-${i}` }).then((r) => {
          if (r.status !== 200) failures.push(`${r.status} ${JSON.stringify(r.body)}`);
        });
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        if (inFlight.size >= 8) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    }),
  );
  t.same(failures.slice(0, 5), [], 'every post answered 200');

  for (const channel of channels) {
    await ws.waitForSeq(channel, perChannel, 60_000);
    const seqs = ws.seqs(channel);
    t.ok(contiguous(seqs, 1, perChannel) && seqs.length === perChannel, `${channel}: seqs 1..${perChannel} once each, in order`);
    const history = await alice.call('conversations.history', { channel, limit: perChannel });
    t.equal(history.messages.length, perChannel, `${channel}: ${perChannel} rows stored`);
  }
});

t.test('reads through the pooler: history and catch-up by seq', async (t) => {
  const bob = new Api(api.base, await api.token('bob'));
  const channel = (await bob.call('conversations.create', { name: 'pooled-reads' })).channel.id;
  for (let i = 1; i <= 5; i++) await bob.call('chat.postMessage', { channel, text: `r${i}` });
  const ws = await WsClient.connect(api.ws, await api.token('bob'));
  t.teardown(() => ws.close());
  t.equal((await ws.subscribe(channel, 2)).type, 'subscribed');
  await until(() => ws.seqs(channel).length >= 3, 'catch-up of seqs 3..5');
  t.same(ws.seqs(channel), [3, 4, 5]);
});

t.test('a relay pointed at a pooler that cannot carry replication says so, and keeps trying', async (t) => {
  const relay = await startRole('relay', { DATABASE_URL: bouncer.url, REDIS_URL: redis.url, WALCAST_SECRET: 'pooler-test-secret-0123456789abcdef', WALCAST_SLOT: 'pooled_relay', WALCAST_LOG_LEVEL: 'warn' });
  t.teardown(() => relay.kill());
  await until(() => /unsupported startup parameter: replication/.test(relay.output()) && /point the relay at PostgreSQL itself/.test(relay.output()), 'the hint in the relay log', 30_000);
  t.equal((await fetch(`${relay.url}/readyz`)).status, 503, 'not ready: it does not stream');
  t.equal(relay.child.exitCode, null, 'still running, retrying');
});
