// A local Redis Cluster for tests and benchmarks: six redis-server processes (3 masters, 3
// replicas) from the PATH on free ports, `redis-cli --cluster create`, and what the fault tests
// do to it: SIGKILL a master and wait for its replica's promotion, move slots mid-stream
// (`redis-cli --cluster reshard`), kill and revive the whole cluster. Fast settings (see the
// research notes): --cluster-node-timeout 1000 (a failover takes about 2 s),
// --repl-diskless-sync-delay 0 (replicas sync at once: an unsynced replica cannot fail over).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startRedis, type RedisProc } from './redis.js';

const run = promisify(execFile);

export interface ClusterNodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** For a replica, its master's id. */
  masterId: string | null;
  /** Slots owned (masters). */
  slots: number;
  failed: boolean;
}

export interface RedisCluster {
  /** Every node's host:port (REDIS_CLUSTER_NODES takes any of them as seeds). */
  seeds: string[];
  /** The REDIS_CLUSTER_NODES value. */
  env: string;
  ports: number[];
  /** A command on one node (a fresh connection, closed after). */
  command(port: number, ...args: (string | number)[]): Promise<unknown>;
  /** The nodes as the given (or any live) node sees them. */
  nodes(port?: number): Promise<ClusterNodeInfo[]>;
  /** Port of the master that owns `key`'s slot. */
  masterOf(key: string): Promise<number>;
  /** SIGKILL a master; resolves once its replica is a master and every live node says cluster_state:ok. */
  killMaster(port: number, ms?: number): Promise<{ promoted: number; failoverMs: number }>;
  /** Moves `slots` slots from one master to another with redis-cli --cluster reshard. */
  reshard(from: number, to: number, slots: number): Promise<number>;
  /** Starts a killed node again (same port and nodes.conf: it rejoins, as a replica after a failover). */
  restartNode(port: number): Promise<void>;
  /** SIGKILL every node / start them all again from their nodes.conf. */
  killAll(): Promise<void>;
  reviveAll(): Promise<void>;
  /** Waits until every live node says cluster_state:ok and every replica's link to its master is up. */
  waitHealthy(ms?: number): Promise<void>;
  /** Running processes (for CPU sampling). */
  pids(): number[];
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port p with p and its cluster bus port p + 10000 both free. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  const free = (p: number) =>
    new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (let i = 0; i < 200; i++) {
    const p = 20000 + Math.floor(Math.random() * 10000);
    if (taken.has(p) || taken.has(p + 10000)) continue;
    if ((await free(p)) && (await free(p + 10000))) return p;
  }
  throw new Error('no free port pair for a cluster node');
}

