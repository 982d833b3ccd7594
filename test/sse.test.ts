// Server-Sent Events at /v1/sse against real PostgreSQL: the same frames as a WebSocket
// subscription in the same order, with event ids; resume by Last-Event-ID (which wins over
// since); every refusal a documented JSON error; the token's lifetime, revocation and kicks end
// a stream with a `close` event; several channels on one stream; heartbeats; the per-user cap.
// Slow consumers and the SIGTERM drain: test/sse-limits.test.ts.
import t from 'tap';
import { CLOSE, ERRORS, clientFrame } from '../src/protocol.js';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous, type Frame } from './helpers/clients.js';
import { SseClient, type Refusal } from './helpers/sse.js';
import { expiredToken, forgedToken } from './helpers/tokens.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse', WALCAST_SSE_HEARTBEAT_MS: '300', WALCAST_MAX_SUBSCRIPTIONS: '5' } });
const alice = new Api(w.base, await w.token('alice'));
const bob = new Api(w.base, await w.token('bob'));
const carol = new Api(w.base, await w.token('carol'));

interface Teardown {
  teardown(fn: () => unknown): void;
}

async function stream(t: Teardown, o: Parameters<typeof SseClient.connect>[1]): Promise<SseClient> {
  const s = await SseClient.connect(w.base, o);
  t.teardown(() => s.abort());
  return s;
}

async function socket(t: Teardown, user: string): Promise<WsClient> {
  const ws = await WsClient.connect(w.ws, await w.token(user));
  t.teardown(() => ws.close());
  return ws;
}

const refusal = (r: SseClient | Refusal): Refusal => {
  if (r instanceof SseClient) {
    r.abort();
    throw new Error('the stream was accepted');
  }
  return r;
};

/** Frames without what may differ between two deliveries of the same change: nothing (both get the same rows). */
const log = (frames: Frame[]) => frames.filter((f) => f.type !== 'typing' && !f.type.startsWith('presence'));

t.test('the same frames as a WebSocket subscriber, in the same order, with ids', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'same' })).channel.id as string;
  const ws = await socket(t, 'alice');
  await ws.subscribe(ch, 0);
  const sse = await stream(t, { channels: [ch], since: [0], token: await w.token('alice') });
  t.equal(sse.headers['content-type'], 'text/event-stream; charset=utf-8');
  t.match(sse.headers['cache-control'], /no-cache/);
  await sse.next((f) => f.type === 'subscribed', 'subscribed', 5000, 0);

  await alice.call('conversations.invite', { channel: ch, users: ['bob'] }); // 1 member_joined
  const q = (await alice.call('chat.postMessage', { channel: ch, text: 'question?' })).message; // 2
  const a = (await bob.call('chat.postMessage', { channel: ch, text: 'answer', reply_to: q.seq })).message; // 3
  await alice.call('chat.update', { channel: ch, seq: q.seq, text: 'question, edited' }); // 4
  await bob.call('reactions.add', { channel: ch, seq: q.seq, name: 'eyes' }); // 5
  await bob.call('reactions.remove', { channel: ch, seq: q.seq, name: 'eyes' }); // 6
  await bob.call('chat.delete', { channel: ch, seq: a.seq }); // 7
  await carol.call('conversations.join', { channel: ch }); // 8
  await carol.call('conversations.leave', { channel: ch }); // 9
  await alice.call('conversations.kick', { channel: ch, user: 'bob' }); // 10
  await ws.waitForSeq(ch, 10);
  await sse.waitForSeq(ch, 10);

  t.same(log(sse.frames), log(ws.frames), 'frame for frame what the socket got (subscribed, then seqs 1..10)');
  t.ok(contiguous(sse.seqs(ch), 1, 10), 'gapless, in order, once');
  t.same(
    sse.changes(ch).map((f) => f.type),
    ['member_joined', 'message', 'message', 'message_changed', 'reaction_added', 'reaction_removed', 'message_deleted', 'member_joined', 'member_left', 'member_left'],
  );
  // Every frame with a seq carries the id <channel>:<seq>; the others leave the last id alone.
  let last = '';
  sse.frames.forEach((f, i) => {
    if (f.seq !== undefined && f.type !== 'subscribed') last = `${ch}:${f.seq}`;
    t.equal(sse.idAfter[i], last, `id after ${f.type} ${f.seq ?? ''}`);
  });
  t.equal(sse.lastEventId, `${ch}:10`);
  t.ok(sse.comments >= 1, 'heartbeat comments arrive');
  t.ok(sse.retryMs !== undefined && sse.retryMs >= 1000 && sse.retryMs <= 3000, `a reconnection delay for EventSource (${sse.retryMs} ms)`);
});

