// Run as a child process by test/bus/cluster.test.ts: a ClusterBus on the given seeds prints `up`
// once it is, closes when a line arrives on stdin, then prints `closed`. The process must then
// exit on its own: nothing the bus made may keep it alive.
import { createInterface } from 'node:readline';
import { ClusterBus } from '../../src/bus/cluster.js';
import { createLogger } from '../../src/log.js';

const bus = new ClusterBus(process.argv[2]!.split(','), createLogger('silent'), { refreshMs: 200 });
const end = Date.now() + 30_000;
while (!bus.isUp()) {
  if (Date.now() > end) throw new Error('bus not up within 30 s');
  await new Promise((r) => setTimeout(r, 20));
}
console.log('up');
const lines = createInterface({ input: process.stdin });
lines.once('line', () => {
  lines.close();
  process.stdin.destroy(); // the pipe from the parent would keep this process alive
  void bus.close().then(() => console.log('closed'));
});
