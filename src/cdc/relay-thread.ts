// The relay on its own thread, for a process that also serves clients (`walcast start`). On the
// main thread the relay's WAL handler shares event-loop turns with fan-out and HTTP: a burst of
// deliveries delays reading the WAL and the commit→publish latency of every channel grows with
// the busiest one. In a worker thread it has an event loop of its own; events cross to the
// process's bus through the bridge (src/bus/bridge.ts), one message per relayed transaction.
// A thread that dies is replaced (the new one resumes from the slot's confirmed position).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { serveBus } from '../bus/bridge.js';
import type { Bus } from '../bus/bus.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { backoff } from '../util/backoff.js';
import { asker, portEndpoint, tagged } from '../util/endpoint.js';
import type { RelayHandle, RelayOptions, RelayState } from './relay.js';

export const RELAY_THREAD_TAG = 'walcast:relay-thread';

export interface RelayThreadData {
  databaseUrl: string;
  options: RelayOptions;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  bindings: Record<string, unknown>;
}

/** What the thread tells its process besides answers: its state, and its warnings and errors (logged here, kept for the ops page). */
type ThreadMessage =
  | { tag: string; t: 'state'; status: RelayState }
  | { tag: string; t: 'log'; level: 'warn' | 'error'; msg: string; fields: Record<string, unknown> };

/** How long a stop may take (finish and acknowledge the transactions in hand). */
const STOP_TIMEOUT_MS = 30_000;

export class RelayThread implements RelayHandle {
  private worker: Worker | null = null;
  private ask: (<T>(what: string, ms?: number) => Promise<T>) | null = null;
  private state: RelayState = 'idle';
  private stopping = false;
  private restarts = 0;
  private restartTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly data: RelayThreadData,
    /** A bus of the process's own for the thread (the bridge serves it). */
    private readonly makeBus: () => Bus,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    // The thread's relay metrics (lag, commit→publish, slot) join this process's /metrics.
    metrics.sources.push(() => (this.ask ? this.ask('metrics') : Promise.resolve([])));
  }

  get status(): RelayState {
    return this.state;
  }

  isStreaming(): boolean {
    return this.state === 'streaming';
  }

  start(): void {
    if (this.worker || this.stopping) return;
    const worker = spawnWorker(this.data);
    this.worker = worker;
    const endpoint = portEndpoint(worker);
    this.ask = asker(endpoint, RELAY_THREAD_TAG);
    serveBus(endpoint, this.makeBus);
    endpoint.onMessage((m) => {
      if (!tagged<ThreadMessage>(m, RELAY_THREAD_TAG)) return;
      if (m.t === 'state') {
        this.state = m.status;
        if (m.status === 'streaming') this.restarts = 0;
      } else if (m.t === 'log') this.log[m.level](m.msg, { thread: 'relay', ...m.fields });
    });
    worker.on('error', (e) => this.log.error('relay thread failed', { err: e }));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.ask = null;
      if (this.stopping) return;
      this.state = 'idle';
      const delay = backoff(this.restarts++, { baseMs: 500, maxMs: 30_000, minMs: 250 });
      this.log.error('relay thread exited; starting a new one', { code, in_ms: Math.round(delay) });
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        this.start();
      }, delay);
      this.restartTimer.unref();
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const worker = this.worker;
    const ask = this.ask;
    if (worker && ask) {
      await ask('stop', STOP_TIMEOUT_MS).catch((e: unknown) => this.log.warn('relay thread did not stop cleanly', { err: e as Error }));
      this.worker = null;
      this.ask = null;
      await worker.terminate();
    }
    this.state = 'stopped';
  }
}

/**
 * relay-worker.js next to this file. Running the sources (tsx), a worker cannot start from a .ts
 * file (Node 20 resolves a worker's entry before any loader hook applies): a two-line bootstrap
 * imports it through tsx's API instead. The compiled package (dist/) needs nothing of that.
 */
function spawnWorker(data: RelayThreadData): Worker {
  const self = fileURLToPath(import.meta.url);
  const entry = new URL(`./relay-worker${path.extname(self)}`, import.meta.url);
  if (!self.endsWith('.ts')) return new Worker(entry, { workerData: data });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => m.tsImport(${JSON.stringify(entry.href)}, ${JSON.stringify(import.meta.url)}))`;
  return new Worker(boot, { eval: true, workerData: data });
}