t.test('typing and presence from sockets reach streams; a stream is a live subscription for presence', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'ephemeral' })).channel.id as string;
  await alice.call('conversations.invite', { channel: ch, users: ['bob'] });
  const sse = await stream(t, { channels: [ch], token: await w.token('alice'), presence: true });
  await sse.next((f) => f.type === 'presence_joined' && f.user === 'alice', 'alice present (herself, through the stream)', 5000, 0);
  const ws = await socket(t, 'bob');
  await ws.subscribe(ch);
  await sse.next((f) => f.type === 'presence_joined' && f.user === 'bob', 'bob present', 5000, 0);
  ws.send(clientFrame.typing(ch));
  t.same(await sse.next((f) => f.type === 'typing', 'typing', 5000, 0), { type: 'typing', channel: ch, user: 'bob' });
  t.same((await bob.call('conversations.presence', { channel: ch })).users, ['alice', 'bob'], 'the stream counts as a live subscription');
  await ws.close();
  await sse.next((f) => f.type === 'presence_left' && f.user === 'bob', 'bob gone', 10_000, 0);
});

t.test('several channels on one stream: each in order, once, ids per channel; since per channel', async (t) => {
  const a = (await alice.call('conversations.create', { name: 'multi-a' })).channel.id as string;
  const b = (await alice.call('conversations.create', { name: 'multi-b' })).channel.id as string;
  for (let i = 1; i <= 4; i++) {
    await alice.call('chat.postMessage', { channel: a, text: `a${i}` });
    await alice.call('chat.postMessage', { channel: b, text: `b${i}` });
  }
  const sse = await stream(t, { channels: [a, b], since: [1, `${b}:3`], token: await w.token('alice') });
  for (let i = 5; i <= 8; i++) {
    await alice.call('chat.postMessage', { channel: i % 2 ? a : b, text: `x${i}` });
  }
  await sse.waitForSeq(a, 6);
  await sse.waitForSeq(b, 6);
  t.ok(contiguous(sse.seqs(a), 2, 6), 'a: from the bare since (1)');
  t.ok(contiguous(sse.seqs(b), 4, 6), 'b: from its own since (b:3)');
  const subscribed = sse.frames.filter((f) => f.type === 'subscribed');
  t.same(
    subscribed.map((f) => [f.channel, f.since]).sort(),
    [
      [a, 1],
      [b, 3],
    ].sort(),
    'one subscribed per channel (in either order), with where it starts',
  );
  for (const [i, f] of sse.frames.entries()) if (f.type === 'message') t.equal(sse.idAfter[i], `${f.channel}:${f.seq}`);
});

t.test('resume by Last-Event-ID after dropping the stream mid-flow: no gap, no duplicate', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'resume' })).channel.id as string;
  const token = await w.token('alice');
  const N = 150;
  let posted = 0;
  const posting = (async () => {
    for (let i = 1; i <= N; i++) {
      await alice.call('chat.postMessage', { channel: ch, text: `m${i}` });
      posted = i;
    }
  })();
  const got: number[] = [];
  let lastId = '';
  let drops = 0;
  // Drop the stream at a few points while the posts go on, as a flaky network would.
  while (got.length === 0 || got[got.length - 1]! < N) {
    // The URL says since=0 each time: Last-Event-ID must win, as a browser's EventSource relies on.
    const s = await stream(t, { channels: [ch], since: [0], token, lastEventId: lastId });
    const target = Math.min(N, (got[got.length - 1] ?? 0) + 30);
    await until(() => s.seqs(ch).some((x) => x >= target) || (posted === N && s.seqs(ch).includes(N)), `seq ${target}`, 20_000);
    got.push(...s.seqs(ch));
    lastId = s.lastEventId;
    s.abort();
    drops++;
  }
  await posting;
  t.ok(contiguous(got, 1, N), `1..${N} exactly once across ${drops} streams`);
  t.ok(drops >= 3, `dropped ${drops} times mid-flow`);
});

