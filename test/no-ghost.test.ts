// No ghost, made deterministic. PostgreSQL flushes a commit to the WAL (where the relay can read
// it) before the committing session leaves the set of running transactions that new snapshots
// consult. Normally that window is microseconds; with a synchronous standby that never answers
// it lasts until someone gives up waiting, which makes it testable: the post is committed in the
// WAL, the relay decodes it, yet `chat.getMessage` cannot see it. A frame sent then would be a
// ghost. The relay must hold the transaction back until it is visible.
import t from 'tap';
import pg from 'pg';
import { startTestDatabase, untilCommitsWaitForStandby } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'no_ghost' } });
const alice = new Api(w.base, await w.token('alice'));
// ALTER SYSTEM needs the superuser (walcast's own role is not one).
const admin = new pg.Client({ connectionString: db.adminUrl });
await admin.connect();
t.teardown(() => admin.end());


t.test('a transaction committed in the WAL but not yet visible is not delivered until it is', async (t) => {
  const { channel } = await alice.call('conversations.create', { name: 'ghost-window' });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id);
  // Every frame is checked the moment it arrives, as a client rendering it would fetch it.
  const lookups: Promise<number>[] = [];
  ws.onFrame((f) => {
    if (f.type === 'message') lookups.push(alice.get('chat.getMessage', { channel: channel.id, seq: f.seq! }).then((r) => r.status));
  });

  // Commits now wait for a synchronous standby that does not exist: flushed, not yet visible.
  await admin.query(`ALTER SYSTEM SET synchronous_standby_names = 'walcast_test_nobody'`);
  await admin.query('SELECT pg_reload_conf()');
  t.teardown(async () => {
    await admin.query('ALTER SYSTEM RESET synchronous_standby_names');
    await admin.query('SELECT pg_reload_conf()');
  });
  // pg_reload_conf() does not wait for the setting to take effect: wait until commits wait.
  await untilCommitsWaitForStandby(db.adminUrl);
  const posting = alice.post('chat.postMessage', { channel: channel.id, text: 'in the window' });
  await until(
    async () => (await admin.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query LIKE '%walcast_post_batch%'`)).rowCount === 1,
    'the post to be committed locally and waiting for the standby',
  );
  // The relay has read the commit from the WAL: it holds it back (or, if it were wrong, sent it).
  await until(
    async () => ((await w.metric('walcast_relay_pipeline_depth')) ?? 0) >= 1 || ws.messages(channel.id).length > 0,
    'the relay to decode the transaction',
    30_000,
  );
  t.equal((await alice.get('chat.getMessage', { channel: channel.id, seq: 1 })).status, 404, 'the row is invisible to other sessions');
  t.equal(ws.messages(channel.id).length, 0, 'and no frame went out for it');

  // The standby requirement goes away: the commit finishes and becomes visible.
  await admin.query('ALTER SYSTEM RESET synchronous_standby_names');
  await admin.query('SELECT pg_reload_conf()');
  t.equal((await posting).status, 200, 'the post completes');
  await ws.waitForSeq(channel.id, 1);
  t.same(await Promise.all(lookups), [200], 'the frame arrived only once the message could be fetched');
});
