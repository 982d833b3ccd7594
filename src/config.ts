// Configuration, declared once: every setting's environment variable, type, default and meaning
// lives in CONFIG below. The Config type, the parser and the documentation tables
// (docs/configuration.md, the README, `walcast config --markdown`) are all derived from it.
// Nothing else in the codebase reads process.env.
import path from 'node:path';
import { z } from 'zod';

export type Group = 'essentials' | 'security' | 'http' | 'websocket' | 'gateway' | 'relay' | 'api' | 'process';

export const GROUPS: Record<Group, string> = {
  essentials: 'Essentials',
  security: 'Tokens, origins, admin access and abuse limits (see docs/security.md)',
  http: 'HTTP API limits',
  websocket: 'WebSocket limits',
  gateway: 'Gateway: catch-up, storms and fair fan-out',
  relay: 'CDC relay and replication slot',
  api: 'Write path',
  process: 'Process',
};

export interface Setting<S extends z.ZodType = z.ZodType> {
  readonly env: string;
  readonly schema: S;
  readonly doc: string;
  readonly group: Group;
  /** How the default reads in the docs when it is not a plain value (e.g. "generated"). */
  readonly shownDefault?: string;
}

const setting = <S extends z.ZodType>(env: string, group: Group, schema: S, doc: string, shownDefault?: string): Setting<S> => ({
  env,
  group,
  schema,
  doc,
  ...(shownDefault !== undefined ? { shownDefault } : {}),
});

const bool = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off'])
  .transform((v) => ['1', 'true', 'yes', 'on'].includes(v));
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const rate = () => z.coerce.number().min(0).max(1_000_000);
const isLoopbackHost = (h: string) => h === 'localhost' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);
/** A comma-separated list, trimmed, empty items dropped. */
const list = z.string().transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x.length > 0));

