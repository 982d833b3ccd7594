// Group commit (src/chat/writer.ts) on a real PostgreSQL: posts that arrive together are stored
// in one transaction, and the contract holds anyway: per channel gapless seqs in arrival order,
// one row per client_msg_id, every failure with its own code, nothing taking a seq it should not,
// and a batch of thousands of rows reaching subscribers in order through the relay.
import t from 'tap';
import pg from 'pg';
import { Channels } from '../src/chat/channels.js';
import { MessageWriter, type PostResult } from '../src/chat/writer.js';
import { WalcastError } from '../src/errors.js';
import { MESSAGE_COLUMNS, toMessage } from '../src/chat/model.js';
import { startTopology } from '../harness/topology.js';
import { Tokens } from '../src/auth/tokens.js';
import { startTestDatabase, testPool } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';
import { ResumingClient, startAll } from './helpers/resuming.js';

const db = await startTestDatabase(t);
const pool = testPool(t, db.url, 8);
const channels = new Channels(pool, { inviteUnknownUsers: true });

async function seqsOf(channel: string): Promise<number[]> {
  const { rows } = await pool.query<{ seq: string }>('SELECT seq FROM messages WHERE channel_id = $1 ORDER BY seq', [channel]);
  return rows.map((r) => Number(r.seq));
}

const outcome = (p: Promise<PostResult>) =>
  p.then(
    (r) => ({ ok: true as const, seq: r.message.seq, id: r.message.id, created: r.created, text: r.message.text }),
    (e: unknown) => ({ ok: false as const, code: e instanceof WalcastError ? e.code : String(e) }),
  );

t.test('one batch, every kind of post: each gets its own outcome, seqs stay gapless', async (t) => {
  const writer = new MessageWriter(pool, { lanes: 1, batchMax: 1000 });
  t.teardown(() => writer.close());
  const batches: number[] = [];
  const observed = new MessageWriter(pool, { lanes: 1, batchMax: 1000, observer: { batch: (n) => batches.push(n), queued: () => {} } });
  t.teardown(() => observed.close());
  const a = await channels.create('alice', 'batch-a', false);
  const b = await channels.create('alice', 'batch-b', false);
  await channels.invite(b.id, 'alice', ['bob']);
  const earlier = await writer.post({ channel: a.id, user: 'alice', text: 'stored before', clientMsgId: 'k-old' });
  t.equal(earlier.message.seq, 1);

  // Enqueued in one synchronous run: they share the first batch.
  const results = await Promise.all(
    [
      observed.post({ channel: a.id, user: 'alice', text: 'a1', clientMsgId: null }),
      observed.post({ channel: b.id, user: 'bob', text: 'b1', clientMsgId: 'kb' }),
      observed.post({ channel: a.id, user: 'mallory', text: 'not a member', clientMsgId: null }),
      observed.post({ channel: a.id, user: 'alice', text: 'retry of an earlier post', clientMsgId: 'k-old' }),
      observed.post({ channel: 'CZZZZZZZZZZZZ', user: 'alice', text: 'no such channel', clientMsgId: null }),
      observed.post({ channel: a.id, user: 'alice', text: 'twin', clientMsgId: 'k-twin' }),
      observed.post({ channel: a.id, user: 'alice', text: 'twin (second copy)', clientMsgId: 'k-twin' }),
      observed.post({ channel: b.id, user: 'alice', text: 'b2', clientMsgId: 'kb' }), // same key, other user: a new message
      observed.post({ channel: a.id, user: 'alice', text: 'a-last', clientMsgId: null }),
    ].map(outcome),
  );
  t.same(batches, [8], 'one transaction for all of them (the twin joined its sibling)');
  const [a1, b1, mallory, retry, missing, twin1, twin2, b2, aLast] = results as any[];
  t.match(a1, { ok: true, seq: 2, created: true });
  t.match(b1, { ok: true, seq: 2, created: true }, 'seq 1 is bob\'s member_joined');
  t.match(mallory, { ok: false, code: 'not_in_channel' });
  t.match(retry, { ok: true, seq: 1, id: earlier.message.id, created: false, text: 'stored before' }, 'the retry returns the first message');
  t.match(missing, { ok: false, code: 'channel_not_found' });
  t.match(twin1, { ok: true, seq: 3, created: true, text: 'twin' });
  t.same(twin2, twin1, 'both copies of one client_msg_id get the same, single row');
  t.match(b2, { ok: true, seq: 3, created: true });
  t.match(aLast, { ok: true, seq: 4, created: true }, 'arrival order within the channel');
  t.same(await seqsOf(a.id), [1, 2, 3, 4], 'channel a: gapless, nothing consumed by the failures');
  t.same(await seqsOf(b.id), [2, 3]);
  const { rows } = await pool.query('SELECT last_seq FROM channels WHERE id = ANY($1) ORDER BY id', [[a.id, b.id].sort()]);
  t.same(rows.map((r) => Number(r.last_seq)), [a.id, b.id].sort().map((id) => (id === a.id ? 4 : 3)), 'last_seq matches the log');
});

