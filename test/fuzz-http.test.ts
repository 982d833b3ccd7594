// Property-based fuzzing of every HTTP route (issue 16): random and mutated JSON, wrong types,
// huge numbers, NUL, lone surrogates and invalid UTF-8, deep nesting, raw bytes, odd methods,
// paths, query strings and tokens, against `walcast start` in a child process. Every answer
// must be 200 (204 for a preflight) or a documented error with its documented status, never a
// 5xx; the process stays up and its memory bounded. Then the SSE endpoint: repeated channels,
// both forms of `since`, Last-Event-ID headers, tokens in the header or the query: a stream
// that starts must start with valid frames. Seeds are fixed and printed; FUZZ_SEED explores
// others. Together with test/fuzz-ws.test.ts: 10,000 cases per run (plus the SSE cases).
import http from 'node:http';
import fc from 'fast-check';
import t from 'tap';
import { routes } from '../src/api/routes.js';
import { ERRORS, PATHS, SERVER_FRAME_TYPES, isErrorCode } from '../src/protocol.js';
import { SseParser } from '../src/sdk/sse.js';
import { startChild } from './helpers/child.js';
import { anyJson, baseSeed, deepNesting, field, hugeNumber, mutated, nasty, runSeeded, withInvalidUtf8 } from './helpers/fuzz.js';
import { startTestDatabase } from './helpers/postgres.js';
import { ADMIN_TOKEN, SECRET } from './helpers/walcast.js';
import { Api } from './helpers/clients.js';
import { Tokens } from '../src/auth/tokens.js';

const CASES = 6000;
const PROPERTIES = 6;
const SEED = baseSeed(1_600_000);

const db = await startTestDatabase(t);
const server = await startChild(t, db.url, {
  WALCAST_SLOT: 'fuzz_http',
  WALCAST_POST_RATE_USER: '0',
  WALCAST_POST_RATE_CHANNEL: '0',
  WALCAST_AUTH_FAIL_BURST_IP: '1000000',
});
const tokens = new Tokens(SECRET);
const alice = await tokens.sign('alice', 3600);
const api = new Api(server.base, alice);
const channel = (await api.call('conversations.create', { name: 'fuzz' })).channel.id as string;
const port = Number(new URL(server.base).port);
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
t.teardown(() => agent.destroy());

const channelId = fc.oneof(
  { weight: 8, arbitrary: fc.constant(channel) },
  { weight: 1, arbitrary: fc.constant('CZZZZZZZZZZZZ') },
  { weight: 1, arbitrary: fc.stringMatching(/^C[0-9A-Z]{12}$/) },
  { weight: 2, arbitrary: nasty },
);
const userId = fc.oneof(fc.constantFrom('bob', 'carol', 'u.1@x:y-z'), nasty);
const bodyOf: Record<string, fc.Arbitrary<unknown>> = {
  'conversations.create': fc.record({ name: field(nasty), is_private: field(fc.boolean()) }, { requiredKeys: [] }),
  'conversations.join': fc.record({ channel: field(channelId) }, { requiredKeys: [] }),
  'conversations.invite': fc.record({ channel: field(channelId), users: field(fc.array(userId, { maxLength: 5 })) }, { requiredKeys: [] }),
  // Kicking someone else only: alice stays a member, so later cases still reach deep paths.
  'conversations.kick': fc.record({ channel: field(channelId), user: field(fc.constantFrom('bob', 'carol')) }, { requiredKeys: [] }),
  'chat.postMessage': fc.record({ channel: field(channelId), text: field(nasty), client_msg_id: field(fc.option(nasty)) }, { requiredKeys: [] }),
};
const goodBody = (name: string) => bodyOf[name] ?? anyJson;

/** Any UTF-8 bytes or raw bytes, percent-encoded: the server sees exactly these. */
const pct = (b: Buffer) => [...b].map((x) => '%' + x.toString(16).padStart(2, '0')).join('');
const queryValue = fc.oneof(
  { weight: 3, arbitrary: fc.oneof(channelId, fc.nat().map(String), hugeNumber) },
  { weight: 1, arbitrary: nasty },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }).map((u) => Buffer.from(u)) },
);
const query = fc
  .array(fc.tuple(fc.constantFrom('channel', 'seq', 'after_seq', 'limit', 'x', 'channel'), queryValue), { maxLength: 5 })
  .map((kv) => kv.map(([k, v]) => `${k}=${pct(Buffer.isBuffer(v) ? v : Buffer.from(String(v)))}`).join('&'));

