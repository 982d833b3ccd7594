// A reconnect storm (harness/load/storm.ts): SDK clients on gateway A, A killed with SIGKILL
// while messages flow, every client back on gateway B at once. test/storm.test.ts runs it small.
import { formatStorm, runStorm, type StormResult } from '../../harness/load/storm.js';
import { machine } from '../../harness/load/format.js';
import { scenario } from '../lib/scenario.js';

export const storm = scenario({
  name: 'storm',
  summary: 'reconnect storm: a gateway killed under many SDK clients; time to resume, queries, memory, loss',
  suite: false,
  options: {
    clients: { type: 'number', default: 20000, quick: 300, description: 'SDK clients' },
    channels: { type: 'number', default: 10, quick: 3, description: 'channels the clients are spread over' },
    workers: { type: 'number', default: 4, quick: 1, description: 'client processes, each on its own loopback address' },
    postsPerS: { type: 'number', default: 50, quick: 20, description: 'posts per second, round robin over the channels, throughout' },
  },
  run: (o, ctx): Promise<StormResult> => runStorm({ ...o, log: (l) => ctx.log(l) }),
  print: (r) => machine() + '\n\n' + formatStorm(r),
  ok: (r) => r.ok,
});
