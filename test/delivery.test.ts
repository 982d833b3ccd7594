// The guarantees of docs/protocol.md on one node: order, exactly once, no gap, no ghost, resume.
import t from 'tap';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast } from './helpers/walcast.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url);
const alice = new Api(w.base, await w.token('alice'));
const bob = new Api(w.base, await w.token('bob'));

t.test('a posted message reaches a live subscriber, committed and complete', async (t) => {
  const { channel } = await alice.call('conversations.create', { name: 'live' });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  const sub = await ws.subscribe(channel.id);
  t.same(sub, { type: 'subscribed', channel: channel.id, seq: 0, since: 0 });
  const { message } = await alice.call('chat.postMessage', { channel: channel.id, text: 'hello' });
  await ws.waitForSeq(channel.id, 1);
  const frame = ws.messages(channel.id)[0]!;
  t.same(frame, { type: 'message', channel: channel.id, seq: 1, message });
  t.match(message, { channel: channel.id, seq: 1, user: 'alice', text: 'hello', client_msg_id: null });
  t.match(message.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

t.test('no ghost: getMessage succeeds the moment a frame arrives', async (t) => {
  const { channel } = await alice.call('conversations.create', { name: 'ghosts' });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id);
  const checks: Promise<number>[] = [];
  ws.onFrame((f) => {
    if (f.type === 'message') checks.push(alice.get('chat.getMessage', { channel: channel.id, seq: f.seq! }).then((r) => r.status));
  });
  const N = 50;
  await Promise.all(Array.from({ length: N }, (_, i) => alice.call('chat.postMessage', { channel: channel.id, text: `m${i}` })));
  await ws.waitForSeq(channel.id, N);
  const statuses = await Promise.all(checks);
  t.equal(statuses.length, N);
  t.ok(statuses.every((s) => s === 200), 'every fetch found its message');
});

t.test('concurrent writers: seq is gapless, frames arrive in strictly increasing seq, once', async (t) => {
  const { channel } = await alice.call('conversations.create', { name: 'busy' });
  await alice.call('conversations.invite', { channel: channel.id, users: ['bob', 'carol'] });
  const carol = new Api(w.base, await w.token('carol'));
  const watchers = await Promise.all([w.token('alice'), w.token('bob')].map(async (tk) => WsClient.connect(w.ws, await tk)));
  t.teardown(() => Promise.all(watchers.map((x) => x.close())));
  for (const ws of watchers) await ws.subscribe(channel.id);
  const writers = [alice, bob, carol];
  const PER = 40;
  const stored = await Promise.all(
    writers.map(async (api, wi) => {
      const seqs: number[] = [];
      for (let i = 0; i < PER; i++) seqs.push((await api.call('chat.postMessage', { channel: channel.id, text: `${wi}-${i}` })).message.seq);
      return seqs;
    }),
  );
  // Seqs 1 and 2 are bob's and carol's member_joined.
  const all = stored.flat().sort((a, b) => a - b);
  t.ok(contiguous(all, 3, 2 + writers.length * PER), 'stored seqs follow the invites without gaps');
  for (const ws of watchers) {
    await ws.waitForSeq(channel.id, 2 + writers.length * PER);
    t.ok(contiguous(ws.seqs(channel.id), 3, 2 + writers.length * PER), 'delivered in order, exactly once');
  }
  // Each writer's own messages keep their order.
  for (const seqs of stored) t.same(seqs, [...seqs].sort((a, b) => a - b));
});

t.test('resume with since: history first, then live, no gap or duplicate at the seam', async (t) => {
  const { channel } = await alice.call('conversations.create', { name: 'resume' });
  for (let i = 1; i <= 30; i++) await alice.call('chat.postMessage', { channel: channel.id, text: `old ${i}` });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  // Keep posting while the subscription catches up, so the seam is crossed under load.
  const posting = (async () => {
    for (let i = 31; i <= 60; i++) await alice.call('chat.postMessage', { channel: channel.id, text: `new ${i}` });
  })();
  const sub = await ws.subscribe(channel.id, 10);
  t.equal(sub.type, 'subscribed');
  t.ok(sub.seq! >= 30, 'subscribed reports the last committed seq');
  await posting;
  await ws.waitForSeq(channel.id, 60);
  t.ok(contiguous(ws.seqs(channel.id), 11, 60), 'seqs 11..60 exactly once, in order');
});

t.test('since beyond the ring: catch-up pages from the database', async (t) => {
  const small = await startWalcast(t, db.url, { env: { WALCAST_RING_SIZE: '4', WALCAST_CATCHUP_PAGE: '7', WALCAST_SLOT: 'ring_test' } });
  const api = new Api(small.base, await small.token('dave'));
  const { channel } = await api.call('conversations.create', { name: 'pages' });
  for (let i = 0; i < 40; i++) await api.call('chat.postMessage', { channel: channel.id, text: `p${i}` });
  const ws = await WsClient.connect(small.ws, await small.token('dave'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id, 0);
  await ws.waitForSeq(channel.id, 40);
  t.ok(contiguous(ws.seqs(channel.id), 1, 40));
  await api.call('chat.postMessage', { channel: channel.id, text: 'live after pages' });
  await ws.waitForSeq(channel.id, 41);
  t.ok(contiguous(ws.seqs(channel.id), 1, 41));
  t.ok((await small.node.metrics.catchupReads.get()).values[0]!.value >= 5, 'read several pages from the database');
});

t.test('without since: only messages committed after the subscription', async (t) => {
  const { channel } = await alice.call('conversations.create', { name: 'live-only' });
  for (let i = 0; i < 5; i++) await alice.call('chat.postMessage', { channel: channel.id, text: `before ${i}` });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  const sub = await ws.subscribe(channel.id);
  t.equal(sub.seq, 5);
  await alice.call('chat.postMessage', { channel: channel.id, text: 'after' });
  await ws.waitForSeq(channel.id, 6);
  t.same(ws.seqs(channel.id), [6]);
});

t.test('idempotent retry: same id and seq, nothing new stored', async (t) => {
  const { channel } = await alice.call('conversations.create', { name: 'retry' });
  const first = (await alice.call('chat.postMessage', { channel: channel.id, text: 'once', client_msg_id: 'k-1' })).message;
  const again = await Promise.all(
    Array.from({ length: 5 }, () => alice.call('chat.postMessage', { channel: channel.id, text: 'once', client_msg_id: 'k-1' })),
  );
  for (const r of again) t.same(r.message, first);
  const next = (await alice.call('chat.postMessage', { channel: channel.id, text: 'twice' })).message;
  t.equal(next.seq, first.seq + 1, 'retries consumed no seq');
  const h = await alice.call('conversations.history', { channel: channel.id });
  t.equal(h.messages.length, 2);
  // The same client_msg_id from another user is a different message.
  await alice.call('conversations.invite', { channel: channel.id, users: ['bob'] });
  const bobs = (await bob.call('chat.postMessage', { channel: channel.id, text: 'mine', client_msg_id: 'k-1' })).message;
  t.not(bobs.id, first.id);
  // Concurrent first attempts race past the lookup: still exactly one row.
  const racing = await Promise.all(
    Array.from({ length: 8 }, () => alice.call('chat.postMessage', { channel: channel.id, text: 'race', client_msg_id: 'k-race' })),
  );
  t.equal(new Set(racing.map((r) => r.message.id)).size, 1);
  const after = await alice.call('conversations.history', { channel: channel.id });
  t.same(after.messages.map((m: { seq: number }) => m.seq), [1, 2, 4, 5], 'messages 1, 2, then (after bob\'s member_joined at 3) 4 and 5');
  const log = await alice.call('conversations.replay', { channel: channel.id });
  t.ok(contiguous(log.changes.map((c: { seq: number }) => c.seq), 1, 5), 'no seq was lost to the race');
});

t.test('kick ends the live subscription with unsubscribed', async (t) => {
  const { channel } = await alice.call('conversations.create', { name: 'kick' });
  await alice.call('conversations.invite', { channel: channel.id, users: ['bob'] });
  const ws = await WsClient.connect(w.ws, await w.token('bob'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id);
  await alice.call('chat.postMessage', { channel: channel.id, text: 'before kick' });
  await ws.waitForSeq(channel.id, 2); // seq 1 is bob's member_joined
  // The frame may well arrive before the kick's HTTP response: look from before the call.
  const mark = ws.frames.length;
  await alice.call('conversations.kick', { channel: channel.id, user: 'bob' });
  const f = await ws.next((f) => f.type === 'unsubscribed', 'unsubscribed', 15_000, mark);
  t.same(f, { type: 'unsubscribed', channel: channel.id, reason: 'kicked' });
  t.same(ws.frames.slice(mark), [{ type: 'member_left', channel: channel.id, seq: 3, user: 'bob', reason: 'kicked' }, f], 'the member_left frame, then unsubscribed');
  await alice.call('chat.postMessage', { channel: channel.id, text: 'after kick' });
  const r = await bob.get('chat.getMessage', { channel: channel.id, seq: 4 });
  t.equal(r.body.error, 'not_in_channel');
  await new Promise((r) => setTimeout(r, 200));
  t.same(ws.seqs(channel.id), [2, 3], 'nothing after the kick');
  const again = await ws.subscribe(channel.id);
  t.same(again, { type: 'error', code: 'not_in_channel', channel: channel.id });
});