t.test('Last-Event-ID wins over since; since and Last-Event-ID forms', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'leid' })).channel.id as string;
  for (let i = 1; i <= 8; i++) await alice.call('chat.postMessage', { channel: ch, text: `m${i}` });
  const token = await w.token('alice');
  const s1 = await stream(t, { channels: [ch], since: [2], lastEventId: `${ch}:5`, token });
  await s1.waitForSeq(ch, 8);
  t.same(s1.frames[0], { type: 'subscribed', channel: ch, seq: 8, since: 5 }, 'delivery starts after the Last-Event-ID');
  t.ok(contiguous(s1.seqs(ch), 6, 8));
  const s2 = await stream(t, { channels: [ch], since: [`${ch}:2`], lastEventId: `${ch}:7`, token });
  await s2.waitForSeq(ch, 8);
  t.same(s2.seqs(ch), [8], 'also over since=<channel>:<seq>');
  const s3 = await stream(t, { channels: [ch], since: [6], token, lastEventId: '' });
  await s3.waitForSeq(ch, 8);
  t.same(s3.seqs(ch), [7, 8], 'an empty Last-Event-ID is no Last-Event-ID');
  const live = await stream(t, { channels: [ch], token });
  const first = await live.next((f) => f.type === 'subscribed', 'subscribed', 5000, 0);
  t.equal(first.since, 8, 'without since: live only');
  await alice.call('chat.postMessage', { channel: ch, text: 'm9' });
  await live.waitForSeq(ch, 9);
  t.same(live.seqs(ch), [9]);
});

