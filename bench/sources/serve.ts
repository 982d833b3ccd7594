// The comparison sources as processes, with the command line of a walcast role:
//
//   WALCAST_SOURCE=<cdc|notify|direct|direct-in-tx> [WALCAST_BENCH_COMMIT_DELAY_MS=n] \
//   [WALCAST_BENCH_PUBLISH_DELAY_MS=n] node --import=tsx bench/sources/serve.ts <api|relay>
//
// plus walcast's own environment (DATABASE_URL, REDIS_URL, WALCAST_SECRET, PORT, ...), which src's
// loadConfig reads once the bench's variables are taken out (it accepts only `cdc`).
//  - api: walcast's api role (startNode) with the source's write hooks (bench/sources/direct.ts):
//    direct publishes after COMMIT, direct-in-tx before it, and the commit delay slows any source.
//  - relay, notify: the LISTEN/NOTIFY listener (bench/sources/notify.ts; the bench installs the
//    trigger), publishing to the bus, with walcast's /healthz, /readyz (database, listener, bus)
//    and /metrics on PORT.
//  - relay, direct and direct-in-tx: nothing to relay (the api publishes); an idle process that
//    answers /healthz and /readyz, so every stack has the same shape.
//  - relay, cdc: not here; that is walcast itself (bin/walcast-dev.js relay).
// SIGTERM and SIGINT stop it gracefully (exit 0; 1 past WALCAST_SHUTDOWN_TIMEOUT_MS).
import { startNode } from '../../src/app/node.js';
import { mountOps, type ReadinessCheck } from '../../src/app/ops.js';
import { resolveSecret } from '../../src/auth/tokens.js';
import { createBus, type Bus } from '../../src/bus/index.js';
import { Channels } from '../../src/chat/channels.js';
import { Messages } from '../../src/chat/messages.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createPool } from '../../src/db/pool.js';
import { WalcastError } from '../../src/errors.js';
import { sendError, track } from '../../src/http/respond.js';
import { loadUws, type us_listen_socket } from '../../src/http/uws.js';
import { createLogger, type Logger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { writeHooks } from './direct.js';
import { ENV, isSource, SOURCES, type BenchDelays, type Source } from './index.js';
import { NotifyListener } from './notify.js';

const USAGE = `usage: ${ENV.source}=<${SOURCES.join('|')}> node --import=tsx bench/sources/serve.ts <api|relay>`;

function delay(env: NodeJS.ProcessEnv, name: string): number {
  const raw = env[name];
  const v = raw === undefined || raw === '' ? 0 : Number(raw);
  if (!Number.isInteger(v) || v < 0 || v > 60_000) throw new Error(`${name}: a whole number of ms from 0 to 60000, not ${raw}`);
  return v;
}

interface Running {
  close(): Promise<void>;
}

/** Runs one process; resolves with what stops it. */
async function start(role: string, source: Source, delays: BenchDelays, config: Config, log: Logger): Promise<Running> {
  if (!config.databaseUrl) throw new Error('DATABASE_URL is required');
  const databaseUrl = config.databaseUrl;
  if (role === 'api') {
    // The hooks publish on the node's own bus, which exists once startNode returns; nothing is
    // posted before (the harness waits for /readyz), but a hook would wait for it anyway.
    let setBus!: (b: Bus) => void;
    const bus = new Promise<Bus>((r) => (setBus = r));
    const secret = await resolveSecret(config.secret, config.dataDir, false);
    const node = await startNode({
      config,
      databaseUrl,
      secret,
      roles: ['api'],
      log,
      writeHooks: writeHooks(source, () => bus, log.child({ role: 'api' }), delays),
    });
    setBus(node.bus);
    log.info('bench api running', { port: node.port, source, ...delays });
    return node;
  }
  if (role !== 'relay') throw new Error(USAGE);
  if (source === 'cdc') throw new Error('the cdc relay is walcast itself: run `bin/walcast-dev.js relay`');

  // walcast's own /healthz, /readyz and /metrics (src/app/ops.ts), on uWS as in every role.
  const checks: Record<string, ReadinessCheck> = {};
  let stop = async () => {};
  if (source === 'notify') {
    const pool = createPool(databaseUrl, Math.min(config.pgPoolMax, 2), 'walcast-notify');
    const bus = await createBus(config, log);
    const listener = new NotifyListener(databaseUrl, new Messages(pool, new Channels(pool)), bus, log.child({ role: 'relay', source }));
    listener.start();
    checks.database = async () => (await pool.query('SELECT 1')).rowCount === 1;
    checks.relay = () => listener.isListening();
    checks.bus = () => bus.isUp();
    stop = async () => {
      await listener.stop();
      await bus.close().catch(() => {});
      await pool.end().catch(() => {});
    };
  }
  const uws = loadUws(config.allowUwsFallback);
  const app = uws.App();
  mountOps(app, { metrics: createMetrics(), checks, role: 'relay', access: 'open', log });
  app.any('/*', (res) => void sendError(res, track(res), new WalcastError('unknown_method', 'no such path'), log));
  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) =>
    app.listen(config.host ?? '0.0.0.0', config.port, (ls) => (ls ? resolve(ls) : reject(new Error(`cannot listen on ${config.host}:${config.port}`)))),
  );
  log.info('bench relay running', { port: uws.us_socket_local_port(listenSocket), source });
  return {
    close: async () => {
      uws.us_listen_socket_close(listenSocket);
      await stop();
    },
  };
}

async function main(): Promise<number> {
  const role = process.argv[2];
  if (!role || role === '--help' || role === '-h') {
    process.stdout.write(USAGE + '\n');
    return role ? 0 : 2;
  }
  const env = { ...process.env };
  const source = env[ENV.source] ?? 'cdc';
  if (!isSource(source)) throw new Error(`${ENV.source}: one of ${SOURCES.join(', ')}, not ${source}`);
  const delays: BenchDelays = { commitDelayMs: delay(env, ENV.commitDelayMs), publishDelayMs: delay(env, ENV.publishDelayMs) };
  for (const name of Object.values(ENV)) delete env[name];
  const config = loadConfig(env);
  const log = createLogger(config.logLevel, { pid: process.pid, source });
  const running = await start(role, source, delays, config, log);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('stopping', { signal });
      setTimeout(() => {
        log.error('graceful stop timed out; exiting');
        process.exit(1);
      }, config.shutdownTimeoutMs).unref();
      void running.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench/sources/serve.ts: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
