// A token's lifetime on open sockets (issue 16): expiry closes the socket (4001) instead of
// leaving it working; token_expiring, auth and auth_ok refresh it in place; a socket opened
// without a token authenticates with its first frame, within 5 s; and the SDK's getToken()
// refreshes without dropping subscriptions, and reconnects with a fresh token after 4001.
import t from 'tap';
import WebSocket from 'ws';
import { createNodeClient } from '../src/sdk/node.js';
import { CLOSE, clientFrame } from '../src/protocol.js';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous, type Frame } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'token_lifetime' } });
const alice = new Api(w.base, await w.token('alice'));
const channel = (await alice.call('conversations.create', { name: 'lifetime' })).channel.id as string;
const post = (text: string) => alice.call('chat.postMessage', { channel, text });

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A raw socket that records frames and its close code. */
async function raw(t: Teardown, token: string | null): Promise<WsClient> {
  const ws = await WsClient.connect(w.ws, token);
  t.teardown(() => ws.close());
  return ws;
}

const closed = (ws: WsClient, ms = 20_000) => until(() => ws.closed, 'the socket to close', ms).then(() => ws.closeCode);

t.test('an expiring token gets token_expiring, and at exp the socket closes with 4001', async (t) => {
  const ws = await raw(t, await w.token('alice', 3));
  t.same(await ws.subscribe(channel), { type: 'subscribed', channel, seq: 0, since: 0 });
  const warn = await ws.next((f) => f.type === 'token_expiring', 'token_expiring', 5000, 0);
  t.type((warn as Frame & { expires_at: number }).expires_at, 'number');
  t.ok((warn as Frame & { expires_at: number }).expires_at > Date.now() - 5000, 'expires_at is ms since the epoch');
  // The finding: the socket stayed open and kept replaying long after exp. Now it closes.
  t.equal(await closed(ws), CLOSE.token_expired, 'closed with 4001 token_expired');
});

t.test('auth with a fresh token keeps the socket and its subscriptions', async (t) => {
  const ws = await raw(t, await w.token('alice', 3));
  await ws.subscribe(channel);
  const before = (await alice.call('conversations.history', { channel, limit: 1000 })).messages.length as number;
  await ws.next((f) => f.type === 'token_expiring', 'token_expiring', 5000, 0);
  const ok = ws.next((f) => f.type === 'auth_ok', 'auth_ok', 5000);
  ws.send(clientFrame.auth(await w.token('alice', 60)));
  const authOk = (await ok) as Frame & { expires_at: number };
  t.ok(authOk.expires_at > Date.now() + 50_000, 'auth_ok carries the new expiry');
  // Past the first token's exp: still open, still delivering.
  await new Promise((r) => setTimeout(r, 3500));
  t.notOk(ws.closed, 'open past the old token\'s exp');
  await post('after refresh');
  await ws.waitForSeq(channel, before + 1);
  t.pass('a message arrived on the refreshed socket');
});

t.test('auth for another user, or with a bad or expired token, closes the socket', async (t) => {
  const other = await raw(t, await w.token('alice', 60));
  const err = other.next((f) => f.type === 'error', 'error');
  other.send(clientFrame.auth(await w.token('bob', 60)));
  t.equal((await err).code, 'invalid_auth', 'another sub');
  t.equal(await closed(other), CLOSE.auth_failed);

  const bad = await raw(t, await w.token('alice', 60));
  bad.send(clientFrame.auth('garbage'));
  t.equal(await closed(bad), CLOSE.auth_failed, 'garbage token');
  t.equal(bad.frames.find((f) => f.type === 'error')?.code, 'invalid_auth');
});

