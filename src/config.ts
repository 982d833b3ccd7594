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
  gateway: { ringSize: number; catchupPage: number };
  relay: { heartbeatMs: number; slotFailover: boolean };
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
    gateway: { ringSize: e.WALCAST_RING_SIZE, catchupPage: e.WALCAST_CATCHUP_PAGE },
    relay: { heartbeatMs: e.WALCAST_HEARTBEAT_MS, slotFailover: e.WALCAST_SLOT_FAILOVER },
    pgPoolMax: e.WALCAST_PG_POOL_MAX,
    shutdownTimeoutMs: e.WALCAST_SHUTDOWN_TIMEOUT_MS,
    allowUwsFallback: e.WALCAST_ALLOW_UWS_FALLBACK,
    tokenTtlS: e.WALCAST_TOKEN_TTL_S,
  };
}

/** The documented configuration, for the README and `walcast help`. */
export const CONFIG_KEYS = Object.keys(schema.shape);