const ROUTES = Object.keys(routes);
const request = fc
  .oneof({ weight: 8, arbitrary: fc.constantFrom(...ROUTES) }, { weight: 1, arbitrary: nasty.map((s) => pct(Buffer.from(s))) })
  .chain((name) =>
    fc.record({
      name: fc.constant(name),
      // Mostly the route's own verb, so most cases get past the routing.
      method: fc.oneof(
        { weight: 8, arbitrary: fc.constant(routes[name]?.method ?? 'POST') },
        { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') },
      ),
      query,
      auth: fc.oneof(
        { weight: 8, arbitrary: fc.constant(`Bearer ${alice}`) },
        { weight: 1, arbitrary: fc.constantFrom('', 'Bearer', 'Bearer garbage', 'Basic YTpi', `Bearer ${alice}x`, 'Bearer a.b.c') },
        { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')) },
      ),
      origin: fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('http://evil.example', 'null', server.base) }),
      body: fc.oneof(
        { weight: 5, arbitrary: goodBody(name).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
        { weight: 2, arbitrary: mutated(goodBody(name).map((v) => JSON.stringify(v) ?? 'null')).map((s) => Buffer.from(s)) },
        { weight: 1, arbitrary: withInvalidUtf8(goodBody(name).map((v) => JSON.stringify(v) ?? 'null')) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((u) => Buffer.from(u)) },
        { weight: 1, arbitrary: deepNesting.map((s) => Buffer.from(s)) },
        { weight: 1, arbitrary: hugeNumber.map((n) => Buffer.from(`{"channel":"${channel}","text":${n},"is_private":${n},"users":[${n}]}`)) },
      ),
    }),
  );
type Req = typeof request extends fc.Arbitrary<infer R> ? R : never;

function bodyFor(r: Req): Buffer | null {
  return r.method === 'GET' || r.method === 'OPTIONS' ? null : r.body;
}

function send(r: Req): Promise<{ status: number; text: string }> {
  const body = bodyFor(r);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (r.auth) headers.authorization = r.auth;
  if (r.origin) headers.origin = r.origin;
  if (body) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: r.method, path: `/v1/${r.name}${r.query ? `?${r.query}` : ''}`, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

const seen = new Map<string, number>();

async function check(r: Req): Promise<void> {
  const { status, text } = await send(r);
  if (status >= 500) throw new Error(`${status} for ${r.method} ${r.name}: ${text.slice(0, 300)}`);
  if (status === 204) {
    if (r.method !== 'OPTIONS') throw new Error(`204 for ${r.method}`);
    return void seen.set('204 preflight', (seen.get('204 preflight') ?? 0) + 1);
  }
  let json: { ok?: unknown; error?: unknown };
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  if (status === 200) {
    if (json.ok !== true) throw new Error(`200 without ok: ${text.slice(0, 200)}`);
    return void seen.set('200', (seen.get('200') ?? 0) + 1);
  }
  if (json.ok !== false || !isErrorCode(json.error)) throw new Error(`${status} with an undocumented body: ${text.slice(0, 200)}`);
  if (ERRORS[json.error].status !== status) throw new Error(`${json.error} answered with ${status}, documented ${ERRORS[json.error].status}`);
  if (ERRORS[json.error].on === 'ws') throw new Error(`${json.error} is a WebSocket-only code`);
  seen.set(`${status} ${json.error}`, (seen.get(`${status} ${json.error}`) ?? 0) + 1);
}

t.test(`${CASES} HTTP cases: documented answers only, never a 5xx, the process survives`, async (t) => {
  const rssBefore = server.rss();
  t.comment(`seeds ${SEED}..${SEED + PROPERTIES - 1} (FUZZ_SEED=<n> for others)`);
  const started = Date.now();
  const outcomes = await runSeeded(request, check, { properties: PROPERTIES, runsEach: CASES / PROPERTIES, baseSeed: SEED });
  const runs = outcomes.reduce((a, o) => a + o.runs, 0);
  t.comment(`${runs} cases in ${((Date.now() - started) / 1000).toFixed(1)} s; answers: ${[...seen].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  for (const o of outcomes) t.notOk(o.failed, o.failed ? o.report : `seed ${o.seed}: ${o.runs} cases passed`);
  t.ok(server.alive(), 'the server process is still running');
  t.ok((seen.get('200') ?? 0) > CASES / 50, 'a share of the cases went all the way through (200)');
  const health = await fetch(`${server.base}/healthz`);
  t.equal(health.status, 200, 'and healthy');
  const metrics = await (await fetch(`${server.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  t.notMatch(metrics, /walcast_http_requests_total\{[^}]*status="5\d\d"[^}]*\} [1-9]/, 'no 5xx counted by the server either');
  const rssAfter = server.rss();
  t.comment(`server RSS ${(rssBefore / 2 ** 20).toFixed(0)} MiB before, ${(rssAfter / 2 ** 20).toFixed(0)} MiB after`);
  t.ok(rssAfter < rssBefore + 256 * 2 ** 20, 'memory bounded: less than 256 MiB more after the run');
});

const SSE_CASES = 1200;
const sseSince = fc.oneof(
  { weight: 3, arbitrary: fc.nat({ max: 10 }).map(String) },
  { weight: 3, arbitrary: fc.tuple(channelId, fc.nat({ max: 10 })).map(([c, n]) => `${c}:${n}`) },
  { weight: 1, arbitrary: hugeNumber },
  { weight: 1, arbitrary: nasty },
);
const printable = (a: fc.Arbitrary<string>) => a.map((s) => s.replace(/[^\x20-\x7e]/g, ''));
// Mostly well-formed (so that a share of the streams start), otherwise anything.
const sseRequest = fc.record({
  method: fc.oneof({ weight: 10, arbitrary: fc.constant('GET') }, { weight: 1, arbitrary: fc.constantFrom('POST', 'PUT', 'DELETE', 'OPTIONS') }),
  channels: fc.oneof({ weight: 6, arbitrary: fc.constant([channel]) }, { weight: 2, arbitrary: fc.array(channelId, { minLength: 0, maxLength: 4 }) }),
  since: fc.oneof(
    { weight: 4, arbitrary: fc.constant([] as string[]) },
    { weight: 3, arbitrary: fc.nat({ max: 10 }).map((n) => [String(n)]) },
    { weight: 2, arbitrary: fc.nat({ max: 10 }).map((n) => [`${channel}:${n}`]) },
    { weight: 2, arbitrary: fc.array(sseSince, { maxLength: 3 }) },
  ),
  presence: fc.option(fc.constantFrom('1', '0', 'true', 'yes', ''), { freq: 3 }),
  lastEventId: fc.option(
    printable(fc.oneof({ weight: 3, arbitrary: fc.nat({ max: 10 }).map((n) => `${channel}:${n}`) }, { weight: 1, arbitrary: fc.tuple(channelId, fc.nat()).map(([c, n]) => `${c}:${n}`) }, { weight: 1, arbitrary: nasty }, { weight: 1, arbitrary: hugeNumber })),
    { freq: 2 },
  ),
  token: fc.oneof(
    { weight: 6, arbitrary: fc.constant({ header: `Bearer ${alice}` }) },
    { weight: 2, arbitrary: fc.constant({ query: alice }) },
    { weight: 1, arbitrary: fc.constantFrom({}, { header: 'Bearer garbage' }, { query: 'a.b.c' }, { header: `Bearer ${alice}`, query: 'x' }) },
  ),
  extra: fc.option(query, { freq: 4 }),
  origin: fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('http://evil.example', 'null', server.base) }),
});
type SseReq = typeof sseRequest extends fc.Arbitrary<infer R> ? R : never;

