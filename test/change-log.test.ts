// The channel change log end to end on real PostgreSQL: every kind of change takes the channel's
// next seq and reaches subscribers through the WAL in order, once, gapless; replay returns the
// same log; deletes leave no text anywhere; reactions are idempotent under concurrency; long
// (TOASTed) texts survive edits and reactions; replies are causal; roles and private channels.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { startTestDatabase, testPool } from './helpers/postgres.js';
import { startWalcast } from './helpers/walcast.js';
import { Api, WsClient, contiguous, type Frame } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'change_log', WALCAST_MAX_TEXT_CHARS: '30000' } });
const alice = new Api(w.base, await w.token('alice'));
const bob = new Api(w.base, await w.token('bob'));
const carol = new Api(w.base, await w.token('carol'));
const pool = testPool(t, db.url, 2);

async function watcher(t: { teardown(f: () => unknown): void }, user = 'alice', channel?: string, since?: number): Promise<WsClient> {
  const ws = await WsClient.connect(w.ws, await w.token(user));
  t.teardown(() => ws.close());
  if (channel) await ws.subscribe(channel, since);
  return ws;
}

/** A frame without the message's volatile fields, for comparing whole logs. */
const shape = (f: Frame) => {
  const { message, ...rest } = f as Frame & { message?: Record<string, unknown> };
  return message ? { ...rest, text: message.text, seq_of_message: message.seq, changed_seq: message.changed_seq } : rest;
};

t.test('every kind of change, in seq order, live and replayed alike', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'kinds' })).channel.id as string;
  const ws = await watcher(t, 'alice', ch, 0);
  await alice.call('conversations.invite', { channel: ch, users: ['bob'] }); // 1 member_joined bob
  const q = (await alice.call('chat.postMessage', { channel: ch, text: 'question?' })).message; // 2
  const a = (await bob.call('chat.postMessage', { channel: ch, text: 'answer', reply_to: q.seq })).message; // 3
  t.equal(a.reply_to, q.seq, 'the reply names its parent');
  t.ok(a.seq > q.seq, 'a reply comes after its question');
  const edited = (await alice.call('chat.update', { channel: ch, seq: q.seq, text: 'question, edited?' })).message; // 4
  t.equal(edited.text, 'question, edited?');
  t.match(edited.edited_at, /^\d{4}-/);
  t.equal(edited.changed_seq, 4);
  await bob.call('reactions.add', { channel: ch, seq: q.seq, name: 'thumbsup' }); // 5
  const again = (await bob.call('reactions.add', { channel: ch, seq: q.seq, name: 'thumbsup' })).message; // no seq
  t.same(again.reactions, { thumbsup: 1 }, 'adding the same reaction twice counts once');
  await alice.call('reactions.add', { channel: ch, seq: q.seq, name: 'thumbsup' }); // 6
  await bob.call('reactions.remove', { channel: ch, seq: q.seq, name: 'thumbsup' }); // 7
  await bob.call('reactions.remove', { channel: ch, seq: q.seq, name: 'thumbsup' }); // nothing to remove: no seq
  await bob.call('chat.delete', { channel: ch, seq: a.seq }); // 8
  await carol.call('conversations.join', { channel: ch }); // 9
  await carol.call('conversations.leave', { channel: ch }); // 10
  await alice.call('conversations.kick', { channel: ch, user: 'bob' }); // 11

  await ws.waitForSeq(ch, 11);
  const live = ws.changes(ch);
  t.ok(contiguous(live.map((f) => f.seq!), 1, 11), 'seqs 1..11, once each, in order');
  t.same(
    live.map((f) => f.type),
    ['member_joined', 'message', 'message', 'message_changed', 'reaction_added', 'reaction_added', 'reaction_removed', 'message_deleted', 'member_joined', 'member_left', 'member_left'],
  );
  t.same(live[3], { type: 'message_changed', channel: ch, seq: 4, message: edited }, 'an edit carries the row after it');
  t.same(live[4], { type: 'reaction_added', channel: ch, seq: 5, target_seq: q.seq, user: 'bob', name: 'thumbsup' });
  t.same(live[7], { type: 'message_deleted', channel: ch, seq: 8, target_seq: a.seq });
  t.same(live[9], { type: 'member_left', channel: ch, seq: 10, user: 'carol', reason: 'left' });
  t.same(live[10], { type: 'member_left', channel: ch, seq: 11, user: 'bob', reason: 'kicked' });

  const replay = await alice.call('conversations.replay', { channel: ch });
  t.same(replay.changes.map((f: Frame) => [f.type, f.seq]), live.map((f) => [f.type, f.seq]), 'replay: the same log');
  t.equal(replay.has_more, false);
  // Replayed messages are in their current state, so their changed_seq tells which changes they already reflect.
  const replayedQ = replay.changes.find((f: Frame) => f.type === 'message' && f.seq === q.seq);
  t.same(replayedQ.message.reactions, { thumbsup: 1 });
  t.equal(replayedQ.message.text, 'question, edited?');
  t.equal(replayedQ.message.changed_seq, 7);
  const page = await alice.call('conversations.replay', { channel: ch, after_seq: 3, limit: 4 });
  t.same(page.changes.map((f: Frame) => f.seq), [4, 5, 6, 7]);
  t.equal(page.has_more, true);

  const history = await alice.call('conversations.history', { channel: ch });
  t.same(history.messages.map((m: { seq: number }) => m.seq), [q.seq, a.seq], 'history: messages only, in their current state');
  t.match(history.messages[1], { text: '', reply_to: q.seq });
  t.match(history.messages[1].deleted_at, /^\d{4}-/);
});

