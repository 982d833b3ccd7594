// Builds a walcast process from its roles (api, relay, gateway: all three for `walcast start`)
// and closes it gracefully: stop accepting, close sockets, finish and acknowledge the
// transaction in hand, close the bus and the database.
import { Tokens } from '../auth/tokens.js';
import { Revocations, RevocationStore } from '../auth/revocations.js';
import { createBus, type Bus } from '../bus/index.js';
import { Changes } from '../chat/changes.js';
import { Channels } from '../chat/channels.js';
import { Users } from '../chat/users.js';
import { Messages, type WriteHooks } from '../chat/messages.js';
import { ConfigError, type Config } from '../config.js';
import { createPool, type Pool } from '../db/pool.js';
import { Relay, type RelayHandle } from '../cdc/relay.js';
import { RelayThread } from '../cdc/relay-thread.js';
import { publisherView } from '../bus/bridge.js';
import { Gateway } from '../gateway/gateway.js';
import { mountApi } from '../api/server.js';
import { busPresence } from '../api/presence.js';
import { loadUws, type TemplatedApp, type us_listen_socket } from '../http/uws.js';
import { createEdge } from '../http/edge.js';
import { framingProblem, refuseFraming } from '../http/framing.js';
import { sendError, track } from '../http/respond.js';
import { WalcastError } from '../errors.js';
import type { Logger } from '../log.js';
import { createMetrics, type Metrics } from '../metrics.js';
import { mountOps, type ReadinessCheck, type RevokeResult } from './ops.js';
import { mountStatic } from './static.js';
import { mountPages } from './pages.js';
import { opsState, type OpsState } from './ops-state.js';
import { RecentProblems } from './recent-log.js';

/** How often every process re-reads the revocations table (a bus event may have been lost). */
const REVOCATION_POLL_MS = 5000;

export type Role = 'api' | 'relay' | 'gateway';

/** How long a presence lookup waits for the other gateways' answers over Redis. */
const PRESENCE_WAIT_MS = 300;

export interface NodeOptions {
  config: Config;
  databaseUrl: string;
  /** WALCAST_SECRET (HS256); null when only identity-provider tokens (WALCAST_JWKS_URL) are accepted. */
  secret: string | null;
  /** The admin token (WALCAST_ADMIN_TOKEN, or the one `start` generated); none: operator endpoints answer 401 on the public port. */
  adminToken?: string | null;
  /** Where to listen when HOST is unset (`start`: 127.0.0.1; the roles: 0.0.0.0). */
  defaultHost?: string;
  /**
   * Listen with SO_REUSEPORT, sharing the port with other processes on purpose (gateway
   * workers). Otherwise the listen is exclusive: a port already in use is an error, never a
   * silent split of the traffic.
   */
  sharePort?: boolean;
  roles: readonly Role[];
  log: Logger;
  /** The relay thread's log level (default WALCAST_LOG_LEVEL): a Logger cannot cross threads. */
  logLevel?: Config['logLevel'];
  /** A bus made elsewhere (a gateway worker's bridge to its supervisor); default: the one the config names. */
  bus?: Bus;
  /** false: no listener on PORT (a supervisor, whose workers hold it); the ops listener still runs. */
  publicListener?: boolean;
  /** More readiness checks (a supervisor's workers) and facts for the detailed /readyz. */
  checks?: Record<string, ReadinessCheck>;
  info?: Record<string, unknown>;
  /** The write path's extension point (chat/messages.ts); only the benchmarks set it. */
  writeHooks?: WriteHooks;
  /** The demo page at / (api and gateway roles only) and dev tokens (`start` on the embedded database only); default: neither. */
  pages?: { demo: boolean; devTokens: boolean };
}