t.test('a stored post is answered with exactly the message the database holds', async (t) => {
  // The writer builds a stored post's message from its input and the seq and created_at the
  // database chose (walcast_post_batch2 returns no more): it must match the row, field for field
  // and in the same key order, as history and the relay will serve it.
  const writer = new MessageWriter(pool, { lanes: 1, batchMax: 100 });
  t.teardown(() => writer.close());
  const c = await channels.create('alice', 'answers', false);
  const first = await writer.post({ channel: c.id, user: 'alice', text: 'parent', clientMsgId: 'k-parent' });
  const results = await Promise.all([
    writer.post({ channel: c.id, user: 'alice', text: 'plain', clientMsgId: null }),
    writer.post({ channel: c.id, user: 'alice', text: 'e\u0301 \u{1F44D}\u{1F3FD} \u05E9\u05DC\u05D5\u05DD \t"quoted"\\', clientMsgId: 'k-\u{1F600}' }),
    writer.post({ channel: c.id, user: 'alice', text: 'a reply', clientMsgId: null, replyTo: first.message.seq }),
    writer.post({ channel: c.id, user: 'alice', text: 'x'.repeat(4000), clientMsgId: 'k-long' }),
    writer.post({ channel: c.id, user: 'alice', text: 'retry', clientMsgId: 'k-parent' }),
  ]);
  t.same(results.map((r) => r.created), [true, true, true, true, false]);
  for (const r of [first, ...results]) {
    const { rows } = await pool.query(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE id = $1`, [r.message.id]);
    t.equal(JSON.stringify(r.message), JSON.stringify(toMessage(rows[0])), `seq ${r.message.seq}: the answer is the stored row`);
  }
});

t.test('a post that breaks its transaction fails alone; its batch-mates are stored', async (t) => {
  const batches: number[] = [];
  const writer = new MessageWriter(pool, { lanes: 1, batchMax: 100, observer: { batch: (n) => batches.push(n), queued: () => {} } });
  t.teardown(() => writer.close());
  const c = await channels.create('alice', 'poison', false);
  // A text PostgreSQL refuses (NUL): the API's schema never lets one through, so this stands for
  // any unexpected failure of one row.
  const results = await Promise.all(
    ['ok 1', 'bad \u0000 text', 'ok 2'].map((text) => outcome(writer.post({ channel: c.id, user: 'alice', text, clientMsgId: null }))),
  );
  t.match(results[0], { ok: true, seq: 1 });
  t.match(results[1], { ok: false });
  t.match(results[2], { ok: true, seq: 2 });
  t.same(await seqsOf(c.id), [1, 2], 'no gap where the bad post was');
  t.same(batches, [1, 1], 'after the failed batch, each post went alone (the failing one is not counted)');
});

t.test('a second lane opens at once for a lone post, and for a backlog only as large as the batch committing', async (t) => {
  // The first batch is held open inside its transaction (the hook) until released.
  let release!: () => void;
  let held = 0;
  const gate = new Promise<void>((r) => (release = r));
  const batches: number[] = [];
  const writer = new MessageWriter(pool, {
    lanes: 2,
    batchMax: 100,
    observer: { batch: (n) => batches.push(n), queued: () => {} },
    hooks: { beforeCommit: async () => void (held++ === 0 && (await gate)) },
  });
  t.teardown(() => writer.close());
  const [a, b, c] = await Promise.all(['lanes-a', 'lanes-b', 'lanes-c'].map((n) => channels.create('alice', n, false)));
  const post = (ch: string, text: string) => writer.post({ channel: ch, user: 'alice', text, clientMsgId: null });
  // Three posts in one run: one batch, held.
  const first = Promise.all([post(a!.id, 'a1'), post(a!.id, 'a2'), post(a!.id, 'a3')]);
  await until(async () => held === 1, 'the first batch is inside its transaction');
  // Two posts on another channel: fewer than the batch committing, so they wait for a lane.
  let twoDone = false;
  void Promise.all([post(b!.id, 'b1'), post(b!.id, 'b2')]).then(() => (twoDone = true));
  // The writer decides in a microtask: after a macrotask turn they are either taken or waiting.
  await new Promise((r) => setImmediate(r));
  t.equal(writer.queueDepth, 2, 'two posts wait while a batch of three commits');
  // A third makes three: as many as the held batch, so the second lane takes all three now.
  const third = post(c!.id, 'c1');
  await until(async () => twoDone, 'the backlog went through the second lane while the first was held');
  await third;
  t.same(batches, [3], 'the waiting posts went together, as one batch of three');
  release();
  await first;
  t.same(batches, [3, 3]);

  // Nothing in flight: a lone post goes at once, and a second one opens the other lane (the
  // batch committing holds one post) instead of waiting for it.
  let release2!: () => void;
  const gate2 = new Promise<void>((r) => (release2 = r));
  held = 0;
  const w2 = new MessageWriter(pool, { lanes: 2, batchMax: 100, hooks: { beforeCommit: async () => void (held++ === 0 && (await gate2)) } });
  t.teardown(() => w2.close());
  const lone = w2.post({ channel: a!.id, user: 'alice', text: 'lone', clientMsgId: null });
  await until(async () => held === 1, 'the lone post is in its transaction at once');
  await w2.post({ channel: b!.id, user: 'alice', text: 'second', clientMsgId: null });
  t.pass('the second post was stored while the first was held');
  release2();
  await lone;
  t.same(await seqsOf(b!.id), [1, 2, 3]);
});

/** Two lanes; the first batch waits inside its transaction (the bench hook) until `release()`. */
function gatedWriter(lanePool: pg.Pool) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let held = 0;
  const writer = new MessageWriter(lanePool, { lanes: 2, batchMax: 100, hooks: { beforeCommit: async () => void (held++ === 0 && (await gate)) } });
  return { writer, release, held: () => held };
}

t.test("a lane's kept connection that dies meanwhile is never handed a batch", async (t) => {
  // Lane 1 holds a batch open; lane 2 stores a lone post and keeps its connection (the writer is
  // not idle). That connection's backend is terminated; the next post must get another one.
  const lanePool = testPool(t, db.url, 4);
  const { writer, release, held } = gatedWriter(lanePool);
  t.teardown(() => writer.close());
  const [a, b] = await Promise.all(['kept-a', 'kept-b'].map((n) => channels.create('alice', n, false)));
  const first = writer.post({ channel: a!.id, user: 'alice', text: 'held open', clientMsgId: null });
  await until(async () => held() === 1, 'the first batch is inside its transaction');
  await writer.post({ channel: b!.id, user: 'alice', text: 'lone', clientMsgId: null });
  const admin = new pg.Client(db.url);
  await admin.connect();
  t.teardown(() => admin.end());
  const { rows } = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE state = 'idle' AND pid <> pg_backend_pid() AND datname = current_database() AND application_name = ''`,
  );
  t.ok(rows.length >= 1, 'the kept connection is idle');
  await admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid', [rows.map((r) => r.pid)]);
  await until(async () => (await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1)', [rows.map((r) => r.pid)])).rowCount === 0, 'the backends are gone');
  // Let the client see the end of its connection (a poll phase of the event loop).
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  const next = await writer.post({ channel: b!.id, user: 'alice', text: 'after', clientMsgId: null });
  t.equal(next.message.seq, 2, 'stored on a live connection');
  release();
  t.equal((await first).message.seq, 1);
});

t.test('close() during a batch: new posts are refused, the batch in flight is answered, no connection is kept', async (t) => {
  const lanePool = testPool(t, db.url, 4);
  const { writer, release, held } = gatedWriter(lanePool);
  const c = await channels.create('alice', 'closing', false);
  const first = writer.post({ channel: c.id, user: 'alice', text: 'in flight', clientMsgId: null });
  const queued = writer.post({ channel: c.id, user: 'alice', text: 'queued behind it', clientMsgId: null });
  await until(async () => held() === 1, 'the first batch is inside its transaction');
  let closed = false;
  const closing = writer.close().then(() => (closed = true));
  await t.rejects(writer.post({ channel: c.id, user: 'alice', text: 'too late', clientMsgId: null }), { code: 'unavailable' });
  t.notOk(closed, 'close() waits for the batch in flight');
  release();
  t.equal((await first).message.seq, 1);
  t.equal((await queued).message.seq, 2, 'the queue is finished too');
  await closing;
  t.equal(lanePool.totalCount - lanePool.idleCount, 0, 'every connection is back in the pool');
});

t.test('64 concurrent posters over 8 channels, good and bad posts mixed, through the API', async (t) => {
  const w = await startWalcast(t, db.url, {
    env: { WALCAST_SLOT: 'write_mix', WALCAST_POST_RATE_USER: '0', WALCAST_POST_RATE_CHANNEL: '0', WALCAST_MAX_TEXT_CHARS: '200' },
  });
  const alice = new Api(w.base, await w.token('alice'));
  const eve = new Api(w.base, await w.token('eve'));
  const chans: string[] = [];
  for (let i = 0; i < 8; i++) chans.push((await alice.call('conversations.create', { name: `mix-${i}` })).channel.id);
  const POSTERS = 64;
  const PER = 12;
  const good = new Map<string, { channel: string; clientMsgId: string }>(); // client_msg_id → channel
  const codes: Record<string, number> = {};
  const count = (c: string) => (codes[c] = (codes[c] ?? 0) + 1);
  await Promise.all(
    Array.from({ length: POSTERS }, async (_, p) => {
      for (let i = 0; i < PER; i++) {
        const channel = chans[(p + i) % chans.length]!;
        const kind = (p * PER + i) % 6;
        if (kind === 0) {
          const r = await eve.post('chat.postMessage', { channel, text: 'not a member' });
          count(r.body.error);
          t.equal(r.status, 403);
        } else if (kind === 1) {
          const r = await alice.post('chat.postMessage', { channel, text: 'x'.repeat(201) });
          count(r.body.error);
          t.equal(r.status, 400);
        } else {
          const key = `p${p}-i${i}`;
          const body = { channel, text: `from ${p}: ${i}`, client_msg_id: key };
          // kind 2: the same post twice at once (the same batch, usually); kind 3: a retry after.
          const tries = kind === 2 ? await Promise.all([alice.post('chat.postMessage', body), alice.post('chat.postMessage', body)]) : [await alice.post('chat.postMessage', body)];
          if (kind === 3) tries.push(await alice.post('chat.postMessage', body));
          for (const r of tries) t.equal(r.status, 200);
          const ids = new Set(tries.map((r) => r.body.message.id));
          if (ids.size !== 1) t.fail(`${key}: ${ids.size} different messages for one client_msg_id`);
          good.set(key, { channel, clientMsgId: key });
        }
      }
    }),
  );
  t.same(codes, { not_in_channel: (POSTERS * PER) / 6, msg_too_long: (POSTERS * PER) / 6 }, 'every failure answered with its own code');
  for (const ch of chans) {
    const seqs = await seqsOf(ch);
    t.ok(contiguous(seqs, 1, seqs.length), `${ch}: seqs 1..${seqs.length}, no gap`);
  }
  const { rows } = await pool.query<{ n: string; keys: string }>(
    `SELECT count(*) AS n, count(DISTINCT client_msg_id) AS keys FROM messages WHERE channel_id = ANY($1)`,
    [chans],
  );
  t.equal(Number(rows[0]!.n), good.size, `one row per accepted post (${good.size})`);
  t.equal(Number(rows[0]!.keys), good.size);
  const sizes = (await w.node.metrics.writeBatchSize.get()).values.find((v) => v.metricName === 'walcast_write_batch_size_count');
  const sum = (await w.node.metrics.writeBatchSize.get()).values.find((v) => v.metricName === 'walcast_write_batch_size_sum');
  t.ok(sizes && sum && sum.value > sizes.value, `posts were grouped: ${sum?.value} posts in ${sizes?.value} transactions`);
});

t.test('a 2000-row transaction goes through the relay and reaches subscribers in order', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'write_big', WALCAST_WRITE_BATCH_MAX: '2000' } });
  const alice = new Api(w.base, await w.token('alice'));
  const chans: string[] = [];
  for (let i = 0; i < 4; i++) chans.push((await alice.call('conversations.create', { name: `big-${i}` })).channel.id);
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  for (const ch of chans) await ws.subscribe(ch);
  // Straight to a writer with a batch of 2000: one transaction, 500 rows per channel.
  const writer = new MessageWriter(pool, { lanes: 1, batchMax: 2000, observer: { batch: (n) => t.equal(n, 2000, 'one transaction'), queued: () => {} } });
  t.teardown(() => writer.close());
  const posts = Array.from({ length: 2000 }, (_, i) => writer.post({ channel: chans[i % 4]!, user: 'alice', text: `big ${i}`, clientMsgId: null }));
  await Promise.all(posts);
  for (const ch of chans) await ws.waitForSeq(ch, 500, 60_000);
  for (const ch of chans) t.ok(contiguous(ws.seqs(ch), 1, 500), `${ch}: 1..500 once, in order`);
});