t.test('a deleted message\'s text is gone: from the database, history, replay and a resuming socket', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'forget' })).channel.id as string;
  const secret = `secret-${randomBytes(8).toString('hex')}`;
  const m = (await alice.call('chat.postMessage', { channel: ch, text: secret })).message;
  const live = await watcher(t, 'alice', ch, 0); // keeps the channel's ring warm on this gateway
  await live.waitForSeq(ch, m.seq);
  await alice.call('reactions.add', { channel: ch, seq: m.seq, name: 'eyes' });
  const deleted = (await alice.call('chat.delete', { channel: ch, seq: m.seq })).message;
  t.same({ text: deleted.text, reactions: deleted.reactions }, { text: '', reactions: {} });
  t.equal((await alice.call('chat.delete', { channel: ch, seq: m.seq })).message.deleted_at, deleted.deleted_at, 'deleting again changes nothing');
  await live.waitForSeq(ch, 3);

  const { rows } = await pool.query(`SELECT count(*)::int AS n FROM messages WHERE text LIKE '%' || $1 || '%'`, [secret]);
  t.equal(rows[0].n, 0, 'no row holds the text');
  t.notMatch(JSON.stringify(await alice.call('conversations.history', { channel: ch })), secret, 'not in history');
  t.notMatch(JSON.stringify(await alice.call('conversations.replay', { channel: ch })), secret, 'not in the replayed log');
  t.notMatch(JSON.stringify(await alice.call('chat.getMessage', { channel: ch, seq: m.seq })), secret, 'not from getMessage');
  // A client resuming from before the delete reads the gateway's ring: it holds the row as it is now.
  const resumed = await watcher(t, 'alice', ch, 0);
  await resumed.waitForSeq(ch, 3);
  t.notMatch(JSON.stringify(resumed.frames), secret, 'not in a catch-up over the socket');
  t.same(resumed.changes(ch).map((f) => f.type), ['message', 'reaction_added', 'message_deleted']);
  isError(t, await alice.post('chat.update', { channel: ch, seq: m.seq, text: 'resurrect' }), 404, 'message_not_found');
  isError(t, await alice.post('reactions.add', { channel: ch, seq: m.seq, name: 'x' }), 404, 'message_not_found');
});

