// Hostile clients (issue 16), one test per finding, each failing on the code before the fix:
// bad tokens no longer use up the shared upgrade budget; sockets per user; a subscribe storm is
// rate limited and costs bounded queries; unknown channels are cached as unknown; origins and
// CORS; malformed ids and invalid UTF-8 are 400s, never 500s; two Content-Lengths never
// smuggle a request; revocation ends a user's sockets; the ops listener.
import net from 'node:net';
import t from 'tap';
import WebSocket from 'ws';
import { CLOSE, clientFrame } from '../src/protocol.js';
import { startTestDatabase } from './helpers/postgres.js';
import { ADMIN_TOKEN, adminHeaders, startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, type Frame } from './helpers/clients.js';

const db = await startTestDatabase(t);

/** Opens a socket as if from `address` (X-Forwarded-For through a trusted proxy: 127.0.0.1). */
function upgrade(url: string, token: string | null, headers: Record<string, string> = {}): Promise<{ status: number | 'open'; ws?: WebSocket; body?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(token === null ? url : `${url}?token=${encodeURIComponent(token)}`, { headers });
    ws.once('open', () => resolve({ status: 'open', ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', () => {});
  });
}

async function raw(port: number, request: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ text, closed });
    };
    s.on('data', (d) => (text += d));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.write(request);
    setTimeout(() => finish(false), 5000).unref();
  });
}

t.test('bad tokens are charged to their address, not to the shared upgrade budget', async (t) => {
  const w = await startWalcast(t, db.url, {
    env: {
      WALCAST_SLOT: 'hostile_budget',
      WALCAST_WS_UPGRADE_BURST: '5',
      WALCAST_WS_UPGRADE_RATE: '1',
      WALCAST_AUTH_FAIL_BURST_IP: '3',
      WALCAST_AUTH_FAIL_RATE_IP: '0.1',
      WALCAST_TRUSTED_PROXIES: '127.0.0.1',
    },
  });
  const attacker = { 'x-forwarded-for': '203.0.113.66' };
  const statuses: (number | 'open')[] = [];
  for (let i = 0; i < 10; i++) statuses.push((await upgrade(w.ws, `garbage-${i}`, attacker)).status);
  t.same(statuses.slice(0, 3), [401, 401, 401], 'the first failures: 401');
  t.same(new Set(statuses.slice(3)), new Set([429]), 'then 429 before the token is even checked');
  const valid = await upgrade(w.ws, await w.token('alice'), { 'x-forwarded-for': '198.51.100.7' });
  t.equal(valid.status, 'open', 'a valid user from another address still gets in (the finding: 503/429 here)');
  valid.ws?.close();
  // The blocked address stays blocked even with a good token, until its bucket refills.
  t.equal((await upgrade(w.ws, await w.token('mallory'), attacker)).status, 429, 'the attacker\'s address, even with a valid token');
});

t.test('WALCAST_MAX_CONNECTIONS_PER_USER: 500 parallel sockets with one token, 3 open', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'hostile_per_user', WALCAST_MAX_CONNECTIONS_PER_USER: '3' } });
  const token = await w.token('alice');
  const results = await Promise.all(Array.from({ length: 500 }, () => upgrade(w.ws, token)));
  const open = results.filter((r) => r.status === 'open');
  t.equal(open.length, 3, 'exactly the limit opened');
  const refused = results.find((r) => r.status === 429);
  t.ok(refused, '429 for the others');
  t.equal(JSON.parse(refused!.body!).error, 'too_many_connections');
  t.equal((await upgrade(w.ws, await w.token('bob'))).status, 'open', 'another user is not affected');
  open[0]!.ws!.close();
  await until(async () => (await upgrade(w.ws, token).then((r) => (r.ws?.close(), r.status))) === 'open', 'a slot to free up', 10_000);
  for (const r of open) r.ws?.close();
  // First-frame auth counts too: over the limit, close 4004.
  const held = await Promise.all([1, 2, 3].map(() => WsClient.connect(w.ws, token)));
  const extra = await WsClient.connect(w.ws, null);
  extra.send(clientFrame.auth(token));
  await until(() => extra.closed, 'the extra socket to close');
  t.equal(extra.closeCode, CLOSE.too_many_connections);
  t.equal(extra.frames[0]?.code, 'too_many_connections');
  await Promise.all(held.map((h) => h.close()));
});

