// `walcast start` runs the relay in a worker thread (WALCAST_RELAY_THREAD, on by default): events
// cross to the process's bus through the bridge, its metrics join /metrics, and a thread that
// dies is replaced without losing or repeating anything a client sees.
import t from 'tap';
import type { Worker } from 'node:worker_threads';
import pg from 'pg';
import { RelayThread } from '../src/cdc/relay-thread.js';
import { startTestDatabase } from './helpers/postgres.js';
import { adminHeaders, startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url);
const api = new Api(w.base, await w.token('alice'));

t.test('the relay runs in its own thread and its metrics are served once, with the process\'s', async (t) => {
  t.ok(w.node.relay instanceof RelayThread, 'a RelayThread by default');
  const { channel } = await api.call('conversations.create', { name: 'threaded' });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id);
  for (let i = 0; i < 5; i++) await api.call('chat.postMessage', { channel: channel.id, text: `m${i}` });
  await ws.waitForSeq(channel.id, 5);
  await until(async () => ((await w.metric('walcast_relay_transactions_total')) ?? 0) >= 5, 'the thread\'s counters in /metrics');
  t.equal(await w.metric('walcast_relay_streaming'), 1, 'streaming, counted once');
  t.ok(((await w.metric('walcast_process_cpu_seconds_total')) ?? 0) > 0, 'the process metrics are there too');
  const text = await (await fetch(`${w.base}/metrics`, { headers: { authorization: 'Bearer test-admin-token-test-admin-token' } })).text();
  t.equal(text.match(/^# TYPE walcast_relay_transactions_total /gm)?.length, 1, 'each metric declared once');
});

t.test('a relay thread that dies is replaced: the client sees every message once, in order', async (t) => {
  const { channel } = await api.call('conversations.create', { name: 'thread-crash' });
  const ws = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id);
  const relay = w.node.relay as RelayThread;
  for (let i = 1; i <= 60; i++) {
    await api.call('chat.postMessage', { channel: channel.id, text: `m${i}` });
    // Fault injection: the thread is terminated as if it had crashed (no stop, no acknowledgement).
    if (i === 20) await (relay as unknown as { worker: Worker }).worker.terminate();
  }
  await ws.waitForSeq(channel.id, 60, 60_000);
  t.ok(contiguous(ws.seqs(channel.id), 1, 60), 'seqs 1..60, each once, in order');
  await until(() => relay.isStreaming(), 'a new thread streaming', 60_000);
  t.pass('streaming again in a new thread');
});

t.test("the thread's warnings reach the process's log and the ops page's recent problems", async (t) => {
  const relay = w.node.relay as RelayThread;
  await until(() => relay.isStreaming(), 'the relay streaming', 60_000);
  const admin = new pg.Client({ connectionString: db.adminUrl });
  await admin.connect();
  t.teardown(() => admin.end());
  // The stream is cut under it: the relay in the thread warns and reconnects.
  const before = Date.now();
  await until(async () => (await admin.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [w.config.slot])).rowCount! > 0, 'the walsender terminated');
  type Problem = { t: number; level: string; msg: string; fields: Record<string, string> };
  let fromThread: Problem | undefined;
  await until(async () => {
    const res = await fetch(`${w.base}/ops/state.json`, { headers: adminHeaders });
    const state = (await res.json()) as { problems: { recent: Problem[] } };
    fromThread = state.problems.recent.find((p) => p.fields.thread === 'relay' && p.t >= before);
    return fromThread !== undefined;
  }, 'a problem from the relay thread in /ops/state.json');
  t.equal(fromThread!.level, 'warn');
  t.equal(fromThread!.fields.role, 'relay', 'with the relay role');
  t.match(fromThread!.msg, /stream/, `what happened: ${fromThread!.msg}`);
  await until(() => relay.isStreaming(), 'streaming again', 60_000);
});
