// The HTTP side of docs/protocol.md, endpoint by endpoint: exact success shapes, and every error
// code with the bad input that earns it (status and {"ok": false, "error": code}).
import net from 'node:net';
import t from 'tap';
import { expiredToken, forgedToken } from './helpers/tokens.js';
import { SignJWT, UnsecuredJWT } from 'jose';
import { startTestDatabase } from './helpers/postgres.js';
import { SECRET, adminHeaders, startWalcast, until } from './helpers/walcast.js';
import { Api, type ApiResult } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'api_contract' } });
const alice = new Api(w.base, await w.token('alice'));
const bob = new Api(w.base, await w.token('bob'));
const carol = new Api(w.base, await w.token('carol'));
const anon = new Api(w.base, null);

const MAX_BODY = w.config.limits.maxBodyBytes;
const MAX_TEXT = w.config.limits.maxTextChars;
const UNKNOWN = 'CZZZZZZZZZZZZ'; // a well-formed channel id that does not exist

const CHANNEL_KEYS = ['id', 'is_private', 'last_seq', 'name'];
const MESSAGE_KEYS = ['changed_seq', 'channel', 'client_msg_id', 'created_at', 'deleted_at', 'edited_at', 'id', 'reactions', 'reply_to', 'seq', 'text', 'user'];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

/** The subtest object tap passes to a test callback. */
type T = Parameters<Parameters<typeof t.test>[0]>[0];

/** A failure: the status and the documented body shape. */
function isError(t: T, r: ApiResult, status: number, code: string, what: string): void {
  t.equal(r.status, status, `${what}: status ${status}`);
  t.equal(r.body?.ok, false, `${what}: ok is false`);
  t.equal(r.body?.error, code, `${what}: error is ${code}`);
  t.match(r.headers.get('content-type') ?? '', /application\/json/, `${what}: JSON content type`);
}

function isChannel(t: T, c: any, expect: { id?: string; name: string; is_private: boolean; last_seq: number }): void {
  t.same(Object.keys(c).sort(), CHANNEL_KEYS, 'Channel has exactly the documented fields');
  t.equal(typeof c.id, 'string');
  t.ok(c.id.length > 0, 'channel id is not empty');
  if (expect.id !== undefined) t.equal(c.id, expect.id);
  t.equal(c.name, expect.name);
  t.equal(c.is_private, expect.is_private);
  t.equal(c.last_seq, expect.last_seq);
}

function isMessage(t: T, m: any, expect: { channel: string; seq: number; user: string; text: string; client_msg_id: string | null }): void {
  t.same(Object.keys(m).sort(), MESSAGE_KEYS, 'Message has exactly the documented fields');
  t.equal(typeof m.id, 'string');
  t.ok(m.id.length > 0, 'message id is not empty');
  t.same({ channel: m.channel, seq: m.seq, user: m.user, text: m.text, client_msg_id: m.client_msg_id }, expect);
  t.equal(typeof m.seq, 'number');
  t.same({ reply_to: m.reply_to, edited_at: m.edited_at, deleted_at: m.deleted_at, reactions: m.reactions, changed_seq: m.changed_seq }, { reply_to: null, edited_at: null, deleted_at: null, reactions: {}, changed_seq: m.seq }, 'a new message: no reply, never edited, no reactions');
  t.equal(typeof m.created_at, 'string');
  t.match(m.created_at, ISO, 'created_at is ISO-8601');
  t.ok(!Number.isNaN(Date.parse(m.created_at)), 'created_at parses');
  t.ok(Math.abs(Date.parse(m.created_at) - Date.now()) < 60_000, 'created_at is about now');
}

async function newChannel(api: Api, name: string, isPrivate = false): Promise<string> {
  return (await api.call('conversations.create', { name, is_private: isPrivate })).channel.id;
}

/** One HTTP/1.1 exchange over a raw socket: for bodies fetch would not send as they are. */
function rawRequest(head: string, body: Buffer | string | (Buffer | string)[] = ''): Promise<{ status: number; headers: string; body: string }> {
  const url = new URL(w.base);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(url.port), url.hostname);
    let buf = Buffer.alloc(0);
    let settled = false;
    const tryParse = (final: boolean) => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return final ? fail(new Error(`no response head: ${buf.toString()}`)) : undefined;
      const headText = buf.subarray(0, end).toString();
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headText)?.[1]);
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
      const rest = buf.subarray(end + 4);
      if (len && rest.length >= Number(len[1])) return done({ status, headers: headText, body: rest.subarray(0, Number(len[1])).toString() });
      if (final) return done({ status, headers: headText, body: rest.toString() });
    };
    const done = (v: { status: number; headers: string; body: string }) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      resolve(v);
    };
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      reject(e);
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      tryParse(false);
    });
    // The server may close before it read everything we sent: that is allowed, keep what arrived.
    sock.on('error', () => tryParse(true));
    sock.on('close', () => tryParse(true));
    sock.on('connect', () => {
      sock.write(head);
      for (const part of Array.isArray(body) ? body : [body]) sock.write(part);
    });
    setTimeout(() => fail(new Error('raw request timed out')), 10_000).unref();
  });
}

