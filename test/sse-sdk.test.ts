// The SDK over Server-Sent Events, against real gateways on real PostgreSQL: `transport: 'sse'`
// delivers every channel in order, once, while subscriptions come and go (each change replaces
// the stream); it resumes after its gateway is drained and replaced; `auto` falls back to SSE
// behind a proxy that refuses or swallows WebSocket upgrades, and stays on WebSockets where they
// work; token refresh replaces the stream; a refused channel ends alone.
import type http from 'node:http';
import t from 'tap';
import { startProxy, type ProxyOptions } from '../harness/proxy.js';
import { freePort } from '../src/db/embedded.js';
import { CLOSE } from '../src/protocol.js';
import { createNodeClient, type ClientOptions, type ConnectionState, type WalcastClient } from '../src/sdk/node.js';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until, type Running } from './helpers/walcast.js';
import { Api, contiguous } from './helpers/clients.js';

const db = await startTestDatabase(t);

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A proxy in front of whichever node `backend` points at (so a test can replace the node). */
async function proxy(t: Teardown, backend: () => number, o: ProxyOptions = {}): Promise<{ ws: string; base: string }> {
  const server: http.Server = startProxy(backend, () => [backend()], o);
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { ws: `ws://127.0.0.1:${port}/v1/ws`, base: `http://127.0.0.1:${port}` };
}

function client(t: Teardown, o: ClientOptions): WalcastClient {
  const c = createNodeClient({ backoff: { baseMs: 50, maxMs: 500 }, ...o });
  t.teardown(() => c.close());
  return c;
}

t.test("transport 'sse': in order and once while subscriptions come and go; typing is not available", async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse_sdk_basic' } });
  const alice = new Api(w.base, await w.token('alice'));
  const a = (await alice.call('conversations.create', { name: 'a' })).channel.id as string;
  const b = (await alice.call('conversations.create', { name: 'b' })).channel.id as string;
  for (let i = 1; i <= 5; i++) await alice.call('chat.postMessage', { channel: a, text: `old ${i}` });
  const c = client(t, { url: w.ws, token: () => w.token('alice'), transport: 'sse' });
  const seen = { a: [] as number[], b: [] as number[] };
  const subA = c.subscribe(a, { since: 0, onChange: (f) => seen.a.push(f.seq) });
  await subA.ready;
  t.equal(c.transport, 'sse');
  t.equal(c.state, 'open');
  t.notOk(c.typing(a), 'typing is not available over SSE');

  // Posts to `a` go on while `b` is subscribed and `a`'s stream is replaced twice.
  const N = 60;
  const posting = (async () => {
    for (let i = 6; i <= N; i++) await alice.call('chat.postMessage', { channel: a, text: `m${i}` });
  })();
  await until(() => seen.a.length >= 15, 'a few of a');
  const subB = c.subscribe(b, { since: 0, onChange: (f) => seen.b.push(f.seq) });
  await subB.ready;
  await alice.call('chat.postMessage', { channel: b, text: 'b1' });
  await until(() => seen.b.length === 1, 'b1');
  const ghost = c.subscribe('CZZZZZZZZZZZZ');
  await ghost.ready.catch(() => {});
  t.equal(ghost.endReason, 'channel_not_found', 'a refused channel ends alone');
  subB.unsubscribe();
  await posting;
  await until(() => seen.a[seen.a.length - 1] === N, `a up to ${N}`);
  t.ok(contiguous(seen.a, 1, N), `a: 1..${N} once, in order, while its stream was replaced`);
  t.same(seen.b, [1], 'b: its one message');
  t.equal(c.reconnects, 0, 'replacing the stream is no reconnect');
  await alice.call('chat.postMessage', { channel: b, text: 'b2 (unsubscribed)' });
  await alice.call('chat.postMessage', { channel: a, text: 'last' });
  await until(() => seen.a.length === N + 1, 'the last one');
  t.same(seen.b, [1], 'nothing after unsubscribe');
  await until(async () => (await w.node.metrics.sseConnections.get()).values[0]?.value === 1, 'one stream on the server');
  t.pass('replaced streams do not linger on the server');
});