t.test('reactions are idempotent per user, message and name, under concurrency', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'reactions' })).channel.id as string;
  const users = Array.from({ length: 8 }, (_, i) => `r${i}`);
  await alice.call('conversations.invite', { channel: ch, users });
  const m = (await alice.call('chat.postMessage', { channel: ch, text: 'react to me' })).message;
  const ws = await watcher(t, 'alice', ch, m.seq);
  const apis = await Promise.all(users.map(async (u) => new Api(w.base, await w.token(u))));
  // Every user adds the same reaction four times at once, and one of them also a second name.
  await Promise.all(apis.flatMap((api) => Array.from({ length: 4 }, () => api.call('reactions.add', { channel: ch, seq: m.seq, name: 'tada' }))));
  await Promise.all(Array.from({ length: 4 }, () => apis[0]!.call('reactions.add', { channel: ch, seq: m.seq, name: 'heart' })));
  const now = (await alice.call('chat.getMessage', { channel: ch, seq: m.seq })).message;
  t.same(now.reactions, { tada: 8, heart: 1 });
  await ws.waitForSeq(ch, m.seq + 9);
  const frames = ws.changes(ch);
  t.equal(frames.length, 9, 'one reaction_added per user and name, no more');
  t.ok(contiguous(frames.map((f) => f.seq!), m.seq + 1, m.seq + 9));
  await Promise.all(apis.map((api) => api.call('reactions.remove', { channel: ch, seq: m.seq, name: 'tada' })));
  t.same((await alice.call('chat.getMessage', { channel: ch, seq: m.seq })).message.reactions, { heart: 1 }, 'a name at zero disappears');
});

t.test('long texts (TOASTed, 20 kB): edited, reacted to, replayed: always whole', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'long' })).channel.id as string;
  // Random base64: does not compress, so PostgreSQL stores it out of line.
  const big1 = randomBytes(15_000).toString('base64');
  const big2 = randomBytes(15_000).toString('base64');
  t.ok(big1.length > 19_000);
  const ws = await watcher(t, 'alice', ch, 0);
  const m = (await alice.call('chat.postMessage', { channel: ch, text: big1 })).message;
  await alice.call('reactions.add', { channel: ch, seq: m.seq, name: 'wow' }); // the row changes, its text does not
  const edited = (await alice.call('chat.update', { channel: ch, seq: m.seq, text: big2 })).message;
  await alice.call('reactions.add', { channel: ch, seq: m.seq, name: 'ok' });
  await ws.waitForSeq(ch, 4);
  const [posted, , changed] = ws.changes(ch);
  t.equal(posted!.message.text, big1, 'the new message, whole');
  t.equal(changed!.message.text, big2, 'the edit, whole');
  t.same(changed!.message, edited);
  const resumed = await watcher(t, 'alice', ch, 0);
  await resumed.waitForSeq(ch, 4);
  t.equal(resumed.changes(ch)[0]!.message.text, big2, 'a catch-up carries the row as it is now, whole');
  t.same(resumed.changes(ch)[0]!.message.reactions, { wow: 1, ok: 1 });
  const replay = await alice.call('conversations.replay', { channel: ch });
  t.equal(replay.changes[0].message.text, big2);
  t.equal(replay.changes[2].message.text, big2);
});

t.test('an edit racing posts in the same channel: one log, gapless, and the last word is the database\'s', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'race' })).channel.id as string;
  const target = (await alice.call('chat.postMessage', { channel: ch, text: 'v0' })).message;
  const ws = await watcher(t, 'alice', ch, 0);
  await Promise.all([
    ...Array.from({ length: 30 }, (_, i) => alice.call('chat.postMessage', { channel: ch, text: `p${i}` })),
    ...Array.from({ length: 15 }, (_, i) => alice.call('chat.update', { channel: ch, seq: target.seq, text: `v${i + 1}` })),
    ...Array.from({ length: 10 }, (_, i) => alice.call('reactions.add', { channel: ch, seq: target.seq, name: `r${i}` })),
  ]);
  const last = (await alice.call('chat.getMessage', { channel: ch, seq: target.seq })).message;
  await ws.waitForSeq(ch, 1 + 30 + 15 + 10);
  t.ok(contiguous(ws.seqs(ch), 1, 56), 'every change took its own seq, delivered once, in order');
  // Applying the frames in order ends where the database is.
  let state: { text: string; reactions: Record<string, number> } = { text: '', reactions: {} };
  for (const f of ws.changes(ch)) {
    if ((f.type === 'message' || f.type === 'message_changed') && f.message.seq === target.seq) state = { text: f.message.text, reactions: f.message.reactions };
    if (f.type === 'reaction_added' && f.target_seq === target.seq) state.reactions = { ...state.reactions, [f.name!]: (state.reactions[f.name!] ?? 0) + 1 };
  }
  t.same(state, { text: last.text, reactions: last.reactions });
});

