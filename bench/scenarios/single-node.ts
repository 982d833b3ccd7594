// Single-node latency: `walcast start` (embedded PostgreSQL, in-process bus) in its own process;
// this process posts at a fixed rate and holds WebSocket subscribers (or SSE streams:
// `--transport sse`). Per message: POST start → message frame at the client (end to end), and
// the server's own commit → socket write histogram (WAL commit timestamp to the live fan-out).
import WebSocket from 'ws';
import { apiCaller } from '../../harness/load/api.js';
import { machine, percentiles, table } from '../../harness/load/format.js';
import { clientFrame, PATHS, type ServerFrame } from '../../src/protocol.js';
import { SseParser } from '../../src/sdk/sse.js';
import { scenario } from '../lib/scenario.js';
import { startStandalone } from '../lib/standalone.js';

interface SingleNodeResult {
  e2e: number[];
  post2resp: number[];
  /** POSTs answered with an error (e.g. 429 past the default per-user rate). */
  postErrors: number;
  frames: number;
  expected: number;
  total: number;
  frameBeforeResponse: number;
  commitToSend: { p50: string; p99: string };
}

export const singleNode = scenario({
  name: 'single-node',
  summary: '`walcast start` in one process: POST → frame latency at a fixed rate, and the server-side commit → send histogram',
  suite: false,
  options: {
    rate: { type: 'number', default: 200, quick: 50, description: 'posts per second' },
    seconds: { type: 'number', default: 10, quick: 2, description: 'seconds of posting' },
    subscribers: { type: 'number', default: 4, quick: 2, description: 'subscribers of the one channel' },
    transport: { type: 'string', default: 'ws', description: 'how subscribers connect: ws (WebSocket) or sse (Server-Sent Events)' },
  },
  async run(o): Promise<SingleNodeResult> {
    const { base, token, adminToken, stop } = await startStandalone();
    const sockets: { close(): void }[] = [];
    if (o.transport !== 'ws' && o.transport !== 'sse') throw new Error('--transport is ws or sse');
    try {
      const call = apiCaller(base, token);
      const channel = (await call('conversations.create', { name: 'bench' })).channel.id as string;
      const total = Math.round(o.rate * o.seconds);
      const sentAt = new Float64Array(total + 1);
      const respAt = new Float64Array(total + 1);
      const firstFrameAt = new Float64Array(total + 1);
      let frames = 0;
      let postErrors = 0;
      const onFrame = (f: ServerFrame, now: number) => {
        if (f.type !== 'message') return;
        frames++;
        const i = Number(f.message.text);
        if (!firstFrameAt[i]) firstFrameAt[i] = now;
      };
      for (let k = 0; k < o.subscribers && o.transport === 'sse'; k++) {
        const ac = new AbortController();
        sockets.push({ close: () => ac.abort() });
        const res = await fetch(`${base}${PATHS.sse}?channel=${channel}`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        await new Promise<void>((resolve) => {
          const parser = new SseParser((m) => {
            const now = performance.now();
            const f = JSON.parse(m.data) as ServerFrame;
            if (f.type === 'subscribed') resolve();
            else onFrame(f, now);
          });
          void (async () => {
            for (;;) {
              const r = await reader.read().catch(() => ({ done: true as const, value: undefined }));
              if (r.done) return;
              parser.push(r.value);
            }
          })();
        });
      }
      for (let k = 0; k < o.subscribers && o.transport === 'ws'; k++) {
        const ws = new WebSocket(`${base.replace('http', 'ws')}${PATHS.ws}?token=${token}`);
        sockets.push(ws);
        await new Promise<void>((resolve, reject) => {
          ws.on('error', reject);
          ws.on('open', () => ws.send(clientFrame.subscribe(channel)));
          ws.on('message', (d) => {
            const now = performance.now();
            const f = JSON.parse(String(d)) as ServerFrame;
            if (f.type === 'subscribed') return resolve();
            onFrame(f, now);
          });
        });
      }
      const start = performance.now();
      const inflight: Promise<void>[] = [];
      for (let i = 1; i <= total; i++) {
        const due = start + ((i - 1) * 1000) / o.rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        sentAt[i] = performance.now();
        inflight.push(
          call('chat.postMessage', { channel, text: String(i) })
            .catch(() => void postErrors++)
            .then(() => void (respAt[i] = performance.now())),
        );
      }
      await Promise.all(inflight);
      const deadline = performance.now() + 10_000;
      while (frames < total * o.subscribers && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));

      const e2e: number[] = [];
      const post2resp: number[] = [];
      let frameBeforeResponse = 0;
      for (let i = 1; i <= total; i++) {
        if (firstFrameAt[i]) e2e.push(firstFrameAt[i]! - sentAt[i]!);
        post2resp.push(respAt[i]! - sentAt[i]!);
        if (firstFrameAt[i] && firstFrameAt[i]! <= respAt[i]!) frameBeforeResponse++;
      }
      const metrics = await fetch(base + PATHS.metrics, { headers: { authorization: `Bearer ${adminToken}` } }).then((r) => r.text());
      const commitToSend = histogramPercentiles(metrics, 'walcast_gateway_commit_to_send_seconds');
      return { e2e, post2resp, postErrors, frames, expected: total * o.subscribers, total, frameBeforeResponse, commitToSend };
    } finally {
      for (const ws of sockets) ws.close();
      await stop();
    }
  },
  print: (r, o) =>
    [
      `walcast single-node latency: ${o.rate} msg/s for ${o.seconds} s, ${o.subscribers} ${o.transport === 'sse' ? 'SSE' : 'WebSocket'} subscribers, one channel`,
      machine(),
      table(
        ['measure', 'n', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
        [
          ['POST start -> frame at client', r.e2e.length, ...percentiles(r.e2e)],
          ['POST start -> POST response', r.post2resp.length, ...percentiles(r.post2resp)],
        ],
      ),
      `server commit -> socket write (histogram buckets): p50 <= ${r.commitToSend.p50} ms, p99 <= ${r.commitToSend.p99} ms`,
      `frames delivered ${r.frames}/${r.expected}; frame arrived before the POST response for ${r.frameBeforeResponse}/${r.total} messages${r.postErrors ? `; ${r.postErrors} POSTs failed` : ''}`,
    ].join('\n'),
});

/** Upper bounds of the buckets holding p50 and p99 of a Prometheus histogram, in ms. */
function histogramPercentiles(text: string, name: string): { p50: string; p99: string } {
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => [m[1]!, Number(m[2])] as const);
  const count = buckets.at(-1)?.[1] ?? 0;
  const at = (q: number) => {
    const b = buckets.find(([, c]) => c >= q * count);
    return b ? (b[0] === '+Inf' ? 'inf' : String(Number(b[0]) * 1000)) : 'n/a';
  };
  return { p50: at(0.5), p99: at(0.99) };
}
