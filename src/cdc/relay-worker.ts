// The relay's worker thread (relay-thread.ts starts it): its own event loop, database pool and
// metrics registry, and the bus of the process that started it, reached through the bridge.
// Everything else about the relay is the same Relay class a relay-only process runs.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { RemoteBus } from '../bus/bridge.js';
import { createPool } from '../db/pool.js';
import { createLogger, forwardingLogger } from '../log.js';
import { createMetrics } from '../metrics.js';
import { answer, portEndpoint } from '../util/endpoint.js';
import { Relay } from './relay.js';
import { RELAY_THREAD_TAG, type RelayThreadData } from './relay-thread.js';

// Imported on a main thread (a tool loading every module) it does nothing.
if (!isMainThread && parentPort) run();

function run(): void {
  const data = workerData as RelayThreadData;
  const endpoint = portEndpoint(parentPort!);
  const log = forwardingLogger(createLogger(data.logLevel, data.bindings), (level, msg, fields) =>
    endpoint.send({ tag: RELAY_THREAD_TAG, t: 'log', level, msg, fields }),
  );
  // Node's process metrics come from the main thread: this thread's registry has walcast's only.
  const metrics = createMetrics({ defaults: false });
  const pool = createPool(data.databaseUrl, 3, 'walcast-relay');
  const bus = new RemoteBus(endpoint);
  const relay = new Relay(data.options, pool, bus, log, metrics);

  relay.onStateChange((status) => endpoint.send({ tag: RELAY_THREAD_TAG, t: 'state', status }));
  answer(endpoint, RELAY_THREAD_TAG, {
    metrics: () => metrics.registry.getMetricsAsJSON(),
    stop: async () => {
      await relay.stop();
      await bus.close();
      await pool.end().catch(() => {});
      return relay.status;
    },
  });
  relay.start();
}
