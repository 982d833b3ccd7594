// walcast behind a real PgBouncer in transaction mode, the way many deployments put a pooler in
// front of PostgreSQL: the api and the gateway connect through it, the relay directly (its
// replication connection cannot be pooled). In transaction mode consecutive transactions of one
// client connection run on whichever server connection is free, so a statement prepared by name
// in one transaction is missing (26000) or already there (42P05) in the next, unless the pooler
// tracks prepared statements (PgBouncer 1.21+ with `max_prepared_statements` above 0, the default
// since 1.24). Debian 12 ships 1.18; on a newer one the harness sets it to 0, the pooler that loses them.
import t, { type Test } from 'tap';
import pg from 'pg';
import { pgBouncerAtLeast, startPgBouncer } from '../harness/pgbouncer.js';
import { startRedis } from '../harness/redis.js';
import { startRole } from '../harness/roles.js';
import { Channels } from '../src/chat/channels.js';
import { BATCH_STATEMENT, MessageWriter, type WriteHooks } from '../src/chat/writer.js';
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

// One server connection behind PgBouncer: what each client prepares by name is seen, or removed,
// by every other client, which makes each case below happen on demand.
const single = await startPgBouncer(db.url, { poolMode: 'transaction', poolSize: 1 });
t.teardown(() => single.remove());

/** A writer on its own pool through `single`, recording its batches and its switch to unnamed statements. */
async function pooledWriter(t: Test, name: string, hooks?: WriteHooks) {
  const direct = testPool(t, db.url, 1);
  const channel = (await new Channels(direct, { inviteUnknownUsers: true }).create('carol', name, false)).id;
  const seen = { batches: [] as number[], switched: [] as string[] };
  const writer = new MessageWriter(testPool(t, single.url, 4), {
    lanes: 2,
    batchMax: 10,
    hooks,
    observer: { batch: (n) => seen.batches.push(n), queued: () => {}, unnamedStatements: (code) => seen.switched.push(code) },
  });
  t.teardown(() => writer.close());
  const other = new pg.Client({ connectionString: single.url });
  other.on('error', () => {});
  await other.connect();
  t.teardown(() => other.end());
  const stored = async () =>
    (await direct.query<{ seq: string; text: string }>('SELECT seq, text FROM messages WHERE channel_id = $1 ORDER BY seq', [channel])).rows.map((r) => [Number(r.seq), r.text]);
  return { channel, writer, seen, other, stored };
}

const post = (writer: MessageWriter, channel: string, text: string, key: string) => writer.post({ channel, user: 'carol', text, clientMsgId: key });

t.test('a statement gone between two transactions (26000): the batch goes again, unnamed; a retry that arrived meanwhile joins it', async (t) => {
  const { channel, writer, seen, other, stored } = await pooledWriter(t, 'lost-statement');
  t.equal((await post(writer, channel, 'first', 'k1')).message.seq, 1);
  t.same(seen.switched, [], 'named while nothing went wrong');
  // It succeeds only if the writer did prepare the statement by name on the one server connection.
  await other.query(`DEALLOCATE ${BATCH_STATEMENT}`);
  seen.batches.length = 0;
  const second = post(writer, channel, 'second', 'k2');
  const third = post(writer, channel, 'third', 'k3');
  // Once this runs the batch of both is taken (the channel is busy): a copy of k2 waits for it.
  await new Promise<void>((resolve) => queueMicrotask(resolve));
  const retry = post(writer, channel, 'second (a retry)', 'k2');
  const [r2, r3, rr] = await Promise.all([second, third, retry]);
  t.same(seen.switched, ['26000'], 'switched once, because the statement was missing');
  t.same([r2.message.seq, r3.message.seq], [2, 3], 'both stored');
  t.equal(rr.message.id, r2.message.id, 'the retry is answered with the message of its first copy');
  t.same(seen.batches, [2], 'in one batch, the retry joined');
  t.equal((await post(writer, channel, 'fourth', 'k4')).message.seq, 4, 'and the next post too');
  t.same(await stored(), [[1, 'first'], [2, 'second'], [3, 'third'], [4, 'fourth']], 'each stored once, in order');
});

t.test('a statement already there (42P05) when the writer prepares its own: unnamed from the first post', async (t) => {
  const { channel, writer, seen, other, stored } = await pooledWriter(t, 'taken-statement');
  // Another client's statement of that name, on the one server connection.
  await other.query(`PREPARE ${BATCH_STATEMENT} AS SELECT 1`);
  // For the tests after this one. Not by name: a server connection replaced since would not have it.
  t.teardown(() => other.query('DEALLOCATE ALL'));
  t.equal((await post(writer, channel, 'first', 'k1')).message.seq, 1, 'stored');
  t.same(seen.switched, ['42P05'], 'switched, because the name was taken');
  t.same(await stored(), [[1, 'first']]);
});

t.test('the same inside an explicit transaction (the benchmarks\' hooks): rolled back, then stored once', async (t) => {
  const committed: string[] = [];
  const { channel, writer, seen, other, stored } = await pooledWriter(t, 'lost-in-transaction', {
    beforeCommit: async (messages) => void committed.push(...messages.map((m) => m.text)),
  });
  t.equal((await post(writer, channel, 'first', 'k1')).message.seq, 1);
  await other.query(`DEALLOCATE ${BATCH_STATEMENT}`);
  t.equal((await post(writer, channel, 'second', 'k2')).message.seq, 2, 'stored');
  t.same(seen.switched, ['26000']);
  t.same(committed, ['first', 'second'], 'the hook saw each post once: the failed attempt never reached it');
  t.same(await stored(), [[1, 'first'], [2, 'second']]);
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

// PgBouncer 1.23+ passes replication connections through: the relay then streams through it.
const passesReplication = pgBouncerAtLeast(1, 23);
t.test('a relay pointed at a pooler that cannot carry replication says so, and keeps trying', { skip: passesReplication && 'this PgBouncer (1.23+) passes replication connections through' }, async (t) => {
  const relay = await startRole('relay', { DATABASE_URL: bouncer.url, REDIS_URL: redis.url, WALCAST_SECRET: 'pooler-test-secret-0123456789abcdef', WALCAST_SLOT: 'pooled_relay', WALCAST_LOG_LEVEL: 'warn' });
  t.teardown(() => relay.kill());
  await until(() => /unsupported startup parameter: replication/.test(relay.output()) && /point the relay at PostgreSQL itself/.test(relay.output()), 'the hint in the relay log', 30_000);
  t.equal((await fetch(`${relay.url}/readyz`)).status, 503, 'not ready: it does not stream');
  t.equal(relay.child.exitCode, null, 'still running, retrying');
});
