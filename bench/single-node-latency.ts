// Single-node latency: `walcast start` (embedded PostgreSQL, in-process bus) in its own
// process; this process posts at a fixed rate and holds WebSocket subscribers.
// Measures, per message: POST start -> message frame at the client (end to end), and the
// server's own commit -> socket-write histogram (WAL commit timestamp to uWS publish).
//
//   node --import=tsx bench/single-node-latency.ts [rate=200] [seconds=10] [subscribers=4]
import WebSocket from 'ws';
import { startStandalone } from './lib/standalone.js';
import { machine, percentiles, table } from './report.js';

const [rate = 200, seconds = 10, subscribers = 4] = process.argv.slice(2).map(Number);
const { base, token, stop } = await startStandalone();

try {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const post = (m: string, b: unknown) => fetch(`${base}/v1/${m}`, { method: 'POST', headers, body: JSON.stringify(b) }).then((r) => r.json() as Promise<any>);
  const channel = (await post('conversations.create', { name: 'bench' })).channel.id as string;

  const total = Math.round(rate * seconds);
  const sentAt = new Float64Array(total + 1);
  const respAt = new Float64Array(total + 1);
  const firstFrameAt = new Float64Array(total + 1);
  let frames = 0;
  const sockets = await Promise.all(
    Array.from({ length: subscribers }, () => {
      const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/ws?token=${token}`);
      ws.on('message', (d) => {
        const now = performance.now();
        const f = JSON.parse(String(d));
        if (f.type !== 'message') return;
        frames++;
        const i = Number(f.message.text);
        if (!firstFrameAt[i]) firstFrameAt[i] = now;
      });
      return new Promise<WebSocket>((r) => ws.on('open', () => r(ws)));
    }),
  );
  for (const ws of sockets) ws.send(JSON.stringify({ type: 'subscribe', channel }));
  await new Promise((r) => setTimeout(r, 300));

  const start = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 1; i <= total; i++) {
    const due = start + ((i - 1) * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    sentAt[i] = performance.now();
    inflight.push(post('chat.postMessage', { channel, text: String(i) }).then(() => void (respAt[i] = performance.now())));
  }
  await Promise.all(inflight);
  const deadline = performance.now() + 10_000;
  while (frames < total * subscribers && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));

  const e2e: number[] = [];
  const post2resp: number[] = [];
  let frameBeforeResponse = 0;
  for (let i = 1; i <= total; i++) {
    if (firstFrameAt[i]) e2e.push(firstFrameAt[i]! - sentAt[i]!);
    post2resp.push(respAt[i]! - sentAt[i]!);
    if (firstFrameAt[i] && firstFrameAt[i]! <= respAt[i]!) frameBeforeResponse++;
  }
  const metrics = await fetch(`${base}/metrics`).then((r) => r.text());
  const hist = histogramPercentiles(metrics, 'walcast_gateway_commit_to_send_seconds');

  console.log(`\nwalcast single-node latency: ${rate} msg/s for ${seconds} s, ${subscribers} subscribers, one channel`);
  console.log(machine());
  console.log(
    table(
      ['measure', 'n', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
      [
        ['POST start -> frame at client', e2e.length, ...percentiles(e2e)],
        ['POST start -> POST response', post2resp.length, ...percentiles(post2resp)],
      ],
    ),
  );
  console.log(`server commit -> socket write (histogram buckets): p50 <= ${hist.p50} ms, p99 <= ${hist.p99} ms`);
  console.log(`frames delivered ${frames}/${total * subscribers}; frame arrived before the POST response for ${frameBeforeResponse}/${total} messages`);
  for (const ws of sockets) ws.close();
} finally {
  stop();
}

function histogramPercentiles(text: string, name: string): { p50: string; p99: string } {
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => [m[1]!, Number(m[2])] as const);
  const count = buckets.at(-1)?.[1] ?? 0;
  const at = (q: number) => {
    const b = buckets.find(([, c]) => c >= q * count);
    return b ? (b[0] === '+Inf' ? 'inf' : String(Number(b[0]) * 1000)) : 'n/a';
  };
  return { p50: at(0.5), p99: at(0.99) };
}