/** One SSE request: a refusal's status and body, or the first event of an accepted stream. */
function openSse(r: SseReq): Promise<{ status: number; type: string; text: string; first?: string; head?: boolean }> {
  const qs: string[] = [];
  for (const c of r.channels) qs.push(`channel=${pct(Buffer.from(c))}`);
  for (const v of r.since) qs.push(`since=${pct(Buffer.from(v))}`);
  if (r.presence !== null) qs.push(`presence=${r.presence}`);
  const tok = r.token as { header?: string; query?: string };
  if (tok.query) qs.push(`token=${encodeURIComponent(tok.query)}`);
  if (r.extra) qs.push(r.extra);
  const headers: Record<string, string> = {};
  if (tok.header) headers.authorization = tok.header;
  if (r.lastEventId !== null) headers['last-event-id'] = r.lastEventId;
  if (r.origin) headers.origin = r.origin;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: r.method, path: `${PATHS.sse}?${qs.join('&')}`, headers, agent: false }, (res) => {
      const type = String(res.headers['content-type'] ?? '');
      if (res.statusCode === 200 && type.startsWith('text/event-stream')) {
        // A stream: its first event must be a frame; then hang up, as a client going away does.
        const parser = new SseParser((m) => {
          res.destroy();
          resolve({ status: 200, type, text: '', first: m.data });
        });
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          // A stream without channels carries no frame until something happens to its token:
          // its opening comment is all there is to see.
          if (r.channels.length === 0) {
            res.destroy();
            return resolve({ status: 200, type, text: '', head: d.startsWith(':') });
          }
          parser.push(d);
        });
        res.on('error', () => {});
        res.on('close', () => resolve({ status: 200, type, text: '' }));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const sseSeen = new Map<string, number>();

