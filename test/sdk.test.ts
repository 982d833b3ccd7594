// The client SDK against the real gateway: callbacks and async iterators, resume after a
// gateway is killed or drained (SIGTERM), the server's retry hint on a refused upgrade, the
// token refresher, and subscription errors. Imported from the sources; test/package.test.ts
// imports the built SDK through the installed package's "exports".
import http from 'node:http';
import t from 'tap';
import { createNodeClient, type ConnectionState, type Message } from '../src/sdk/node.js';
import { startTopology, type Topology } from '../harness/topology.js';
import { Tokens } from '../src/auth/tokens.js';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, contiguous } from './helpers/clients.js';

const db = await startTestDatabase(t);

t.test('single node: callback and async iterator, live-only and since, state', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sdk_single' } });
  const alice = new Api(w.base, await w.token('alice'));
  const { channel } = await alice.call('conversations.create', { name: 'sdk' });
  for (let i = 1; i <= 5; i++) await alice.call('chat.postMessage', { channel: channel.id, text: `old ${i}` });

  const states: ConnectionState[] = [];
  let refreshes = 0;
  const client = createNodeClient({
    url: w.ws,
    token: async () => {
      refreshes++;
      return w.token('alice');
    },
  });
  t.teardown(() => client.close());
  client.onState((s) => states.push(s));
  await client.whenOpen();
  t.equal(client.state, 'open');
  t.equal(refreshes, 1, 'the refresher gave the first token');

  const viaCallback: number[] = [];
  const all = client.subscribe(channel.id, { since: 0, onMessage: (m) => viaCallback.push(m.seq) });
  const live = client.subscribe('CZZZZZZZZZZZZ', {}); // unknown channel: ends with channel_not_found
  const ended = await new Promise<string | undefined>((r) => {
    if (live.state === 'ended') return r(live.endReason);
    const timer = setInterval(() => live.state === 'ended' && (clearInterval(timer), r(live.endReason)), 10);
  });
  t.equal(ended, 'channel_not_found', 'a fatal error ends the subscription');
  await all.ready;

  const iterated: Message[] = [];
  const iterating = (async () => {
    for await (const m of all) {
      iterated.push(m);
      if (m.seq === 10) break; // leaving the loop unsubscribes
    }
  })();
  for (let i = 6; i <= 10; i++) await alice.call('chat.postMessage', { channel: channel.id, text: `new ${i}` });
  await iterating;
  t.ok(contiguous(viaCallback, 1, 10), 'callback: 1..10 in order');
  t.ok(contiguous(iterated.map((m) => m.seq), 1, 10), 'iterator: 1..10 in order');
  t.equal(all.state, 'ended', 'break unsubscribed');
  t.match(iterated[9], { channel: channel.id, seq: 10, text: 'new 10', user: 'alice' });

  // Live-only: starts after the channel's seq at subscribe time.
  const got: number[] = [];
  const liveOnly = client.subscribe(channel.id, { onMessage: (m) => got.push(m.seq) });
  await liveOnly.ready;
  t.equal(liveOnly.lastSeq, 10);
  await alice.call('chat.postMessage', { channel: channel.id, text: 'eleven' });
  await until(() => got.length === 1, 'seq 11');
  t.same(got, [11]);
  client.close();
  t.equal(client.state, 'closed');
  t.same(states.slice(0, 1), ['open'], 'connecting happened before onState was attached; then open');
});

t.test('upgrade refused by the token bucket: 429 with a retry hint, honoured', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sdk_bucket', WALCAST_WS_UPGRADE_RATE: '2', WALCAST_WS_UPGRADE_BURST: '1' } });
  const token = await w.token('alice');
  // The raw refusal, as PROTOCOL's error shape plus retry_after_ms.
  const upgrade = () =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const req = http.get(w.ws.replace('ws:', 'http:') + `?token=${token}`, {
        headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' },
      });
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        resolve({ status: res.statusCode!, headers: res.headers, body: '' });
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      });
      req.on('error', reject);
    });
  t.equal((await upgrade()).status, 101, 'the first upgrade takes the only token');
  const r = await upgrade();
  const refused = { status: r.status, headers: new Headers(r.headers as Record<string, string>), json: async () => JSON.parse(r.body) };
  t.equal(refused.status, 429, 'rate_limited is 429 everywhere: one error mapping for the API and the gateway');
  t.ok(Number(refused.headers.get('retry-after')) >= 1, 'Retry-After header');
  const body = (await refused.json()) as any;
  t.equal(body.ok, false);
  t.equal(body.error, 'rate_limited');
  t.ok(body.retry_after_ms > 0 && body.retry_after_ms <= 30_000, `retry_after_ms ${body.retry_after_ms}`);

  // SDK clients arriving together: the refused ones wait for their hint, then get in.
  const clients = Array.from({ length: 4 }, () => createNodeClient({ url: w.ws, token, backoff: { baseMs: 50 } }));
  t.teardown(() => clients.forEach((c) => c.close()));
  const started = Date.now();
  await Promise.all(clients.map((c) => c.whenOpen()));
  const hinted = clients.filter((c) => c.lastRetryHintMs !== undefined);
  t.ok(hinted.length >= 2, `${hinted.length} clients were refused with a hint and came back`);
  t.ok(Date.now() - started >= 400, 'at 2 upgrades/s the four could not all get in at once');
  t.ok((await w.node.metrics.wsRefused.get()).values.some((v) => v.labels.reason === 'rate_limited' && v.value >= 2));
});

