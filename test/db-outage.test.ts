// PostgreSQL goes away and comes back: the API answers 503 `unavailable` (never a crash or a
// hang), the gateway keeps its sockets, the relay reconnects, and nothing committed is lost.
import t from 'tap';
import { startTestDatabase, testPool } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url);
const api = new Api(w.base, await w.token('alice'));

t.test('database down: clear 503s; database back: delivery resumes without loss', async (t) => {
  const { channel } = await api.call('conversations.create', { name: 'outage' });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id);
  for (let i = 1; i <= 5; i++) await api.call('chat.postMessage', { channel: channel.id, text: `before ${i}` });
  await ws.waitForSeq(channel.id, 5);

  await db.stop();
  const started = Date.now();
  const post = await api.post('chat.postMessage', { channel: channel.id, text: 'lost?' });
  t.equal(post.status, 503);
  t.same(post.body.error, 'unavailable');
  t.ok(Number(post.headers.get('retry-after')) >= 1, 'with Retry-After');
  const read = await api.get('conversations.history', { channel: channel.id });
  t.equal(read.status, 503);
  t.ok(Date.now() - started < 15_000, 'answered promptly, no hang');
  const ready = await fetch(`${w.base}/readyz`);
  t.equal(ready.status, 503, 'not ready without the database');
  const other = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => other.close());
  const refused = await other.subscribe(channel.id);
  t.same(refused, { type: 'error', code: 'unavailable', channel: channel.id }, 'subscribe answers unavailable');
  // A user the gateway never saw is recorded in the background: the socket does not wait for it.
  const newcomer = await WsClient.connect(w.ws, await w.token('newcomer'));
  t.teardown(() => newcomer.close());
  t.notOk(newcomer.closed, 'a user never seen before still gets a socket');
  t.notOk(ws.closed, 'existing sockets stay open');

  await db.start();
  await until(() => w.node.relay!.isStreaming(), 'relay streaming again', 30_000);
  for (let i = 6; i <= 10; i++) {
    // The pool's idle connections died with the server: the first calls may still fail.
    await until(async () => (await api.post('chat.postMessage', { channel: channel.id, text: `after ${i}`, client_msg_id: `a${i}` })).status === 200, `post ${i}`, 15_000);
  }
  await ws.waitForSeq(channel.id, 10, 20_000);
  t.ok(contiguous(ws.seqs(channel.id), 1, 10), 'the subscriber saw 1..10 once each, in order');
  t.equal((await fetch(`${w.base}/readyz`)).status, 200, 'ready again');
  // Recording the newcomer could not succeed while the database was down: it is retried (the
  // insert's own reconnect, or this next socket), and the row appears once the database is back.
  const again = await WsClient.connect(w.ws, await w.token('newcomer'));
  t.teardown(() => again.close());
  const pool = testPool(t, db.url, 1);
  await until(async () => (await pool.query('SELECT 1 FROM users WHERE id = $1', ['newcomer'])).rowCount === 1, 'the newcomer recorded');
  t.pass('recorded once the database is back');
});