t.test('a socket opened without a token: auth first, within 5 s', async (t) => {
  // auth, then frames right behind it (before auth_ok): they wait and run in order.
  const ws = await raw(t, null);
  ws.send(clientFrame.auth(await w.token('alice', 60)));
  ws.send(clientFrame.subscribe(channel, 0));
  const ok = (await ws.next((f) => f.type === 'auth_ok', 'auth_ok', 5000, 0)) as Frame & { expires_at: number };
  t.ok(ok.expires_at > Date.now(), 'auth_ok');
  await ws.next((f) => f.type === 'subscribed', 'subscribed', 5000, 0);
  await ws.waitForSeq(channel, 1);
  t.pass('catch-up through a first-frame-authenticated socket');

  const silent = await raw(t, null);
  t.equal(await closed(silent), CLOSE.auth_timeout, 'no auth within 5 s: 4002');

  const eager = await raw(t, null);
  eager.send(clientFrame.subscribe(channel, 0));
  t.equal(await closed(eager), CLOSE.auth_failed, 'a frame before auth: 4003');
  t.equal(eager.frames[0]?.code, 'not_authed');
  t.same(eager.messages(), [], 'nothing delivered');

  const expired = await raw(t, null);
  const past = Math.floor(Date.now() / 1000);
  const { SignJWT } = await import('jose');
  const { SECRET } = await import('./helpers/walcast.js');
  expired.send(
    clientFrame.auth(await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuedAt(past - 100).setExpirationTime(past - 10).sign(new TextEncoder().encode(SECRET))),
  );
  t.equal(await closed(expired), CLOSE.token_expired, 'an expired token in auth: 4001');
  t.equal(expired.frames[0]?.code, 'token_expired');
});

t.test('a token without exp is refused at the upgrade', async (t) => {
  const { SignJWT } = await import('jose');
  const { SECRET } = await import('./helpers/walcast.js');
  const forever = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuedAt().sign(new TextEncoder().encode(SECRET));
  const err = await WsClient.connect(w.ws, forever).then(
    () => null,
    (e: { status?: number }) => e.status,
  );
  t.equal(err, 401);
});

t.test('SDK: getToken() refreshes on token_expiring without dropping subscriptions', async (t) => {
  let calls = 0;
  const client = createNodeClient({
    url: w.ws,
    token: () => {
      calls++;
      return w.token('alice', 4);
    },
    backoff: { baseMs: 50, maxMs: 500 },
  });
  t.teardown(() => client.close());
  const seqs: number[] = [];
  const start = (await alice.call('conversations.history', { channel, limit: 1000 })).messages.length as number;
  const sub = client.subscribe(channel, { since: start, onMessage: (m) => seqs.push(m.seq) });
  await sub.ready;
  // Posts spread over three of the token's lifetimes.
  for (let i = 1; i <= 12; i++) {
    await post(`sdk ${i}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  await until(() => seqs.length === 12, 'the 12 messages', 15_000);
  t.ok(contiguous(seqs, start + 1, start + 12), 'every message once, in order');
  t.equal(client.reconnects, 0, 'never reconnected');
  t.ok(client.tokenRefreshes >= 2, `refreshed in place (${client.tokenRefreshes} times, getToken called ${calls} times)`);
});

t.test('SDK: after 4001 it reconnects with a fresh token and resumes by seq', async (t) => {
  let refusals = 0;
  const client = createNodeClient({
    url: w.ws,
    // getToken() fails while the socket is open (the refresh), so the token runs out.
    token: async () => {
      if (client.state === 'open') {
        refusals++;
        throw new Error('identity provider down');
      }
      return w.token('alice', 3);
    },
    backoff: { baseMs: 50, maxMs: 500 },
  });
  t.teardown(() => client.close());
  const seqs: number[] = [];
  const start = (await alice.call('conversations.history', { channel, limit: 1000 })).messages.length as number;
  const sub = client.subscribe(channel, { since: start, onMessage: (m) => seqs.push(m.seq) });
  await sub.ready;
  await post('before expiry');
  await until(() => client.lastCloseCode === CLOSE.token_expired, 'a 4001 close', 15_000);
  await post('while reconnecting');
  await until(() => seqs.length === 2, 'both messages', 15_000);
  t.ok(contiguous(seqs, start + 1, start + 2), 'resumed by seq: nothing lost or doubled');
  t.ok(client.reconnects >= 1, 'reconnected');
  t.ok(refusals >= 1, 'the in-place refresh had failed');
});

t.test('SDK with a static token gives up after 4003', async (t) => {
  const client = createNodeClient({ url: w.ws, token: await w.token('alice', 60), backoff: { baseMs: 50, maxMs: 200 } });
  t.teardown(() => client.close());
  await client.whenOpen();
  await w.node.revoke('alice');
  await until(() => client.state === 'closed', 'the client to give up', 15_000);
  t.equal(client.lastCloseCode, CLOSE.auth_failed);
});

t.test('raw protocol: a ws client without the SDK sees the same close codes', async (t) => {
  // Keeps the test honest about what goes over the wire (ws reports the code it received).
  const ws = new WebSocket(`${w.ws}?token=${await w.token('carol', 2)}`);
  const code = await new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
  t.equal(code, CLOSE.token_expired);
});