t.test('a subscribe storm: rate limited, bounded queries, closed with 1008; unknown ids cached', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'hostile_storm', WALCAST_WS_COMMAND_RATE: '20', WALCAST_WS_COMMAND_BURST: '50' } });
  const queries = async () => (await w.node.metrics.membershipBatches.get()).values[0]?.value ?? 0;
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  const before = await queries();
  const started = Date.now();
  // 1000 subscribes to distinct well-formed unknown ids (the finding: 1000 membership queries).
  for (let i = 0; i < 1000; i++) ws.send(clientFrame.subscribe(`C${String(i).padStart(12, '0')}`));
  await until(() => ws.closed, 'the flooding socket to be closed', 20_000);
  t.equal(ws.closeCode, CLOSE.policy_violation, 'closed with 1008');
  const limited = ws.frames.filter((f) => f.code === 'rate_limited');
  t.ok(limited.length > 0, `${limited.length} rate_limited frames`);
  t.type((limited[0] as Frame & { retry_after_ms?: number }).retry_after_ms, 'number', 'with a retry hint');
  const elapsed = (Date.now() - started) / 1000;
  const spent = (await queries()) - before;
  t.ok(spent <= 50 + 20 * elapsed + 5, `${spent} membership queries for 1000 frames (burst 50, 20/s, ${elapsed.toFixed(1)} s)`);

  // The same unknown id again and again: one query, then the negative cache answers.
  const again = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => again.close());
  const unknown = 'CZZZZZZZZZZZZ';
  const b2 = await queries();
  for (let i = 0; i < 20; i++) t.equal((await again.subscribe(unknown)).code, 'channel_not_found');
  t.ok((await queries()) - b2 <= 2, 'one query (two at most, if the cache turned over), not 20');
  // A real channel is never cached as a member: a kick is seen at the next subscribe.
  const api = new Api(w.base, await w.token('alice'));
  const { channel } = await api.call('conversations.create', { name: 'storm' });
  await api.call('conversations.invite', { channel: channel.id, users: ['bob'] });
  const bob = await WsClient.connect(w.ws, await w.token('bob'));
  t.teardown(() => bob.close());
  t.equal((await bob.subscribe(channel.id)).type, 'subscribed');
  const mark = bob.frames.length;
  await api.call('conversations.kick', { channel: channel.id, user: 'bob' });
  await bob.next((f) => f.type === 'unsubscribed', 'kicked', 15_000, mark);
  t.equal((await bob.subscribe(channel.id)).code, 'not_in_channel', 'membership is checked afresh');
});

