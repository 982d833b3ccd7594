// SSE streams under the gateway's limits, on real PostgreSQL: a stream whose client stops reading
// is ended past WALCAST_WS_MAX_BACKPRESSURE with `close` 1013 and does not hold back the others
// (streams and sockets); `walcast start` drains streams on SIGTERM with `close` 1012 and a retry
// hint (also as the SSE `retry` field), like sockets.
import t from 'tap';
import { CLOSE, retryHintOfReason } from '../src/protocol.js';
import { startChild } from './helpers/child.js';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';
import { SseClient } from './helpers/sse.js';
import { Tokens } from '../src/auth/tokens.js';
import { SECRET } from './helpers/walcast.js';

const db = await startTestDatabase(t);

t.test('a stream that stops reading is ended with 1013; healthy streams and sockets are not held back', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'sse_slow', WALCAST_WS_MAX_BACKPRESSURE: '65536', WALCAST_MAX_TEXT_CHARS: '60000' } });
  const api = new Api(w.base, await w.token('alice'));
  const ch = (await api.call('conversations.create', { name: 'flood' })).channel.id as string;
  const token = await w.token('alice');
  const healthy = await SseClient.connect(w.base, { channels: [ch], token });
  const stalled = await SseClient.connect(w.base, { channels: [ch], token });
  const ws = await WsClient.connect(w.ws, token);
  t.teardown(() => Promise.all([healthy.abort(), stalled.abort(), ws.close()]));
  await ws.subscribe(ch);
  await healthy.next((f) => f.type === 'subscribed', 'subscribed', 5000, 0);
  await stalled.next((f) => f.type === 'subscribed', 'subscribed', 5000, 0);
  stalled.pause();

  // ~18 MB: more than loopback's socket buffers can hide.
  const N = 300;
  const text = 'x'.repeat(60_000);
  const postedAt: number[] = [];
  for (let i = 1; i <= N; i++) {
    postedAt[i] = performance.now();
    await api.call('chat.postMessage', { channel: ch, text });
  }
  await healthy.waitForSeq(ch, N, 30_000);
  await ws.waitForSeq(ch, N, 30_000);
  t.ok(contiguous(healthy.seqs(ch), 1, N), 'the healthy stream got every frame in order');
  t.ok(contiguous(ws.seqs(ch), 1, N), 'so did the socket');
  const delays = Array.from({ length: N }, (_, i) => healthy.receivedAt.get(`${ch}:${i + 1}`)! - postedAt[i + 1]!).sort((a, b) => a - b);
  const p99 = delays[Math.floor(N * 0.99)]!;
  t.comment(`healthy stream: p50 ${delays[N >> 1]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms from POST start to frame`);
  t.ok(p99 < 1000, `the healthy stream stayed prompt (p99 ${p99.toFixed(1)} ms)`);
  await until(async () => ((await w.node.metrics.sseSlowClosed.get()).values[0]?.value ?? 0) >= 1, 'the stalled stream to be ended', 15_000);
  await until(async () => (await w.node.metrics.sseConnections.get()).values[0]?.value === 1, 'only the healthy stream left', 15_000);
  t.pass('the server ended the stalled stream');

  // Reading again, the client gets what was sent before the cut, then why.
  stalled.resume();
  t.same(await stalled.whenEnded(), { code: CLOSE.slow_consumer, reason: 'slow_consumer' }, 'the last event: 1013 slow_consumer');
  const got = stalled.seqs(ch);
  t.ok(got.length > 0 && got.length < N && contiguous(got, 1, got.length), `in order up to the cut (${got.length} of ${N})`);
  const again = await SseClient.connect(w.base, { channels: [ch], token, lastEventId: stalled.lastEventId });
  t.teardown(() => again.abort());
  await again.waitForSeq(ch, N, 30_000);
  t.ok(contiguous([...got, ...again.seqs(ch)], 1, N), 'resumed by Last-Event-ID without gap or duplicate');
  t.equal((await w.node.metrics.sseClosed.get()).values.find((v) => v.labels.reason === 'slow_consumer')?.value, 1);
});

t.test('SIGTERM: walcast start drains its streams with close 1012 and a retry hint, then exits 0', async (t) => {
  const child = await startChild(t, db.url, { WALCAST_SLOT: 'sse_drain', WALCAST_DRAIN_WINDOW_MS: '300', WALCAST_DRAIN_RETRY_MS: '2000' });
  const tokens = new Tokens(SECRET);
  const token = await tokens.sign('alice', 3600);
  const api = new Api(child.base, token);
  const ch = (await api.call('conversations.create', { name: 'drain' })).channel.id as string;
  const streams = await Promise.all(Array.from({ length: 4 }, () => SseClient.connect(child.base, { channels: [ch], since: [0], token })));
  t.teardown(() => streams.forEach((s) => s.abort()));
  const ws = await WsClient.connect(child.ws, token);
  t.teardown(() => ws.close());
  await ws.subscribe(ch, 0);
  await api.call('chat.postMessage', { channel: ch, text: 'before the drain' });
  for (const s of streams) await s.waitForSeq(ch, 1);

  t.equal(await child.proc.kill('SIGTERM'), 0, 'exited 0');
  for (const s of streams) {
    const why = await s.whenEnded();
    t.equal(why?.code, CLOSE.draining, 'close 1012');
    const hint = retryHintOfReason(why?.reason);
    t.ok(hint !== undefined && hint >= 0 && hint <= 2000, `reason carries the hint: ${why?.reason}`);
    t.equal(s.retryMs, hint, 'and so does the SSE retry field (a browser\'s EventSource waits that long)');
    t.same(s.seqs(ch), [1], 'everything before it arrived');
  }
  await until(() => ws.closed, 'the socket to be drained too');
  t.equal(ws.closeCode, CLOSE.draining);
});
