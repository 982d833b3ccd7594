// The WebSocket side of docs/protocol.md: the upgrade's authentication, every frame a client may
// send (and the malformed ones it should not), and the frames it gets back.
import t from 'tap';
import { expiredToken, forgedToken } from './helpers/tokens.js';
import { SignJWT } from 'jose';
import { startTestDatabase } from './helpers/postgres.js';
import { SECRET, startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous, type Frame } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'ws_contract' } });
const alice = new Api(w.base, await w.token('alice'));
const UNKNOWN = 'CZZZZZZZZZZZZ';
/** How long a negative check waits after a witness saw the frame it is checking for. */
const QUIET_MS = 200;

interface Teardown {
  teardown(fn: () => unknown): void;
}

async function connect(t: Teardown, user = 'alice', url = w.ws, token?: string): Promise<WsClient> {
  const ws = await WsClient.connect(url, token ?? (await w.token(user)));
  t.teardown(() => ws.close());
  return ws;
}

async function newChannel(name: string, api = alice): Promise<string> {
  return (await api.call('conversations.create', { name })).channel.id;
}

async function post(channel: string, text: string, api = alice): Promise<any> {
  return (await api.call('chat.postMessage', { channel, text })).message;
}

/** Sends a frame and waits for the first frame after it that satisfies `pred`. */
function sendAndWait(ws: WsClient, frame: unknown, pred: (f: Frame) => boolean, what: string): Promise<Frame> {
  const p = ws.next(pred, what, 5_000);
  ws.send(frame);
  return p;
}

const errorFrame = (f: Frame) => f.type === 'error';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Rejects with the upgrade's HTTP status, or resolves to the client if the upgrade succeeded. */
async function upgradeStatus(token: string | null, url = w.ws): Promise<number | 'open'> {
  try {
    const ws = await WsClient.connect(url, token);
    await ws.close();
    return 'open';
  } catch (e) {
    return (e as { status?: number }).status ?? -1;
  }
}

t.test('the upgrade needs a valid token: 401 otherwise', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const key = (s: string) => new TextEncoder().encode(s);
  const expired = await expiredToken('alice');
  const forged = await forgedToken('alice');
  const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(now + 3600).sign(key(SECRET));

  // Without a token the socket opens unauthenticated: its first frame must be `auth` (see
  // test/token-lifetime.test.ts).
  t.equal(await upgradeStatus(null), 'open', 'no token at all: opens, unauthenticated');
  t.equal(await upgradeStatus(''), 'open', 'empty token parameter: the same');
  t.equal(await upgradeStatus('garbage'), 401, 'garbage token');
  t.equal(await upgradeStatus('a.b.c'), 401, 'three garbage parts');
  t.equal(await upgradeStatus(forged), 401, 'signed with another secret');
  t.equal(await upgradeStatus(expired), 401, 'expired');
  t.equal(await upgradeStatus(noSub), 401, 'no subject');

  // The rejection carries the status on the error object, as WsClient.connect promises.
  const err = await WsClient.connect(w.ws, 'garbage').then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof Error, 'connect rejects with an Error');
  t.equal((err as { status?: number }).status, 401);

  // And a good token, built the same way, opens.
  const good = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(now + 3600).sign(key(SECRET));
  t.equal(await upgradeStatus(good), 'open', 'a well-signed token is accepted');
});

t.test('subscribe: subscribed frame, then message frames carrying the full row', async (t) => {
  const ch = await newChannel('basic');
  await post(ch, 'before');
  const ws = await connect(t);
  const sub = await ws.subscribe(ch);
  t.same(sub, { type: 'subscribed', channel: ch, seq: 1, since: 1 });
  const m = await post(ch, 'after');
  await ws.waitForSeq(ch, 2);
  t.same(ws.messages(ch), [{ type: 'message', channel: ch, seq: 2, message: m }]);
});

