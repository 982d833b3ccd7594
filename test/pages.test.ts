// Which process serves which page (the demo at / and dev tokens are for `walcast start` on the
// embedded database; test/browser-demo.test.ts covers that case): `walcast start` with
// DATABASE_URL serves no demo page and no dev tokens unless WALCAST_DEMO_PAGE=1 turns the page
// on, and even then no dev tokens; the ops listener serves /ops with its data open; the relay
// never serves the demo.
import t from 'tap';
import { startRole } from '../harness/roles.js';
import { freePort } from '../src/db/embedded.js';
import { startChild } from './helpers/child.js';
import { startTestDatabase } from './helpers/postgres.js';
import { ADMIN_TOKEN, SECRET, until } from './helpers/walcast.js';

const db = await startTestDatabase(t, { migrate: true });

const status = async (url: string, init?: RequestInit) => (await fetch(url, init)).status;
const devToken = (base: string) => status(`${base}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"mallory"}' });

t.test('walcast start with DATABASE_URL: no demo page, no dev tokens; the ops page', async (t) => {
  const w = await startChild(t, db.url);
  await until(async () => (await status(`${w.base}/readyz`)) === 200, 'walcast ready (the relay made its slot)', 60_000);
  t.equal(await status(`${w.base}/`), 404, 'GET / is 404');
  t.equal(await status(`${w.base}/web/demo.js`), 404, 'nor its script');
  t.equal(await devToken(w.base), 404, 'POST /dev/token does not exist');
  t.equal(await status(`${w.base}/ops`), 200, 'GET /ops loads (it holds no data)');
  t.equal(await status(`${w.base}/web/ops.js`), 200);
  t.equal(await status(`${w.base}/ops/state.json`), 401, 'its data needs the admin token');
  t.equal(await status(`${w.base}/ops/state.json`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } }), 401, 'the right one');
  const r = await fetch(`${w.base}/ops/state.json`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  t.equal(r.status, 200);
  t.equal(r.headers.get('cache-control'), 'no-store');
  const s = (await r.json()) as { ok: boolean; role: string; slot: { slot_name: string; exists: boolean }; counters: Record<string, number>; problems: { recent: unknown[] } };
  t.same([s.ok, s.role, s.slot.slot_name, s.slot.exists], [true, 'api+relay+gateway', 'walcast', true]);
  t.type(s.counters.messages_stored, 'number');
  t.ok(Array.isArray(s.problems.recent));
});

t.test('WALCAST_DEMO_PAGE=1 turns the page on, never dev tokens; the ops listener is open', async (t) => {
  const opsPort = await freePort();
  const w = await startChild(t, db.url, { WALCAST_DEMO_PAGE: '1', WALCAST_OPS_PORT: String(opsPort), WALCAST_SLOT: 'walcast_pages' });
  t.equal(await status(`${w.base}/`), 200, 'GET / serves the demo page');
  t.equal(await devToken(w.base), 404, 'dev tokens still do not exist (visitors paste a token)');
  const ops = `http://127.0.0.1:${opsPort}`;
  t.equal(await status(`${ops}/ops`), 200, 'the ops listener serves /ops');
  t.equal(await status(`${ops}/ops/state.json`), 200, 'with its data, no token');
  t.equal(await status(`${ops}/`), 404, 'but not the demo');
});

t.test('the relay role never serves the demo page', async (t) => {
  const relay = await startRole('relay', {
    DATABASE_URL: db.url,
    WALCAST_SECRET: SECRET,
    WALCAST_ADMIN_TOKEN: ADMIN_TOKEN,
    WALCAST_DEMO_PAGE: '1',
    WALCAST_SLOT: 'walcast_pages_relay',
    WALCAST_LOG_LEVEL: 'error',
  });
  t.teardown(() => relay.kill('SIGTERM'));
  t.equal(await status(`${relay.url}/`), 404, 'GET / is 404 on a relay');
  t.equal(await status(`${relay.url}/ops`), 200, 'its own /ops');
  const s = (await (await fetch(`${relay.url}/ops/state.json`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { role: string; relay: { state: string }; gateway: unknown };
  t.equal(s.role, 'relay');
  t.ok(s.relay, 'with the relay\'s own state');
  t.equal(s.gateway, null, 'and no gateway');
});

t.test('gateway workers (WALCAST_GATEWAY_WORKERS) serve the demo page on the shared port', async (t) => {
  const opsPort = await freePort();
  const w = await startChild(t, db.url, { WALCAST_DEMO_PAGE: '1', WALCAST_GATEWAY_WORKERS: '2', WALCAST_SLOT: 'walcast_pages_workers', WALCAST_OPS_PORT: String(opsPort) });
  // The supervisor's readiness (its ops listener) includes every worker's: all of them listen.
  // (Stopping the instance while a worker still starts can leave that worker running.)
  await until(async () => (await status(`http://127.0.0.1:${opsPort}/readyz`).catch(() => 0)) === 200, 'every worker ready', 60_000);
  // Fresh connections, spread by the kernel over both workers.
  for (let i = 0; i < 6; i++) t.equal((await fetch(`${w.base}/`, { headers: { connection: 'close' } })).status, 200, `GET / (${i + 1})`);
  t.equal(await devToken(w.base), 404, 'no dev tokens with DATABASE_URL');
});