t.test('refusals before the stream starts are documented JSON errors', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'refusals' })).channel.id as string;
  const secret = (await alice.call('conversations.create', { name: 'secret', is_private: true })).channel.id as string;
  const token = await w.token('alice');
  const bobs = await w.token('bob');
  const cases: [string, Parameters<typeof SseClient.open>[1], number, string][] = [
    ['no token', { channels: [ch], token: null }, 401, 'not_authed'],
    ['a forged token', { channels: [ch], token: await forgedToken('alice') }, 401, 'invalid_auth'],
    ['garbage in ?token=', { channels: [ch], token: 'garbage', tokenInQuery: true }, 401, 'invalid_auth'],
    ['an expired token', { channels: [ch], token: await expiredToken('alice') }, 401, 'token_expired'],
    ['an unknown channel', { channels: ['CZZZZZZZZZZZZ'], token }, 404, 'channel_not_found'],
    ['a public channel bob is not in', { channels: [ch], token: bobs }, 403, 'not_in_channel'],
    ['a private channel bob is not in', { channels: [secret], token: bobs }, 404, 'channel_not_found'],
    ['a malformed channel', { channels: ['general'], token }, 400, 'invalid_arguments'],
    ['a channel twice', { channels: [ch, ch], token }, 400, 'invalid_arguments'],
    ['a negative since', { channels: [ch], since: [-1], token }, 400, 'invalid_arguments'],
    ['since that is not a number', { channels: [ch], since: ['abc'], token }, 400, 'invalid_arguments'],
    ['since for another channel', { channels: [ch], since: ['CZZZZZZZZZZZZ:3'], token }, 400, 'invalid_arguments'],
    ['a malformed Last-Event-ID', { channels: [ch], lastEventId: 'yesterday', token }, 400, 'invalid_arguments'],
    ['a Last-Event-ID of another channel', { channels: [ch], lastEventId: 'CZZZZZZZZZZZZ:1', token }, 400, 'invalid_arguments'],
    ['too many channels', { channels: ['C000000000001', 'C000000000002', 'C000000000003', 'C000000000004', 'C000000000005', 'C000000000006'], token }, 400, 'too_many_subscriptions'],
    ['a foreign origin', { channels: [ch], token, headers: { origin: 'https://evil.example' } }, 403, 'origin_not_allowed'],
  ];
  for (const [what, o, status, code] of cases) {
    const r = refusal(await SseClient.open(w.base, o));
    t.equal(r.status, status, `${what}: ${status}`);
    t.match(r.body, { ok: false, error: code }, `${what}: ${code}`);
    t.equal(ERRORS[code as keyof typeof ERRORS].status, status, `${what}: the documented status`);
    t.match(r.headers['content-type'], /application\/json/);
  }
  const named = refusal(await SseClient.open(w.base, { channels: [ch, secret], token: bobs }));
  t.ok([ch, secret].includes(named.body.channel), 'a refused channel is named');

  const post = await fetch(`${w.base}/v1/sse?channel=${ch}`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  t.equal(post.status, 405);
  t.match(await post.json(), { ok: false, error: 'method_not_allowed' });
  const preflight = await fetch(`${w.base}/v1/sse?channel=${ch}`, { method: 'OPTIONS', headers: { origin: w.base } });
  t.equal(preflight.status, 204, 'a preflight from an allowed origin');
  t.match(preflight.headers.get('access-control-allow-headers'), /authorization/);
  t.match(preflight.headers.get('access-control-allow-headers'), /last-event-id/);

  const empty = await stream(t, { channels: [], token });
  await until(() => empty.comments >= 3, 'heartbeats on a stream without channels');
  t.same(empty.frames, [], 'a stream without channels carries nothing else');

  // ?token= (what a browser's EventSource must use) and an allowed Origin (CORS on the stream).
  const viaQuery = await stream(t, { channels: [ch], token, tokenInQuery: true, headers: { origin: w.base } });
  t.equal(viaQuery.headers['access-control-allow-origin'], w.base);
  await viaQuery.next((f) => f.type === 'subscribed', 'subscribed', 5000, 0);
  t.ok(((await w.node.metrics.sseRefused.get()).values.find((v) => v.labels.reason === 'auth')?.value ?? 0) >= 4, 'refusals are counted');
});

t.test('token lifetime: token_expiring, then the stream ends with close 4001 token_expired; a fresh token resumes', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'expiry' })).channel.id as string;
  await alice.call('chat.postMessage', { channel: ch, text: 'before' });
  const s = await stream(t, { channels: [ch], since: [0], token: await w.token('alice', 3) });
  const warn = (await s.next((f) => f.type === 'token_expiring', 'token_expiring', 5000, 0)) as Frame & { expires_at: number };
  t.ok(warn.expires_at > Date.now() - 5000 && warn.expires_at < Date.now() + 5000, 'expires_at is the token\'s exp, in ms');
  t.same(await s.whenEnded(), { code: CLOSE.token_expired, reason: 'token_expired' }, 'the last event says why, as close 4001 does');
  await alice.call('chat.postMessage', { channel: ch, text: 'while away' });
  const again = await stream(t, { channels: [ch], since: [0], lastEventId: s.lastEventId, token: await w.token('alice') });
  await again.waitForSeq(ch, 2);
  t.same([...s.seqs(ch), ...again.seqs(ch)], [1, 2], 'resumed by Last-Event-ID with a fresh token');
  t.ok(((await w.node.metrics.sseClosed.get()).values.find((v) => v.labels.reason === 'token_expired')?.value ?? 0) >= 1);
});