t.test('subscribe errors: unknown channel and non-member', async (t) => {
  const ws = await connect(t, 'bob');
  t.same(await ws.subscribe(UNKNOWN), { type: 'error', code: 'channel_not_found', channel: UNKNOWN });
  // Not a channel id at all: refused at the edge, and the malformed id is not echoed back.
  // Not shaped like a channel id at all: refused at the edge, before any query.
  t.match(await ws.subscribe('nope'), { type: 'error', code: 'invalid_arguments', channel: 'nope' });

  const ch = await newChannel('not-bobs');
  t.same(await ws.subscribe(ch), { type: 'error', code: 'not_in_channel', channel: ch });
  t.same(await ws.subscribe(ch, 0), { type: 'error', code: 'not_in_channel', channel: ch }, 'with since too');

  // A refused subscription delivers nothing, even history.
  await post(ch, 'secret');
  const witness = await connect(t);
  await witness.subscribe(ch, 0);
  await witness.waitForSeq(ch, 1);
  await sleep(QUIET_MS);
  t.same(ws.messages(), [], 'bob got no message frames');
  t.notOk(ws.closed, 'the socket stays open after errors');
});

t.test('malformed frames get error frames and leave the socket usable', async (t) => {
  const ch = await newChannel('malformed');
  const ws = await connect(t);

  const expectError = async (frame: unknown, code: string | string[], what: string, channel?: string) => {
    const f = await sendAndWait(ws, frame, errorFrame, what);
    t.equal(f.type, 'error', `${what}: an error frame`);
    if (Array.isArray(code)) t.ok(code.includes(f.code!), `${what}: code ${f.code} is one of ${code.join(', ')}`);
    else t.equal(f.code, code, `${what}: code ${code}`);
    if (channel !== undefined) t.equal(f.channel, channel, `${what}: names the channel`);
  };

  await expectError('this is not json', 'invalid_json', 'not JSON');
  await expectError('{"type":"subscribe",', 'invalid_json', 'truncated JSON');
  await expectError('', 'invalid_json', 'empty text frame');
  await expectError('[]', 'invalid_arguments', 'JSON array');
  await expectError(JSON.stringify([{ type: 'subscribe', channel: ch }]), 'invalid_arguments', 'array holding a frame');
  await expectError('null', 'invalid_arguments', 'JSON null');
  await expectError('42', 'invalid_arguments', 'JSON number');
  await expectError('"subscribe"', 'invalid_arguments', 'JSON string');
  await expectError({}, 'invalid_arguments', 'missing type');
  await expectError({ channel: ch }, 'invalid_arguments', 'missing type, with channel');
  await expectError({ type: 5, channel: ch }, 'invalid_arguments', 'number type');
  await expectError({ type: null, channel: ch }, 'invalid_arguments', 'null type');
  await expectError({ type: 'bogus', channel: ch }, 'unknown_type', 'unknown type');
  await expectError({ type: 'SUBSCRIBE', channel: ch }, 'unknown_type', 'types are case-sensitive');
  await expectError({ type: 'subscribe' }, 'invalid_arguments', 'subscribe without channel');
  await expectError({ type: 'subscribe', channel: 5 }, 'invalid_arguments', 'numeric channel');
  await expectError({ type: 'subscribe', channel: '' }, 'invalid_arguments', 'empty channel');
  await expectError({ type: 'unsubscribe' }, 'invalid_arguments', 'unsubscribe without channel');
  await expectError({ type: 'subscribe', channel: ch, since: -1 }, 'invalid_arguments', 'since = -1', ch);
  await expectError({ type: 'subscribe', channel: ch, since: 1.5 }, 'invalid_arguments', 'since = 1.5', ch);
  await expectError({ type: 'subscribe', channel: ch, since: '3' }, 'invalid_arguments', 'since = "3"', ch);
  await expectError({ type: 'subscribe', channel: ch, since: true }, 'invalid_arguments', 'since = true', ch);
  await expectError({ type: 'subscribe', channel: ch, since: [1] }, 'invalid_arguments', 'since = [1]', ch);

  // A binary frame is not JSON text.
  const bin = ws.next(errorFrame, 'error for a binary frame', 5_000);
  ws.socket.send(Buffer.from(JSON.stringify({ type: 'subscribe', channel: ch })), { binary: true });
  const binErr = await bin;
  t.equal(binErr.type, 'error', 'binary frame: an error frame');
  t.ok(['invalid_json', 'invalid_arguments'].includes(binErr.code!), `binary frame: code ${binErr.code}`);

  t.notOk(ws.closed, 'still open after every malformed frame');
  t.same(ws.frames.filter((f) => f.type !== 'error'), [], 'none of them subscribed to anything');

  // None of the rejected subscribes left a subscription behind.
  await post(ch, 'one');
  const witness = await connect(t);
  await witness.subscribe(ch, 0);
  await witness.waitForSeq(ch, 1);
  await sleep(QUIET_MS);
  t.same(ws.messages(), [], 'no message frames from rejected subscribes');

  // The same socket still works.
  t.same(await ws.subscribe(ch), { type: 'subscribed', channel: ch, seq: 1, since: 1 });
  const m = await post(ch, 'two');
  await ws.waitForSeq(ch, 2);
  t.same(ws.messages(ch), [{ type: 'message', channel: ch, seq: 2, message: m }]);
});