export const CONFIG = {
  databaseUrl: setting('DATABASE_URL', 'essentials', z.string().url().optional(),
    'PostgreSQL 14+ with `wal_level=logical`; the relay\'s role needs REPLICATION. Unset: `start` runs an embedded PostgreSQL in the data dir.', '(embedded)'),
  redisUrl: setting('REDIS_URL', 'essentials', z.string().url().optional(),
    'Redis 7 for the bus between separate processes. Unset: the in-process bus (one process only).', '(in-process bus)'),
  redisClusterNodes: setting('REDIS_CLUSTER_NODES', 'essentials',
    z.string().regex(/^[^\s,:]+:\d{1,5}(,[^\s,:]+:\d{1,5})*$/, 'expected host:port,host:port,...').transform((s) => s.split(',')).optional(),
    'Seed nodes (`host:port,host:port,...`) of a Redis 7 Cluster for the bus instead of one Redis: each channel lives on the shard owning its hash slot (SPUBLISH/SSUBSCRIBE), and a gateway hears only the channels its clients hold. Exclusive with `REDIS_URL`. See docs/operations.md.', '(unset)'),
  host: setting('HOST', 'essentials', z.string().min(1).optional(),
    'Address the HTTP and WebSocket listener binds. Unset: `start` binds 127.0.0.1 (this machine only), the roles (`api`, `relay`, `gateway`, for containers) 0.0.0.0.',
    '127.0.0.1 (`start`), 0.0.0.0 (roles)'),
  port: setting('PORT', 'essentials', int(0, 65535).default(8080), 'Port of the HTTP and WebSocket listener (`start` serves everything on it).'),
  secret: setting('WALCAST_SECRET', 'essentials', z.string().min(16, 'WALCAST_SECRET must be at least 16 characters').optional(),
    'HS256 token signing key, 16+ characters, the same for every role.', '(generated into the data dir by `start`)'),
  dataDir: setting('WALCAST_DATA_DIR', 'essentials', z.string().default('./.walcast').transform((p) => path.resolve(p)),
    'Embedded PostgreSQL\'s data and the generated secret and admin token.', './.walcast'),
  source: setting('WALCAST_SOURCE', 'essentials',
    z.enum(['cdc'], { error: () => 'WALCAST_SOURCE: walcast runs `cdc`; the comparison sources (notify, direct, direct-in-tx) run only inside the benchmarks (bench/sources)' }).default('cdc'),
    'How stored rows become events: `cdc` (the WAL). The comparison sources `notify` and `direct` exist only in the benchmarks.'),
  logLevel: setting('WALCAST_LOG_LEVEL', 'essentials', z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
    '`debug`, `info`, `warn`, `error` or `silent`; JSON lines on stderr.'),
  auth: {
    jwksUrl: setting('WALCAST_JWKS_URL', 'security',
      z.string().url().refine((u) => { const x = new URL(u); return x.protocol === 'https:' || (x.protocol === 'http:' && isLoopbackHost(x.hostname)); },
        'WALCAST_JWKS_URL must be https (http only on a loopback address)').optional(),
      'An identity provider\'s JSON Web Key Set: tokens signed with RS256, ES256 or EdDSA are verified with its keys (by `kid`, cached, fetched again for an unknown `kid`). Beside HS256 tokens signed with `WALCAST_SECRET`.', '(none)'),
    jwtIssuer: setting('WALCAST_JWT_ISSUER', 'security', z.string().min(1).optional(),
      'When set, every token must carry this `iss` (`walcast token` stamps it).', '(not checked)'),
    jwtAudience: setting('WALCAST_JWT_AUDIENCE', 'security', z.string().min(1).optional(),
      'When set, every token\'s `aud` must contain this (`walcast token` stamps it).', '(not checked)'),
    maxLifetimeS: setting('WALCAST_TOKEN_MAX_LIFETIME_S', 'security', int(60, 366 * 86400).default(86400),
      'Tokens living longer (`exp` − `iat`, or `exp` − now) are refused; every token must carry `exp`.'),
    jwksCooldownS: setting('WALCAST_JWKS_COOLDOWN_S', 'security', int(0, 3600).default(30),
      'An unknown `kid` fetches the key set again at most once per this many seconds (key rotation is seen within it).'),
    adminToken: setting('WALCAST_ADMIN_TOKEN', 'security', z.string().min(16, 'WALCAST_ADMIN_TOKEN must be at least 16 characters').optional(),
      'Bearer token for `/metrics`, `/readyz` details and `/admin/*` on the public port (16+ characters). `start` generates one into the data dir. Unset on a role: those answer 401.',
      '(generated into the data dir by `start`)'),
    opsPort: setting('WALCAST_OPS_PORT', 'security', int(0, 65535).optional(),
      'A second listener for operators: `/healthz`, `/readyz` with details, `/metrics` and `/admin/*` without a token. Keep it on an internal network.', '(none)'),
    opsHost: setting('WALCAST_OPS_HOST', 'security', z.string().min(1).default('127.0.0.1'), 'Address the ops listener binds.'),
  },
  abuse: {
    allowedOrigins: setting('WALCAST_ALLOWED_ORIGINS', 'security', list.optional(),
      'Comma-separated origins (`https://app.example`) allowed to open WebSockets and call the API from a browser; `*` allows any. Unset: only the server\'s own origin. Requests without `Origin` (not from a browser) are always allowed.',
      '(same origin only)'),
    maxConnectionsPerUser: setting('WALCAST_MAX_CONNECTIONS_PER_USER', 'security', int(0, 10_000_000).default(32),
      'Open sockets per user per gateway process (0: no limit); over it 429 `too_many_connections`.'),
    commandRate: setting('WALCAST_WS_COMMAND_RATE', 'security', rate().default(50),
      'Frames per second per socket (token bucket; 0: no limit); over it `rate_limited` error frames, and a socket that keeps on is closed with 1008.'),
    commandBurst: setting('WALCAST_WS_COMMAND_BURST', 'security', int(1, 1_000_000).default(200),
      'Frames a socket may send at once before the rate applies (a reconnect resubscribes every channel at once: keep it above `WALCAST_MAX_SUBSCRIPTIONS`).'),
    authFailRate: setting('WALCAST_AUTH_FAIL_RATE_IP', 'security', rate().default(1),
      'Failed authentications (bad tokens at the upgrade, in `auth` frames or on the API) per second per client address (0: no limit); beyond the burst the address gets 429 `rate_limited` before its token is even checked.'),
    authFailBurst: setting('WALCAST_AUTH_FAIL_BURST_IP', 'security', int(1, 1_000_000).default(20),
      'Failed authentications an address may have at once before the rate applies.'),
    trustedProxies: setting('WALCAST_TRUSTED_PROXIES', 'security', list.optional(),
      'Comma-separated addresses or IPv4 CIDRs of proxies whose `X-Forwarded-For` is believed (the client address for per-address limits). Unset: the peer address.',
      '(none)'),
  },
  demoPage: setting('WALCAST_DEMO_PAGE', 'security', bool.optional(),
    'The demo chat page at `/` (served by `start`, `api` and `gateway`). Unset: on only for `walcast start` with the embedded database; `1` turns it on elsewhere too, `0` off. Signing in without a token (dev tokens) works only on `walcast start` with the embedded database and from loopback (docs/security.md); elsewhere visitors paste a token.',
    'on for `start` on the embedded database, else off'),
  slot: setting('WALCAST_SLOT', 'relay', z.string().regex(/^[a-z0-9_]{1,63}$/, 'lower-case letters, digits and _').default('walcast'),
    'Replication slot name (the publication is `walcast`).'),
  relay: {
    slotFailover: setting('WALCAST_SLOT_FAILOVER', 'relay', bool.default(false),
      'Create the slot as a PostgreSQL 17+ failover slot (synchronised to standbys).'),
    heartbeatMs: setting('WALCAST_HEARTBEAT_MS', 'relay', int(0, 3_600_000).default(5000),
      'Relay heartbeat (`pg_logical_emit_message`) keeping the slot moving while idle and measuring lag; 0 disables.'),
    thread: setting('WALCAST_RELAY_THREAD', 'relay', bool.default(true),
      'In a process that also runs the api or a gateway (`start`), run the relay in its own worker thread, so fan-out and HTTP load never delay reading the WAL. A process that runs only the relay keeps it on its main thread.'),
  },
  limits: {
    maxBodyBytes: setting('WALCAST_MAX_BODY_BYTES', 'http', int(256, 16 * 1024 * 1024).default(64 * 1024),
      'Larger request bodies are refused with 413 `payload_too_large`.'),
    maxTextChars: setting('WALCAST_MAX_TEXT_CHARS', 'http', int(1, 1_000_000).default(4000),
      'Longer `text` (in code points) is refused with `msg_too_long`.'),
    wsMaxPayload: setting('WALCAST_WS_MAX_PAYLOAD', 'websocket', int(256, 16 * 1024 * 1024).default(16 * 1024),
      'Largest client frame in bytes; a bigger one closes the socket (1009).'),
    wsMaxBackpressure: setting('WALCAST_WS_MAX_BACKPRESSURE', 'websocket', int(1024, 1024 * 1024 * 1024).default(1024 * 1024),
      'Bytes buffered per socket before it is closed as a slow consumer (1013); the client resumes with `since`.'),
    wsIdleTimeoutS: setting('WALCAST_WS_IDLE_TIMEOUT_S', 'websocket', int(0, 960).default(120),
      'Idle sockets are closed (the server pings automatically).'),
    maxSubscriptions: setting('WALCAST_MAX_SUBSCRIPTIONS', 'websocket', int(1, 100_000).default(100),
      'Subscriptions per connection; the one over answers `too_many_subscriptions`.'),
  },
  gateway: {
    workers: setting('WALCAST_GATEWAY_WORKERS', 'gateway', int(1, 256).default(1),
      'Processes serving one gateway instance\'s port (SO_REUSEPORT: the kernel spreads new connections over them), supervised: a dead one is replaced, SIGTERM drains them all. With `start` each worker also serves the API, and the supervising process keeps the relay and the in-process bus. Per-gateway limits (upgrade rate, connections per user) apply to each worker.'),
    ringSize: setting('WALCAST_RING_SIZE', 'gateway', int(0, 1_000_000).default(1024),
      'Recent frames kept per channel for catch-up without the database (at most; the ring grows as frames arrive).'),
    ringBytes: setting('WALCAST_RING_BYTES', 'gateway', int(0, 1024 * 1024 * 1024).default(256 * 1024),
      'Bytes of recent frames kept per channel at most (big messages fill it before WALCAST_RING_SIZE does).'),
    catchupPage: setting('WALCAST_CATCHUP_PAGE', 'gateway', int(1, 10_000).default(500),
      'Rows per database page during catch-up and gap fill.'),
    upgradeRate: setting('WALCAST_WS_UPGRADE_RATE', 'gateway', int(0, 1_000_000).default(2000),
      'New WebSocket upgrades per second per gateway (token bucket; 0: unlimited). Refusals are 503 with a spreading retry hint.'),
    upgradeBurst: setting('WALCAST_WS_UPGRADE_BURST', 'gateway', int(1, 1_000_000).default(1000),
      'Upgrades accepted at once before the rate applies.'),
    maxConnections: setting('WALCAST_WS_MAX_CONNECTIONS', 'gateway', int(0, 10_000_000).default(0),
      'Open sockets per gateway process beyond which upgrades get 503 `unavailable`; 0: the open-files limit minus 512.'),
    retryHintMaxMs: setting('WALCAST_RETRY_HINT_MAX_MS', 'gateway', int(100, 600_000).default(30_000),
      'Upper bound of any retry hint the gateway gives.'),
    dbConcurrency: setting('WALCAST_GATEWAY_DB_CONCURRENCY', 'gateway', int(1, 1000).default(4),
      'Database reads in flight per gateway (catch-up pages, gap fills, membership batches); keep it below `WALCAST_PG_POOL_MAX`.'),
    drainWindowMs: setting('WALCAST_DRAIN_WINDOW_MS', 'gateway', int(0, 600_000).default(5000),
      'On SIGTERM sockets are closed gradually over at most this long; must be below `WALCAST_SHUTDOWN_TIMEOUT_MS`.'),
    drainRate: setting('WALCAST_DRAIN_RATE', 'gateway', int(1, 1_000_000).default(2000),
      '... at this many closes per second.'),
    drainRetryMs: setting('WALCAST_DRAIN_RETRY_MS', 'gateway', int(0, 600_000).default(1000),
      'Each drained client is told to come back after a random delay below this.'),
    fanoutBudget: setting('WALCAST_FANOUT_BUDGET', 'gateway', int(0, 100_000_000).default(20_000),
      'Socket-frames one channel may fan out per event-loop turn before other channels get theirs; 0: no bound.'),
    presenceMaxUsers: setting('WALCAST_PRESENCE_MAX_USERS', 'gateway', int(0, 10_000_000).default(1000),
      'Above this many present users in a channel, presence frames become counts (presence_count) instead of one per user joining or leaving, until at most half as many are present.'),
    presenceHeartbeatMs: setting('WALCAST_PRESENCE_HEARTBEAT_MS', 'gateway', int(100, 600_000).default(5000),
      'How often a gateway sends its presence set per channel; a gateway silent for three of these is forgotten and its users leave.'),
    fanoutQueueMax: setting('WALCAST_FANOUT_QUEUE_MAX', 'gateway', int(1, 10_000_000).default(10_000),
      'Live events queued per channel; beyond it the gateway re-reads that channel from the database (latency, never loss).'),
    sseHeartbeatMs: setting('WALCAST_SSE_HEARTBEAT_MS', 'gateway', int(100, 600_000).default(15_000),
      'How often an SSE stream gets a comment line, so that proxies keep it open and dead clients are found. Keep it below half the SDK\'s `heartbeatMs` (25 s by default).'),
  },
  write: {
    concurrency: setting('WALCAST_WRITE_CONCURRENCY', 'api', int(1, 256).default(2),
      'Group commit: transactions storing posts in flight at once per API process (each lane keeps a database connection of its own). Fewer lanes make bigger batches, which cost PostgreSQL less per post; more help when WAL flushes are slow and posts are spread over many channels.'),
    batchMax: setting('WALCAST_WRITE_BATCH_MAX', 'api', int(1, 10_000).default(500),
      'Group commit: posts stored in one transaction at most. Posts that arrive while transactions are committing wait and go together in the next; a lone post goes at once.'),
  },
  inviteUnknownUsers: setting('WALCAST_INVITE_UNKNOWN_USERS', 'api', bool.default(false),
    'Invites may name users walcast has never seen (by default a user exists once they authenticated: an API call or a WebSocket).'),
  postLimits: {
    userRate: setting('WALCAST_POST_RATE_USER', 'api', rate().default(200),
      '`chat.postMessage` per user per second, per API process (0: off); over it 429 `rate_limited` with a retry hint.'),
    userBurst: setting('WALCAST_POST_BURST_USER', 'api', int(1, 10_000_000).default(400), 'Per-user bucket size.'),
    channelRate: setting('WALCAST_POST_RATE_CHANNEL', 'api', rate().default(2000),
      '`chat.postMessage` per channel per second, per API process (0: off).'),
    channelBurst: setting('WALCAST_POST_BURST_CHANNEL', 'api', int(1, 10_000_000).default(4000), 'Per-channel bucket size.'),
  },
  pgPoolMax: setting('WALCAST_PG_POOL_MAX', 'process', int(0, 1000).default(0),
    'Database connections per process; 0: sized for the roles it runs (the write lanes plus 8 for the API, the gateway\'s read concurrency plus 2, 2 for the relay). With the API role it must be larger than `WALCAST_WRITE_CONCURRENCY`: under load each write lane keeps a connection.'),
  tokenTtlS: setting('WALCAST_TOKEN_TTL_S', 'process', int(1, 366 * 86400).default(86400),
    'Lifetime of tokens from `walcast token` and the demo token (capped at `WALCAST_TOKEN_MAX_LIFETIME_S`).'),
  shutdownTimeoutMs: setting('WALCAST_SHUTDOWN_TIMEOUT_MS', 'process', int(0, 600_000).default(10_000),
    'Graceful stop deadline; past it the process exits 1.'),
  allowUwsFallback: setting('WALCAST_ALLOW_UWS_FALLBACK', 'process', bool.default(false),
    'Start even if uWebSockets.js fell back to its slow pure-JS build.'),
} as const;

