// The multi-process topology of docker-compose.yml, on one machine without Docker: PostgreSQL
// (embedded, or DATABASE_URL), redis-server from PATH, a one-shot migrate, one api, N relays,
// M gateways, and a proxy that routes /v1/ws to the gateways and the rest to the api, as nginx
// does in compose. Used by `npm run cluster`, the fault tests and the benchmarks. With
// `redisCluster`, a local Redis Cluster (harness/redis-cluster.ts) instead of one redis-server,
// and the roles run with REDIS_CLUSTER_NODES.
import type net from 'node:net';
import { migrate } from '../src/db/migrate.js';
import { startPostgres, type Postgres } from './postgres.js';
import { startProxy } from './proxy.js';
import { startRedis, type RedisProc } from './redis.js';
import { startRedisCluster, type RedisCluster } from './redis-cluster.js';
import { startRole, type RoleOptions, type RoleProc } from './roles.js';

/** The admin token every role of a harness topology runs with (/metrics, /readyz details). */
export const HARNESS_ADMIN_TOKEN = 'harness-admin-token-0123456789';

export interface Topology {
  databaseUrl: string;
  secret: string;
  /** Environment every role runs with (DATABASE_URL, REDIS_URL or REDIS_CLUSTER_NODES, WALCAST_SECRET, ...). */
  env: Record<string, string>;
  redis: RedisProc;
  api: RoleProc;
  relays: RoleProc[];
  gateways: RoleProc[];
  /** The embedded database, when the topology started one. */
  postgres: Postgres | null;
  /** The proxy's base URL: /v1/ws goes to a gateway, everything else to the api. */
  url: string;
  proxyPort: number;
  close(): Promise<void>;
}

export interface TopologyOptions {
  relays?: number;
  gateways?: number;
  databaseUrl?: string;
  env?: Record<string, string>;
  logLevel?: string;
  /** Port for the proxy (0: any free port). */
  proxyPort?: number;
  /** Start the roles one after the other (default) or all at once. */
  parallel?: boolean;
  /** Entry point per role instead of bin/walcast-dev.js (the benchmarks' comparison sources). */
  command?: Partial<Record<'api' | 'relay' | 'gateway', RoleOptions['command']>>;
  /** A local Redis Cluster (3 masters, 3 replicas) instead of one redis-server. */
  redisCluster?: boolean;
}

/** The topology on a Redis Cluster: `cluster` instead of `redis`. */
export interface ClusterTopology extends Omit<Topology, 'redis'> {
  cluster: RedisCluster;
}

export function startTopology(o: TopologyOptions & { redisCluster: true }): Promise<ClusterTopology>;
export function startTopology(o?: TopologyOptions): Promise<Topology>;
export async function startTopology(o: TopologyOptions = {}): Promise<Topology | ClusterTopology> {
  const postgres = o.databaseUrl ? null : await startPostgres({ migrate: false });
  const databaseUrl = o.databaseUrl ?? postgres!.url;
  await migrate(databaseUrl);
  const redis = o.redisCluster ? null : await startRedis();
  const cluster = o.redisCluster ? await startRedisCluster() : null;
  const secret = 'cluster-secret-' + Math.random().toString(36).slice(2).padEnd(16, 'x');
  const env = {
    DATABASE_URL: databaseUrl,
    ...(redis ? { REDIS_URL: redis.url } : { REDIS_CLUSTER_NODES: cluster!.env }),
    WALCAST_SECRET: secret,
    WALCAST_LOG_LEVEL: o.logLevel ?? 'warn',
    WALCAST_HEARTBEAT_MS: '1000',
    // Load and fault tests invite synthetic users who never signed in.
    WALCAST_INVITE_UNKNOWN_USERS: '1',
    WALCAST_ADMIN_TOKEN: HARNESS_ADMIN_TOKEN,
    // Load drivers and tests run many sockets per user, and every client comes from 127.0.0.1.
    WALCAST_MAX_CONNECTIONS_PER_USER: '0',
    WALCAST_AUTH_FAIL_BURST_IP: '1000000',
    ...o.env,
  };
  const plan: (() => Promise<RoleProc>)[] = [
    () => startRole('api', env, { command: o.command?.api }),
    ...Array.from({ length: o.relays ?? 2 }, (_, i) => () => startRole('relay', env, { index: i + 1, command: o.command?.relay })),
    ...Array.from({ length: o.gateways ?? 3 }, (_, i) => () => startRole('gateway', env, { index: i + 1, command: o.command?.gateway })),
  ];
  const procs: RoleProc[] = [];
  if (o.parallel) procs.push(...(await Promise.all(plan.map((start) => start()))));
  else for (const start of plan) procs.push(await start());

  const topo = {
    databaseUrl,
    secret,
    env,
    ...(redis ? { redis } : { cluster: cluster! }),
    api: procs[0]!,
    relays: procs.filter((p) => p.role === 'relay'),
    gateways: procs.filter((p) => p.role === 'gateway'),
    postgres,
    url: '',
    proxyPort: 0,
    close: async () => {
      proxy.close();
      await Promise.all([topo.api, ...topo.relays, ...topo.gateways].map((p) => p.kill('SIGTERM')));
      if ('redis' in topo) await topo.redis.kill('SIGTERM');
      else await topo.cluster.stop();
      await postgres?.remove();
    },
  } as Topology | ClusterTopology;
  const proxy = startProxy(() => topo.api.port, () => topo.gateways.map((g) => g.port));
  await new Promise<void>((r) => proxy.listen(o.proxyPort ?? 0, '127.0.0.1', r));
  topo.proxyPort = (proxy.address() as net.AddressInfo).port;
  topo.url = `http://127.0.0.1:${topo.proxyPort}`;
  return topo;
}