t.test('unsubscribe: unsubscribed frame, then no more messages for that channel', async (t) => {
  const ch = await newChannel('unsub');
  const other = await newChannel('unsub-other');
  const ws = await connect(t);
  await ws.subscribe(ch);
  await ws.subscribe(other);
  await post(ch, 'one');
  await ws.waitForSeq(ch, 1);

  const f = await sendAndWait(ws, { type: 'unsubscribe', channel: ch }, (x) => x.type === 'unsubscribed', 'unsubscribed');
  t.same(f, { type: 'unsubscribed', channel: ch });

  const witness = await connect(t);
  await witness.subscribe(ch);
  await post(ch, 'two');
  await post(ch, 'three');
  await post(other, 'still subscribed here');
  await witness.waitForSeq(ch, 3);
  await ws.waitForSeq(other, 1);
  await sleep(QUIET_MS);
  t.same(ws.seqs(ch), [1], 'nothing after the unsubscribe');
  t.same(ws.seqs(other), [1], 'the other subscription is unaffected');

  // Subscribing again works, and starts fresh.
  t.same(await ws.subscribe(ch), { type: 'subscribed', channel: ch, seq: 3, since: 3 });
  await post(ch, 'four');
  await ws.waitForSeq(ch, 4);
  t.same(ws.seqs(ch), [1, 4], 're-subscribed: only what came after');
});

t.test('a kicked member gets unsubscribed and nothing more, while others keep the channel live', async (t) => {
  const ch = await newChannel('kick-live');
  await alice.call('conversations.invite', { channel: ch, users: ['bob'] });
  const bobWs = await connect(t, 'bob');
  const aliceWs = await connect(t);
  await bobWs.subscribe(ch);
  await aliceWs.subscribe(ch);
  await post(ch, 'before the kick'); // seq 2 (1 is bob's member_joined)
  await bobWs.waitForSeq(ch, 2);

  const kicked = bobWs.next((f) => f.type === 'unsubscribed', 'unsubscribed after kick');
  await alice.call('conversations.kick', { channel: ch, user: 'bob' }); // seq 3: member_left
  t.same(await kicked, { type: 'unsubscribed', channel: ch, reason: 'kicked' });
  await post(ch, 'after the kick 1');
  await post(ch, 'after the kick 2');
  await aliceWs.waitForSeq(ch, 5);
  await sleep(QUIET_MS);
  t.same(bobWs.seqs(ch), [2, 3], 'the kicked user gets the member_left that removed them, and nothing after it');
  t.same(aliceWs.seqs(ch), [2, 3, 4, 5], 'the others keep the channel live');
});

t.test('re-subscribing with since while live traffic flows: strictly increasing after subscribed', async (t) => {
  // No ring and small pages: the catch-up reads the database page by page, with live traffic in between.
  const paged = await startWalcast(t, db.url, { env: { WALCAST_RING_SIZE: '0', WALCAST_CATCHUP_PAGE: '5', WALCAST_SLOT: 'ws_order' } });
  const api = new Api(paged.base, await paged.token('alice'));
  const ch = (await api.call('conversations.create', { name: 'resub-order' })).channel.id as string;
  const say = (text: string) => api.call('chat.postMessage', { channel: ch, text });
  for (let i = 0; i < 5; i++) await Promise.all(Array.from({ length: 20 }, (_, j) => say(`old ${i}-${j}`)));
  const ws = await connect(t, 'alice', paged.ws, await paged.token('alice'));
  await ws.subscribe(ch);
  // Another live subscriber keeps the channel's hub (and its live publishing) going throughout.
  const other = await connect(t, 'alice', paged.ws, await paged.token('alice'));
  await other.subscribe(ch);
  let stop = false;
  const posters = Array.from({ length: 4 }, async () => {
    while (!stop) await say('live');
  });
  try {
    await ws.next((f) => f.type === 'message', 'a live frame');
    const from = ws.frames.length;
    ws.send({ type: 'subscribe', channel: ch, since: 0 });
    await ws.next((f) => f.type === 'subscribed', 'subscribed again');
    await until(() => ws.frames.slice(from).filter((f) => f.type === 'message').length >= 160, 'catch-up and some live frames', 10_000);
    stop = true;
    await Promise.all(posters);
    const last = (await api.call('conversations.history', { channel: ch, after_seq: 0, limit: 1000 })).messages.length;
    await ws.waitForSeq(ch, last);
    await sleep(50);
    const after = ws.frames.slice(ws.frames.findIndex((f, i) => i >= from && f.type === 'subscribed') + 1);
    const seqs = after.filter((f) => f.type === 'message').map((f) => f.seq!);
    const bad = seqs.findIndex((s, i) => s !== i + 1);
    t.ok(contiguous(seqs, 1, last), `after the new subscribed frame: 1..${last} once each, in order (got ${seqs.length} frames${bad >= 0 ? `; at index ${bad}: ${seqs.slice(Math.max(0, bad - 2), bad + 3).join(',')}` : ''})`);
  } finally {
    stop = true;
    await Promise.all(posters);
  }
});