export async function startRedisCluster(o: { masters?: number; replicas?: number; nodeTimeoutMs?: number } = {}): Promise<RedisCluster> {
  const masters = o.masters ?? 3;
  const replicas = o.replicas ?? 1;
  const n = masters * (1 + replicas);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-redis-cluster-'));
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = await freeClusterPort(taken);
    taken.add(p).add(p + 10000);
    ports.push(p);
  }
  const args = (p: number) => {
    mkdirSync(path.join(dir, String(p)), { recursive: true });
    return [
      '--dir', path.join(dir, String(p)),
      '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf',
      '--cluster-node-timeout', String(o.nodeTimeoutMs ?? 1000),
      '--repl-diskless-sync-delay', '0',
    ];
  };
  const procs = new Map<number, RedisProc>();
  const startNode = async (p: number) => void procs.set(p, await startRedis(p, args(p)));

  const command = async (port: number, ...a: (string | number)[]): Promise<unknown> => {
    const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000, commandTimeout: 5000 });
    r.on('error', () => {});
    try {
      await r.connect();
      return await r.call(String(a[0]), ...a.slice(1).map(String));
    } finally {
      r.disconnect();
    }
  };
  const live = () => ports.filter((p) => procs.get(p)?.pids().length);

  const nodes = async (port?: number): Promise<ClusterNodeInfo[]> => {
    const text = String(await command(port ?? live()[0]!, 'CLUSTER', 'NODES'));
    return text
      .trim()
      .split('\n')
      .map((line) => {
        const f = line.split(' ');
        const addr = f[1]!.split('@')[0]!;
        const flags = f[2]!.split(',');
        const slots = f.slice(8).reduce((a, r) => {
          if (r.startsWith('[')) return a; // a slot being migrated
          const [lo, hi] = r.split('-').map(Number);
          return a + ((hi ?? lo!) - lo! + 1);
        }, 0);
        return {
          id: f[0]!,
          port: Number(addr.slice(addr.lastIndexOf(':') + 1)),
          role: flags.includes('master') ? ('master' as const) : ('replica' as const),
          masterId: f[3] === '-' ? null : f[3]!,
          slots,
          failed: flags.includes('fail') || flags.includes('fail?'),
        };
      });
  };

  const waitHealthy = async (ms = 30_000) => {
    const end = Date.now() + ms;
    for (;;) {
      let ok = true;
      try {
        for (const p of live()) {
          if (!/cluster_state:ok/.test(String(await command(p, 'CLUSTER', 'INFO')))) ok = false;
          const repl = String(await command(p, 'INFO', 'replication'));
          if (/role:slave/.test(repl) && !/master_link_status:up/.test(repl)) ok = false;
          if (!ok) break;
        }
      } catch {
        ok = false;
      }
      if (ok) return;
      if (Date.now() > end) throw new Error('redis cluster did not become healthy in time');
      await sleep(50);
    }
  };

  const cluster: RedisCluster = {
    seeds: ports.map((p) => `127.0.0.1:${p}`),
    env: ports.map((p) => `127.0.0.1:${p}`).join(','),
    ports,
    command,
    nodes,
    masterOf: async (key) => {
      const slot = Number(await command(live()[0]!, 'CLUSTER', 'KEYSLOT', key));
      const ranges = (await command(live()[0]!, 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
      const r = ranges.find(([lo, hi]) => slot >= lo && slot <= hi);
      if (!r) throw new Error(`slot ${slot} has no owner`);
      return Number(r[2][1]);
    },
    killMaster: async (port, ms = 30_000) => {
      const all = await nodes(port);
      const me = all.find((x) => x.port === port);
      if (me?.role !== 'master') throw new Error(`${port} is not a master`);
      const replica = all.find((x) => x.masterId === me.id && !x.failed);
      if (!replica) throw new Error(`${port} has no replica to promote`);
      const t0 = Date.now();
      await procs.get(port)!.kill('SIGKILL');
      for (;;) {
        const role = (await command(replica.port, 'ROLE').catch(() => [])) as unknown[];
        if (role[0] === 'master') break;
        if (Date.now() - t0 > ms) throw new Error(`replica ${replica.port} was not promoted within ${ms} ms`);
        await sleep(20);
      }
      const failoverMs = Date.now() - t0;
      // Right after a kill cluster_state is still ok (until node-timeout): wait only after the promotion.
      await waitHealthy(ms);
      return { promoted: replica.port, failoverMs };
    },
    reshard: async (from, to, slots) => {
      const t0 = Date.now();
      const [fromId, toId] = await Promise.all([command(from, 'CLUSTER', 'MYID'), command(to, 'CLUSTER', 'MYID')]);
      await run('redis-cli', [
        '--cluster', 'reshard', `127.0.0.1:${from}`,
        '--cluster-from', String(fromId), '--cluster-to', String(toId),
        '--cluster-slots', String(slots), '--cluster-yes',
      ], { timeout: 60_000, maxBuffer: 1 << 24 });
      return Date.now() - t0;
    },
    restartNode: async (port) => {
      await startNode(port);
    },
    killAll: async () => {
      await Promise.all([...procs.values()].map((p) => p.kill('SIGKILL')));
    },
    reviveAll: async () => {
      await Promise.all(ports.map(startNode));
    },
    waitHealthy,
    pids: () => [...procs.values()].flatMap((p) => p.pids()),
    stop: async () => {
      await Promise.all([...procs.values()].map((p) => p.kill('SIGKILL')));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await Promise.all(ports.map(startNode));
    await run('redis-cli', ['--cluster', 'create', ...cluster.seeds, '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 60_000 });
    await waitHealthy(60_000);
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}