export interface WalcastNode {
  /** The address and port actually bound (port 0 without a public listener). */
  host: string;
  port: number;
  /** The ops listener's port (WALCAST_OPS_PORT), if any. */
  opsPort: number | null;
  tokens: Tokens;
  /** Revokes every token of a user issued so far, on every process (POST /admin/revoke). */
  revoke(user: string): Promise<RevokeResult>;
  pool: Pool;
  bus: Bus;
  /** The relay, on this thread or in its own (WALCAST_RELAY_THREAD). */
  relay: RelayHandle | null;
  gateway: Gateway | null;
  metrics: Metrics;
  /** This process's ops snapshot. */
  ownState(): Promise<OpsState>;
  /** What /ops/state.json answers: `ownState` unless replaced (a gateway worker answers for its instance). */
  ops: { state: () => Promise<OpsState> };
  /** Every readiness check passes (what /readyz answers). */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

export async function startNode(o: NodeOptions): Promise<WalcastNode> {
  const { config } = o;
  // Warnings and errors are also kept for the ops page (/ops/state.json).
  const problems = new RecentProblems();
  const log = problems.wrap(o.log);
  const roles = new Set(o.roles);
  const metrics = createMetrics();
  const pool = createPool(o.databaseUrl, poolSize(config, roles), `walcast-${[...roles].join('+')}`);
  const bus = o.bus ?? (await createBus(config, log, metrics));
  const channels = new Channels(pool, { inviteUnknownUsers: config.inviteUnknownUsers });
  const changes = new Changes(pool);
  const users = new Users(pool);
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
      unnamedStatements: (code) =>
        log.warn('the database lost a prepared statement between transactions (a pooler in transaction mode?); the write path now sends its statement unnamed, parsed on every call', { code }),
    },
  });
  const revocations = new Revocations();
  const revocationStore = new RevocationStore(pool);
  const tokens = new Tokens(o.secret, {
    jwksUrl: config.auth.jwksUrl,
    jwksCooldownS: config.auth.jwksCooldownS,
    issuer: config.auth.jwtIssuer,
    audience: config.auth.jwtAudience,
    maxLifetimeS: config.auth.maxLifetimeS,
    revocations,
  });
  const edge = createEdge(config, log.child({ mod: 'edge' }));
  const uws = loadUws(config.allowUwsFallback);
  const app = uws.App();

  // Revocations: loaded now, then polled; the bus brings them at once (gateway.ts, below).
  const pollRevocations = async () => {
    for (const [user, notBefore] of await revocationStore.changes()) revocations.apply(user, notBefore);
  };
  const verifies = roles.has('api') || roles.has('gateway');
  if (verifies) {
    await pollRevocations().catch((e: unknown) =>
      log.error('cannot load token revocations; retrying in the background', { err: e as Error }),
    );
  }
  const revocationTimer = verifies
    ? setInterval(() => void pollRevocations().catch((e: unknown) => log.debug('revocation poll failed', { err: e as Error })), REVOCATION_POLL_MS)
    : null;
  revocationTimer?.unref();
  bus.onEvent((e) => {
    if (e.kind === 'revoke') revocations.apply(e.user, e.notBefore);
  });
  const revoke = async (user: string): Promise<RevokeResult> => {
    const notBefore = await revocationStore.revoke(user);
    revocations.apply(user, notBefore);
    const published = await bus.publish([{ kind: 'revoke', user, notBefore }]).then(
      () => true,
      (e: unknown) => {
        log.warn('revocation stored but not published on the bus; other processes pick it up from the table', { err: e as Error });
        return false;
      },
    );
    return { user, not_before: notBefore, published };
  };

  const checks: Record<string, ReadinessCheck> = {
    database: async () => (await pool.query('SELECT 1')).rowCount === 1,
    ...o.checks,
  };
  const info = { bus: bus.kind, ...o.info };

  let relay: RelayHandle | null = null;
  if (roles.has('relay')) {
    const options = { databaseUrl: o.databaseUrl, slot: config.slot, heartbeatMs: config.relay.heartbeatMs, slotFailover: config.relay.slotFailover };
    const serving = roles.has('api') || roles.has('gateway');
    relay = config.relay.thread && serving
      ? new RelayThread(
          { databaseUrl: o.databaseUrl, options, logLevel: o.logLevel ?? config.logLevel, bindings: { pid: process.pid, role: 'relay', thread: 'relay' } },
          () => publisherView(bus),
          metrics,
          log.child({ role: 'relay' }),
        )
      : new Relay(options, pool, bus, log.child({ role: 'relay' }), metrics);
    checks.relay = () => relay!.isStreaming();
  }
  if (roles.has('relay') || roles.has('gateway')) checks.bus = () => bus.isUp();

  let gateway: Gateway | null = null;
  if (roles.has('gateway')) {
    gateway = new Gateway({ config, bus, tokens, channels, messages, pool, log: log.child({ role: 'gateway' }), metrics, edge, onAuthenticated: (user) => users.seen(user) });
  }
  if (roles.has('api')) {
    // Presence answers come from the gateways; from this process's own when it runs one.
    const presenceWaitMs = bus.kind === 'memory' ? 0 : PRESENCE_WAIT_MS;
    const presence = gateway ? (channel: string) => gateway!.presenceOf(channel, presenceWaitMs) : busPresence(bus, presenceWaitMs);
    mountApi(app, {
      tokens,
      deps: { channels, messages, changes, presence, maxTextChars: config.limits.maxTextChars, onStored: () => metrics.messagesStored.inc() },
      onAuthenticated: (user) => users.seen(user),
      maxBodyBytes: config.limits.maxBodyBytes,
      postLimits: config.postLimits,
      log: log.child({ role: 'api' }),
      metrics,
      edge,
    });
  }
  gateway?.mount(app);
  const role = [...roles].join('+');
  const adminToken = o.adminToken !== undefined ? o.adminToken : (config.auth.adminToken ?? null);
  const opsLog = log.child({ mod: 'ops' });
  const ownState = opsState({ role, bus, pool, slot: config.slot, checks, relay, gateway, metrics, problems });
  const ops = { state: ownState };
  const state = () => ops.state();
  mountOps(app, { metrics, checks, role, access: { adminToken }, revoke, edge, info, state, log: opsLog });
  mountStatic(app, log);
  const demo = !!o.pages?.demo && (roles.has('api') || roles.has('gateway'));
  mountPages(app, { demo, devTokens: demo && !!o.pages?.devTokens, tokens, maxLifetimeS: config.auth.maxLifetimeS, log });
  mountNotFound(app, log);

  const host = config.host ?? o.defaultHost ?? '0.0.0.0';
  const listenSocket = o.publicListener === false ? null : await listen(uws, app, host, config.port, !o.sharePort);
  const port = listenSocket ? uws.us_socket_local_port(listenSocket) : 0;
  let opsSocket: us_listen_socket | null = null;
  let opsPort: number | null = null;
  if (config.auth.opsPort !== undefined) {
    const ops = uws.App();
    mountOps(ops, { metrics, checks, role, access: 'open', revoke, info, state, log: opsLog });
    mountPages(ops, { demo: false, devTokens: false, log });
    mountNotFound(ops, log);
    try {
      opsSocket = await listen(uws, ops, config.auth.opsHost, config.auth.opsPort, true);
    } catch (e) {
      if (listenSocket) uws.us_listen_socket_close(listenSocket);
      throw e;
    }
    opsPort = uws.us_socket_local_port(opsSocket);
  }
  relay?.start();

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      if (listenSocket) uws.us_listen_socket_close(listenSocket);
      if (opsSocket) uws.us_listen_socket_close(opsSocket);
      if (revocationTimer) clearInterval(revocationTimer);
      await gateway?.close();
      await messages.close();
      await relay?.stop();
      await bus.close().catch(() => {});
      await pool.end().catch(() => {});
    })());

  const ready = async () =>
    (await Promise.all(Object.values(checks).map((c) => Promise.resolve(c()).catch(() => false)))).every(Boolean);
  return { host, port, opsPort, tokens, revoke, pool, bus, relay, gateway, metrics, ownState, ops, ready, close };
}

