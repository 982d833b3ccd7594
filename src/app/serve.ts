// Running walcast as a server: `walcast start` (every role, embedded PostgreSQL unless
// DATABASE_URL) or one role. Prepares the database and the secrets, starts the node (or a
// supervisor and its gateway workers: WALCAST_GATEWAY_WORKERS), and stops it gracefully on
// SIGTERM or SIGINT: stop accepting, drain, acknowledge, close.
import { resolveAdminToken, resolveSecret, Tokens, type TokenOptions } from '../auth/tokens.js';
import { ConfigError, type Config } from '../config.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../db/embedded.js';
import { migrate } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { checkReplicationPrerequisites } from '../db/prereqs.js';
import type { Logger } from '../log.js';
import { startNode, type Role } from './node.js';
import { superviseWorkers } from './supervisor.js';

/** What the server processes share once the database and the secrets are settled. */
export interface Prepared {
  config: Config;
  log: Logger;
  roles: Role[];
  standalone: boolean;
  databaseUrl: string;
  secret: string | null;
  adminToken: string | null;
  /** The demo page at / and its dev tokens (pages.ts). */
  pages: { demo: boolean; devTokens: boolean };
}

/** What signing needs to know of the configuration: the lifetime cap, and iss/aud to stamp. */
export function tokenOptions(config: Config): TokenOptions {
  return { maxLifetimeS: config.auth.maxLifetimeS, issuer: config.auth.jwtIssuer, audience: config.auth.jwtAudience };
}

export async function serve(config: Config, log: Logger, roles: Role[], standalone: boolean): Promise<number> {
  // Under load every write lane keeps a connection: the API's other queries need at least one more.
  if (roles.includes('api') && config.pgPoolMax > 0 && config.pgPoolMax <= config.write.concurrency) {
    throw new ConfigError(`WALCAST_PG_POOL_MAX (${config.pgPoolMax}) must be larger than WALCAST_WRITE_CONCURRENCY (${config.write.concurrency}): each write lane keeps a connection while posts are waiting`);
  }
  if (!standalone && !config.redisUrl && !config.redisClusterNodes && (roles.includes('relay') || roles.includes('gateway'))) {
    log.warn('neither REDIS_URL nor REDIS_CLUSTER_NODES is set: the in-process bus only connects roles inside this process, so this one will not reach the others');
  }
  let embedded: EmbeddedDatabase | null = null;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    if (!standalone) throw new ConfigError(`walcast ${roles.join(',')} needs DATABASE_URL`);
    embedded = await startEmbeddedPostgres(config.dataDir, log.child({ mod: 'postgres' }));
    databaseUrl = embedded.url;
    log.info('embedded PostgreSQL running', { port: embedded.port, dataDir: config.dataDir });
  }
  const stopEmbedded = async () => {
    await embedded?.stop().catch(() => {});
  };
  try {
    if (standalone || roles.includes('relay')) {
      const pool = createPool(databaseUrl, 1);
      try {
        await checkReplicationPrerequisites(pool);
      } finally {
        await pool.end();
      }
    }
    if (standalone) await migrate(databaseUrl);
    // Identity-provider tokens only (WALCAST_JWKS_URL without a secret): no HS256 at all.
    const secret = !config.secret && config.auth.jwksUrl && !standalone ? null : await resolveSecret(config.secret, config.dataDir, standalone);
    const adminToken = standalone ? await resolveAdminToken(config.auth.adminToken, config.dataDir, true) : (config.auth.adminToken ?? null);
    // The demo page: by default only on `start` with the embedded database, the one setup that
    // may also mint dev tokens (for a browser on this machine; docs/security.md).
    const embeddedDefaults = standalone && embedded !== null;
    const pages = { demo: config.demoPage ?? embeddedDefaults, devTokens: embeddedDefaults };
    const p: Prepared = { config, log, roles, standalone, databaseUrl, secret, adminToken, pages };
    return roles.includes('gateway') && config.gateway.workers > 1 ? await superviseWorkers(p) : await serveOne(p);
  } finally {
    await stopEmbedded();
  }
}

/** One process holds every role it was given. */
async function serveOne(p: Prepared): Promise<number> {
  const { config, log, standalone } = p;
  const node = await startNode({ ...p, defaultHost: standalone ? '127.0.0.1' : '0.0.0.0' });
  try {
    await announce(p, node.host, node.port, node.opsPort, node.bus.kind);
  } catch (e) {
    await node.close();
    throw e;
  }
  await untilSignal(log, config, () => node.close());
  return 0;
}

/** Logs where walcast listens; `start` also prints it with a demo token and the admin token. */
export async function announce(p: Prepared, host: string, port: number, opsPort: number | null, bus: string, extra: Record<string, unknown> = {}): Promise<void> {
  const { config, log, roles, standalone, secret, adminToken, pages } = p;
  // "All interfaces" is reachable on this machine at 127.0.0.1.
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const base = `http://${local}:${port}`;
  log.info('walcast running', { roles, listening: `${host}:${port}`, url: base, opsPort, source: config.source, bus, ...extra });
  if (!adminToken && !config.auth.opsPort) log.warn('neither WALCAST_ADMIN_TOKEN nor WALCAST_OPS_PORT is set: /metrics and /admin/* answer 401 here');
  if (!standalone) return;
  const demo = await new Tokens(secret, tokenOptions(config)).sign('demo', Math.min(config.tokenTtlS, config.auth.maxLifetimeS));
  const where = local === host ? '' : `  (listening on ${host}:${port}: every interface)`;
  process.stdout.write(`walcast is running at ${base}  (WebSocket: ${base.replace('http', 'ws')}/v1/ws)${where}\n`);
  if (pages.demo) process.stdout.write(`open ${base} in a browser: the demo chat${pages.devTokens ? ' (sign in as any user name)' : ' (sign in with a token)'}; the ops page is ${base}/ops\n`);
  process.stdout.write(`demo token (user "demo"): ${demo}\n`);
  process.stdout.write(`admin token (for /metrics, /readyz details, /admin/*; kept in ${config.dataDir}/admin-token): ${adminToken}\n`);
  if (opsPort !== null) process.stdout.write(`ops endpoints: http://${config.auth.opsHost}:${opsPort}\n`);
}

/**
 * Resolves once SIGTERM or SIGINT arrived and `close` finished; exits the process if it takes
 * longer than WALCAST_SHUTDOWN_TIMEOUT_MS.
 */
export function untilSignal(log: Logger, config: Config, close: () => Promise<void>, also?: (stop: (why: string) => void) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal: why });
      const force = setTimeout(() => {
        log.error('graceful stop timed out; exiting');
        process.exit(1);
      }, config.shutdownTimeoutMs);
      force.unref();
      void close()
        .catch((e: unknown) => log.error('error while stopping', { err: e as Error }))
        .then(() => {
          clearTimeout(force);
          log.info('stopped');
          resolve();
        });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    also?.(stop);
  });
}