t.test("transport 'sse': the gateway is drained and replaced under a stream: resumed, nothing lost or doubled", async (t) => {
  let w: Running = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse_sdk_restart', WALCAST_DRAIN_WINDOW_MS: '200', WALCAST_DRAIN_RETRY_MS: '300' } });
  const p = await proxy(t, () => w.node.port);
  const alice = new Api(p.base, await w.token('alice'));
  const ch = (await alice.call('conversations.create', { name: 'restart' })).channel.id as string;
  const c = client(t, { url: p.ws, token: () => w.token('alice'), transport: 'sse' });
  const states = new Set<ConnectionState>();
  c.onState((s) => states.add(s));
  const seqs: number[] = [];
  await c.subscribe(ch, { since: 0, onMessage: (m) => seqs.push(m.seq) }).ready;
  const M = 80;
  for (let i = 1; i <= M; i++) {
    if (i === 30) {
      await w.close(); // drains: the stream ends with 1012 and a hint
      w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse_sdk_restart' } });
    }
    await alice.call('chat.postMessage', { channel: ch, text: `m${i}`, client_msg_id: `k${i}` });
  }
  await until(() => seqs[seqs.length - 1] === M, `seq ${M}`, 30_000);
  t.ok(contiguous(seqs, 1, M), `1..${M} once, in order`);
  t.equal(c.lastCloseCode, CLOSE.draining, 'the stream ended with 1012');
  t.ok(c.reconnects >= 1 && states.has('reconnecting'), 'and the client reconnected');
  t.equal(c.transport, 'sse');
});

for (const upgrades of ['refuse', 'hang'] as const) {
  t.test(`'auto' behind a proxy that ${upgrades === 'refuse' ? 'refuses' : 'swallows'} WebSocket upgrades: falls back to SSE, and resumes`, async (t) => {
    let w: Running = await startWalcast(t, db.url, { env: { WALCAST_SLOT: `sse_sdk_auto_${upgrades}`, WALCAST_DRAIN_WINDOW_MS: '200', WALCAST_DRAIN_RETRY_MS: '300' } });
    const p = await proxy(t, () => w.node.port, { upgrades });
    const alice = new Api(p.base, await w.token('alice'));
    const ch = (await alice.call('conversations.create', { name: `auto-${upgrades}` })).channel.id as string;
    for (let i = 1; i <= 10; i++) await alice.call('chat.postMessage', { channel: ch, text: `m${i}` });
    const c = client(t, { url: p.ws, token: () => w.token('alice'), connectTimeoutMs: 1000 });
    t.equal(c.transport, 'websocket', 'auto starts with a WebSocket');
    const seqs: number[] = [];
    const sub = c.subscribe(ch, { since: 0, onMessage: (m) => seqs.push(m.seq) });
    await sub.ready;
    t.equal(c.transport, 'sse', 'and fell back to SSE');
    for (let i = 11; i <= 40; i++) {
      if (i === 25) {
        await w.close();
        w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: `sse_sdk_auto_${upgrades}` } });
      }
      await alice.call('chat.postMessage', { channel: ch, text: `m${i}` });
    }
    await until(() => seqs[seqs.length - 1] === 40, 'seq 40', 30_000);
    t.ok(contiguous(seqs, 1, 40), '1..40 once, in order, across the fallback and a gateway restart');
    t.equal(c.transport, 'sse', 'still on SSE');
  });
}