t.test('replies: to a message of the channel that exists and is not deleted', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'replies' })).channel.id as string;
  const other = (await alice.call('conversations.create', { name: 'elsewhere' })).channel.id as string;
  const m = (await alice.call('chat.postMessage', { channel: ch, text: 'parent' })).message;
  await alice.call('chat.postMessage', { channel: other, text: 'not the parent' });
  isError(t, await alice.post('chat.postMessage', { channel: ch, text: 'x', reply_to: 99 }), 404, 'parent_not_found');
  await alice.call('conversations.invite', { channel: ch, users: ['bob'] });
  isError(t, await alice.post('chat.postMessage', { channel: ch, text: 'x', reply_to: m.seq + 1 }), 404, 'parent_not_found', 'a seq that is not a message (a member_joined)');
  await alice.call('chat.delete', { channel: ch, seq: m.seq });
  isError(t, await alice.post('chat.postMessage', { channel: ch, text: 'x', reply_to: m.seq }), 404, 'parent_not_found', 'a deleted parent');
  const next = (await alice.call('chat.postMessage', { channel: ch, text: 'after the refusals' })).message;
  t.equal(next.seq, m.seq + 3, 'refused replies took no seq');
  isError(t, await alice.post('chat.postMessage', { channel: ch, text: 'x', reply_to: 0 }), 400, 'invalid_arguments');
});

t.test('who may change what: authors edit and delete, owners and admins kick, private channels stay hidden', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'rules' })).channel.id as string;
  await alice.call('conversations.invite', { channel: ch, users: ['bob', 'carol'] });
  const m = (await alice.call('chat.postMessage', { channel: ch, text: 'alice says' })).message;
  isError(t, await bob.post('chat.update', { channel: ch, seq: m.seq, text: 'bob says' }), 403, 'cant_update_message');
  isError(t, await bob.post('chat.delete', { channel: ch, seq: m.seq }), 403, 'cant_delete_message');
  t.equal((await bob.post('reactions.add', { channel: ch, seq: m.seq, name: 'ok' })).status, 200, 'any member reacts');
  isError(t, await bob.post('conversations.kick', { channel: ch, user: 'carol' }), 403, 'not_allowed', 'a member cannot kick');
  isError(t, await bob.post('conversations.kick', { channel: ch, user: 'alice' }), 403, 'not_allowed', 'nobody kicks the owner');
  const log = await alice.call('conversations.replay', { channel: ch });
  t.same(log.changes.map((f: Frame) => f.type), ['member_joined', 'member_joined', 'message', 'reaction_added'], 'refusals took no seq');

  const closed = (await alice.call('conversations.create', { name: 'closed', members_can_invite: false })).channel.id as string;
  await alice.call('conversations.invite', { channel: closed, users: ['bob'] });
  isError(t, await bob.post('conversations.invite', { channel: closed, users: ['carol'] }), 403, 'not_allowed', 'members may not invite here');

  const hidden = (await alice.call('conversations.create', { name: 'hidden', is_private: true })).channel.id as string;
  const hm = (await alice.call('chat.postMessage', { channel: hidden, text: 'psst' })).message;
  for (const [method, body] of [
    ['chat.postMessage', { channel: hidden, text: 'x' }],
    ['chat.update', { channel: hidden, seq: hm.seq, text: 'x' }],
    ['chat.delete', { channel: hidden, seq: hm.seq }],
    ['reactions.add', { channel: hidden, seq: hm.seq, name: 'x' }],
    ['conversations.join', { channel: hidden }],
    ['conversations.leave', { channel: hidden }],
    ['conversations.invite', { channel: hidden, users: ['carol'] }],
    ['conversations.kick', { channel: hidden, user: 'alice' }],
  ] as const) {
    isError(t, await carol.post(method, body), 404, 'channel_not_found', `${method} on a private channel by a non-member`);
  }
  for (const [method, query] of [
    ['chat.getMessage', { channel: hidden, seq: hm.seq }],
    ['conversations.history', { channel: hidden }],
    ['conversations.replay', { channel: hidden }],
  ] as const) {
    isError(t, await carol.get(method, query), 404, 'channel_not_found', `${method} on a private channel by a non-member`);
  }
  const ws = await watcher(t, 'carol');
  t.same(await ws.subscribe(hidden), { type: 'error', code: 'channel_not_found', channel: hidden }, 'subscribe: as absent as an unknown channel');
});

