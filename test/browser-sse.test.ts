// The demo page over Server-Sent Events and over a WebSocket, side by side in headless Chromium,
// against `walcast start` on its embedded defaults (as test/browser-demo.test.ts runs it). The
// page takes ?transport=websocket|sse|auto and hands it to the SDK's createClient; it keeps every
// change frame the SDK delivered in window.walcastFrames. Two people on one channel, one per
// transport, post, reply, edit, react, unreact and delete, a third joins and leaves through the
// API: both pages must have received the same seq'd frames, byte for byte, in the same order,
// with no gap, and show the same messages. The server's own gauges confirm the SSE page held a
// stream (walcast_sse_connections) and the other a socket. Screenshots: .tap/artifacts/browser/.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { metric, scrape } from '../harness/load/metrics.js';
import { track, waitUntilUp } from '../harness/process.js';
import { WALCAST_BIN } from '../harness/roles.js';
import { freePort } from '../src/db/embedded.js';
import type { ChangeFrame } from '../src/protocol.js';
import { connection, createChannel, launchBrowser, newPage, screenshot, send, sendAndSee, shown, signIn, waitForText, WAIT_MS } from './helpers/browser.js';
import { until } from './helpers/walcast.js';

// Functions handed to page.waitForFunction / evaluate run in the browser; this project's types have no DOM.
declare const document: any;
declare const window: any;

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'walcast-sse-page-'));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const env: Record<string, string | undefined> = { ...process.env, PORT: String(port), WALCAST_DATA_DIR: dataDir, WALCAST_LOG_LEVEL: 'warn' };
for (const k of ['DATABASE_URL', 'WALCAST_SECRET', 'WALCAST_ADMIN_TOKEN', 'WALCAST_DEMO_PAGE', 'WALCAST_GATEWAY_WORKERS', 'REDIS_URL', 'REDIS_CLUSTER_NODES']) delete env[k];
const server = track('walcast start', port, spawn(process.execPath, [WALCAST_BIN, 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
t.teardown(() => server.kill('SIGTERM'));
await waitUntilUp(server, `${base}/readyz`, 120_000);
const adminToken = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
/** Open streams and sockets as the server counts them (one process: no gateway workers). */
const open = async () => {
  const m = await scrape(base, adminToken);
  return { sse: metric(m, 'walcast_sse_connections'), ws: metric(m, 'walcast_ws_connections') };
};

const browser = await launchBrowser(t);

async function devToken(user: string): Promise<string> {
  const r = await fetch(`${base}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) });
  return ((await r.json()) as { token: string }).token;
}

type Page = Awaited<ReturnType<typeof newPage>>;
const framesOf = (page: Page, channel: string): Promise<ChangeFrame[]> => page.evaluate((ch) => window.walcastFrames.filter((f: { channel: string }) => f.channel === ch), channel);
const item = (seq: number) => `#messages li[data-seq="${seq}"]`;

t.test('the page says which transport it uses, and refuses one it does not know', async (t) => {
  const page = await newPage(browser, 'grace');
  await page.goto(base);
  await signIn(page, 'grace');
  await connection(page, 'open');
  t.equal(await page.textContent('#transport'), 'websocket (auto)', 'no parameter: auto, and a WebSocket opens here');
  // A reload keeps the session (sessionStorage), but not with a transport it does not know.
  await page.goto(`${base}/?transport=carrier-pigeon`);
  await page.fill('#user', 'grace');
  await page.click('#sign-in-form button[type=submit]');
  await page.waitForFunction(() => /Unknown transport "carrier-pigeon"/.test(document.querySelector('#sign-in-error')?.textContent ?? ''), null, { timeout: WAIT_MS });
  t.ok(await page.isHidden('#app'), 'not signed in');
  t.same(page.errors, [], 'no script errors');
  await page.context().close();
});

t.test('an SSE page and a WebSocket page receive the same frames in the same order', async (t) => {
  const alice = await newPage(browser, 'alice');
  const bob = await newPage(browser, 'bob');
  await alice.goto(`${base}/?transport=websocket`);
  await signIn(alice, 'alice');
  const channel = await createChannel(alice, 'two-transports');
  await connection(alice, 'open');
  await bob.goto(`${base}/?transport=sse#${channel}`);
  await signIn(bob, 'bob');
  await bob.waitForFunction((id) => document.querySelector('#room-id')?.textContent === id, channel, { timeout: WAIT_MS });
  await connection(bob, 'open');
  t.equal(await alice.textContent('#transport'), 'websocket', 'alice\'s page reports a WebSocket');
  t.equal(await bob.textContent('#transport'), 'sse', 'bob\'s page reports SSE');

  // Presence needs both subscriptions live: from here on both receive every frame.
  const presence = (page: Page, text: string) => page.waitForFunction((x) => document.querySelector('#presence')?.textContent === x, text, { timeout: WAIT_MS });
  await presence(alice, 'alice, bob');
  await presence(bob, 'alice, bob');
  t.pass('presence crosses both ways');
  await until(async () => {
    const n = await open();
    return n.sse === 1 && n.ws === 1;
  }, 'one SSE stream and one WebSocket on the server', WAIT_MS);
  t.pass('the server holds one SSE stream and one WebSocket (walcast_sse_connections, walcast_ws_connections)');

  // Both post at once, each sending when its own previous message showed up.
  const talk = async (page: Page, who: string) => {
    for (let i = 1; i <= 4; i++) await sendAndSee(page, `${who} ${i}`);
  };
  await Promise.all([talk(alice, 'alice'), talk(bob, 'bob')]);
  await waitForText(alice, 'bob 4');
  await waitForText(bob, 'alice 4');
  const seqOf = async (text: string) => (await shown(alice)).find((m) => m.text === text)!.seq;
  const alice1 = await seqOf('alice 1');
  const bob1 = await seqOf('bob 1');
  const bob2 = await seqOf('bob 2');
  const firstSeq = Math.min(alice1, bob1);

  // Typing travels from the WebSocket to the stream (the stream itself sends nothing).
  await alice.fill('#text', '');
  await alice.type('#text', 'hmm', { delay: 20 });
  await bob.waitForFunction(() => document.querySelector('#typing')?.textContent === 'alice is typing…', null, { timeout: WAIT_MS });
  t.pass('typing reaches the SSE page');
  await alice.fill('#text', '');

  // A reply from the SSE page, an edit from the WebSocket page.
  await bob.click(`${item(alice1)} button[data-action=reply]`);
  await send(bob, 'answering alice');
  await waitForText(alice, 'answering alice');
  await alice.click(`${item(alice1)} button[data-action=edit]`);
  await alice.fill(`${item(alice1)} input.edit-text`, 'alice 1, edited');
  await alice.click(`${item(alice1)} form.edit button[type=submit]`);
  await bob.waitForFunction((sel) => document.querySelector(`${sel} .text`)?.textContent === 'alice 1, edited', item(alice1), { timeout: WAIT_MS });

  // Reactions from both, one taken back; a delete from the SSE page.
  const reactionIs = (page: Page, seq: number, label: string) =>
    page.waitForFunction(([sel, want]) => document.querySelector(`${sel} .reactions button`)?.textContent === want, [item(seq), label] as const, { timeout: WAIT_MS });
  await bob.click(`${item(alice1)} .actions button[data-name="🎉"]`);
  await reactionIs(alice, alice1, '🎉 1');
  await alice.click(`${item(alice1)} .actions button[data-name="🎉"]`);
  await reactionIs(bob, alice1, '🎉 2');
  await bob.click(`${item(alice1)} .reactions button`); // takes his back
  await reactionIs(alice, alice1, '🎉 1');
  await bob.click(`${item(bob2)} button[data-action=delete]`);
  await alice.waitForFunction((sel) => document.querySelector(`${sel} .text`)?.textContent === 'message deleted', item(bob2), { timeout: WAIT_MS });

  // A third person joins and leaves through the API: member frames.
  const carol = await devToken('carol');
  for (const method of ['conversations.join', 'conversations.leave']) {
    const r = await fetch(`${base}/v1/${method}`, { method: 'POST', headers: { authorization: `Bearer ${carol}`, 'content-type': 'application/json' }, body: JSON.stringify({ channel }) });
    t.equal(r.status, 200, `carol: ${method}`);
  }
  await sendAndSee(alice, 'the end');
  await waitForText(bob, 'the end');
  const lastSeq = await seqOf('the end');

  const a = await framesOf(alice, channel);
  const b = await framesOf(bob, channel);
  t.equal(a[a.length - 1]?.seq, lastSeq, 'the WebSocket page got up to the last frame');
  t.equal(b[b.length - 1]?.seq, lastSeq, 'the SSE page got up to the last frame');
  // Each page's delivery starts where its own subscription did; compare from the later start.
  const from = Math.max(a[0]!.seq, b[0]!.seq);
  t.ok(from <= firstSeq, `both were subscribed before the first post (from seq ${from}, first post ${firstSeq})`);
  const sa = a.filter((f) => f.seq >= from);
  const sb = b.filter((f) => f.seq >= from);
  t.same(sb.map((f) => JSON.stringify(f)), sa.map((f) => JSON.stringify(f)), `the same ${sa.length} frames, byte for byte, in the same order`);
  t.same(sa.map((f) => f.seq), Array.from({ length: lastSeq - from + 1 }, (_, i) => from + i), 'each seq once, none missing');
  t.same(
    [...new Set(sa.map((f) => f.type))].sort(),
    ['member_joined', 'member_left', 'message', 'message_changed', 'message_deleted', 'reaction_added', 'reaction_removed'],
    'every kind of change crossed both transports',
  );
  t.same(await shown(bob), await shown(alice), 'and both pages show the same messages');
  t.same([await alice.textContent('#reconnects'), await bob.textContent('#reconnects')], ['0', '0'], 'neither reconnected');

  await screenshot(alice, 'transports-websocket');
  await screenshot(bob, 'transports-sse');
  const errors = [...alice.errors, ...bob.errors];
  await bob.context().close();
  await until(async () => (await open()).sse === 0, 'the SSE stream to end with the page', WAIT_MS);
  t.pass('closing the SSE page ends the server\'s only stream');
  t.same(errors, [], 'no script errors');
  await alice.context().close();
});
