// Configuration is read from the environment once, at start, validated, and passed down.
// Nothing else in the codebase reads process.env.
import path from 'node:path';
import { z } from 'zod';

const bool = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off', ''])
  .transform((v) => ['1', 'true', 'yes', 'on'].includes(v));
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const SOURCES = ['cdc', 'notify', 'direct', 'direct-in-tx'] as const;
export type Source = (typeof SOURCES)[number];

const schema = z.object({
  DATABASE_URL: z.string().url().optional(),
  REDIS_URL: z.string().url().optional(),
  HOST: z.string().default('0.0.0.0'),
  PORT: int(0, 65535).default(8080),
  WALCAST_SECRET: z.string().min(16, 'WALCAST_SECRET must be at least 16 characters').optional(),
  WALCAST_DATA_DIR: z.string().default('./.walcast'),
  WALCAST_SOURCE: z.enum(SOURCES).default('cdc'),
  WALCAST_SLOT: z.string().regex(/^[a-z0-9_]{1,63}$/, 'lower-case letters, digits and _').default('walcast'),
  WALCAST_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  WALCAST_MAX_BODY_BYTES: int(256, 16 * 1024 * 1024).default(64 * 1024),
  WALCAST_MAX_TEXT_CHARS: int(1, 1_000_000).default(4000),
  WALCAST_WS_MAX_PAYLOAD: int(256, 16 * 1024 * 1024).default(16 * 1024),
  WALCAST_WS_MAX_BACKPRESSURE: int(1024, 1024 * 1024 * 1024).default(1024 * 1024),
  WALCAST_WS_IDLE_TIMEOUT_S: int(0, 960).default(120),
  WALCAST_MAX_SUBSCRIPTIONS: int(1, 100_000).default(100),
  WALCAST_RING_SIZE: int(0, 1_000_000).default(1024),
  WALCAST_CATCHUP_PAGE: int(1, 10_000).default(500),
  WALCAST_SLOT_FAILOVER: bool.default(false),
  WALCAST_HEARTBEAT_MS: int(0, 3_600_000).default(5000),
  WALCAST_PG_POOL_MAX: int(1, 1000).default(10),
  WALCAST_SHUTDOWN_TIMEOUT_MS: int(0, 600_000).default(10_000),
  WALCAST_ALLOW_UWS_FALLBACK: bool.default(false),
  WALCAST_TOKEN_TTL_S: int(0, 10 * 365 * 86400).default(86400),
  // Benchmarks only (bench/run.ts), never in production: sleep between the INSERT and COMMIT of
  // chat.postMessage (forces an explicit transaction), and, for WALCAST_SOURCE=direct, between
  // the COMMIT and the publish. They widen the windows the race and fault scenarios probe.
  WALCAST_BENCH_COMMIT_DELAY_MS: int(0, 60_000).default(0),
  WALCAST_BENCH_PUBLISH_DELAY_MS: int(0, 60_000).default(0),
  // Storm protection and fair use (issue 6); 0 disables a rate.
  WALCAST_WS_UPGRADE_RATE: int(0, 1_000_000).default(2000),
  WALCAST_WS_UPGRADE_BURST: int(1, 1_000_000).default(1000),
  WALCAST_WS_MAX_CONNECTIONS: int(0, 10_000_000).default(0),
  WALCAST_RETRY_HINT_MAX_MS: int(100, 600_000).default(30_000),
  WALCAST_GATEWAY_DB_CONCURRENCY: int(1, 1000).default(4),
  WALCAST_DRAIN_WINDOW_MS: int(0, 600_000).default(5000),
  WALCAST_DRAIN_RATE: int(1, 1_000_000).default(2000),
  WALCAST_DRAIN_RETRY_MS: int(0, 600_000).default(1000),
  WALCAST_FANOUT_BUDGET: int(0, 100_000_000).default(20_000),
  WALCAST_FANOUT_QUEUE_MAX: int(1, 10_000_000).default(10_000),
  WALCAST_POST_RATE_USER: z.coerce.number().min(0).max(1_000_000).default(200),
  WALCAST_POST_BURST_USER: int(1, 10_000_000).default(400),
  WALCAST_POST_RATE_CHANNEL: z.coerce.number().min(0).max(1_000_000).default(2000),
  WALCAST_POST_BURST_CHANNEL: int(1, 10_000_000).default(4000),
});

