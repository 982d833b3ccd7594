// One gateway instance as several processes (WALCAST_GATEWAY_WORKERS): a process holds at most
// as many sockets as its file limit allows and uses one core, so an instance runs N workers that
// listen on the same port with SO_REUSEPORT (the kernel spreads new connections over them).
// This process supervises them: it checks the port is free (a second instance must fail, not
// silently take half of the connections), forks the workers, replaces one that dies, serves
// the instance's /metrics and /readyz (every worker's, merged) on the ops listener, and on
// SIGTERM drains them all before it stops itself.
//
// With `walcast start` the workers also serve the API, and this process keeps the relay and the
// in-process bus, which the workers reach through the bridge over their IPC channel. With
// `walcast gateway` each worker has its own connection to Redis.
import { fork, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { serveBus } from '../bus/bridge.js';
import { MemoryBus } from '../bus/memory.js';
import { ConfigError } from '../config.js';
import type { Logger } from '../log.js';
import { backoff } from '../util/backoff.js';
import { answer, asker, ipcEndpoint, tagged } from '../util/endpoint.js';
import { startNode, type Role, type WalcastNode } from './node.js';
import { instanceState, type OpsState } from './ops-state.js';
import { announce, untilSignal, type Prepared } from './serve.js';
import { WORKER_TAG, type WorkerInit, type WorkerReport } from './worker.js';

/** A worker that does not listen within this long after being forked is replaced. */
const START_TIMEOUT_MS = 60_000;
/** How long the instance's /metrics and /ops/state.json wait for each worker's part. */
const WORKER_ANSWER_MS = 3000;
/** Exit code of a worker refused by its configuration: replacing it would fail the same way. */
const CONFIG_EXIT = 2;

interface Worker {
  index: number;
  child: ChildProcess;
  ask: <T>(what: string, ms?: number) => Promise<T>;
  listening: boolean;
}

export async function superviseWorkers(p: Prepared): Promise<number> {
  const { config, log, standalone } = p;
  const n = config.gateway.workers;
  const host = config.host ?? (standalone ? '127.0.0.1' : '0.0.0.0');
  const port = await reservePort(host, config.port);
  // What stays here: the relay (and the bus it publishes to) for `start`; nothing public.
  const ownRoles = p.roles.filter((r): r is Role => r === 'relay');
  const workerRoles: Role[] = p.roles.filter((r) => r !== 'relay');
  const workers = new Map<number, Worker>();
  let stopping = false;
  let fatal: ((code: number) => void) | null = null;
  const failed = new Promise<number>((resolve) => (fatal = resolve));

  const node: WalcastNode = await startNode({
    ...p,
    roles: ownRoles,
    publicListener: false,
    checks: {
      workers: async () => {
        const live = [...workers.values()];
        if (live.length < n || !live.every((w) => w.listening)) return false;
        return (await Promise.all(live.map((w) => w.ask<boolean>('ready', 3000).catch(() => false)))).every(Boolean);
      },
    },
    info: { workers: n, port },
  });
  const bridged = node.bus instanceof MemoryBus;
  const ownBus = node.bus;
  // The instance's /metrics: this process's registry merged with every worker's.
  node.metrics.sources.push(async () => {
    const parts = await Promise.all([...workers.values()].map((w) => w.ask<Awaited<ReturnType<typeof node.metrics.registry.getMetricsAsJSON>>>('metrics-json', WORKER_ANSWER_MS).catch(() => [])));
    return parts.flat();
  });
  // The instance's /ops/state.json: this process's (relay, slot, merged counters) with every worker's sockets and problems.
  // A worker that does not answer in time, or is being replaced (also while it waits to be
  // forked again), is listed with a null state.
  node.ops.state = async () => {
    const [own, parts] = await Promise.all([
      node.ownState(),
      Promise.all(
        Array.from({ length: n }, async (_, index) => {
          const w = workers.get(index);
          return { index, state: w?.listening ? await w.ask<OpsState>('own-state', WORKER_ANSWER_MS).catch(() => null) : null };
        }),
      ),
    ]);
    return instanceState(own, parts);
  };
  const restarts = new Map<number, number>();

  const spawn = (index: number) => {
    const child = fork(process.argv[1]!, ['worker'], { stdio: 'inherit', execArgv: process.execArgv });
    const endpoint = ipcEndpoint(child);
    const w: Worker = { index, child, ask: asker(endpoint, WORKER_TAG), listening: false };
    workers.set(index, w);
    node.metrics.workers.set([...workers.values()].filter((x) => x.listening).length);
    if (bridged && ownBus instanceof MemoryBus) serveBus(endpoint, () => ownBus.sibling());
    answer(endpoint, WORKER_TAG, { metrics: () => node.metrics.render(), state: () => node.ops.state() });
    const init: WorkerInit = {
      tag: WORKER_TAG,
      t: 'init',
      index,
      roles: workerRoles,
      host,
      port,
      databaseUrl: p.databaseUrl,
      secret: p.secret,
      adminToken: p.adminToken,
      bridged,
      pages: p.pages,
    };
    child.send(init);
    const startTimer = setTimeout(() => {
      if (!w.listening) {
        log.error('gateway worker did not start in time; replacing it', { worker: index, pid: child.pid });
        child.kill('SIGKILL');
      }
    }, START_TIMEOUT_MS);
    startTimer.unref();
    endpoint.onMessage((m) => {
      if (!tagged<WorkerReport>(m, WORKER_TAG) || m.t !== 'listening') return;
      clearTimeout(startTimer);
      w.listening = true;
      restarts.set(index, 0);
      node.metrics.workers.set([...workers.values()].filter((x) => x.listening).length);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(startTimer);
      if (workers.get(index) === w) workers.delete(index);
      node.metrics.workers.set([...workers.values()].filter((x) => x.listening).length);
      if (stopping) return;
      if (code === CONFIG_EXIT) {
        log.error('gateway worker refused its configuration; stopping the instance', { worker: index });
        return fatal?.(CONFIG_EXIT);
      }
      const attempt = restarts.get(index) ?? 0;
      restarts.set(index, attempt + 1);
      const delay = backoff(attempt, { baseMs: 250, maxMs: 30_000, minMs: 100 });
      node.metrics.workerRestarts.inc();
      log.error('gateway worker exited; replacing it', { worker: index, pid: child.pid, code, signal, in_ms: Math.round(delay) });
      setTimeout(() => !stopping && spawn(index), delay).unref();
    });
  };

  for (let i = 0; i < n; i++) spawn(i);
  const allListening = new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (workers.size === n && [...workers.values()].every((w) => w.listening)) {
        clearInterval(check);
        resolve();
      }
    }, 20);
  });
  const first = await Promise.race([allListening.then(() => null), failed]);
  if (first !== null) {
    stopping = true;
    await stopWorkers(workers, log, config.shutdownTimeoutMs);
    await node.close();
    return first;
  }
  await announce(p, host, port, node.opsPort, node.bus.kind, { workers: n });

  let code = 0;
  await untilSignal(
    log,
    config,
    async () => {
      stopping = true;
      // Workers first: they drain their sockets and finish their posts; then the relay acknowledges.
      await stopWorkers(workers, log, config.shutdownTimeoutMs);
      await node.close();
    },
    (stop) =>
      void failed.then((c) => {
        code = c;
        stop('a worker refused its configuration');
      }),
  );
  return code;
}

