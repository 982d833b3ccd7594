// The bus contract against RedisBus on a real redis-server of its own, including the broker
// being killed (SIGKILL) and restarted on the same port.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { RedisBus } from '../../src/bus/redis.js';
import { startRedis, type RedisProc } from '../../harness/redis.js';
import { busContract } from './contract.js';

if (spawnSync('redis-server', ['--version']).error) {
  t.fail('redis-server not found on PATH: install the Debian package redis-server (apt-get install redis-server)');
} else {
  let server: RedisProc = await startRedis();
  const url = server.url;
  t.teardown(() => server.kill('SIGKILL'));
  await busContract(t, {
    make: (log) => new RedisBus(url, log),
    outage: {
      kill: async () => void (await server.kill('SIGKILL')),
      revive: async () => void (server = await server.restart()),
    },
    dropSubscribers: async () => {
      const raw = new Redis(url);
      await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      raw.disconnect();
    },
    injectRaw: async (topic, payload) => {
      const raw = new Redis(url);
      await raw.spublish(topic === 'control' ? 'walcast:ctl' : `walcast:ch:${topic.channel}`, payload);
      raw.disconnect();
    },
  });
}