t.test("'auto' started before its server: tries both until one opens, then delivers", async (t) => {
  const port = await freePort();
  let token: (() => Promise<string>) | null = null;
  // Count the attempts of each transport where they are made (sampling c.transport on a timer
  // missed an SSE attempt refused within a millisecond).
  const tries = { websocket: 0, sse: 0 };
  const WS = (await import('ws')).WebSocket;
  class CountingWebSocket extends WS {
    constructor(url: string) {
      super(url);
      tries.websocket++;
    }
  }
  const c = client(t, {
    url: `ws://127.0.0.1:${port}/v1/ws`,
    token: () => (token ? token() : Promise.resolve('not-yet')),
    connectTimeoutMs: 1000,
    WebSocket: CountingWebSocket as unknown as ClientOptions['WebSocket'],
    fetch: (url, init) => {
      if (String(url).includes('/v1/sse')) tries.sse++;
      return fetch(url, init);
    },
  });
  const seqs: number[] = [];
  await until(() => tries.websocket >= 2 && tries.sse >= 2, 'both transports tried, more than once, while nothing listens');
  t.pass(`attempts while nothing listened: ${tries.websocket} WebSocket, ${tries.sse} SSE`);
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse_sdk_late', PORT: String(port) } });
  token = () => w.token('alice');
  const alice = new Api(w.base, await w.token('alice'));
  const ch = (await alice.call('conversations.create', { name: 'late' })).channel.id as string;
  await alice.call('chat.postMessage', { channel: ch, text: 'one' });
  await c.subscribe(ch, { since: 0, onMessage: (m) => seqs.push(m.seq) }).ready;
  await alice.call('chat.postMessage', { channel: ch, text: 'two' });
  await until(() => seqs.length === 2, 'both messages', 20_000);
  t.same(seqs, [1, 2]);
  t.comment(`connected over ${c.transport}`);
});

t.test("'auto' where WebSockets work stays on them", async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse_sdk_auto_ws' } });
  const p = await proxy(t, () => w.node.port);
  const alice = new Api(p.base, await w.token('alice'));
  const ch = (await alice.call('conversations.create', { name: 'auto-ws' })).channel.id as string;
  const c = client(t, { url: p.ws, token: () => w.token('alice') });
  await c.subscribe(ch, { since: 0 }).ready;
  t.equal(c.transport, 'websocket');
  t.ok(c.typing(ch), 'typing works on a socket');
  t.equal((await w.node.metrics.sseConnections.get()).values[0]?.value, 0, 'no stream was opened');
});

t.test('SSE and tokens: getToken() refreshes by replacing the stream; a static token ends with 4001 and then gives up', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse_sdk_tokens' } });
  const alice = new Api(w.base, await w.token('alice'));
  const ch = (await alice.call('conversations.create', { name: 'tokens' })).channel.id as string;
  let calls = 0;
  const c = client(t, {
    url: w.ws,
    transport: 'sse',
    token: () => {
      calls++;
      return w.token('alice', 4);
    },
  });
  const seqs: number[] = [];
  await c.subscribe(ch, { since: 0, onMessage: (m) => seqs.push(m.seq) }).ready;
  // Posts spread over three of the token's lifetimes.
  for (let i = 1; i <= 12; i++) {
    await alice.call('chat.postMessage', { channel: ch, text: `m${i}` });
    await new Promise((r) => setTimeout(r, 1000));
  }
  await until(() => seqs.length === 12, 'the 12 messages');
  t.ok(contiguous(seqs, 1, 12), 'every message once, in order');
  t.ok(c.tokenRefreshes >= 2, `refreshed ${c.tokenRefreshes} times (getToken called ${calls} times)`);
  t.equal(c.reconnects, 0, 'never a reconnect: each refresh replaced the stream before the token ran out');
  t.not(c.lastCloseCode, CLOSE.token_expired);

  const fixed = client(t, { url: w.ws, transport: 'sse', token: await w.token('alice', 3) });
  await fixed.subscribe(ch).ready;
  await until(() => fixed.state === 'closed', 'the client to give up', 20_000);
  t.equal(fixed.lastCloseCode, CLOSE.token_expired, 'the stream ended with 4001; the same token was then refused');
});

t.test('SSE: a kick ends the subscription with its reason', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse_sdk_kick' } });
  const alice = new Api(w.base, await w.token('alice'));
  const ch = (await alice.call('conversations.create', { name: 'kick' })).channel.id as string;
  await alice.call('conversations.invite', { channel: ch, users: ['bob'] });
  const c = client(t, { url: w.ws, token: () => w.token('bob'), transport: 'sse' });
  let ended: string | undefined;
  const sub = c.subscribe(ch, { onEnd: (r) => (ended = r) });
  await sub.ready;
  await alice.call('conversations.kick', { channel: ch, user: 'bob' });
  await until(() => ended !== undefined, 'the subscription to end');
  t.equal(ended, 'kicked');
  t.equal(c.state, 'open', 'the client stays open (a stream without channels)');
  t.equal(c.reconnects, 0);
});
