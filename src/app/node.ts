// Builds a walcast process from its roles (api, relay, gateway: all three for `walcast start`)
// and closes it gracefully: stop accepting, close sockets, finish and acknowledge the
// transaction in hand, close the bus and the database.
import { Tokens } from '../auth/tokens.js';
import { createBus, type Bus } from '../bus/index.js';
import { Channels } from '../chat/channels.js';
import { Messages, type WriteHooks } from '../chat/messages.js';
import type { Config } from '../config.js';
import { createPool, type Pool } from '../db/pool.js';
import { Relay } from '../cdc/relay.js';
import { Gateway } from '../gateway/gateway.js';
import { mountApi } from '../api/server.js';
import { loadUws, type us_listen_socket } from '../http/uws.js';
import { sendError, track } from '../http/respond.js';
import { WalcastError } from '../errors.js';
import type { Logger } from '../log.js';
import { createMetrics, type Metrics } from '../metrics.js';
import { mountOps, type ReadinessCheck } from './ops.js';

export type Role = 'api' | 'relay' | 'gateway';

export interface NodeOptions {
  config: Config;
  databaseUrl: string;
  secret: string;
  roles: readonly Role[];
  log: Logger;
  /** The write path's extension point (chat/messages.ts); only the benchmarks set it. */
  writeHooks?: WriteHooks;
}

export interface WalcastNode {
  port: number;
  pool: Pool;
  bus: Bus;
  relay: Relay | null;
  gateway: Gateway | null;
  metrics: Metrics;
  close(): Promise<void>;
}

export async function startNode(o: NodeOptions): Promise<WalcastNode> {
  const { config, log } = o;
  const roles = new Set(o.roles);
  const metrics = createMetrics();
  const pool = createPool(o.databaseUrl, poolSize(config, roles), `walcast-${[...roles].join('+')}`);
  const bus = await createBus(config, log, metrics);
  const channels = new Channels(pool);
  const messages = new Messages(pool, channels, {
    lanes: config.write.concurrency,
    batchMax: config.write.batchMax,
    hooks: o.writeHooks,
    observer: {
      batch: (size, seconds) => {
        metrics.writeBatchSize.observe(size);
        metrics.writeBatchSeconds.observe(seconds);
      },
      queued: (depth) => metrics.writeQueueDepth.set(depth),
    },
  });
  const tokens = new Tokens(o.secret);
  const uws = loadUws(config.allowUwsFallback);
  const app = uws.App();

  const checks: Record<string, ReadinessCheck> = {
    database: async () => (await pool.query('SELECT 1')).rowCount === 1,
  };

  let relay: Relay | null = null;
  if (roles.has('relay')) {
    relay = new Relay(
      { databaseUrl: o.databaseUrl, slot: config.slot, heartbeatMs: config.relay.heartbeatMs, slotFailover: config.relay.slotFailover },
      pool,
      bus,
      log.child({ role: 'relay' }),
      metrics,
    );
    checks.relay = () => relay!.isStreaming();
  }
  if (roles.has('relay') || roles.has('gateway')) checks.bus = () => bus.isUp();

  if (roles.has('api')) {
    mountApi(app, {
      tokens,
      deps: { channels, messages, maxTextChars: config.limits.maxTextChars, onStored: () => metrics.messagesStored.inc() },
      maxBodyBytes: config.limits.maxBodyBytes,
      postLimits: config.postLimits,
      log: log.child({ role: 'api' }),
      metrics,
    });
  }
  let gateway: Gateway | null = null;
  if (roles.has('gateway')) {
    gateway = new Gateway({ config, bus, tokens, channels, messages, pool, log: log.child({ role: 'gateway' }), metrics });
    gateway.mount(app);
  }
  mountOps(app, metrics, checks, [...roles].join('+'), { bus: bus.kind });
  app.any('/*', (res) => void sendError(res, track(res), new WalcastError('unknown_method', 'no such path'), log));

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) =>
    app.listen(config.host, config.port, (s) => (s ? resolve(s) : reject(new Error(`cannot listen on ${config.host}:${config.port}`)))),
  );
  const port = uws.us_socket_local_port(listenSocket);
  relay?.start();

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      uws.us_listen_socket_close(listenSocket);
      await gateway?.close();
      await messages.close();
      await relay?.stop();
      await bus.close().catch(() => {});
      await pool.end().catch(() => {});
    })());

  return { port, pool, bus, relay, gateway, metrics, close };
}

/** WALCAST_PG_POOL_MAX, or (0) enough connections for the roles this process runs. */
function poolSize(config: Config, roles: ReadonlySet<Role>): number {
  if (config.pgPoolMax > 0) return config.pgPoolMax;
  let n = 0;
  if (roles.has('api')) n += config.write.concurrency + 8;
  if (roles.has('gateway')) n += config.gateway.dbConcurrency + 2;
  if (roles.has('relay')) n += 2;
  return Math.max(4, n);
}