t.test('the api killed (SIGKILL) while batches are in flight: one copy of each message, gapless, delivered once', async (t) => {
  const topo = await startTopology({ databaseUrl: db.url, relays: 1, gateways: 1, env: { WALCAST_SLOT: 'write_kill', WALCAST_POST_RATE_USER: '0', WALCAST_POST_RATE_CHANNEL: '0' } });
  t.teardown(() => topo.close());
  const token = await new Tokens(topo.secret).sign('alice', 3600);
  const api = () => new Api(topo.api.url, token);
  const chans: string[] = [];
  for (let i = 0; i < 4; i++) chans.push((await api().call('conversations.create', { name: `kill-${i}` })).channel.id);
  const subs = chans.map((ch, i) => new ResumingClient(`sub${i}`, [`ws://127.0.0.1:${topo.gateways[0]!.port}/v1/ws`], token, ch, 0));
  await startAll(subs);
  t.teardown(() => Promise.all(subs.map((s) => s.stop())));

  const PER = 60;
  let killed = false;
  const attempts: number[] = [];
  await Promise.all(
    Array.from({ length: 16 }, async (_, p) => {
      const channel = chans[p % 4]!;
      for (let i = 0; i < PER / 4; i++) {
        const body = { channel, text: `p${p} ${i}`, client_msg_id: `p${p}-${i}` };
        for (let n = 1; ; n++) {
          const r = await api().post('chat.postMessage', body).catch(() => null);
          if (r?.status === 200) {
            attempts.push(n);
            break;
          }
          await new Promise((res) => setTimeout(res, 50));
        }
        if (!killed && p === 0 && i === 5) {
          killed = true;
          await topo.api.kill('SIGKILL');
          topo.api = await topo.api.restart();
        }
      }
    }),
  );
  t.ok(attempts.some((n) => n > 1), 'some posts needed a retry across the kill');
  for (const ch of chans) {
    const { rows } = await pool.query<{ seq: string; client_msg_id: string }>('SELECT seq, client_msg_id FROM messages WHERE channel_id = $1 ORDER BY seq', [ch]);
    const seqs = rows.map((r) => Number(r.seq));
    t.ok(contiguous(seqs, 1, seqs.length), `${ch}: gapless (${seqs.length} rows)`);
    t.equal(new Set(rows.map((r) => r.client_msg_id)).size, rows.length, `${ch}: one row per client_msg_id`);
    t.equal(rows.length, (16 / 4) * (PER / 4), `${ch}: every post stored`);
  }
  await until(() => subs.every((s, i) => s.seqs.length >= (16 / 4) * (PER / 4)), 'subscribers caught up', 60_000);
  for (const s of subs) t.ok(contiguous(s.seqs, 1, s.seqs.length), `${s.name}: every stored message once, in order`);
});
