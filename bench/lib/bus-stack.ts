// A walcast stack on one Redis or on a Redis Cluster, for the bus scenarios (scale,
// hot-isolation): the run's PostgreSQL, redis-server (or a local 3-master / 3-replica cluster,
// harness/redis-cluster.ts), one api, one relay and N gateways as separate processes; and Redis's
// own counters (INFO stats, INFO commandstats, CLUSTER INFO), summed over the nodes, to count
// what a message costs the broker.
import pg from 'pg';
import type { Postgres } from '../../harness/postgres.js';
import type { PidGroups } from '../../harness/proc-stats.js';
import { startRedis, type RedisProc } from '../../harness/redis.js';
import { startRedisCluster, type RedisCluster } from '../../harness/redis-cluster.js';
import { startRole, type RoleProc } from '../../harness/roles.js';
import { apiCaller } from '../../harness/load/api.js';
import { Tokens } from '../../src/auth/tokens.js';
import { PATHS } from '../../src/protocol.js';
import { BENCH_ENV } from './stack.js';

export type BusMode = 'redis' | 'cluster';

export interface NodeStats {
  port: number;
  role: string;
  netIn: number;
  netOut: number;
  commands: number;
  spublish: number;
  ssubscribe: number;
  /** SPUBLISH propagated to the shard's other nodes over the cluster bus (CLUSTER INFO). */
  publishshardSent: number;
}

export interface RedisStats {
  netIn: number;
  netOut: number;
  commands: number;
  spublish: number;
  ssubscribe: number;
  publishshardSent: number;
  nodes: NodeStats[];
}

export interface BusStack {
  mode: BusMode;
  redis: RedisProc | null;
  cluster: RedisCluster | null;
  api: RoleProc;
  relay: RoleProc;
  gateways: RoleProc[];
  token: string;
  wsUrl(i: number): string;
  cpuGroups(db: Postgres): PidGroups;
  stats(): Promise<RedisStats>;
  channels(prefix: string, n: number): Promise<string[]>;
  close(): Promise<void>;
}

export async function startBusStack(db: Postgres, mode: BusMode, gateways: number): Promise<BusStack> {
  const redis = mode === 'redis' ? await startRedis() : null;
  const cluster = mode === 'cluster' ? await startRedisCluster() : null;
  const secret = 'bench-secret-' + Math.random().toString(36).slice(2).padEnd(16, 'x');
  const env: Record<string, string> = {
    ...BENCH_ENV,
    DATABASE_URL: db.url,
    WALCAST_SECRET: secret,
    ...(redis ? { REDIS_URL: redis.url } : { REDIS_CLUSTER_NODES: cluster!.env }),
  };
  const [api, relay, ...gws] = await Promise.all([
    startRole('api', env),
    startRole('relay', env),
    ...Array.from({ length: gateways }, (_, i) => startRole('gateway', env, { index: i + 1 })),
  ]);
  const token = await new Tokens(secret).sign('bench', 24 * 3600);
  const ports = redis ? [redis.port] : cluster!.ports;
  const command = async (port: number, ...a: string[]): Promise<string> => {
    if (cluster) return String(await cluster.command(port, ...a));
    const { Redis } = await import('ioredis');
    const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
    try {
      await r.connect();
      return String(await r.call(a[0]!, ...a.slice(1)));
    } finally {
      r.disconnect();
    }
  };
  const field = (text: string, name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  const calls = (text: string, cmd: string) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  const stack: BusStack = {
    mode,
    redis,
    cluster,
    api: api!,
    relay: relay!,
    gateways: gws,
    token,
    wsUrl: (i) => `ws://127.0.0.1:${gws[i]!.port}${PATHS.ws}`,
    cpuGroups: (d) => ({
      api: () => stack.api.pids(),
      relay: () => stack.relay.pids(),
      gateways: () => stack.gateways.flatMap((g) => g.pids()),
      redis: () => (redis ? redis.pids() : cluster!.pids()),
      postgres: () => d.pids(),
    }),
    stats: async () => {
      const nodes = await Promise.all(
        ports.map(async (port): Promise<NodeStats> => {
          const [stats, cmds, repl, info] = await Promise.all([
            command(port, 'INFO', 'stats'),
            command(port, 'INFO', 'commandstats'),
            command(port, 'INFO', 'replication'),
            cluster ? command(port, 'CLUSTER', 'INFO') : Promise.resolve(''),
          ]);
          return {
            port,
            role: /role:master/.test(repl) ? 'master' : 'replica',
            netIn: field(stats, 'total_net_input_bytes'),
            netOut: field(stats, 'total_net_output_bytes'),
            commands: field(stats, 'total_commands_processed'),
            spublish: calls(cmds, 'spublish'),
            ssubscribe: calls(cmds, 'ssubscribe'),
            publishshardSent: field(info, 'cluster_stats_messages_publishshard_sent'),
          };
        }),
      );
      const sum = (k: keyof Omit<NodeStats, 'port' | 'role'>) => nodes.reduce((a, n) => a + n[k], 0);
      return { netIn: sum('netIn'), netOut: sum('netOut'), commands: sum('commands'), spublish: sum('spublish'), ssubscribe: sum('ssubscribe'), publishshardSent: sum('publishshardSent'), nodes };
    },
    channels: async (prefix, n) => {
      const call = apiCaller(stack.api.url, token);
      const out: string[] = [];
      for (let i = 0; i < n; i++) out.push((await call('conversations.create', { name: `${prefix}-${i}` })).channel.id);
      return out;
    },
    close: async () => {
      await Promise.all([stack.api, stack.relay, ...stack.gateways].map((p) => p.kill('SIGTERM')));
      if (redis) await redis.kill('SIGTERM');
      if (cluster) await cluster.stop();
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        await c.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active`);
      } finally {
        await c.end();
      }
    },
  };
  return stack;
}

const COUNTERS = ['netIn', 'netOut', 'commands', 'spublish', 'ssubscribe', 'publishshardSent'] as const;

/** After minus before, per counter (node lists matched by port). */
export function statsDelta(a: RedisStats, b: RedisStats): RedisStats {
  const nodes = b.nodes.map((n) => {
    const before = a.nodes.find((m) => m.port === n.port);
    const out = { ...n };
    for (const k of COUNTERS) out[k] = n[k] - (before?.[k] ?? 0);
    return out;
  });
  const out: RedisStats = { ...b, nodes };
  for (const k of COUNTERS) out[k] = b[k] - a[k];
  return out;
}