export interface Config {
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  host: string;
  port: number;
  secret: string | undefined;
  dataDir: string;
  source: Source;
  slot: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  limits: {
    maxBodyBytes: number;
    maxTextChars: number;
    wsMaxPayload: number;
    wsMaxBackpressure: number;
    wsIdleTimeoutS: number;
    maxSubscriptions: number;
  };
  gateway: {
    ringSize: number;
    catchupPage: number;
    /** New WebSocket upgrades per second (token bucket; 0: unlimited) and the bucket's size. */
    upgradeRate: number;
    upgradeBurst: number;
    /** Open sockets per gateway beyond which upgrades are refused (0: no limit). */
    maxConnections: number;
    /** Upper bound of any retry hint the gateway gives. */
    retryHintMaxMs: number;
    /** Database reads (catch-up pages, gap fills, membership batches) in flight per gateway. */
    dbConcurrency: number;
    /** SIGTERM: sockets are closed at `drainRate` per second, spread over at most `drainWindowMs`. */
    drainWindowMs: number;
    drainRate: number;
    /** Each drain close tells its client to come back after a random delay in [0, drainRetryMs]. */
    drainRetryMs: number;
    /** Socket-frames one channel may fan out per event-loop turn before others get theirs (0: no bound). */
    fanoutBudget: number;
    /** Live events queued per channel before it stops queueing and later re-reads the rest from the database. */
    fanoutQueueMax: number;
  };
  /** chat.postMessage rate limits per API process: tokens per second (0: off) and bucket size. */
  postLimits: { userRate: number; userBurst: number; channelRate: number; channelBurst: number };
  relay: { heartbeatMs: number; slotFailover: boolean };
  /** Benchmarks only: see WALCAST_BENCH_* above. */
  bench: { commitDelayMs: number; publishDelayMs: number };
  pgPoolMax: number;
  shutdownTimeoutMs: number;
  allowUwsFallback: boolean;
  tokenTtlS: number;
}

export class ConfigError extends Error {
  readonly code = 'invalid_config';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') picked[key] = v;
  }
  const parsed = schema.safeParse(picked);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.WALCAST_DRAIN_WINDOW_MS > 0 && e.WALCAST_SHUTDOWN_TIMEOUT_MS > 0 && e.WALCAST_DRAIN_WINDOW_MS >= e.WALCAST_SHUTDOWN_TIMEOUT_MS) {
    throw new ConfigError(
      `invalid configuration:\n  WALCAST_DRAIN_WINDOW_MS (${e.WALCAST_DRAIN_WINDOW_MS}) must be shorter than WALCAST_SHUTDOWN_TIMEOUT_MS (${e.WALCAST_SHUTDOWN_TIMEOUT_MS})`,
    );
  }
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    host: e.HOST,
    port: e.PORT,
    secret: e.WALCAST_SECRET,
    dataDir: path.resolve(e.WALCAST_DATA_DIR),
    source: e.WALCAST_SOURCE,
    slot: e.WALCAST_SLOT,
    logLevel: e.WALCAST_LOG_LEVEL,
    limits: {
      maxBodyBytes: e.WALCAST_MAX_BODY_BYTES,
      maxTextChars: e.WALCAST_MAX_TEXT_CHARS,
      wsMaxPayload: e.WALCAST_WS_MAX_PAYLOAD,
      wsMaxBackpressure: e.WALCAST_WS_MAX_BACKPRESSURE,
      wsIdleTimeoutS: e.WALCAST_WS_IDLE_TIMEOUT_S,
      maxSubscriptions: e.WALCAST_MAX_SUBSCRIPTIONS,
    },
    gateway: {
      ringSize: e.WALCAST_RING_SIZE,
      catchupPage: e.WALCAST_CATCHUP_PAGE,
      upgradeRate: e.WALCAST_WS_UPGRADE_RATE,
      upgradeBurst: e.WALCAST_WS_UPGRADE_BURST,
      maxConnections: e.WALCAST_WS_MAX_CONNECTIONS,
      retryHintMaxMs: e.WALCAST_RETRY_HINT_MAX_MS,
      dbConcurrency: e.WALCAST_GATEWAY_DB_CONCURRENCY,
      drainWindowMs: e.WALCAST_DRAIN_WINDOW_MS,
      drainRate: e.WALCAST_DRAIN_RATE,
      drainRetryMs: e.WALCAST_DRAIN_RETRY_MS,
      fanoutBudget: e.WALCAST_FANOUT_BUDGET,
      fanoutQueueMax: e.WALCAST_FANOUT_QUEUE_MAX,
    },
    postLimits: {
      userRate: e.WALCAST_POST_RATE_USER,
      userBurst: e.WALCAST_POST_BURST_USER,
      channelRate: e.WALCAST_POST_RATE_CHANNEL,
      channelBurst: e.WALCAST_POST_BURST_CHANNEL,
    },
    relay: { heartbeatMs: e.WALCAST_HEARTBEAT_MS, slotFailover: e.WALCAST_SLOT_FAILOVER },
    bench: { commitDelayMs: e.WALCAST_BENCH_COMMIT_DELAY_MS, publishDelayMs: e.WALCAST_BENCH_PUBLISH_DELAY_MS },
    pgPoolMax: e.WALCAST_PG_POOL_MAX,
    shutdownTimeoutMs: e.WALCAST_SHUTDOWN_TIMEOUT_MS,
    allowUwsFallback: e.WALCAST_ALLOW_UWS_FALLBACK,
    tokenTtlS: e.WALCAST_TOKEN_TTL_S,
  };
}

/** The documented configuration, for the README and `walcast help`. */
export const CONFIG_KEYS = Object.keys(schema.shape);
