// A gateway worker: one of the processes of a gateway instance (supervisor.ts forks it as
// `walcast worker`). It listens on the instance's port with SO_REUSEPORT and otherwise runs as a
// gateway process does (with `start`, as the api too). Its /metrics answers for the whole
// instance (asked of the supervisor); it stops gracefully on SIGTERM, and when its supervisor
// is gone.
import { RemoteBus } from '../bus/bridge.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { answer, asker, ipcEndpoint, tagged } from '../util/endpoint.js';
import { startNode, type Role } from './node.js';
import type { OpsState } from './ops-state.js';
import { untilSignal } from './serve.js';

export const WORKER_TAG = 'walcast:worker';

/** Supervisor → worker, once, right after the fork. */
export interface WorkerInit {
  tag: typeof WORKER_TAG;
  t: 'init';
  index: number;
  roles: Role[];
  host: string;
  port: number;
  databaseUrl: string;
  secret: string | null;
  adminToken: string | null;
  /** Reach the supervisor's in-process bus over IPC instead of connecting to Redis. */
  bridged: boolean;
  /** The demo page (the workers serve the public port). */
  pages: { demo: boolean; devTokens: boolean };
}

/** Worker → supervisor. */
export type WorkerReport = { tag: typeof WORKER_TAG; t: 'listening'; port: number };

/** Exit code when not started by a supervisor or refused by the configuration. */
export const WORKER_USAGE_EXIT = 2;

export async function runWorker(config: Config, baseLog: Logger): Promise<number> {
  if (!process.send || !process.connected) {
    process.stderr.write('walcast: `walcast worker` is started by a supervisor (WALCAST_GATEWAY_WORKERS > 1), not by hand\n');
    return WORKER_USAGE_EXIT;
  }
  const endpoint = ipcEndpoint(process);
  const init = await new Promise<WorkerInit>((resolve) => endpoint.onMessage((m) => tagged<WorkerInit>(m, WORKER_TAG) && m.t === 'init' && resolve(m)));
  const log = baseLog.child({ worker: init.index });
  const node = await startNode({
    // The supervisor owns the ops listener; the workers share the public port.
    config: { ...config, host: init.host, port: init.port, auth: { ...config.auth, opsPort: undefined } },
    databaseUrl: init.databaseUrl,
    secret: init.secret,
    adminToken: init.adminToken,
    roles: init.roles,
    log,
    pages: init.pages,
    sharePort: true,
    ...(init.bridged ? { bus: new RemoteBus(endpoint) } : {}),
  });
  const ask = asker(endpoint, WORKER_TAG);
  // Scraping or opening the ops page on the shared port reaches any one worker: it answers for the instance.
  node.metrics.render = () => ask<string>('metrics');
  // The supervisor waits for each worker at most 3 s, and for its readiness checks about as long.
  node.ops.state = () => ask<OpsState>('state', 10_000);
  answer(endpoint, WORKER_TAG, {
    'metrics-json': () => node.metrics.registry.getMetricsAsJSON(),
    'own-state': () => node.ownState(),
    ready: () => node.ready(),
  });
  endpoint.send({ tag: WORKER_TAG, t: 'listening', port: node.port } satisfies WorkerReport);
  log.info('gateway worker listening', { port: node.port, roles: init.roles });
  // The supervisor gone (killed): nobody would replace or stop this worker; stop now.
  await untilSignal(log, config, () => node.close(), (stop) => endpoint.onClose(() => stop('supervisor gone')));
  return 0;
}