t.test('origins: the default is the server\'s own; a list; CORS for the API', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'hostile_origin' } });
  const token = await w.token('alice');
  const self = `http://127.0.0.1:${w.node.port}`;
  for (const origin of ['http://evil.example', 'null', 'file://', 'http://127.0.0.1:1']) {
    const r = await upgrade(w.ws, token, { origin });
    t.equal(r.status, 403, `upgrade from ${origin}`);
    t.equal(JSON.parse(r.body!).error, 'origin_not_allowed');
  }
  const same = await upgrade(w.ws, token, { origin: self });
  t.equal(same.status, 'open', 'the server\'s own origin');
  same.ws?.close();
  const none = await upgrade(w.ws, token);
  t.equal(none.status, 'open', 'no Origin (not a browser)');
  none.ws?.close();
  const api = (origin: string, method = 'GET', headers: Record<string, string> = {}) =>
    fetch(`${w.base}/v1/conversations.history?channel=CZZZZZZZZZZZZ`, { method, headers: { origin, authorization: `Bearer ${token}`, ...headers } });
  const evil = await api('http://evil.example');
  t.equal(evil.status, 403, 'API call from another site');
  t.equal(((await evil.json()) as { error: string }).error, 'origin_not_allowed');

  const listed = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'hostile_origin2', WALCAST_ALLOWED_ORIGINS: 'https://app.example' }, roles: ['api', 'gateway'] });
  const ok = await upgrade(listed.ws, token, { origin: 'https://app.example' });
  t.equal(ok.status, 'open', 'a listed origin');
  ok.ws?.close();
  t.equal((await upgrade(listed.ws, token, { origin: `http://127.0.0.1:${listed.node.port}` })).status, 403, 'with a list, even the own origin must be listed');
  const pre = await fetch(`${listed.base}/v1/chat.postMessage`, {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
  });
  t.equal(pre.status, 204, 'preflight');
  t.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
  t.match(pre.headers.get('access-control-allow-headers') ?? '', /authorization/);
  const preEvil = await fetch(`${listed.base}/v1/chat.postMessage`, { method: 'OPTIONS', headers: { origin: 'https://evil.example' } });
  t.equal(preEvil.status, 403, 'no preflight for others');
  const call = await fetch(`${listed.base}/v1/conversations.history?channel=CZZZZZZZZZZZZ`, { headers: { origin: 'https://app.example', authorization: `Bearer ${token}` } });
  t.equal(call.status, 404);
  t.equal(call.headers.get('access-control-allow-origin'), 'https://app.example', 'CORS on errors too');
});

t.test('edge validation: malformed ids, NUL and invalid UTF-8 are 400s, never 500s', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'hostile_edge' } });
  const token = await w.token('alice');
  const api = new Api(w.base, token);
  const { channel } = await api.call('conversations.create', { name: 'edge' });
  // The finding: 500 internal_error and a stack trace per request.
  const nul = await fetch(`${w.base}/v1/conversations.history?channel=%00`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(nul.status, 400);
  t.equal(((await nul.json()) as { error: string }).error, 'invalid_arguments');
  for (const q of ['channel=%FF%FE', `channel=${channel.id}&limit=1e3`, `channel=${channel.id}&after_seq=99999999999999999999`, `channel=${channel.id}%00`]) {
    const r = await fetch(`${w.base}/v1/conversations.history?${q}`, { headers: { authorization: `Bearer ${token}` } });
    t.equal(r.status, 400, q);
  }
  // Invalid UTF-8 in a text: refused, not stored with U+FFFD (the finding).
  const body = Buffer.concat([Buffer.from(`{"channel":"${channel.id}","text":"a`), Buffer.from([0xff, 0xfe]), Buffer.from('b"}')]);
  const bad = await fetch(`${w.base}/v1/chat.postMessage`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
  t.equal(bad.status, 400);
  t.equal(((await bad.json()) as { error: string }).error, 'invalid_json');
  t.equal((await api.call('conversations.history', { channel: channel.id })).messages.length, 0, 'nothing stored');
  // The same over the WebSocket: 500 bad frames, 500 error frames, no internal_error.
  const ws = await WsClient.connect(w.ws, token);
  t.teardown(() => ws.close());
  for (let i = 0; i < 150; i++) ws.send({ type: 'subscribe', channel: i % 2 ? '\u0000' : `C${'\u0000'.repeat(12)}` });
  await until(() => ws.frames.length >= 150 || ws.closed, '150 answers');
  t.ok(ws.frames.every((f) => f.code === 'invalid_arguments'), 'every one invalid_arguments');
  const metrics = await (await fetch(`${w.base}/metrics`, { headers: adminHeaders })).text();
  t.notMatch(metrics, /status="500"/, 'no 500 anywhere');
});

