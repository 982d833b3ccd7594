// A client that stops reading must not slow the others: past WALCAST_WS_MAX_BACKPRESSURE its
// socket is closed (it resumes later with `since`), while a healthy subscriber keeps getting
// every frame promptly.
import t from 'tap';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, { env: { WALCAST_WS_MAX_BACKPRESSURE: '65536', WALCAST_MAX_TEXT_CHARS: '60000' } });
const api = new Api(w.base, await w.token('alice'));

t.test('a stalled reader is closed; a healthy one is not held back', async (t) => {
  const { channel } = await api.call('conversations.create', { name: 'flood' });
  const healthy = await WsClient.connect(w.ws, await w.token('alice'));
  const stalled = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => Promise.all([healthy.close(), stalled.socket.terminate()]));
  await healthy.subscribe(channel.id);
  await stalled.subscribe(channel.id);
  // Stop reading: the kernel buffers fill, then uWS's, then the limit trips.
  (stalled.socket as unknown as { _socket: { pause(): void } })._socket.pause();

  // ~18 MB in all: more than loopback's socket buffers (autotuned to a few MB) can hide.
  const N = 300;
  const text = 'x'.repeat(60_000);
  const postedAt: number[] = [];
  for (let i = 1; i <= N; i++) {
    postedAt[i] = performance.now();
    await api.call('chat.postMessage', { channel: channel.id, text });
  }
  await healthy.waitForSeq(channel.id, N, 30_000);
  t.ok(contiguous(healthy.seqs(channel.id), 1, N), 'the healthy client got every frame in order');
  const delays = Array.from({ length: N }, (_, i) => healthy.receivedAt.get(`${channel.id}:${i + 1}`)! - postedAt[i + 1]!).sort((a, b) => a - b);
  const p99 = delays[Math.floor(N * 0.99)]!;
  t.comment(`healthy client: p50 ${delays[N >> 1]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms from POST start to frame`);
  t.ok(p99 < 1000, `healthy client stayed prompt (p99 ${p99.toFixed(1)} ms)`);
  await until(async () => ((await w.node.metrics.wsSlowClosed.get()).values[0]?.value ?? 0) >= 1 || (await w.node.metrics.wsConnections.get()).values[0]!.value <= 1, 'the stalled socket to be closed', 15_000);
  await until(async () => (await w.node.metrics.wsConnections.get()).values[0]!.value === 1, 'only the healthy socket left', 15_000);
  t.pass('the server closed the stalled socket');

  // The stalled client comes back and resumes from the last seq it processed.
  (stalled.socket as unknown as { _socket: { resume(): void } })._socket.resume();
  await until(() => stalled.closed, 'the stalled client to see its close');
  const last = Math.max(0, ...stalled.seqs(channel.id));
  t.ok(last < N, `the stalled client had processed ${last} of ${N}`);
  const again = await WsClient.connect(w.ws, await w.token('alice'));
  t.teardown(() => again.close());
  await again.subscribe(channel.id, last);
  await again.waitForSeq(channel.id, N, 30_000);
  t.ok(contiguous([...stalled.seqs(channel.id), ...again.seqs(channel.id)], 1, N), 'with since, it resumed without gap or duplicate');
});