t.test('a static token that is refused is fatal: the client closes instead of retrying', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sdk_badtoken' } });
  const client = createNodeClient({ url: w.ws, token: 'not-a-token' });
  await t.rejects(client.whenOpen());
  t.equal(client.state, 'closed');
  // (Stopping a relay that is still starting up can hang: let it stream before teardown.)
  await until(async () => (await fetch(w.base + '/readyz')).status === 200, 'ready');
});

t.test('topology: gateways killed (SIGKILL) and drained (SIGTERM) under a stream, nothing lost', async (t) => {
  const topo: Topology = await startTopology({ relays: 1, gateways: 2, env: { WALCAST_DRAIN_WINDOW_MS: '1500', WALCAST_DRAIN_RATE: '10' } });
  t.teardown(() => topo.close());
  const tokens = new Tokens(topo.secret);
  const api = new Api(topo.api.url, await tokens.sign('alice', 3600));
  const { channel } = await api.call('conversations.create', { name: 'sdk-failover' });
  const alive = () => topo.gateways.filter((g) => g.child.exitCode === null && g.child.signalCode === null);
  let pick = 0;
  const url = () => {
    const gs = alive();
    return `ws://127.0.0.1:${gs[pick++ % gs.length]!.port}/v1/ws`;
  };
  let refreshes = 0;
  const N = 8;
  const clients = Array.from({ length: N }, () =>
    createNodeClient({ url, token: () => (refreshes++, tokens.sign('alice', 60)), backoff: { baseMs: 50, maxMs: 1000 } }),
  );
  t.teardown(() => clients.forEach((c) => c.close()));
  const seqs = clients.map(() => [] as number[]);
  const subs = clients.map((c, i) => c.subscribe(channel.id, { since: 0, onMessage: (m) => seqs[i]!.push(m.seq) }));
  await Promise.all(subs.map((s) => s.ready));
  const M = 240;
  const states = new Set<ConnectionState>();
  clients.forEach((c) => c.onState((s) => states.add(s)));
  for (let i = 1; i <= M; i++) {
    await api.call('chat.postMessage', { channel: channel.id, text: `m${i}`, client_msg_id: `k${i}` });
    if (i === 60) await topo.gateways[0]!.kill('SIGKILL');
    if (i === 100) topo.gateways[0] = await topo.gateways[0]!.restart();
    if (i === 140) void topo.gateways[1]!.kill('SIGTERM'); // drains over WALCAST_DRAIN_WINDOW_MS
    if (i === 200) topo.gateways[1] = await topo.gateways[1]!.restart();
    await new Promise((r) => setTimeout(r, 10));
  }
  await until(() => seqs.every((s) => s[s.length - 1] === M), `every client at seq ${M}`, 30_000);
  for (let i = 0; i < N; i++) t.ok(contiguous(seqs[i]!, 1, M), `client ${i}: 1..${M} exactly once, in order (${clients[i]!.reconnects} reconnects)`);
  t.ok(states.has('reconnecting') && states.has('open'), 'state went through reconnecting back to open');
  t.ok(clients.every((c) => c.reconnects >= 1), 'every client reconnected at least once');
  const drained = clients.filter((c) => c.lastCloseCode === 1012 || c.lastRetryHintMs !== undefined);
  t.ok(drained.length >= 1, `${drained.length} clients were closed by the drain (1012 with retry_after_ms)`);
  t.ok(refreshes > N, 'the token refresher ran on reconnects');
});
