// `npm run cluster`: the compose topology as local processes (see harness/topology.ts).
//   RELAYS=2 GATEWAYS=3 PROXY_PORT=8080 npm run cluster
//   REDIS_CLUSTER=1 npm run cluster      # on a local Redis Cluster (3 masters, 3 replicas)
import { startTopology } from './topology.js';
import { Tokens } from '../src/auth/tokens.js';

const options = {
  relays: Number(process.env.RELAYS ?? 2),
  gateways: Number(process.env.GATEWAYS ?? 3),
  proxyPort: Number(process.env.PROXY_PORT ?? 8080),
  databaseUrl: process.env.DATABASE_URL,
  logLevel: process.env.WALCAST_LOG_LEVEL ?? 'info',
};
const topo = process.env.REDIS_CLUSTER === '1' ? await startTopology({ ...options, redisCluster: true }) : await startTopology(options);
const token = await new Tokens(topo.secret).sign('demo', 86400);
const rows = [
  ['proxy (api + /v1/ws)', topo.url],
  ['api', topo.api.url],
  ...topo.relays.map((r) => [r.name, r.url]),
  ...topo.gateways.map((g) => [g.name, g.url]),
  'redis' in topo ? ['redis', topo.redis.url] : ['redis cluster (REDIS_CLUSTER_NODES)', topo.cluster.env],
  ['postgres', topo.databaseUrl.replace(/:[^:@/]+@/, ':***@')],
];
for (const [name, url] of rows) console.log(`${name!.padEnd(22)} ${url}`);
console.log(`WALCAST_SECRET=${topo.secret}`);
console.log(`demo token: ${token}`);
console.log('Ctrl-C stops everything.');
const stop = async () => {
  await topo.close();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