/** SIGTERM to every worker; SIGKILL to those still running after the timeout. */
async function stopWorkers(workers: Map<number, Worker>, log: Logger, timeoutMs: number): Promise<void> {
  const live = [...workers.values()].map((w) => w.child).filter((c) => c.exitCode === null && c.signalCode === null);
  const exits = live.map((c) => new Promise<void>((resolve) => c.once('exit', () => resolve())));
  for (const c of live) c.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const c of live) {
      if (c.exitCode === null && c.signalCode === null) {
        log.error('gateway worker did not stop in time; killing it', { pid: c.pid });
        c.kill('SIGKILL');
      }
    }
  }, Math.max(timeoutMs - 1000, 1000));
  timer.unref();
  await Promise.all(exits);
  clearTimeout(timer);
}

/**
 * Fails when something already listens on host:port (another walcast, with or without workers),
 * since the workers' SO_REUSEPORT listens would otherwise join it silently. Port 0: picks a free
 * port for the workers to share.
 */
function reservePort(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (e: NodeJS.ErrnoException) =>
      reject(new ConfigError(`cannot listen on ${host}:${port}: ${e.code === 'EADDRINUSE' ? 'the address is in use (another walcast?)' : e.message}; set PORT or HOST`)),
    );
    probe.listen({ host, port, exclusive: true }, () => {
      const bound = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(bound));
    });
  });
}
