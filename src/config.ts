// Configuration, declared once: every setting's environment variable, type, default and meaning
// lives in CONFIG below. The Config type, the parser and the documentation tables
// (docs/configuration.md, the README, `walcast config --markdown`) are all derived from it.
// Nothing else in the codebase reads process.env.
import path from 'node:path';
import { z } from 'zod';

export type Group = 'essentials' | 'http' | 'websocket' | 'gateway' | 'relay' | 'api' | 'process';

export const GROUPS: Record<Group, string> = {
  essentials: 'Essentials',
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

export const CONFIG = {
  databaseUrl: setting('DATABASE_URL', 'essentials', z.string().url().optional(),
    'PostgreSQL 14+ with `wal_level=logical`; the relay\'s role needs REPLICATION. Unset: `start` runs an embedded PostgreSQL in the data dir.', '(embedded)'),
  redisUrl: setting('REDIS_URL', 'essentials', z.string().url().optional(),
    'Redis 7 for the bus between separate processes. Unset: the in-process bus (one process only).', '(in-process bus)'),
  redisClusterNodes: setting('REDIS_CLUSTER_NODES', 'essentials',
    z.string().regex(/^[^\s,:]+:\d{1,5}(,[^\s,:]+:\d{1,5})*$/, 'expected host:port,host:port,...').transform((s) => s.split(',')).optional(),
    'Seed nodes (`host:port,host:port,...`) of a Redis 7 Cluster for the bus instead of one Redis: each channel lives on the shard owning its hash slot (SPUBLISH/SSUBSCRIBE), and a gateway hears only the channels its clients hold. Exclusive with `REDIS_URL`. See docs/operations.md.', '(unset)'),
  host: setting('HOST', 'essentials', z.string().min(1).default('0.0.0.0'), 'Address the HTTP and WebSocket listener binds.'),
  port: setting('PORT', 'essentials', int(0, 65535).default(8080), 'Port of the HTTP and WebSocket listener (`start` serves everything on it).'),
  secret: setting('WALCAST_SECRET', 'essentials', z.string().min(16, 'WALCAST_SECRET must be at least 16 characters').optional(),
    'HS256 token signing key, 16+ characters, the same for every role.', '(generated into the data dir by `start`)'),
  dataDir: setting('WALCAST_DATA_DIR', 'essentials', z.string().default('./.walcast').transform((p) => path.resolve(p)),
    'Embedded PostgreSQL\'s data and the generated secret.', './.walcast'),
  source: setting('WALCAST_SOURCE', 'essentials',
    z.enum(['cdc'], { error: () => 'WALCAST_SOURCE: walcast runs `cdc`; the comparison sources (notify, direct, direct-in-tx) run only inside the benchmarks (bench/sources)' }).default('cdc'),
    'How stored rows become events: `cdc` (the WAL). The comparison sources `notify` and `direct` exist only in the benchmarks.'),
  logLevel: setting('WALCAST_LOG_LEVEL', 'essentials', z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
    '`debug`, `info`, `warn`, `error` or `silent`; JSON lines on stderr.'),
  slot: setting('WALCAST_SLOT', 'relay', z.string().regex(/^[a-z0-9_]{1,63}$/, 'lower-case letters, digits and _').default('walcast'),
    'Replication slot name (the publication is `walcast`).'),
  relay: {
    slotFailover: setting('WALCAST_SLOT_FAILOVER', 'relay', bool.default(false),
      'Create the slot as a PostgreSQL 17+ failover slot (synchronised to standbys).'),
    heartbeatMs: setting('WALCAST_HEARTBEAT_MS', 'relay', int(0, 3_600_000).default(5000),
      'Relay heartbeat (`pg_logical_emit_message`) keeping the slot moving while idle and measuring lag; 0 disables.'),
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
    ringSize: setting('WALCAST_RING_SIZE', 'gateway', int(0, 1_000_000).default(1024),
      'Recent frames kept per channel for catch-up without the database.'),
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
    fanoutQueueMax: setting('WALCAST_FANOUT_QUEUE_MAX', 'gateway', int(1, 10_000_000).default(10_000),
      'Live events queued per channel; beyond it the gateway re-reads that channel from the database (latency, never loss).'),
  },
  write: {
    concurrency: setting('WALCAST_WRITE_CONCURRENCY', 'api', int(1, 256).default(4),
      'Group commit: transactions storing posts in flight at once per API process (each holds a database connection while it runs).'),
    batchMax: setting('WALCAST_WRITE_BATCH_MAX', 'api', int(1, 10_000).default(500),
      'Group commit: posts stored in one transaction at most. Posts that arrive while transactions are committing wait and go together in the next; a lone post goes at once.'),
  },
  postLimits: {
    userRate: setting('WALCAST_POST_RATE_USER', 'api', rate().default(200),
      '`chat.postMessage` per user per second, per API process (0: off); over it 429 `rate_limited` with a retry hint.'),
    userBurst: setting('WALCAST_POST_BURST_USER', 'api', int(1, 10_000_000).default(400), 'Per-user bucket size.'),
    channelRate: setting('WALCAST_POST_RATE_CHANNEL', 'api', rate().default(2000),
      '`chat.postMessage` per channel per second, per API process (0: off).'),
    channelBurst: setting('WALCAST_POST_BURST_CHANNEL', 'api', int(1, 10_000_000).default(4000), 'Per-channel bucket size.'),
  },
  pgPoolMax: setting('WALCAST_PG_POOL_MAX', 'process', int(0, 1000).default(0),
    'Database connections per process; 0: sized for the roles it runs (the write lanes plus 8 for the API, the gateway\'s read concurrency plus 2, 2 for the relay).'),
  tokenTtlS: setting('WALCAST_TOKEN_TTL_S', 'process', int(0, 10 * 365 * 86400).default(86400),
    'Lifetime of tokens from `walcast token` and the demo token.'),
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
