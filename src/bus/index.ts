import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Bus } from './bus.js';
import { MemoryBus } from './memory.js';

export type { Bus, BusEvent } from './bus.js';

/** The bus named by the config: Redis with REDIS_URL, otherwise in-process. */
export async function createBus(config: Config, log: Logger): Promise<Bus> {
  if (config.redisUrl) {
    const { RedisBus } = await import('./redis.js');
    return new RedisBus(config.redisUrl, log.child({ mod: 'bus' }));
  }
  return new MemoryBus();
}