/** Everything else: 404 unknown_method (and ambiguous framing closed, as on the API). */
function mountNotFound(app: TemplatedApp, log: Logger): void {
  app.any('/*', (res, req) => {
    if (framingProblem(req)) return refuseFraming(res);
    const post = req.getCaseSensitiveMethod().toUpperCase() === 'POST';
    sendError(res, track(res), new WalcastError('unknown_method', 'no such path'), log, post);
  });
}

/**
 * Listens on host:port. Exclusive unless `exclusive` is false: uSockets otherwise sets
 * SO_REUSEPORT, and a second walcast on the same port would start silently and take half of
 * the new connections.
 */
function listen(uws: ReturnType<typeof loadUws>, app: TemplatedApp, host: string, port: number, exclusive: boolean): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    const done = (s: us_listen_socket | false) => (s ? resolve(s) : reject(new ConfigError(`cannot listen on ${host}:${port}: the address is in use (another walcast?) or not available; set PORT or HOST`)));
    // uWS.js takes (host, port, options, callback); its typings only list (port, options, callback).
    const listenWithOptions = app.listen as unknown as (h: string, p: number, opts: number, cb: (s: us_listen_socket | false) => void) => void;
    if (exclusive) listenWithOptions.call(app, host, port, (uws as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT?: number }).LIBUS_LISTEN_EXCLUSIVE_PORT ?? 1, done);
    else app.listen(host, port, done);
  });
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