type Resolve<T> = T extends Setting<infer S> ? z.output<S> : { readonly [K in keyof T]: Resolve<T[K]> };
export type Config = Resolve<typeof CONFIG>;

export class ConfigError extends Error {
  readonly code = 'invalid_config';
}

function isSetting(v: unknown): v is Setting {
  return typeof v === 'object' && v !== null && 'env' in v && 'schema' in v;
}

/** Every setting with its place in Config, in declaration order. */
export function settings(node: object = CONFIG, at: string[] = []): { path: string[]; setting: Setting }[] {
  return Object.entries(node).flatMap(([k, v]) => (isSetting(v) ? [{ path: [...at, k], setting: v }] : settings(v as object, [...at, k])));
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const build = (node: object): Record<string, unknown> =>
    Object.fromEntries(
      Object.entries(node).map(([k, v]) => {
        if (!isSetting(v)) return [k, build(v as object)];
        const raw = env[v.env];
        const parsed = v.schema.safeParse(raw === '' ? undefined : raw);
        if (!parsed.success) problems.push(...parsed.error.issues.map((i) => `  ${v.env}: ${i.message}`));
        return [k, parsed.data];
      }),
    );
  const config = build(CONFIG) as Config;
  if (config.redisUrl && config.redisClusterNodes) {
    problems.push('  REDIS_URL and REDIS_CLUSTER_NODES are exclusive: set REDIS_URL for one Redis, or REDIS_CLUSTER_NODES for a Redis Cluster');
  }
  if (!problems.length) {
    const g = config.gateway;
    if (g.drainWindowMs > 0 && config.shutdownTimeoutMs > 0 && g.drainWindowMs >= config.shutdownTimeoutMs) {
      problems.push(`  WALCAST_DRAIN_WINDOW_MS (${g.drainWindowMs}) must be shorter than WALCAST_SHUTDOWN_TIMEOUT_MS (${config.shutdownTimeoutMs})`);
    }
  }
  if (problems.length) throw new ConfigError(`invalid configuration:\n${problems.join('\n')}`);
  return config;
}

/** A setting's default as the docs show it. */
export function shownDefault(s: Setting): string {
  if (s.shownDefault !== undefined) return s.shownDefault;
  const d = s.schema.safeParse(undefined);
  return d.success && d.data !== undefined ? String(d.data) : '(unset)';
}

/** The documentation table of some groups (all by default), as markdown. */
export function configMarkdown(groups: readonly Group[] = Object.keys(GROUPS) as Group[]): string {
  const out: string[] = [];
  for (const g of groups) {
    const rows = settings().filter((x) => x.setting.group === g);
    if (!rows.length) continue;
    if (groups.length > 1) out.push(`### ${GROUPS[g]}`, '');
    out.push('| variable | default | meaning |', '| --- | --- | --- |');
    for (const { setting: s } of rows) {
      const d = s.shownDefault ?? `\`${shownDefault(s)}\``;
      out.push(`| \`${s.env}\` | ${d.replace(/\|/g, '\\|')} | ${s.doc.replace(/\|/g, '\\|')} |`);
    }
    out.push('');
  }
  return out.join('\n').trimEnd() + '\n';
}