t.test('revocation ends a user\'s streams (4003 token_revoked); a kick ends the channel\'s subscription and an emptied stream', async (t) => {
  const ch = (await alice.call('conversations.create', { name: 'ends' })).channel.id as string;
  await alice.call('conversations.invite', { channel: ch, users: ['dave', 'erin'] });
  const dave = await stream(t, { channels: [ch], token: await w.token('dave') });
  await dave.next((f) => f.type === 'subscribed', 'subscribed', 5000, 0);
  await w.node.revoke('dave');
  t.same(await dave.whenEnded(), { code: CLOSE.auth_failed, reason: 'token_revoked' });

  const other = (await alice.call('conversations.create', { name: 'ends-2' })).channel.id as string;
  await alice.call('conversations.invite', { channel: other, users: ['erin'] });
  const erin = await stream(t, { channels: [ch, other], token: await w.token('erin') });
  await until(() => erin.frames.filter((f) => f.type === 'subscribed').length === 2, 'both subscribed');
  await alice.call('conversations.kick', { channel: ch, user: 'erin' });
  await erin.next((f) => f.type === 'unsubscribed', 'unsubscribed', 5000, 0);
  t.same(erin.frames.slice(-2), [
    { type: 'member_left', channel: ch, seq: 3, user: 'erin', reason: 'kicked' },
    { type: 'unsubscribed', channel: ch, reason: 'kicked' },
  ]);
  await alice.call('chat.postMessage', { channel: other, text: 'still here' });
  await erin.waitForSeq(other, 2);
  t.notOk(erin.ended, 'the stream goes on with its other channel');
  await alice.call('conversations.kick', { channel: other, user: 'erin' });
  t.same(await erin.whenEnded(), { code: CLOSE.normal, reason: 'unsubscribed' }, 'nothing left: the stream ends');
  t.equal(erin.frames[erin.frames.length - 1]?.type, 'unsubscribed', 'after saying why');
});

t.test('WALCAST_MAX_CONNECTIONS_PER_USER counts streams with sockets; streams are counted in metrics', async (t) => {
  const w2 = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse_cap', WALCAST_MAX_CONNECTIONS_PER_USER: '2' } });
  const api = new Api(w2.base, await w2.token('frank'));
  const ch = (await api.call('conversations.create', { name: 'cap' })).channel.id as string;
  const token = await w2.token('frank');
  const ws = await WsClient.connect(w2.ws, token);
  t.teardown(() => ws.close());
  const s = await SseClient.connect(w2.base, { channels: [ch], token });
  t.teardown(() => s.abort());
  const third = refusal(await SseClient.open(w2.base, { channels: [ch], token }));
  t.equal(third.status, 429);
  t.equal(third.body.error, 'too_many_connections');
  t.ok(Number(third.headers['retry-after']) >= 1, 'with a retry hint');
  t.equal((await w2.node.metrics.sseConnections.get()).values[0]?.value, 1, 'walcast_sse_connections');
  t.equal((await w2.node.metrics.wsConnections.get()).values[0]?.value, 1, 'walcast_ws_connections counts sockets only');
  s.abort();
  await until(async () => (await w2.node.metrics.sseConnections.get()).values[0]?.value === 0, 'the aborted stream to be gone');
  const again = await SseClient.connect(w2.base, { channels: [ch], token });
  t.teardown(() => again.abort());
  t.pass('the slot was freed when the client went away');
});

t.test('failed authentications per address: past the burst a stream is refused before its token is checked', async (t) => {
  const w3 = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse_authfail', WALCAST_AUTH_FAIL_BURST_IP: '3', WALCAST_AUTH_FAIL_RATE_IP: '0.1' } });
  const api = new Api(w3.base, await w3.token('gina'));
  const ch = (await api.call('conversations.create', { name: 'fails' })).channel.id as string;
  for (let i = 0; i < 3; i++) t.equal(refusal(await SseClient.open(w3.base, { channels: [ch], token: await forgedToken('gina') })).status, 401, `bad token ${i + 1}: 401`);
  const blocked = refusal(await SseClient.open(w3.base, { channels: [ch], token: await w3.token('gina') }));
  t.equal(blocked.status, 429, 'then even a good token is refused from that address');
  t.equal(blocked.body.error, 'rate_limited');
  t.ok(blocked.body.retry_after_ms > 0 && Number(blocked.headers['retry-after']) >= 1, 'with a retry hint');
  t.equal((await w3.node.metrics.sseRefused.get()).values.find((v) => v.labels.reason === 'address')?.value, 1);
});