async function checkSse(r: SseReq): Promise<void> {
  const { status, type, text, first, head } = await openSse(r);
  const note = (k: string): void => void sseSeen.set(k, (sseSeen.get(k) ?? 0) + 1);
  if (status >= 500) throw new Error(`${status} for ${r.method} ${PATHS.sse}: ${text.slice(0, 300)}`);
  if (status === 204) {
    if (r.method !== 'OPTIONS') throw new Error(`204 for ${r.method}`);
    return note('204 preflight');
  }
  if (status === 200) {
    if (r.method !== 'GET') throw new Error(`a stream for ${r.method}`);
    if (!type.startsWith('text/event-stream')) throw new Error(`200 with ${type}`);
    if (r.channels.length === 0) {
      if (!head) throw new Error('a stream without channels that did not open with its comment');
      return note('200 no channel');
    }
    if (first === undefined) throw new Error('a stream that ended before its first event');
    const f = JSON.parse(first) as { type?: string };
    if (!(SERVER_FRAME_TYPES as readonly string[]).includes(f.type ?? '')) throw new Error(`a first event that is no frame: ${first.slice(0, 200)}`);
    return note(`200 ${f.type}`);
  }
  let json: { ok?: unknown; error?: unknown };
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  if (json.ok !== false || !isErrorCode(json.error)) throw new Error(`${status} with an undocumented body: ${text.slice(0, 200)}`);
  if (ERRORS[json.error].status !== status) throw new Error(`${json.error} answered with ${status}, documented ${ERRORS[json.error].status}`);
  note(`${status} ${json.error}`);
}

t.test(`${SSE_CASES} SSE requests: a stream that starts with a frame, or a documented error`, async (t) => {
  const outcomes = await runSeeded(sseRequest, checkSse, { properties: PROPERTIES, runsEach: SSE_CASES / PROPERTIES, baseSeed: SEED + 100 });
  t.comment(`answers: ${[...sseSeen].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  for (const o of outcomes) t.notOk(o.failed, o.failed ? o.report : `seed ${o.seed}: ${o.runs} cases passed`);
  t.ok((sseSeen.get('200 subscribed') ?? 0) > SSE_CASES / 20, 'a share of the streams started');
  t.ok(server.alive(), 'the server process is still running');
  const metrics = await (await fetch(`${server.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  const open = Number(/^walcast_sse_connections (\d+)/m.exec(metrics)?.[1]);
  t.ok(open <= PROPERTIES, `streams whose clients went away are gone (${open} open)`);
});

t.test(`GET ${PATHS.openapi} answers its JSON`, async (t) => {
  const res = await fetch(`${server.base}${PATHS.openapi}`);
  t.equal(res.status, 200);
  t.equal(((await res.json()) as { openapi?: string }).openapi, '3.1.0');
});
