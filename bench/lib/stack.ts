// The systems under test, built from scripts/topology.ts's parts: one embedded PostgreSQL for
// the whole run (migrated once), and per source a fresh stack of redis-server, an api, relay(s)
// and two gateways as separate processes, started in parallel. Also the Socket.IO peer.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startRedis, startRole, track, waitUntilUp, type Proc, type RedisProc, type RoleProc } from '../../scripts/topology.js';
import { Tokens } from '../../src/auth/tokens.js';
import type { Source } from '../../src/config.js';
import { freePort, startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { createLogger } from '../../src/log.js';
import { postmasterPid, withDescendants, type PidGroups } from './cpu.js';

export interface Db extends EmbeddedDatabase {
  pids(): number[];
}

export async function startDb(): Promise<Db> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-bench-'));
  const db = await startEmbeddedPostgres(dir, createLogger('error'));
  await migrate(db.url);
  const postmaster = postmasterPid(db.port);
  return {
    ...db,
    pids: () => (postmaster ? withDescendants(postmaster) : []),
    stop: async () => {
      await db.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Settings every benchmark stack runs with: the fair-use limits of the API and gateways are off (one bench user posts everything). */
export const BENCH_ENV: Record<string, string> = {
  WALCAST_LOG_LEVEL: 'warn',
  WALCAST_HEARTBEAT_MS: '1000',
  WALCAST_POST_RATE_USER: '0',
  WALCAST_POST_RATE_CHANNEL: '0',
  WALCAST_WS_UPGRADE_RATE: '0',
  WALCAST_WS_MAX_CONNECTIONS: '0',
};

export interface Stack {
  source: Source;
  env: Record<string, string>;
  redis: RedisProc;
  api: RoleProc;
  relays: RoleProc[];
  gateways: RoleProc[];
  token: string;
  wsUrls(): string[];
  cpuGroups(db: Db): PidGroups;
  /** Restart the api with extra environment (bench knobs). */
  restartApi(extra: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

export async function startStack(db: Db, source: Source, o: { relays?: number; gateways?: number; env?: Record<string, string> } = {}): Promise<Stack> {
  const redis = await startRedis();
  const secret = 'bench-secret-' + Math.random().toString(36).slice(2).padEnd(16, 'x');
  const env = { ...BENCH_ENV, DATABASE_URL: db.url, REDIS_URL: redis.url, WALCAST_SECRET: secret, WALCAST_SOURCE: source, ...o.env };
  // All in parallel. A relay is live (/healthz) only after it created the notify trigger
  // (source=notify) or dropped a left-over one, so nothing is posted before that.
  const [api, ...rest] = await Promise.all([
    startRole('api', env),
    ...Array.from({ length: o.relays ?? 1 }, (_, i) => startRole('relay', env, undefined, i + 1)),
    ...Array.from({ length: o.gateways ?? 2 }, (_, i) => startRole('gateway', env, undefined, i + 1)),
  ]);
  const relays = rest.slice(0, o.relays ?? 1);
  const gateways = rest.slice(o.relays ?? 1);
  const token = await new Tokens(secret).sign('bench', 24 * 3600);
  const stack: Stack = {
    source,
    env,
    redis,
    api: api!,
    relays,
    gateways,
    token,
    wsUrls: () => stack.gateways.map((g) => `ws://127.0.0.1:${g.port}/v1/ws`),
    cpuGroups: (d) => ({
      api: () => pids(stack.api),
      relay: () => stack.relays.flatMap(pids),
      gateways: () => stack.gateways.flatMap(pids),
      redis: () => pids(stack.redis),
      postgres: () => d.pids(),
    }),
    restartApi: async (extra) => {
      await stack.api.kill('SIGTERM');
      stack.api = await startRole('api', { ...env, ...extra }, stack.api.port);
    },
    close: async () => {
      await Promise.all([stack.api, ...stack.gateways, ...stack.relays].map((p) => p.kill('SIGTERM')));
      await stack.redis.kill('SIGTERM');
      // Leave the database as a fresh one: no slot holding WAL back, no trigger.
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active`);
        await c.query('DROP TRIGGER IF EXISTS walcast_notify_message ON messages');
      } finally {
        await c.end();
      }
    },
  };
  return stack;
}

const pids = (p: Proc) => (p.child.pid && p.child.exitCode === null && p.child.signalCode === null ? [p.child.pid] : []);

/** An API client for setup calls (create channels) outside the measured path. */
export async function call(apiUrl: string, token: string, method: string, body: unknown): Promise<any> {
  const r = await fetch(`${apiUrl}/v1/${method}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await r.json()) as any;
  if (!json.ok) throw new Error(`${method}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

export async function createChannels(stack: Stack, prefix: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await call(stack.api.url, stack.token, 'conversations.create', { name: `${prefix}-${i}` })).channel.id);
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
  cpuGroups(db: Db): PidGroups;
  close(): Promise<void>;
}

export async function startPeer(db: Db, n = 2): Promise<PeerStack> {
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
      'socket.io servers': () => servers.flatMap((s) => pids(s.proc)),
      redis: () => pids(redis),
      postgres: () => d.pids(),
    }),
    close: async () => {
      await Promise.all(servers.map((s) => s.proc.kill('SIGTERM')));
      await redis.kill('SIGTERM');
    },
  };
}