t.test('unsubscribe racing a pending subscribe leaves no subscription', async (t) => {
  const ch = await newChannel('unsub-race');
  const ws = await connect(t);
  ws.send({ type: 'subscribe', channel: ch });
  ws.send({ type: 'unsubscribe', channel: ch });
  await ws.next((f) => f.type === 'unsubscribed', 'unsubscribed');
  const witness = await connect(t);
  await witness.subscribe(ch);
  await post(ch, 'one');
  await witness.waitForSeq(ch, 1);
  await sleep(QUIET_MS);
  t.same(ws.messages(), [], 'no message frames after the unsubscribe');
});

t.test('subscribing twice to one channel replaces the first subscription', async (t) => {
  const ch = await newChannel('twice');
  const ws = await connect(t);
  t.same(await ws.subscribe(ch), { type: 'subscribed', channel: ch, seq: 0, since: 0 });
  t.same(await ws.subscribe(ch), { type: 'subscribed', channel: ch, seq: 0, since: 0 });
  const m1 = await post(ch, 'one');
  const m2 = await post(ch, 'two');
  await ws.waitForSeq(ch, 2);
  await sleep(QUIET_MS);
  t.same(ws.messages(ch), [
    { type: 'message', channel: ch, seq: 1, message: m1 },
    { type: 'message', channel: ch, seq: 2, message: m2 },
  ], 'each message once');

  // Two subscribes in one burst, the second before the first was answered.
  const ch2 = await newChannel('twice-burst');
  const ws2 = await connect(t);
  ws2.send({ type: 'subscribe', channel: ch2 });
  ws2.send({ type: 'subscribe', channel: ch2 });
  await ws2.next((f) => f.type === 'subscribed' && f.channel === ch2, 'subscribed');
  await post(ch2, 'a');
  await post(ch2, 'b');
  await ws2.waitForSeq(ch2, 2);
  await sleep(QUIET_MS);
  t.same(ws2.seqs(ch2), [1, 2], 'burst: each message once');
  t.same(ws2.frames.filter((f) => f.type === 'error'), [], 'burst: no error frames');

  // Re-subscribing with since replays from there, once, and the old subscription is gone.
  const ws3 = await connect(t);
  await ws3.subscribe(ch);
  await post(ch, 'three');
  await ws3.waitForSeq(ch, 3);
  t.same(await ws3.subscribe(ch, 1), { type: 'subscribed', channel: ch, seq: 3, since: 1 });
  await ws3.waitForSeq(ch, 2);
  await post(ch, 'four');
  await ws3.waitForSeq(ch, 4);
  await sleep(QUIET_MS);
  t.same(ws3.seqs(ch), [3, 2, 3, 4], 'the first subscription delivered 3; the second 2, 3, 4; nothing twice after the switch');
});