t.test('two Content-Length headers: the connection is closed, nothing smuggled is run', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'hostile_cl' } });
  const token = await w.token('alice');
  const api = new Api(w.base, token);
  const { channel } = await api.call('conversations.create', { name: 'smuggle' });
  const inner = JSON.stringify({ channel: channel.id, text: 'smuggled' });
  const smuggled = `POST /v1/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(inner)}\r\n\r\n${inner}`;
  const outer = `{"channel":"${channel.id}","text":"outer"}`;
  const req =
    `POST /v1/chat.postMessage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(outer)}\r\nContent-Length: ${Buffer.byteLength(outer) + Buffer.byteLength(smuggled)}\r\n\r\n${outer}${smuggled}`;
  const r = await raw(w.node.port, req);
  t.ok(r.closed, 'the connection was closed');
  t.notMatch(r.text, /200 OK/, 'no request on it succeeded');
  t.equal((await api.call('conversations.history', { channel: channel.id })).messages.length, 0, 'neither the outer nor the smuggled post was stored');
});

t.test('revocation: walcast revoke / POST /admin/revoke ends the user\'s sockets and tokens', async (t) => {
  const a = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'hostile_revoke' } });
  // A second gateway on the same database, with its own (in-process) bus: it learns of the
  // revocation from the table within the poll interval.
  const b = await startWalcast(t, db.url, { roles: ['gateway'] });
  const old = await a.token('eve', 600);
  const onA = await WsClient.connect(a.ws, old);
  const onB = await WsClient.connect(b.ws, old);
  const bystander = await WsClient.connect(b.ws, await a.token('frank', 600));
  t.teardown(() => Promise.all([onA.close(), onB.close(), bystander.close()]));
  t.equal((await fetch(`${a.base}/admin/revoke`, { method: 'POST', body: '{"user":"eve"}' })).status, 401, 'needs the admin token');
  const res = await fetch(`${a.base}/admin/revoke`, { method: 'POST', headers: { ...adminHeaders, 'content-type': 'application/json' }, body: '{"user":"eve"}' });
  t.equal(res.status, 200);
  const body = (await res.json()) as { user: string; not_before: number; published: boolean };
  t.equal(body.user, 'eve');
  await until(() => onA.closed && onB.closed, 'eve\'s sockets on both gateways to close', 20_000);
  t.equal(onA.closeCode, CLOSE.auth_failed);
  t.equal(onB.closeCode, CLOSE.auth_failed);
  t.notOk(bystander.closed, 'other users stay');
  const refused = await new Api(a.base, old).get('conversations.history', { channel: 'CZZZZZZZZZZZZ' });
  t.equal(refused.status, 401, 'the old token is refused by the API');
  t.equal(refused.body.error, 'invalid_auth');
  await until(() => Date.now() / 1000 >= body.not_before, 'the next second');
  const fresh = await a.token('eve', 600);
  t.equal((await new Api(a.base, fresh).get('conversations.history', { channel: 'CZZZZZZZZZZZZ' })).status, 404, 'a token minted after it works');
  // The command line, against the same endpoint.
  // (Asynchronously: the server it talks to runs in this process.)
  const { execFile } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const bin = fileURLToPath(new URL('../bin/walcast.js', import.meta.url));
  const cli = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [bin, 'revoke', 'frank', '--url', a.base], { env: { ...process.env, WALCAST_ADMIN_TOKEN: ADMIN_TOKEN } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
  t.equal(cli.code, 0, cli.stderr);
  t.match(JSON.parse(cli.stdout), { ok: true, user: 'frank' });
  await until(() => bystander.closed, 'frank\'s socket to close', 20_000);
});

t.test('the ops listener serves metrics and readiness details without a token; the public port does not', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'hostile_ops', WALCAST_OPS_PORT: '0' } });
  const ops = `http://127.0.0.1:${w.node.opsPort}`;
  t.equal((await fetch(`${ops}/metrics`)).status, 200);
  await until(async () => (await fetch(`${ops}/readyz`)).status === 200, 'ready');
  t.match(await (await fetch(`${ops}/readyz`)).json(), { ok: true, checks: { database: true } });
  t.equal((await fetch(`${w.base}/metrics`)).status, 401);
  t.equal((await fetch(`${ops}/v1/conversations.history`)).status, 404, 'the API is not on the ops listener');
});
