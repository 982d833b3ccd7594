// Property-based fuzzing of every WebSocket frame (issue 16): each case opens a socket (token
// in the URL, none, or in a first `auth` frame) and sends a few frames: frames of every type
// with wrong or nasty fields, mutated JSON, two frames concatenated, a frame split into
// fragments, binary frames, deep nesting, huge numbers, and text frames that are not UTF-8.
// Then a ping. Every frame back must be a documented frame (errors with documented codes),
// every close a documented close code (or 1006, the documented cut for broken WebSocket rules),
// and the server process stays up with bounded memory. Fixed, printed seeds (FUZZ_SEED for
// others). With test/fuzz-http.test.ts: 10,000 cases per run.
import fc from 'fast-check';
import t from 'tap';
import WebSocket from 'ws';
import { CLOSE_CODES, ERRORS, SERVER_FRAME_TYPES, isErrorCode } from '../src/protocol.js';
import { Tokens } from '../src/auth/tokens.js';
import { startChild } from './helpers/child.js';
import { anyJson, baseSeed, deepNesting, field, hugeNumber, mutated, nasty, runSeeded, withInvalidUtf8 } from './helpers/fuzz.js';
import { startTestDatabase } from './helpers/postgres.js';
import { ADMIN_TOKEN, SECRET } from './helpers/walcast.js';
import { Api } from './helpers/clients.js';

const CASES = 4000;
const PROPERTIES = 8;
const SEED = baseSeed(1_700_000);

const db = await startTestDatabase(t);
const server = await startChild(t, db.url, {
  WALCAST_SLOT: 'fuzz_ws',
  WALCAST_AUTH_FAIL_BURST_IP: '1000000',
  WALCAST_MAX_CONNECTIONS_PER_USER: '0',
  WALCAST_WS_UPGRADE_BURST: '100000',
  WALCAST_WS_UPGRADE_RATE: '0',
});
const tokens = new Tokens(SECRET);
const token = await tokens.sign('alice', 3600);
const api = new Api(server.base, token);
const channel = (await api.call('conversations.create', { name: 'fuzz' })).channel.id as string;
for (let i = 0; i < 5; i++) await api.call('chat.postMessage', { channel, text: `m${i}` });

const channelId = fc.oneof(
  { weight: 6, arbitrary: fc.constant(channel) },
  { weight: 1, arbitrary: fc.constant('CZZZZZZZZZZZZ') },
  { weight: 2, arbitrary: nasty },
);
const since = fc.oneof(fc.nat({ max: 10 }), fc.integer(), fc.double(), fc.constantFrom(-1, 1e308, Number.MAX_SAFE_INTEGER + 2, null, '1', true));
const frameObject = fc.oneof(
  fc.record({ type: fc.constant('subscribe'), channel: field(channelId), since: field(since) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('unsubscribe'), channel: field(channelId) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('ping') }),
  fc.record({ type: fc.constant('auth'), token: field(fc.oneof(fc.constant(token), nasty, fc.constantFrom('a.b.c', 'garbage'))) }, { requiredKeys: ['type'] }),
  fc.record({ type: field(fc.oneof(nasty, fc.constantFrom('SUBSCRIBE', 'message', 'error'))), channel: field(channelId) }, { requiredKeys: [] }),
);
const text = frameObject.map((f) => JSON.stringify(f));

type Frame = { kind: 'text'; data: string } | { kind: 'bytes'; data: Buffer; binary: boolean } | { kind: 'split'; parts: string[] };

const frame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 6, arbitrary: text.map((data) => ({ kind: 'text' as const, data })) },
  { weight: 2, arbitrary: mutated(text).map((data) => ({ kind: 'text' as const, data })) },
  { weight: 1, arbitrary: fc.tuple(text, text).map(([a, b]) => ({ kind: 'text' as const, data: a + b })) },
  { weight: 1, arbitrary: anyJson.map((v) => ({ kind: 'text' as const, data: JSON.stringify(v) ?? 'null' })) },
  {
    weight: 1,
    arbitrary: fc.tuple(text, fc.nat(), fc.nat()).map(([s, a, b]) => {
      const i = a % (s.length + 1);
      const j = i + (b % (s.length - i + 1));
      return { kind: 'split' as const, parts: [s.slice(0, i), s.slice(i, j), s.slice(j)] };
    }),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 128 }).map((u) => ({ kind: 'bytes' as const, data: Buffer.from(u), binary: true })) },
  { weight: 1, arbitrary: text.map((s) => ({ kind: 'bytes' as const, data: Buffer.from(s), binary: true })) },
  { weight: 1, arbitrary: deepNesting.map((data) => ({ kind: 'text' as const, data })) },
  { weight: 1, arbitrary: hugeNumber.map((n) => ({ kind: 'text' as const, data: `{"type":"subscribe","channel":"${channel}","since":${n}}` })) },
  // Not UTF-8: uWS cuts the socket (1006), as docs/protocol.md says.
  { weight: 1, arbitrary: withInvalidUtf8(text).map((data) => ({ kind: 'bytes' as const, data, binary: false })) },
);