t.test('since greater than the last seq: nothing until since + 1, then exactly that and later', async (t) => {
  const ch = await newChannel('ahead');
  await post(ch, 'one');
  await post(ch, 'two');
  const ws = await connect(t);
  t.same(await ws.subscribe(ch, 5), { type: 'subscribed', channel: ch, seq: 2, since: 5 });
  const witness = await connect(t);
  await witness.subscribe(ch);
  for (const text of ['three', 'four', 'five']) await post(ch, text);
  await witness.waitForSeq(ch, 5);
  await sleep(QUIET_MS);
  t.same(ws.messages(ch), [], 'seqs 3..5 were already seen by the client');

  const m6 = await post(ch, 'six');
  await ws.waitForSeq(ch, 6);
  t.same(ws.messages(ch), [{ type: 'message', channel: ch, seq: 6, message: m6 }]);
  await post(ch, 'seven');
  await post(ch, 'eight');
  await ws.waitForSeq(ch, 8);
  await sleep(QUIET_MS);
  t.same(ws.seqs(ch), [6, 7, 8]);
});

t.test('since within history: exactly since + 1 .. last, then live', async (t) => {
  const ch = await newChannel('since');
  for (let i = 1; i <= 5; i++) await post(ch, `m${i}`);
  const ws = await connect(t);
  t.same(await ws.subscribe(ch, 2), { type: 'subscribed', channel: ch, seq: 5, since: 2 });
  await ws.waitForSeq(ch, 5);
  await post(ch, 'm6');
  await ws.waitForSeq(ch, 6);
  t.same(ws.seqs(ch), [3, 4, 5, 6]);
  const h = await alice.call('conversations.history', { channel: ch, after_seq: 2 });
  t.same(ws.messages(ch).map((f) => f.message), h.messages, 'the frames carry the same rows history returns');

  const ws0 = await connect(t);
  await ws0.subscribe(ch, 0);
  await ws0.waitForSeq(ch, 6);
  t.ok(contiguous(ws0.seqs(ch), 1, 6), 'since = 0: everything');
  const wsEnd = await connect(t);
  await wsEnd.subscribe(ch, 6);
  await post(ch, 'm7');
  await wsEnd.waitForSeq(ch, 7);
  t.same(wsEnd.seqs(ch), [7], 'since = last: live only');
});

t.test('many subscriptions on one connection: each channel gets its own messages', async (t) => {
  const N = 8;
  const channels: string[] = [];
  for (let i = 0; i < N; i++) channels.push(await newChannel(`many-${i}`));
  const ws = await connect(t);
  // Subscribe to all at once, without waiting for each answer.
  for (const ch of channels) ws.send({ type: 'subscribe', channel: ch });
  await until(() => channels.every((ch) => ws.frames.some((f) => f.type === 'subscribed' && f.channel === ch)), 'all subscribed', 10_000);

  const expected = new Map<string, any[]>();
  for (let round = 0; round < 3; round++) {
    await Promise.all(
      channels.map(async (ch, i) => {
        const m = await post(ch, `c${i}-r${round}`);
        expected.set(ch, [...(expected.get(ch) ?? []), m]);
      }),
    );
  }
  for (const ch of channels) await ws.waitForSeq(ch, 3);
  await sleep(QUIET_MS);
  for (const [i, ch] of channels.entries()) {
    const frames = ws.messages(ch);
    t.same(frames.map((f) => f.seq), [1, 2, 3], `channel ${i}: 1..3 once each`);
    t.ok(frames.every((f) => f.message.channel === ch), `channel ${i}: only its own rows`);
    t.same(frames.map((f) => f.message), expected.get(ch)!.sort((a, b) => a.seq - b.seq), `channel ${i}: the stored rows`);
  }
  t.equal(ws.messages().length, N * 3, 'no stray frames');
});

t.test('a frame over WALCAST_WS_MAX_PAYLOAD closes the socket; the server carries on', async (t) => {
  const max = w.config.limits.wsMaxPayload;
  const ch = await newChannel('big-frame');
  const ws = await connect(t);

  // Just under the limit is still a frame.
  const base = JSON.stringify({ type: 'subscribe', channel: ch, pad: '' });
  const under = JSON.stringify({ type: 'subscribe', channel: ch, pad: 'x'.repeat(max - base.length - 16) });
  t.ok(under.length < max);
  const sub = await sendAndWait(ws, under, (f) => f.channel === ch, 'answer to a large frame');
  t.same(sub, { type: 'subscribed', channel: ch, seq: 0, since: 0 }, 'a frame under the limit is served');

  ws.send(JSON.stringify({ type: 'subscribe', channel: ch, pad: 'x'.repeat(max + 1024) }));
  await until(() => ws.closed, 'socket closed after an oversized frame', 5_000);
  t.ok(ws.closed, 'closed');
  t.equal(ws.closeCode, 1006, `cut without a close frame (1006), as docs/protocol.md says`);

  const again = await connect(t);
  t.same(await again.subscribe(ch), { type: 'subscribed', channel: ch, seq: 0, since: 0 }, 'a new connection works');
  const m = await post(ch, 'after the big frame');
  await again.waitForSeq(ch, 1);
  t.same(again.messages(ch)[0]!.message, m);
});

