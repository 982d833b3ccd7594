import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Bus } from './bus.js';
import { MemoryBus } from './memory.js';

export type { Bus, BusEvent } from './bus.js';

/** The bus named by the config: Redis with REDIS_URL, Redis Cluster with REDIS_CLUSTER_NODES, otherwise in-process. */
export async function createBus(config: Config, log: Logger, metrics?: Metrics): Promise<Bus> {
  if (config.redisClusterNodes) {
    const { ClusterBus } = await import('./cluster.js');
    const m = metrics;
    return new ClusterBus(config.redisClusterNodes, log.child({ mod: 'bus' }), {
      observer: m && {
        published: (shard, events) => {
          m.busShardPublishes.inc({ shard });
          m.busShardEvents.inc({ shard }, events);
        },
        publishFailed: (shard) => m.busShardPublishErrors.inc({ shard }),
        subscribed: (shard) => m.busShardSubscribes.inc({ shard }),
        subscribeFailed: (shard) => m.busShardSubscribeErrors.inc({ shard }),
        lapsed: (shard, n) => m.busShardLapses.inc({ shard }, n),
      },
    });
  }
  if (config.redisUrl) {
    const { RedisBus } = await import('./redis.js');
    return new RedisBus(config.redisUrl, log.child({ mod: 'bus' }));
  }
  return new MemoryBus();
}
