// Does a hot channel starve a quiet one on the same gateway? One gateway process (Redis bus, real
// PostgreSQL, separate api and relay): a hot channel with H subscribers (raw sockets that read and
// discard) flooded by concurrent posters, and a quiet channel with one subscriber posted to every
// 50 ms. Measures the quiet channel's POST → frame latency, with or without the flood, at a given
// fan-out budget (WALCAST_FANOUT_BUDGET=0: every event fanned out as it arrives, in arrival
// order). test/fairness.test.ts runs it small; `npm run bench -- fairness` big.
import net from 'node:net';
import WebSocket from 'ws';
import { Tokens } from '../../src/auth/tokens.js';
import { clientFrame, PATHS, type ServerFrame } from '../../src/protocol.js';
import { startTopology } from '../topology.js';
import { apiCaller } from './api.js';
import { percentiles, table } from './format.js';
import { metric, scrape } from './metrics.js';

export interface FairnessOptions {
  /** Subscribers of the hot channel. */
  hot: number;
  seconds: number;
  /** Concurrent posters flooding the hot channel. */
  posters: number;
  /** WALCAST_FANOUT_BUDGET of the gateway. */
  budget: string;
  flood: boolean;
  label: string;
}

export interface FairnessRun {
  label: string;
  /** POST start → frame of each quiet message, ms. */
  quiet: number[];
  hotPosted: number;
  hotFramesPerS: number;
  shed: number;
  deferred: number;
}

/** A subscriber that costs the client side almost nothing: handshake, subscribe, discard. */
function sink(port: number, token: string, channel: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(
        `GET ${PATHS.ws}?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head.split('\r\n')[0]));
      s.write(maskedText(clientFrame.subscribe(channel)));
      s.on('data', () => {}); // read and discard
      resolve(s);
    };
    s.on('data', onData);
    s.on('error', reject);
  });
}

/** One masked WebSocket text frame (clients must mask), for payloads under 64 KiB. */
function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 255]);
  const mask = Buffer.from([1, 2, 3, 4]);
  const out = Buffer.alloc(payload.length);
  for (let i = 0; i < len; i++) out[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([header, mask, out]);
}

export async function runFairness(o: FairnessOptions): Promise<FairnessRun> {
  const topo = await startTopology({
    relays: 1,
    gateways: 1,
    env: {
      WALCAST_LOG_LEVEL: 'error',
      WALCAST_FANOUT_BUDGET: o.budget,
      WALCAST_POST_RATE_USER: '0',
      WALCAST_POST_RATE_CHANNEL: '0',
      WALCAST_WS_UPGRADE_RATE: '0',
    },
  });
  const sockets: net.Socket[] = [];
  try {
    const token = await new Tokens(topo.secret).sign('bench', 3600);
    const call = apiCaller(topo.api.url, token);
    // Posts that fail (none should: the limits are off) are not retried, and not counted.
    const post = (channel: string, text: string) => call('chat.postMessage', { channel, text }).then(() => true, () => false);
    const hot = (await call('conversations.create', { name: 'hot' })).channel.id as string;
    const quiet = (await call('conversations.create', { name: 'quiet' })).channel.id as string;
    const g = topo.gateways[0]!;
    for (let i = 0; i < o.hot; i++) sockets.push(await sink(g.port, token, hot));

    const ws = new WebSocket(`ws://127.0.0.1:${g.port}${PATHS.ws}?token=${token}`);
    const sentAt = new Map<number, number>();
    const quietLat: number[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => ws.send(clientFrame.subscribe(quiet)));
      ws.on('message', (d) => {
        const f = JSON.parse(String(d)) as ServerFrame;
        if (f.type === 'subscribed') resolve();
        if (f.type === 'message' && sentAt.has(f.seq)) quietLat.push(performance.now() - sentAt.get(f.seq)!);
      });
      ws.on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 500));
    const framesBefore = metric(await scrape(g.url), 'walcast_ws_message_frames_total');
    const end = Date.now() + o.seconds * 1000;
    let hotPosted = 0;
    const floods = o.flood
      ? Array.from({ length: o.posters }, async (_, p) => {
          for (let i = 0; Date.now() < end; i++) if (await post(hot, `hot ${p}-${i} ${'x'.repeat(200)}`)) hotPosted++;
        })
      : [];
    let qn = 0;
    const quietLoop = (async () => {
      while (Date.now() < end) {
        qn++;
        // The seq is known only from the response: record the start time under the next seq.
        sentAt.set(qn, performance.now());
        await post(quiet, `quiet ${qn}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await Promise.all([...floods, quietLoop]);
    const deadline = Date.now() + 30_000;
    while (quietLat.length < qn && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    ws.close();
    const m = await scrape(g.url);
    return {
      label: o.label,
      quiet: quietLat,
      hotPosted,
      hotFramesPerS: Math.round((metric(m, 'walcast_ws_message_frames_total') - framesBefore) / o.seconds),
      shed: metric(m, 'walcast_gateway_fanout_shed_total'),
      deferred: metric(m, 'walcast_gateway_fanout_deferred_total'),
    };
  } finally {
    for (const s of sockets) s.destroy();
    await topo.close();
  }
}

export function formatFairness(runs: FairnessRun[], hot: number, seconds: number): string {
  return table(
    ['quiet channel, POST → frame', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'quiet msgs', `hot msg/s (${hot} subs)`, 'hot frames/s out', 'turns yielded', 'shed'],
    runs.map((r) => [r.label, ...percentiles(r.quiet), r.quiet.length, Math.round(r.hotPosted / seconds), r.hotFramesPerS, r.deferred, r.shed]),
  );
}