const testCase = fc.record({
  auth: fc.oneof({ weight: 6, arbitrary: fc.constant('url' as const) }, { weight: 1, arbitrary: fc.constant('frame' as const) }, { weight: 1, arbitrary: fc.constant('none' as const) }),
  frames: fc.array(frame, { minLength: 1, maxLength: 6 }),
});
type Case = typeof testCase extends fc.Arbitrary<infer C> ? C : never;

const DOCUMENTED_CLOSES = new Set([...Object.keys(CLOSE_CODES).map(Number), 1006]);
const closes = new Map<number, number>();
const errors = new Map<string, number>();
const types = new Map<string, number>();

function sendFrame(ws: WebSocket, f: Frame): void {
  if (f.kind === 'text') ws.send(f.data);
  else if (f.kind === 'bytes') ws.send(f.data, { binary: f.binary });
  else {
    f.parts.forEach((p, i) => ws.send(p, { binary: false, fin: i === f.parts.length - 1 }));
  }
}

function run(c: Case): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(c.auth === 'url' ? `${server.ws}?token=${token}` : server.ws, { skipUTF8Validation: false });
    let settled = false;
    const done = (e?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      if (e) reject(e);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error('no pong and no close within 10 s')), 10_000);
    ws.on('unexpected-response', (_req, res) => done(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      if (isBinary) return done(new Error('a binary frame from the server'));
      let f: { type?: unknown; code?: unknown };
      try {
        f = JSON.parse(String(data));
      } catch {
        return done(new Error(`not JSON: ${String(data).slice(0, 200)}`));
      }
      if (!SERVER_FRAME_TYPES.includes(f.type as never)) return done(new Error(`undocumented frame type ${String(f.type)}`));
      types.set(String(f.type), (types.get(String(f.type)) ?? 0) + 1);
      if (f.type === 'error') {
        if (!isErrorCode(f.code) || ERRORS[f.code].on === 'http') return done(new Error(`undocumented error code ${String(f.code)}`));
        if (f.code === 'internal_error') return done(new Error('internal_error'));
        errors.set(f.code, (errors.get(f.code) ?? 0) + 1);
      }
      if (f.type === 'pong') done();
    });
    ws.on('close', (code) => {
      if (settled) return; // our own terminate after the pong
      closes.set(code, (closes.get(code) ?? 0) + 1);
      if (!DOCUMENTED_CLOSES.has(code)) return done(new Error(`undocumented close code ${code}`));
      done();
    });
    ws.on('open', () => {
      if (c.auth === 'frame') ws.send(JSON.stringify({ type: 'auth', token }));
      for (const f of c.frames) sendFrame(ws, f);
      ws.send('{"type":"ping"}');
    });
  });
}

t.test(`${CASES} WebSocket cases: documented frames and close codes only, the process survives`, async (t) => {
  const rssBefore = server.rss();
  t.comment(`seeds ${SEED}..${SEED + PROPERTIES - 1} (FUZZ_SEED=<n> for others)`);
  const started = Date.now();
  const outcomes = await runSeeded(testCase, run, { properties: PROPERTIES, runsEach: CASES / PROPERTIES, baseSeed: SEED });
  const runs = outcomes.reduce((a, o) => a + o.runs, 0);
  t.comment(`${runs} cases in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.comment(`frames: ${[...types].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  t.comment(`error frames: ${[...errors].map(([k, n]) => `${k} ×${n}`).join(', ')}; closes: ${[...closes].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  for (const o of outcomes) t.notOk(o.failed, o.failed ? o.report : `seed ${o.seed}: ${o.runs} cases passed`);
  t.ok(server.alive(), 'the server process is still running');
  t.equal((await fetch(`${server.base}/healthz`)).status, 200, 'and healthy');
  // And it still serves: a subscription replays the channel.
  const ws = new WebSocket(`${server.ws}?token=${token}`);
  const seqs: number[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', channel, since: 0 })));
    ws.on('message', (d) => {
      const f = JSON.parse(String(d));
      if (f.type === 'message') seqs.push(f.seq);
      if (seqs.length >= 5) resolve();
    });
    setTimeout(() => reject(new Error('no replay')), 15_000).unref();
  });
  ws.close();
  t.same(seqs.slice(0, 5), [1, 2, 3, 4, 5], 'replay still works');
  const metrics = await (await fetch(`${server.base}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  t.match(metrics, /walcast_ws_connections 1?\d?\d?\n/, 'sockets were closed, not leaked');
  const rssAfter = server.rss();
  t.comment(`server RSS ${(rssBefore / 2 ** 20).toFixed(0)} MiB before, ${(rssAfter / 2 ** 20).toFixed(0)} MiB after`);
  t.ok(rssAfter < rssBefore + 256 * 2 ** 20, 'memory bounded: less than 256 MiB more after the run');
});
