// The systems under test, from harness/'s parts: the run's one PostgreSQL (harness/postgres.ts),
// and per source a fresh stack of redis-server, an api, relay(s) and two gateways as separate
// processes, started in parallel (harness/redis.ts, harness/roles.ts). Gateways, and the cdc
// relay, are walcast itself (bin/walcast-dev.js); the comparison sources' api and relay run
// bench/sources/serve.ts, and so does the cdc api when the bench slows its commits. Also the
// Socket.IO peer.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres, type Postgres } from '../../harness/postgres.js';
import type { PidGroups } from '../../harness/proc-stats.js';
import { track, waitUntilUp, type Proc } from '../../harness/process.js';
import { startRedis, type RedisProc } from '../../harness/redis.js';
import { startRole, type RoleProc } from '../../harness/roles.js';
import { HARNESS_ADMIN_TOKEN } from '../../harness/topology.js';
import { apiCaller } from '../../harness/load/api.js';
import { Tokens } from '../../src/auth/tokens.js';
import { freePort } from '../../src/db/embedded.js';
import { PATHS } from '../../src/protocol.js';
import { sourceEnv, type BenchDelays, type Source } from '../sources/index.js';
import { installNotify, removeNotify } from '../sources/notify.js';

/** The run's database: one embedded PostgreSQL, migrated, removed at the end. */
export const startDb = (): Promise<Postgres> => startPostgres({ logLevel: 'error' });

/** Settings every benchmark stack runs with: the fair-use limits of the API and gateways are off (one bench user posts everything). */
export const BENCH_ENV: Record<string, string> = {
  WALCAST_LOG_LEVEL: 'warn',
  WALCAST_HEARTBEAT_MS: '1000',
  WALCAST_POST_RATE_USER: '0',
  WALCAST_POST_RATE_CHANNEL: '0',
  WALCAST_WS_UPGRADE_RATE: '0',
  WALCAST_WS_MAX_CONNECTIONS: '0',
  WALCAST_MAX_CONNECTIONS_PER_USER: '0',
  WALCAST_INVITE_UNKNOWN_USERS: '1',
};

const SERVE = ['--import=tsx', fileURLToPath(new URL('../sources/serve.ts', import.meta.url))];

export interface Stack {
  source: Source;
  redis: RedisProc;
  api: RoleProc;
  relays: RoleProc[];
  gateways: RoleProc[];
  token: string;
  /** WALCAST_SECRET of the stack: scenarios sign tokens for their own users with it. */
  secret: string;
  wsUrls(): string[];
  cpuGroups(db: Postgres): PidGroups;
  close(): Promise<void>;
}

export interface StackOptions extends BenchDelays {
  relays?: number;
  gateways?: number;
  /** Extra environment for every role (e.g. WALCAST_ADMIN_TOKEN for /metrics, presence settings). */
  env?: Record<string, string>;
}

export async function startStack(db: Postgres, source: Source, o: StackOptions = {}): Promise<Stack> {
  // The notify trigger exists only while a notify stack runs (NOTIFY's commit lock would tax
  // every other source's writes).
  await (source === 'notify' ? installNotify(db.url) : removeNotify(db.url));
  const redis = await startRedis();
  const secret = 'bench-secret-' + Math.random().toString(36).slice(2).padEnd(16, 'x');
  // The admin token harness/load/metrics.ts scrapes /metrics with, unless a scenario sets its own.
  const env = { ...BENCH_ENV, WALCAST_ADMIN_TOKEN: HARNESS_ADMIN_TOKEN, DATABASE_URL: db.url, REDIS_URL: redis.url, WALCAST_SECRET: secret, ...o.env };
  const benchEnv = { ...env, ...sourceEnv(source, o) };
  const apiServe = source !== 'cdc' || Boolean(o.commitDelayMs || o.publishDelayMs);
  const nRelays = o.relays ?? 1;
  // All in parallel; a relay is live (/healthz) before anything is posted.
  const [api, ...rest] = await Promise.all([
    apiServe ? startRole('api', benchEnv, { command: SERVE }) : startRole('api', env),
    ...Array.from({ length: nRelays }, (_, i) =>
      source === 'cdc' ? startRole('relay', env, { index: i + 1 }) : startRole('relay', benchEnv, { index: i + 1, command: SERVE }),
    ),
    ...Array.from({ length: o.gateways ?? 2 }, (_, i) => startRole('gateway', env, { index: i + 1 })),
  ]);
  const token = await new Tokens(secret).sign('bench', 24 * 3600);
  const stack: Stack = {
    source,
    redis,
    api: api!,
    relays: rest.slice(0, nRelays),
    gateways: rest.slice(nRelays),
    token,
    secret,
    wsUrls: () => stack.gateways.map((g) => `ws://127.0.0.1:${g.port}${PATHS.ws}`),
    cpuGroups: (d) => ({
      api: () => stack.api.pids(),
      relay: () => stack.relays.flatMap((r) => r.pids()),
      gateways: () => stack.gateways.flatMap((g) => g.pids()),
      redis: () => stack.redis.pids(),
      postgres: () => d.pids(),
    }),
    close: async () => {
      await Promise.all([stack.api, ...stack.gateways, ...stack.relays].map((p) => p.kill('SIGTERM')));
      await stack.redis.kill('SIGTERM');
      // Leave the database as a fresh one: no slot holding WAL back, no trigger.
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active`);
      } finally {
        await c.end();
      }
      await removeNotify(db.url);
    },
  };
  return stack;
}

/** The URL of an API method. */
export const methodUrl = (base: string, method: string) => `${base}${PATHS.api}${method}`;

export async function createChannels(stack: Stack, prefix: string, n: number): Promise<string[]> {
  const call = apiCaller(stack.api.url, stack.token);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await call('conversations.create', { name: `${prefix}-${i}` })).channel.id);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The Socket.IO peer: two processes of bench/peer/socketio-server.ts sharing redis-server
// through @socket.io/redis-adapter; the first also takes the POSTs.

const PEER = fileURLToPath(new URL('../peer/socketio-server.ts', import.meta.url));

export interface PeerStack {
  redis: RedisProc;
  servers: { port: number; url: string; proc: Proc }[];
  wsUrls(): string[];
  cpuGroups(db: Postgres): PidGroups;
  close(): Promise<void>;
}

export async function startPeer(db: Postgres, n = 2): Promise<PeerStack> {
  const redis = await startRedis();
  const servers = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const port = await freePort();
      const child = spawn(process.execPath, ['--import=tsx', PEER], {
        env: { ...process.env, DATABASE_URL: db.url, REDIS_URL: redis.url, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const proc = track(`socketio-${i + 1}`, port, child);
      const url = `http://127.0.0.1:${port}`;
      await waitUntilUp(proc, url + '/healthz');
      return { port, url, proc };
    }),
  );
  return {
    redis,
    servers,
    wsUrls: () => servers.map((s) => `ws://127.0.0.1:${s.port}/socket.io/?EIO=4&transport=websocket`),
    cpuGroups: (d) => ({
      'socket.io servers': () => servers.flatMap((s) => s.proc.pids()),
      redis: () => redis.pids(),
      postgres: () => d.pids(),
    }),
    close: async () => {
      await Promise.all(servers.map((s) => s.proc.kill('SIGTERM')));
      await redis.kill('SIGTERM');
    },
  };
}