t.test('WALCAST_MAX_SUBSCRIPTIONS: the one over the limit gets too_many_subscriptions', async (t) => {
  const limited = await startWalcast(t, db.url, { env: { WALCAST_MAX_SUBSCRIPTIONS: '2', WALCAST_SLOT: 'ws_limit' } });
  t.equal(limited.config.limits.maxSubscriptions, 2);
  const api = new Api(limited.base, await limited.token('erin'));
  const [a, b, c] = [
    (await api.call('conversations.create', { name: 'lim-a' })).channel.id as string,
    (await api.call('conversations.create', { name: 'lim-b' })).channel.id as string,
    (await api.call('conversations.create', { name: 'lim-c' })).channel.id as string,
  ];
  const ws = await connect(t, 'erin', limited.ws, await limited.token('erin'));

  // Refused subscriptions do not count against the limit.
  t.same(await ws.subscribe(UNKNOWN), { type: 'error', code: 'channel_not_found', channel: UNKNOWN });
  t.same(await ws.subscribe('C111111111111'), { type: 'error', code: 'channel_not_found', channel: 'C111111111111' });

  t.same(await ws.subscribe(a), { type: 'subscribed', channel: a, seq: 0, since: 0 });
  t.same(await ws.subscribe(b), { type: 'subscribed', channel: b, seq: 0, since: 0 });
  const third = await ws.subscribe(c);
  t.equal(third.type, 'error');
  t.equal(third.code, 'too_many_subscriptions');
  t.equal(third.channel, c);
  t.notOk(ws.closed, 'the socket stays open');

  // Re-subscribing to a channel already held is a replacement, not one more.
  t.same(await ws.subscribe(a), { type: 'subscribed', channel: a, seq: 0, since: 0 }, 'replace at the limit');

  // The two held subscriptions work; the refused one delivers nothing.
  await api.call('chat.postMessage', { channel: a, text: 'a1' });
  await api.call('chat.postMessage', { channel: b, text: 'b1' });
  await api.call('chat.postMessage', { channel: c, text: 'c1' });
  const witness = await connect(t, 'erin', limited.ws, await limited.token('erin'));
  await witness.subscribe(c, 0);
  await witness.waitForSeq(c, 1);
  await ws.waitForSeq(a, 1);
  await ws.waitForSeq(b, 1);
  await sleep(QUIET_MS);
  t.same(ws.seqs(c), [], 'nothing from the refused channel');

  // Unsubscribing frees a slot.
  await sendAndWait(ws, { type: 'unsubscribe', channel: b }, (f) => f.type === 'unsubscribed', 'unsubscribed');
  t.same(await ws.subscribe(c), { type: 'subscribed', channel: c, seq: 1, since: 1 }, 'a slot freed by unsubscribe');

  // A burst of subscribes past the limit: exactly the extra ones are refused.
  const ws2 = await connect(t, 'erin', limited.ws, await limited.token('erin'));
  for (const ch of [a, b, c]) ws2.send({ type: 'subscribe', channel: ch });
  await until(() => ws2.frames.filter((f) => f.type === 'subscribed' || f.type === 'error').length >= 3, 'three answers', 5_000);
  t.same(
    ws2.frames.filter((f) => f.type === 'subscribed').map((f) => f.channel).sort(),
    [a, b].sort(),
    'the first two subscribed',
  );
  t.same(ws2.frames.filter((f) => f.type === 'error').map((f) => [f.code, f.channel]), [['too_many_subscriptions', c]]);
});

t.test('the server is still healthy after all of this', async (t) => {
  const ch = await newChannel('healthy');
  const ws = await connect(t);
  await ws.subscribe(ch, 0);
  const m = await post(ch, 'fine');
  await ws.waitForSeq(ch, 1);
  t.same(ws.messages(ch)[0]!.message, m);
  t.equal((await fetch(`${w.base}/healthz`)).status, 200);
});
