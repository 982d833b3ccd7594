// Does a hot channel starve a quiet one on the same gateway? One gateway process (Redis bus,
// real PostgreSQL, separate api and relay): a hot channel with H subscribers (raw sockets that
// read and discard) flooded by concurrent posters, and a quiet channel with one subscriber
// posted to every 50 ms. Reports the quiet channel's POST → frame latency with no flood, and
// during the flood with the fan-out budget on and off (WALCAST_FANOUT_BUDGET=0: every event
// fanned out as it arrives, in arrival order).
//
//   node --import=tsx bench/hot-channel-fairness.ts [hot_subscribers=2000] [seconds=8] [posters=16]
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startTopology } from '../scripts/topology.js';
import { Tokens } from '../src/auth/tokens.js';
import { machine, percentiles, table } from './report.js';

export interface FairnessRun {
  label: string;
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
        `GET /v1/ws?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head.split('\r\n')[0]));
      s.write(maskedText(JSON.stringify({ type: 'subscribe', channel })));
      s.on('data', () => {}); // read and discard
      resolve(s);
    };
    s.on('data', onData);
    s.on('error', reject);
  });
}

function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 255]);
  const mask = Buffer.from([1, 2, 3, 4]);
  const out = Buffer.alloc(payload.length);
  for (let i = 0; i < len; i++) out[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([header, mask, out]);
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url + '/metrics')).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
    .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

export async function runFairness(o: { hot: number; seconds: number; posters: number; budget: string; flood: boolean; label: string }): Promise<FairnessRun> {
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
    const tokens = new Tokens(topo.secret);
    const token = await tokens.sign('bench', 3600);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const post = async (channel: string, text: string) => {
      const r = await fetch(`${topo.api.url}/v1/chat.postMessage`, { method: 'POST', headers, body: JSON.stringify({ channel, text }) });
      return ((await r.json()) as any).message;
    };
    const create = async (name: string) =>
      ((await (await fetch(`${topo.api.url}/v1/conversations.create`, { method: 'POST', headers, body: JSON.stringify({ name }) })).json()) as any).channel.id as string;
    const hot = await create('hot');
    const quiet = await create('quiet');
    const g = topo.gateways[0]!;
    for (let i = 0; i < o.hot; i++) sockets.push(await sink(g.port, token, hot));

    const ws = new WebSocket(`ws://127.0.0.1:${g.port}/v1/ws?token=${token}`);
    const sentAt = new Map<number, number>();
    const quietLat: number[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', channel: quiet })));
      ws.on('message', (d) => {
        const f = JSON.parse(String(d));
        if (f.type === 'subscribed') resolve();
        if (f.type === 'message' && sentAt.has(f.seq)) quietLat.push(performance.now() - sentAt.get(f.seq)!);
      });
      ws.on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 500));
    const framesBefore = await metric(g.url, 'walcast_ws_message_frames_total');
    const end = Date.now() + o.seconds * 1000;
    let hotPosted = 0;
    const floods = o.flood
      ? Array.from({ length: o.posters }, async (_, p) => {
          for (let i = 0; Date.now() < end; i++) {
            await post(hot, `hot ${p}-${i} ${'x'.repeat(200)}`);
            hotPosted++;
          }
        })
      : [];
    let qn = 0;
    const quietLoop = (async () => {
      while (Date.now() < end) {
        qn++;
        const t0 = performance.now();
        // The seq is known only from the response: record the start time under the next seq.
        sentAt.set(qn, t0);
        await post(quiet, `quiet ${qn}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await Promise.all([...floods, quietLoop]);
    const deadline = Date.now() + 30_000;
    while (quietLat.length < qn && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const frames = (await metric(g.url, 'walcast_ws_message_frames_total')) - framesBefore;
    return {
      label: o.label,
      quiet: quietLat,
      hotPosted,
      hotFramesPerS: Math.round(frames / o.seconds),
      shed: await metric(g.url, 'walcast_gateway_fanout_shed_total'),
      deferred: await metric(g.url, 'walcast_gateway_fanout_deferred_total'),
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

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [hot = 2000, seconds = 8, posters = 16] = process.argv.slice(2).map(Number);
  const runs: FairnessRun[] = [];
  runs.push(await runFairness({ hot, seconds, posters, budget: '20000', flood: false, label: 'no flood' }));
  runs.push(await runFairness({ hot, seconds, posters, budget: '0', flood: true, label: 'flood, WALCAST_FANOUT_BUDGET=0 (off)' }));
  runs.push(await runFairness({ hot, seconds, posters, budget: '20000', flood: true, label: 'flood, budget 20000 (default)' }));
  runs.push(await runFairness({ hot, seconds, posters, budget: '5000', flood: true, label: 'flood, budget 5000' }));
  process.stdout.write(machine() + '\n\n' + formatFairness(runs, hot, seconds) + '\n');
  process.exit(0);
}
