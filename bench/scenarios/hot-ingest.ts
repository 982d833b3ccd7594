// What seq assignment costs a single busy channel: chat.postMessage throughput with every request
// on one channel (writers queue on that channel's row lock for a commit each) versus spread over
// many channels, same concurrency, same `walcast start` process (embedded PostgreSQL).
import autocannon from 'autocannon';
import { apiCaller } from '../../harness/load/api.js';
import { machine, table } from '../../harness/load/format.js';
import { scenario } from '../lib/scenario.js';
import { methodUrl } from '../lib/stack.js';
import { startStandalone } from '../lib/standalone.js';

export const hotIngest = scenario({
  name: 'hot-ingest',
  summary: 'chat.postMessage throughput on one hot channel against many channels, on `walcast start`',
  suite: false,
  options: {
    seconds: { type: 'number', default: 10, quick: 2, description: 'seconds per workload' },
    connections: { type: 'number', default: 32, quick: 8, description: 'autocannon connections' },
    channels: { type: 'number', default: 16, quick: 4, description: 'channels of the spread workload' },
  },
  async run(o) {
    const { base, token, stop } = await startStandalone({ WALCAST_POST_RATE_USER: '0', WALCAST_POST_RATE_CHANNEL: '0' });
    try {
      const call = apiCaller(base, token);
      const create = async (name: string) => (await call('conversations.create', { name })).channel.id as string;
      const hot = await create('hot');
      const many = await Promise.all(Array.from({ length: o.channels }, (_, i) => create(`c${i}`)));
      const run = async (channels: string[]) => {
        let n = 0;
        const r = await autocannon({
          url: methodUrl(base, 'chat.postMessage'),
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          connections: o.connections,
          duration: o.seconds,
          requests: [{ setupRequest: (req: any) => ({ ...req, body: JSON.stringify({ channel: channels[n++ % channels.length], text: 'x'.repeat(100) }) }) }],
        });
        return [r.requests.average.toFixed(0), r.latency.p50, r.latency.p99, r.non2xx, r.errors];
      };
      return [
        ['1 channel (hot)', ...(await run([hot]))],
        [`${o.channels} channels`, ...(await run(many))],
      ];
    } finally {
      await stop();
    }
  },
  print: (rows, o) =>
    [
      `chat.postMessage ingest: ${o.connections} connections, ${o.seconds} s each, 100-byte text`,
      machine(),
      table(['workload', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'errors'], rows),
    ].join('\n'),
});