t.test('invites name users walcast knows, unless the open mode is on', async (t) => {
  const strict = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'invites_known', WALCAST_INVITE_UNKNOWN_USERS: '0' } });
  const dora = new Api(strict.base, await strict.token('dora'));
  const ch = (await dora.call('conversations.create', { name: 'known-only' })).channel.id as string;
  const r = await dora.post('conversations.invite', { channel: ch, users: ['nobody-ever', 'dora'] });
  isError(t, r, 404, 'user_not_found');
  t.same(r.body.users, ['nobody-ever']);
  const eve = new Api(strict.base, await strict.token('eve'));
  await eve.get('conversations.history', { channel: ch }); // eve signs in once (and is refused: not a member)
  t.equal((await dora.post('conversations.invite', { channel: ch, users: ['eve'] })).status, 200, 'a user who has signed in can be invited');
});

t.test('a kicked member\'s socket catching up stops at the member_left', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'kick-catchup' })).channel.id as string;
  await alice.call('conversations.invite', { channel: ch, users: ['bob'] }); // 1
  for (let i = 0; i < 5; i++) await alice.call('chat.postMessage', { channel: ch, text: `m${i}` }); // 2..6
  // Bob subscribes from the start while the kick and more posts race with his catch-up.
  const ws = await watcher(t, 'bob');
  const mark = ws.frames.length;
  ws.send({ type: 'subscribe', channel: ch, since: 0 });
  await alice.call('conversations.kick', { channel: ch, user: 'bob' }); // 7
  for (let i = 0; i < 3; i++) await alice.call('chat.postMessage', { channel: ch, text: `after ${i}` }); // 8..10
  const end = await ws.next((f) => f.type === 'unsubscribed' || (f.type === 'error' && f.channel === ch), 'the subscription to end', 15_000, mark);
  if (end.type === 'error') {
    t.equal(end.code, 'not_in_channel', 'the kick came first: refused at subscribe');
  } else {
    t.same(end, { type: 'unsubscribed', channel: ch, reason: 'kicked' });
    t.same(ws.seqs(ch), [1, 2, 3, 4, 5, 6, 7], 'up to and including the member_left, nothing after');
  }
});

t.test('a subscription never delivers what happened before its user joined', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'late-joiner' })).channel.id as string;
  for (let i = 0; i < 3; i++) await alice.call('chat.postMessage', { channel: ch, text: `before carol ${i}` });
  await carol.call('conversations.join', { channel: ch }); // 4
  await alice.call('chat.postMessage', { channel: ch, text: 'after carol' }); // 5
  const ws = await watcher(t, 'carol');
  t.same(await ws.subscribe(ch, 0), { type: 'subscribed', channel: ch, seq: 5, since: 3 }, 'since 0 starts at her member_joined');
  await ws.waitForSeq(ch, 5);
  t.same(ws.seqs(ch), [4, 5]);
});

function isError(t: Test, r: { status: number; body: any }, status: number, code: string, what = code): void {
  t.equal(r.status, status, `${what}: status ${status}`);
  t.equal(r.body?.error, code, `${what}: ${code}`);
}
