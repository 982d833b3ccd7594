// The pages in headless Chromium against separate processes (harness/topology.ts: PostgreSQL,
// redis-server, one api, one relay, one gateway, and a proxy that sends /v1/ws to the gateway and
// the rest to the api, as nginx does in docker-compose). The demo page is turned on with
// WALCAST_DEMO_PAGE=1 and, away from embedded defaults, signs in with pasted tokens.
//   - a page survives its gateway being killed and started again: it reconnects by itself and
//     resumes from its cursor, with every message posted meanwhile, none twice, none missing;
//   - the ops page (served by the api) shows the slot lag rising while the relay is stopped and
//     falling once it runs again; the gateway's own ops page shows its connections.
// Screenshots: .tap/artifacts/browser/.
import t from 'tap';
import { HARNESS_ADMIN_TOKEN, startTopology } from '../harness/topology.js';
import { Tokens } from '../src/auth/tokens.js';
import { connection, createChannel, launchBrowser, newPage, screenshot, send, sendAndSee, shown, signIn, waitForText, WAIT_MS } from './helpers/browser.js';

// Functions handed to page.waitForFunction / $eval run in the browser; this project's types have no DOM.
declare const document: any;

const topo = await startTopology({ relays: 1, gateways: 1, env: { WALCAST_DEMO_PAGE: '1' } });
t.teardown(() => topo.close());
const tokens = new Tokens(topo.secret, { maxLifetimeS: 86400 });
const browser = await launchBrowser(t);