t.test('health and readiness need no token; details and metrics need the admin token', async (t) => {
  const h = await fetch(`${w.base}/healthz`);
  t.equal(h.status, 200);
  await h.arrayBuffer();

  // Readiness may lag the start by a moment (the relay has to reach its slot): poll, then check.
  await until(
    async () => {
      const res = await fetch(`${w.base}/readyz`);
      await res.arrayBuffer();
      return res.status === 200;
    },
    'readyz 200',
    15_000,
  );
  const r = await fetch(`${w.base}/readyz`);
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type') ?? '', /application\/json/);
  const ready = (await r.json()) as Record<string, unknown>;
  t.equal(typeof ready, 'object');
  t.equal(ready.ok, true, 'ready once the relay streams');
  t.same(Object.keys(ready), ['ok'], 'without the admin token, only ok');
  const detailed = (await (await fetch(`${w.base}/readyz`, { headers: adminHeaders })).json()) as Record<string, any>;
  t.equal(detailed.checks?.relay, true, 'with the admin token, every check');

  const anonymous = await fetch(`${w.base}/metrics`);
  t.equal(anonymous.status, 401, 'metrics without the admin token');
  t.equal(((await anonymous.json()) as { error: string }).error, 'not_authed');
  const wrong = await fetch(`${w.base}/metrics`, { headers: { authorization: 'Bearer not-the-admin-token-at-all' } });
  t.equal(wrong.status, 401, 'metrics with a wrong admin token');
  t.equal(((await wrong.json()) as { error: string }).error, 'invalid_auth');
  const userToken = await fetch(`${w.base}/metrics`, { headers: { authorization: `Bearer ${alice.token}` } });
  t.equal(userToken.status, 401, 'a user token is not the admin token');
  await userToken.arrayBuffer();

  // Make sure at least one API metric has a sample before scraping.
  await alice.call('conversations.create', { name: 'metrics' });
  const m = await fetch(`${w.base}/metrics`, { headers: adminHeaders });
  t.equal(m.status, 200);
  t.match(m.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await m.text();
  t.match(text, /^# HELP walcast_\w+ /m, 'has HELP lines for walcast_ metrics');
  t.match(text, /^# TYPE walcast_\w+ (counter|gauge|histogram|summary)$/m, 'has TYPE lines');
  t.match(text, /^walcast_http_requests_total\{[^}]*\} \d+/m, 'counts HTTP requests');
  t.match(text, /^walcast_ws_connections \d+/m);
});

t.test('conversations.create: exact Channel shape; the creator is a member', async (t) => {
  const r = await alice.post('conversations.create', { name: 'general' });
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type') ?? '', /application\/json/);
  t.same(Object.keys(r.body).sort(), ['channel', 'ok']);
  t.equal(r.body.ok, true);
  isChannel(t, r.body.channel, { name: 'general', is_private: false, last_seq: 0 });

  const p = await alice.post('conversations.create', { name: 'secret', is_private: true });
  t.equal(p.status, 200);
  isChannel(t, p.body.channel, { name: 'secret', is_private: true, last_seq: 0 });
  t.not(p.body.channel.id, r.body.channel.id, 'each channel gets its own id');

  const explicitPublic = await alice.post('conversations.create', { name: 'open', is_private: false });
  isChannel(t, explicitPublic.body.channel, { name: 'open', is_private: false, last_seq: 0 });

  // The caller is a member of both: posting works at once.
  for (const id of [r.body.channel.id, p.body.channel.id]) {
    const post = await alice.post('chat.postMessage', { channel: id, text: 'first' });
    t.equal(post.status, 200);
    t.equal(post.body.message.seq, 1);
  }
});

t.test('chat.postMessage and chat.getMessage: exact Message shape, the same object both ways', async (t) => {
  const ch = await newChannel(alice, 'shapes');
  const r = await alice.post('chat.postMessage', { channel: ch, text: 'hello, world' });
  t.equal(r.status, 200);
  t.same(Object.keys(r.body).sort(), ['message', 'ok']);
  t.equal(r.body.ok, true);
  isMessage(t, r.body.message, { channel: ch, seq: 1, user: 'alice', text: 'hello, world', client_msg_id: null });

  const withId = await alice.post('chat.postMessage', { channel: ch, text: 'keyed', client_msg_id: 'cm-1' });
  t.equal(withId.status, 200);
  isMessage(t, withId.body.message, { channel: ch, seq: 2, user: 'alice', text: 'keyed', client_msg_id: 'cm-1' });
  t.not(withId.body.message.id, r.body.message.id);

  const nullId = await alice.post('chat.postMessage', { channel: ch, text: 'null key', client_msg_id: null });
  t.equal(nullId.status, 200);
  t.equal(nullId.body.message.client_msg_id, null);
  t.equal(nullId.body.message.seq, 3);

  for (const posted of [r.body.message, withId.body.message, nullId.body.message]) {
    const g = await alice.get('chat.getMessage', { channel: ch, seq: posted.seq });
    t.equal(g.status, 200);
    t.same(Object.keys(g.body).sort(), ['message', 'ok']);
    t.equal(g.body.ok, true);
    t.same(g.body.message, posted, `getMessage(${posted.seq}) returns what postMessage returned`);
  }

  // Unicode survives the round trip unchanged.
  const text = 'naïve café — 日本語 — 👩‍👩‍👧 — "quotes" \\ and \n newlines';
  const u = await alice.call('chat.postMessage', { channel: ch, text });
  t.equal(u.message.text, text);
  t.equal((await alice.call('chat.getMessage', { channel: ch, seq: u.message.seq })).message.text, text);

  // The channel's last_seq follows.
  const joined = await alice.call('conversations.join', { channel: ch });
  t.equal(joined.channel.last_seq, 4);
});

t.test('conversations.join: public channels make the caller a member; private ones look absent', async (t) => {
  const ch = await newChannel(alice, 'joinable');
  await alice.call('chat.postMessage', { channel: ch, text: 'before bob' });

  isError(t, await bob.post('chat.postMessage', { channel: ch, text: 'let me in' }), 403, 'not_in_channel', 'post before join');
  const j = await bob.post('conversations.join', { channel: ch });
  t.equal(j.status, 200);
  t.same(Object.keys(j.body).sort(), ['channel', 'ok']);
  isChannel(t, j.body.channel, { id: ch, name: 'joinable', is_private: false, last_seq: 2 });
  t.pass('the join took seq 2 (member_joined)');

  const post = await bob.post('chat.postMessage', { channel: ch, text: 'joined' });
  t.equal(post.status, 200);
  isMessage(t, post.body.message, { channel: ch, seq: 3, user: 'bob', text: 'joined', client_msg_id: null });
  t.equal((await bob.get('conversations.history', { channel: ch })).body.messages.length, 2, 'a member reads history (messages only)');

  // Joining again is harmless: no new seq.
  const again = await bob.post('conversations.join', { channel: ch });
  t.equal(again.status, 200);
  isChannel(t, again.body.channel, { id: ch, name: 'joinable', is_private: false, last_seq: 3 });

  // A private channel is not joinable, and looks like no channel to a non-member.
  const priv = await newChannel(alice, 'hidden', true);
  isError(t, await bob.post('conversations.join', { channel: priv }), 404, 'channel_not_found', 'join private as non-member');
  isError(t, await bob.post('chat.postMessage', { channel: priv, text: 'x' }), 404, 'channel_not_found', 'still not a member, and the channel still looks absent');
});

t.test('conversations.invite: invitees can post; the caller must be a member', async (t) => {
  const ch = await newChannel(alice, 'invites', true);
  const r = await alice.post('conversations.invite', { channel: ch, users: ['bob', 'carol', 'bob'] });
  t.equal(r.status, 200);
  t.same(Object.keys(r.body).sort(), ['channel', 'ok']);
  isChannel(t, r.body.channel, { id: ch, name: 'invites', is_private: true, last_seq: 2 });
  t.pass('each invitee took a seq (member_joined 1 and 2)');

  const b = await bob.post('chat.postMessage', { channel: ch, text: 'thanks' });
  t.equal(b.status, 200);
  t.equal(b.body.message.user, 'bob');
  const c = await carol.post('chat.postMessage', { channel: ch, text: 'me too' });
  t.equal(c.status, 200);
  t.equal(c.body.message.seq, 4);

  // Inviting a member again changes nothing.
  const again = await alice.post('conversations.invite', { channel: ch, users: ['bob'] });
  t.equal(again.status, 200);
  t.equal(again.body.channel.last_seq, 4);
});

t.test('conversations.kick: {} and the user loses access', async (t) => {
  const ch = await newChannel(alice, 'kicks');
  await alice.call('conversations.invite', { channel: ch, users: ['bob'] });
  await bob.call('chat.postMessage', { channel: ch, text: 'here' });
  const r = await alice.post('conversations.kick', { channel: ch, user: 'bob' });
  t.equal(r.status, 200);
  t.same(r.body, { ok: true }, 'kick answers {"ok": true} and nothing else');
  isError(t, await bob.post('chat.postMessage', { channel: ch, text: 'still here?' }), 403, 'not_in_channel', 'post after kick');
  isError(t, await bob.get('conversations.history', { channel: ch }), 403, 'not_in_channel', 'history after kick');
  isError(t, await bob.get('chat.getMessage', { channel: ch, seq: 1 }), 403, 'not_in_channel', 'getMessage after kick');
  // A kicked user cannot join the public channel again until invited back.
  isError(t, await bob.post('conversations.join', { channel: ch }), 403, 'not_allowed', 'rejoin after a kick');
  await alice.call('conversations.invite', { channel: ch, users: ['bob'] });
  t.equal((await bob.post('chat.postMessage', { channel: ch, text: 'back' })).status, 200, 'back after an invite');
});

t.test('conversations.history: ascending by seq, after_seq, limit and has_more', async (t) => {
  const ch = await newChannel(alice, 'history');
  const posted: any[] = [];
  for (let i = 1; i <= 7; i++) posted.push((await alice.call('chat.postMessage', { channel: ch, text: `m${i}` })).message);

  const all = await alice.get('conversations.history', { channel: ch });
  t.equal(all.status, 200);
  t.same(Object.keys(all.body).sort(), ['has_more', 'messages', 'ok']);
  t.equal(all.body.ok, true);
  t.equal(all.body.has_more, false);
  t.same(all.body.messages, posted, 'every message, ascending, identical to what postMessage returned');

  const seqs = (r: ApiResult) => r.body.messages.map((m: { seq: number }) => m.seq);
  const page1 = await alice.get('conversations.history', { channel: ch, limit: 3 });
  t.same(seqs(page1), [1, 2, 3]);
  t.equal(page1.body.has_more, true);
  const page2 = await alice.get('conversations.history', { channel: ch, after_seq: 3, limit: 3 });
  t.same(seqs(page2), [4, 5, 6]);
  t.equal(page2.body.has_more, true);
  const page3 = await alice.get('conversations.history', { channel: ch, after_seq: 6, limit: 3 });
  t.same(seqs(page3), [7]);
  t.equal(page3.body.has_more, false);

  const exact = await alice.get('conversations.history', { channel: ch, after_seq: 4, limit: 3 });
  t.same(seqs(exact), [5, 6, 7]);
  t.equal(exact.body.has_more, false, 'no more when the page ends exactly at the last message');

  const afterOnly = await alice.get('conversations.history', { channel: ch, after_seq: 2 });
  t.same(seqs(afterOnly), [3, 4, 5, 6, 7]);
  t.same(afterOnly.body.messages, posted.slice(2));

  const past = await alice.get('conversations.history', { channel: ch, after_seq: 7 });
  t.same(past.body.messages, []);
  t.equal(past.body.has_more, false);
  const beyond = await alice.get('conversations.history', { channel: ch, after_seq: 1000 });
  t.equal(beyond.status, 200);
  t.same(beyond.body.messages, []);

  t.equal((await alice.get('conversations.history', { channel: ch, limit: 1 })).body.has_more, true);
  t.equal((await alice.get('conversations.history', { channel: ch, limit: 1000 })).status, 200, 'limit 1000 is allowed');

  const empty = await alice.get('conversations.history', { channel: await newChannel(alice, 'empty') });
  t.same(empty.body, { ok: true, messages: [], has_more: false });
});

t.test('idempotent postMessage: a retry returns the first message', async (t) => {
  const ch = await newChannel(alice, 'idem');
  const a = await alice.call('chat.postMessage', { channel: ch, text: 'once', client_msg_id: 'k' });
  const b = await alice.call('chat.postMessage', { channel: ch, text: 'once', client_msg_id: 'k' });
  t.same(b.message, a.message);
  t.equal((await alice.call('conversations.history', { channel: ch })).messages.length, 1);
});

t.test('invalid_json: broken, empty or non-JSON bodies', async (t) => {
  const ch = await newChannel(alice, 'json');
  const bodies = ['{"channel":', '', '{channel: 1}', "{'a': 1}", 'not json', '{"a":1}}', '\u0000', '{"a":1,}'];
  for (const raw of bodies) {
    isError(t, await alice.post('chat.postMessage', null, { raw }), 400, 'invalid_json', `body ${JSON.stringify(raw)}`);
  }
  isError(t, await alice.post('conversations.create', null, { raw: '' }), 400, 'invalid_json', 'empty create');
  isError(t, await alice.post('conversations.join', null, { raw: '{' }), 400, 'invalid_json', 'broken join');
  isError(t, await alice.post('conversations.invite', null, { raw: '[' }), 400, 'invalid_json', 'broken invite');
  isError(t, await alice.post('conversations.kick', null, { raw: 'nul' }), 400, 'invalid_json', 'broken kick');
  // An explicit Content-Length: 0, as a hand-written client would send it.
  const r = await rawRequest(
    `POST /v1/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n`,
  );
  t.equal(r.status, 400, 'raw empty body');
  t.same(JSON.parse(r.body).error, 'invalid_json');
  // Nothing was stored by any of these.
  t.equal((await alice.call('conversations.history', { channel: ch })).messages.length, 0);
});

t.test('invalid_arguments: wrong types and missing fields, for every method', async (t) => {
  const ch = await newChannel(alice, 'args');
  const cases: [string, unknown][] = [
    // JSON, but not an object
    ['conversations.create', []],
    ['conversations.create', null],
    ['conversations.create', 'name'],
    ['chat.postMessage', 42],
    // conversations.create
    ['conversations.create', {}],
    ['conversations.create', { is_private: true }],
    ['conversations.create', { name: 5 }],
    ['conversations.create', { name: null }],
    ['conversations.create', { name: 'x', is_private: 'yes' }],
    ['conversations.create', { name: 'x', is_private: 'true' }],
    ['conversations.create', { name: 'x', is_private: 1 }],
    // conversations.join
    ['conversations.join', {}],
    ['conversations.join', { channel: 123 }],
    ['conversations.join', { channel: null }],
    ['conversations.join', { channel: [ch] }],
    // conversations.invite
    ['conversations.invite', {}],
    ['conversations.invite', { channel: ch }],
    ['conversations.invite', { users: ['bob'] }],
    ['conversations.invite', { channel: 1, users: ['bob'] }],
    ['conversations.invite', { channel: ch, users: 'bob' }],
    ['conversations.invite', { channel: ch, users: { bob: true } }],
    ['conversations.invite', { channel: ch, users: [1, 2] }],
    ['conversations.invite', { channel: ch, users: null }],
    // conversations.kick
    ['conversations.kick', {}],
    ['conversations.kick', { channel: ch }],
    ['conversations.kick', { user: 'bob' }],
    ['conversations.kick', { channel: ch, user: 7 }],
    ['conversations.kick', { channel: ch, user: ['bob'] }],
    ['conversations.kick', { channel: true, user: 'bob' }],
    // chat.postMessage
    ['chat.postMessage', {}],
    ['chat.postMessage', { channel: ch }],
    ['chat.postMessage', { text: 'hi' }],
    ['chat.postMessage', { channel: 12345, text: 'hi' }],
    ['chat.postMessage', { channel: ch, text: { a: 1 } }],
    ['chat.postMessage', { channel: ch, text: ['hi'] }],
    ['chat.postMessage', { channel: ch, text: 42 }],
    ['chat.postMessage', { channel: ch, text: null }],
    ['chat.postMessage', { channel: ch, text: 'hi', client_msg_id: 5 }],
    ['chat.postMessage', { channel: ch, text: 'hi', client_msg_id: { k: 1 } }],
    ['chat.postMessage', { channel: '', text: 'hi' }],
    ['chat.postMessage', { channel: 'C'.repeat(65), text: 'hi' }],
    // Channel ids are checked at the edge: anything not shaped like one never reaches the database.
    ['chat.postMessage', { channel: 'nope', text: 'hi' }],
    ['chat.postMessage', { channel: 'c' + '0'.repeat(12), text: 'hi' }],
    ['chat.postMessage', { channel: 'C' + '0'.repeat(11) + '\u0000', text: 'hi' }],
    ['conversations.join', { channel: 'nope' }],
    ['conversations.invite', { channel: 'nope', users: ['bob'] }],
    ['conversations.kick', { channel: 'nope', user: 'bob' }],
    // NUL cannot be stored in PostgreSQL text
    ['chat.postMessage', { channel: ch, text: 'before\u0000after' }],
    ['chat.postMessage', { channel: ch, text: '\u0000' }],
  ];
  for (const [method, body] of cases) {
    isError(t, await alice.post(method, body), 400, 'invalid_arguments', `${method} ${JSON.stringify(body)}`);
  }
  // A NUL escape written by hand in the JSON text.
  isError(
    t,
    await alice.post('chat.postMessage', null, { raw: `{"channel":"${ch}","text":"a\\u0000b"}` }),
    400,
    'invalid_arguments',
    'escaped NUL',
  );
  // An unpaired surrogate cannot be stored as written either.
  isError(
    t,
    await alice.post('chat.postMessage', null, { raw: `{"channel":"${ch}","text":"a\\ud800b"}` }),
    400,
    'invalid_arguments',
    'lone surrogate',
  );

  // GET methods: seq not an integer, limit out of range, missing parameters.
  const gets: [string, Record<string, string | number>][] = [
    ['chat.getMessage', { channel: ch }],
    ['chat.getMessage', { seq: 1 }],
    ['chat.getMessage', {}],
    ['chat.getMessage', { channel: ch, seq: '1.5' }],
    ['chat.getMessage', { channel: ch, seq: 'abc' }],
    ['chat.getMessage', { channel: ch, seq: '-1' }],
    ['chat.getMessage', { channel: ch, seq: '' }],
    ['chat.getMessage', { channel: ch, seq: '1e3' }],
    ['conversations.history', {}],
    ['conversations.history', { channel: ch, limit: 0 }],
    ['conversations.history', { channel: ch, limit: 5000 }],
    ['conversations.history', { channel: ch, limit: 1001 }],
    ['conversations.history', { channel: ch, limit: -1 }],
    ['conversations.history', { channel: ch, limit: 'ten' }],
    ['conversations.history', { channel: ch, limit: '2.5' }],
    ['conversations.history', { channel: ch, after_seq: '-1' }],
    ['conversations.history', { channel: ch, after_seq: '0.5' }],
    ['conversations.history', { channel: ch, after_seq: 'x' }],
    ['conversations.history', { channel: 'nope' }],
    ['conversations.history', { channel: '\u0000' }],
    ['chat.getMessage', { channel: 'nope', seq: 1 }],
  ];
  for (const [method, query] of gets) {
    isError(t, await alice.get(method, query), 400, 'invalid_arguments', `${method} ${JSON.stringify(query)}`);
  }
  t.equal((await alice.call('conversations.history', { channel: ch })).messages.length, 0, 'nothing was stored');
});

t.test('msg_too_long: the limit counts code points', async (t) => {
  t.equal(MAX_TEXT, 4000, 'default WALCAST_MAX_TEXT_CHARS');
  const ch = await newChannel(alice, 'long');

  const ascii = 'a'.repeat(MAX_TEXT);
  const okAscii = await alice.post('chat.postMessage', { channel: ch, text: ascii });
  t.equal(okAscii.status, 200, `${MAX_TEXT} ASCII characters are accepted`);
  t.equal(okAscii.body.message.text, ascii);
  isError(t, await alice.post('chat.postMessage', { channel: ch, text: ascii + 'a' }), 400, 'msg_too_long', `${MAX_TEXT + 1} ASCII`);

  // Emoji outside the BMP: 2 UTF-16 units and 4 UTF-8 bytes each, but one character.
  const emoji = '😀'.repeat(MAX_TEXT);
  t.equal(emoji.length, MAX_TEXT * 2);
  const okEmoji = await alice.post('chat.postMessage', { channel: ch, text: emoji });
  t.equal(okEmoji.status, 200, `${MAX_TEXT} emoji are accepted`);
  t.equal(okEmoji.body.message.text, emoji, 'stored unchanged');
  t.equal((await alice.call('chat.getMessage', { channel: ch, seq: okEmoji.body.message.seq })).message.text, emoji);
  isError(t, await alice.post('chat.postMessage', { channel: ch, text: emoji + '😀' }), 400, 'msg_too_long', `${MAX_TEXT + 1} emoji`);
  isError(t, await alice.post('chat.postMessage', { channel: ch, text: emoji + 'a' }), 400, 'msg_too_long', `${MAX_TEXT} emoji + 1 ASCII`);

  const multi = 'é'.repeat(MAX_TEXT); // 2 UTF-8 bytes each
  t.equal((await alice.post('chat.postMessage', { channel: ch, text: multi })).status, 200, `${MAX_TEXT} two-byte characters`);

  const h = await alice.call('conversations.history', { channel: ch });
  t.same(
    h.messages.map((m: { seq: number }) => m.seq),
    [1, 2, 3],
    'rejected messages took no seq',
  );
});

t.test('payload_too_large: bodies over WALCAST_MAX_BODY_BYTES are refused with 413', async (t) => {
  t.equal(MAX_BODY, 65536, 'default WALCAST_MAX_BODY_BYTES');
  const ch = await newChannel(alice, 'big');
  const body = JSON.stringify({ channel: ch, text: 'padded' });

  // Exactly at the limit (JSON allows trailing whitespace): accepted.
  const atLimit = body + ' '.repeat(MAX_BODY - Buffer.byteLength(body));
  t.equal(Buffer.byteLength(atLimit), MAX_BODY);
  const ok = await alice.post('chat.postMessage', null, { raw: atLimit });
  t.equal(ok.status, 200, 'a body of exactly the limit is accepted');
  t.equal(ok.body.message?.text, 'padded');

  // One byte more, announced by Content-Length.
  const over = await rawRequest(
    `POST /v1/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\nContent-Type: application/json\r\nContent-Length: ${MAX_BODY + 1}\r\n\r\n`,
    atLimit + ' ',
  );
  t.equal(over.status, 413, 'limit + 1 bytes');
  t.match(JSON.parse(over.body), { ok: false, error: 'payload_too_large' });

  // Much larger; the server may close before reading it all.
  const huge = JSON.stringify({ channel: ch, text: 'x'.repeat(3 * MAX_BODY) });
  const large = await rawRequest(
    `POST /v1/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(huge)}\r\n\r\n`,
    huge,
  );
  t.equal(large.status, 413, 'a large body with Content-Length');
  t.equal(JSON.parse(large.body).error, 'payload_too_large');

  // Chunked, with no Content-Length: the limit holds while reading.
  const chunk = Buffer.alloc(16 * 1024, 0x20);
  const chunks: (Buffer | string)[] = [];
  for (let i = 0; i < 6; i++) chunks.push(`${chunk.length.toString(16)}\r\n`, chunk, '\r\n');
  chunks.push('0\r\n\r\n');
  const chunked = await rawRequest(
    `POST /v1/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
    chunks,
  );
  t.equal(chunked.status, 413, 'a chunked body over the limit');
  t.equal(JSON.parse(chunked.body).error, 'payload_too_large');

  // Too large and unauthenticated: still a clean error, not a crash.
  const noAuth = await rawRequest(
    `POST /v1/conversations.create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${MAX_BODY * 2}\r\n\r\n`,
    Buffer.alloc(MAX_BODY * 2, 0x20),
  );
  t.ok(noAuth.status === 413 || noAuth.status === 401, `oversized unauthenticated body: ${noAuth.status}`);
  t.match(JSON.parse(noAuth.body), { ok: false, error: noAuth.status === 413 ? 'payload_too_large' : 'not_authed' });

  const h = await alice.call('conversations.history', { channel: ch });
  t.equal(h.messages.length, 1, 'only the at-limit message was stored');
});

t.test('not_authed: no Authorization header, on POST and GET', async (t) => {
  const ch = await newChannel(alice, 'auth');
  isError(t, await anon.post('conversations.create', { name: 'x' }), 401, 'not_authed', 'create');
  isError(t, await anon.post('conversations.join', { channel: ch }), 401, 'not_authed', 'join');
  isError(t, await anon.post('conversations.invite', { channel: ch, users: ['bob'] }), 401, 'not_authed', 'invite');
  isError(t, await anon.post('conversations.kick', { channel: ch, user: 'bob' }), 401, 'not_authed', 'kick');
  isError(t, await anon.post('chat.postMessage', { channel: ch, text: 'x' }), 401, 'not_authed', 'postMessage');
  isError(t, await anon.get('chat.getMessage', { channel: ch, seq: 1 }), 401, 'not_authed', 'getMessage');
  isError(t, await anon.get('conversations.history', { channel: ch }), 401, 'not_authed', 'history');
  // "Bearer" with nothing after it carries no token either.
  isError(t, await anon.post('chat.postMessage', { channel: ch, text: 'x' }, { headers: { authorization: 'Bearer ' } }), 401, 'not_authed', 'empty Bearer');
  t.equal((await alice.call('conversations.history', { channel: ch })).messages.length, 0);
});

t.test('invalid_auth: garbage, forged, expired and unsigned tokens', async (t) => {
  const ch = await newChannel(alice, 'badauth');
  const now = Math.floor(Date.now() / 1000);
  const key = (s: string) => new TextEncoder().encode(s);
  const expired = await expiredToken('alice');
  const forged = await forgedToken('alice');
  const unsigned = new UnsecuredJWT({}).setSubject('alice').setIssuedAt().setExpirationTime('1h').encode();
  const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(key(SECRET));
  const badSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('a b/c').setExpirationTime('1h').sign(key(SECRET));
  const valid = await w.token('alice');
  const tampered = valid.slice(0, -2) + (valid.endsWith('AA') ? 'BB' : 'AA');

  const tokens: Record<string, string> = {
    garbage: 'garbage',
    'three dots': 'a.b.c',
    expired,
    forged,
    unsigned,
    'no sub': noSub,
    'bad sub': badSub,
    tampered,
  };
  for (const [what, token] of Object.entries(tokens)) {
    const api = new Api(w.base, token);
    const code = what === 'expired' ? 'token_expired' : 'invalid_auth';
    isError(t, await api.post('chat.postMessage', { channel: ch, text: 'x' }), 401, code, `${what} (POST)`);
    isError(t, await api.get('conversations.history', { channel: ch }), 401, code, `${what} (GET)`);
  }
  // Sanity: the same construction with the right secret and a future exp works.
  const good = await new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject('alice').setExpirationTime(now + 3600).sign(key(SECRET));
  t.equal((await new Api(w.base, good).post('chat.postMessage', { channel: ch, text: 'ok' })).status, 200, 'a well-signed token works');
  t.equal((await alice.call('conversations.history', { channel: ch })).messages.length, 1, 'only the good one stored');
});

t.test('channel_not_found: unknown channel ids, for each method that takes one', async (t) => {
  for (const id of [UNKNOWN, 'C' + '0'.repeat(12)]) {
    isError(t, await alice.post('conversations.join', { channel: id }), 404, 'channel_not_found', `join ${id}`);
    isError(t, await alice.post('conversations.invite', { channel: id, users: ['bob'] }), 404, 'channel_not_found', `invite ${id}`);
    isError(t, await alice.post('conversations.kick', { channel: id, user: 'bob' }), 404, 'channel_not_found', `kick ${id}`);
    isError(t, await alice.post('chat.postMessage', { channel: id, text: 'x' }), 404, 'channel_not_found', `postMessage ${id}`);
    isError(t, await alice.get('chat.getMessage', { channel: id, seq: 1 }), 404, 'channel_not_found', `getMessage ${id}`);
    isError(t, await alice.get('conversations.history', { channel: id }), 404, 'channel_not_found', `history ${id}`);
  }
  const priv = await newChannel(alice, 'private-join', true);
  isError(t, await carol.post('conversations.join', { channel: priv }), 404, 'channel_not_found', 'join private as non-member');
});

t.test('not_in_channel: a non-member of a public channel', async (t) => {
  const ch = await newChannel(alice, 'members-only');
  await alice.call('chat.postMessage', { channel: ch, text: 'for members' });
  isError(t, await carol.post('chat.postMessage', { channel: ch, text: 'x' }), 403, 'not_in_channel', 'postMessage');
  isError(t, await carol.get('conversations.history', { channel: ch }), 403, 'not_in_channel', 'history');
  isError(t, await carol.get('chat.getMessage', { channel: ch, seq: 1 }), 403, 'not_in_channel', 'getMessage of an existing seq');
  isError(t, await carol.get('chat.getMessage', { channel: ch, seq: 99 }), 403, 'not_in_channel', 'getMessage of a missing seq');
  isError(t, await carol.post('conversations.invite', { channel: ch, users: ['carol', 'bob'] }), 403, 'not_in_channel', 'invite');
  isError(t, await carol.post('conversations.kick', { channel: ch, user: 'alice' }), 403, 'not_in_channel', 'kick');
  isError(t, await carol.post('conversations.leave', { channel: ch }), 403, 'not_in_channel', 'leave');
  // The idempotent path checks membership too.
  isError(t, await carol.post('chat.postMessage', { channel: ch, text: 'x', client_msg_id: 'c1' }), 403, 'not_in_channel', 'postMessage with client_msg_id');
  // Nothing changed: carol is still not a member, alice still is, one message.
  isError(t, await carol.get('conversations.history', { channel: ch }), 403, 'not_in_channel', 'self-invite did not work');
  isError(t, await bob.get('conversations.history', { channel: ch }), 403, 'not_in_channel', 'bob was not invited by a non-member');
  const h = await alice.call('conversations.history', { channel: ch });
  t.equal(h.messages.length, 1);
});

t.test('message_not_found: a seq that does not exist', async (t) => {
  const ch = await newChannel(alice, 'missing');
  isError(t, await alice.get('chat.getMessage', { channel: ch, seq: 1 }), 404, 'message_not_found', 'empty channel');
  isError(t, await alice.get('chat.getMessage', { channel: ch, seq: 0 }), 404, 'message_not_found', 'seq 0');
  await alice.call('chat.postMessage', { channel: ch, text: 'one' });
  t.equal((await alice.get('chat.getMessage', { channel: ch, seq: 1 })).status, 200);
  isError(t, await alice.get('chat.getMessage', { channel: ch, seq: 2 }), 404, 'message_not_found', 'seq past the end');
  isError(t, await alice.get('chat.getMessage', { channel: ch, seq: 999_999_999 }), 404, 'message_not_found', 'large seq');
});

t.test('unknown_method and method_not_allowed', async (t) => {
  isError(t, await alice.get('nope', {}), 404, 'unknown_method', 'GET /v1/nope');
  isError(t, await alice.post('nope', {}), 404, 'unknown_method', 'POST /v1/nope');
  isError(t, await anon.get('nope', {}), 404, 'unknown_method', 'GET /v1/nope without a token');
  isError(t, await alice.post('chat.postmessage', { channel: UNKNOWN, text: 'x' }), 404, 'unknown_method', 'method names are case-sensitive');

  for (const m of ['conversations.create', 'conversations.join', 'conversations.invite', 'conversations.kick', 'chat.postMessage']) {
    isError(t, await alice.get(m, {}), 405, 'method_not_allowed', `GET ${m}`);
  }
  for (const m of ['chat.getMessage', 'conversations.history']) {
    isError(t, await alice.post(m, { channel: UNKNOWN }), 405, 'method_not_allowed', `POST ${m}`);
  }
  const del = await fetch(`${w.base}/v1/chat.postMessage`, { method: 'DELETE', headers: { authorization: `Bearer ${alice.token}` } });
  t.equal(del.status, 405, 'DELETE chat.postMessage');
  t.equal(((await del.json()) as { error: string }).error, 'method_not_allowed');
});

t.test('the process survived all of the above', async (t) => {
  const ch = await newChannel(alice, 'still-alive');
  const posted = await alice.call('chat.postMessage', { channel: ch, text: 'still here' });
  const got = await alice.call('chat.getMessage', { channel: ch, seq: 1 });
  t.same(got.message, posted.message);
  const h = await fetch(`${w.base}/healthz`);
  t.equal(h.status, 200);
  const metrics = await (await fetch(`${w.base}/metrics`, { headers: adminHeaders })).text();
  t.notMatch(metrics, /walcast_http_requests_total\{[^}]*status="500"[^}]*\} [1-9]/, 'no request ended in a 500');
});
