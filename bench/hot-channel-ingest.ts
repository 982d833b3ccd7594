// What seq assignment costs a single busy channel: chat.postMessage throughput with every
// request on one channel (writers queue on that channel's row lock for a commit each) versus
// spread over many channels, same concurrency, same `walcast start` process.
//
//   node --import=tsx bench/hot-channel-ingest.ts [seconds=10] [connections=32] [channels=16]
import autocannon from 'autocannon';
import { startStandalone } from './lib/standalone.js';
import { machine, table } from './report.js';

const [seconds = 10, connections = 32, spread = 16] = process.argv.slice(2).map(Number);
const { base, token, stop } = await startStandalone({ WALCAST_POST_RATE_USER: '0', WALCAST_POST_RATE_CHANNEL: '0' });

try {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const create = async (name: string) =>
    ((await (await fetch(`${base}/v1/conversations.create`, { method: 'POST', headers, body: JSON.stringify({ name }) })).json()) as any).channel.id as string;
  const hot = await create('hot');
  const many = await Promise.all(Array.from({ length: spread }, (_, i) => create(`c${i}`)));

  const run = async (channels: string[]) => {
    let n = 0;
    const r = await autocannon({
      url: `${base}/v1/chat.postMessage`,
      method: 'POST',
      headers,
      connections,
      duration: seconds,
      requests: [{ setupRequest: (req: any) => ({ ...req, body: JSON.stringify({ channel: channels[n++ % channels.length], text: 'x'.repeat(100) }) }) }],
    });
    return [r.requests.average.toFixed(0), r.latency.p50, r.latency.p99, r.non2xx, r.errors];
  };
  const rows = [
    ['1 channel (hot)', ...(await run([hot]))],
    [`${spread} channels`, ...(await run(many))],
  ];
  console.log(`\nchat.postMessage ingest: ${connections} connections, ${seconds} s each, 100-byte text`);
  console.log(machine());
  console.log(table(['workload', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'], rows));
} finally {
  stop();
}