const erinToken = await tokens.sign('erin', 3600);
/** The HTTP API as erin, through the proxy (the api process). */
async function post(method: string, body: Record<string, unknown>): Promise<Record<string, any>> {
  const r = await fetch(`${topo.url}/v1/${method}`, { method: 'POST', headers: { authorization: `Bearer ${erinToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await r.json()) as Record<string, any>;
  if (!json.ok) throw new Error(`${method}: ${JSON.stringify(json)}`);
  return json;
}

let channel = '';
let erin: Awaited<ReturnType<typeof newPage>>;

t.test('a page survives its gateway restarting and resumes without gaps', async (t) => {
  erin = await newPage(browser, 'erin');
  const frank = await newPage(browser, 'frank');
  await erin.goto(topo.url);
  await signIn(erin, 'erin', erinToken);
  channel = await createChannel(erin, 'restarts');
  await frank.goto(`${topo.url}/#${channel}`);
  await signIn(frank, 'frank', await tokens.sign('frank', 3600));
  await Promise.all([connection(erin, 'open'), connection(frank, 'open')]);

  // The gateway's own ops page: its sockets and subscriptions (the api's page has none).
  const gwOps = await newPage(browser, 'gateway ops');
  await gwOps.goto(`${topo.gateways[0]!.url}/ops`);
  await gwOps.fill('#admin-token', HARNESS_ADMIN_TOKEN);
  await gwOps.click('#auth-form button[type=submit]');
  await gwOps.waitForFunction(
    () => document.querySelector('#role')?.textContent === 'gateway' && document.querySelector('#gw-connections')?.dataset.value === '2' && document.querySelector('#gw-subscriptions')?.dataset.value === '2',
    null,
    { timeout: WAIT_MS },
  );
  t.pass('the gateway\'s ops page counts both pages\' sockets and subscriptions');
  await screenshot(gwOps, 'gateway-ops');
  t.same(gwOps.errors, [], 'no script errors on the ops page');
  await gwOps.context().close();

  for (let i = 1; i <= 3; i++) await sendAndSee(erin, `before ${i}`);
  await waitForText(frank, 'before 3');

  await topo.gateways[0]!.kill('SIGKILL');
  await Promise.all([connection(erin, 'reconnecting'), connection(frank, 'reconnecting')]);
  t.pass('both pages notice the gateway is gone');

  // The API is another process: posting goes on while no gateway runs, from the test and from a page.
  for (let i = 1; i <= 5; i++) await post('chat.postMessage', { channel, text: `during ${i}`, client_msg_id: `during-${i}` });
  await send(frank, 'during, from frank'); // shown only once stored and delivered: checked below

  topo.gateways[0] = await topo.gateways[0]!.restart();
  await Promise.all([connection(erin, 'open'), connection(frank, 'open')]);
  for (const page of [erin, frank]) for (const text of ['during 5', 'during, from frank']) await waitForText(page, text);
  await sendAndSee(erin, 'after');
  await waitForText(frank, 'after');

  const stored = (await fetch(`${topo.url}/v1/conversations.history?channel=${channel}&limit=1000`, { headers: { authorization: `Bearer ${erinToken}` } }).then((r) => r.json())) as { messages: { seq: number; text: string }[] };
  const expected = stored.messages.map((m) => `${m.seq} ${m.text}`);
  t.equal(expected.length, 10, 'ten messages stored');
  for (const [name, page] of [['erin', erin], ['frank', frank]] as const) {
    t.same((await shown(page)).map((m) => `${m.seq} ${m.text}`), expected, `${name}'s page: every stored message once, in seq order`);
    t.ok(Number(await page.textContent('#reconnects')) >= 1, `${name}'s page counted the reconnect`);
    t.match(await page.textContent('#resumed'), /^resumed after seq \d+/, `${name}'s page says where it resumed`);
    t.equal(Number(await page.textContent('#cursor')), stored.messages.at(-1)!.seq, `${name}'s cursor is the last seq`);
  }
  await screenshot(erin, 'gateway-restart-erin');
  await screenshot(frank, 'gateway-restart-frank');
  t.same([...erin.errors, ...frank.errors], [], 'no script errors');
  await frank.context().close();
});

t.test('the ops page shows slot lag rising while the relay is stopped, and falling after', async (t) => {
  const ops = await newPage(browser, 'ops');
  await ops.goto(`${topo.url}/ops`);
  await ops.waitForSelector('#auth:not([hidden])', { timeout: WAIT_MS });
  t.pass('the page asks for the admin token (its data is for operators)');
  await ops.fill('#admin-token', 'not-the-admin-token-0123');
  await ops.click('#auth-form button[type=submit]');
  await ops.waitForFunction(() => /wrong admin token/.test(document.querySelector('#auth-error')?.textContent ?? ''), null, { timeout: WAIT_MS });
  t.pass('a wrong token is refused');
  await ops.fill('#admin-token', HARNESS_ADMIN_TOKEN);
  await ops.click('#auth-form button[type=submit]');
  const slotActive = (v: string) => ops.waitForFunction((want) => document.querySelector('#slot-active')?.dataset.value === want, v, { timeout: WAIT_MS });
  await slotActive('yes');
  t.equal(await ops.textContent('#role'), 'api', 'served by the api process, which says so');
  t.match(await ops.textContent('#relay-state'), /no relay in this process/);

  const lag = async () => Number(await ops.$eval('#slot-lag-bytes', (e: any) => e.dataset.value));
  await topo.relays[0]!.kill('SIGTERM');
  await slotActive('no');
  t.pass('the page shows that no relay streams the slot');

  // Every post is WAL the stopped slot must keep: the lag grows with each batch.
  const seen = [await lag()];
  for (let round = 1; round <= 3; round++) {
    for (let i = 1; i <= 20; i++) await post('chat.postMessage', { channel, text: `while the relay is down ${round}.${i}` });
    const previous = seen.at(-1)!;
    await ops.waitForFunction((p) => Number(document.querySelector('#slot-lag-bytes')?.dataset.value) > p, previous, { timeout: WAIT_MS });
    seen.push(await lag());
  }
  t.comment(`slot lag seen on the page (bytes): ${seen.join(' → ')}`);
  t.ok(seen.every((v, i) => i === 0 || v > seen[i - 1]!), 'rising with every batch');
  const peak = seen.at(-1)!;
  t.ok(Number(await ops.$eval('#chart-lag-bytes', (e: any) => e.dataset.max)) >= peak, 'the chart holds the peak');
  t.ok(Number(await ops.$eval('#slot-lag-seconds', (e: any) => e.dataset.value)) > 0, 'the lag in seconds counts the time since the slot was left');
  await screenshot(ops, 'ops-relay-stopped');

  topo.relays[0] = await topo.relays[0]!.restart();
  await slotActive('yes');
  await ops.waitForFunction((p) => Number(document.querySelector('#slot-lag-bytes')?.dataset.value) < p / 2, peak, { timeout: WAIT_MS });
  t.pass('the lag falls once the relay streams again');
  const chart = await ops.$eval('#chart-lag-bytes', (e: any) => [Number(e.dataset.latest), Number(e.dataset.max)]);
  t.ok(chart[0]! < chart[1]!, 'the chart shows the fall below its peak');
  // What was written meanwhile is delivered now: erin's page, still open, gets the last post.
  await waitForText(erin, 'while the relay is down 3.20');
  t.pass('the posts made while the relay was down reach the open page');
  await screenshot(ops, 'ops-relay-back');
  t.same([...ops.errors, ...erin.errors], [], 'no script errors');
});
