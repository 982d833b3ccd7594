// Forks bench/worker.ts processes and talks to them over IPC (one request at a time per call id).
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { adopt } from '../../harness/children.js';
import type { WorkerCommand } from '../worker.js';

const WORKER = fileURLToPath(new URL('../worker.ts', import.meta.url));

/** A worker process; `C`: the commands its entry point understands. */
export class Worker<C extends { op: string } = WorkerCommand> {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  readonly ready: Promise<void>;

  private constructor(readonly child: ChildProcess) {
    this.ready = new Promise((resolve, reject) => {
      child.on('message', (m: any) => {
        if (m.ready) return resolve();
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        if (m.error) w.reject(new Error(m.error));
        else w.resolve(m.result);
      });
      child.once('exit', (code) => {
        const e = new Error(`bench worker exited ${code}`);
        reject(e);
        for (const w of this.waiting.values()) w.reject(e);
        this.waiting.clear();
      });
    });
  }

  /** `module`: another worker entry point (a scenario's own; same IPC shape: `ready`, then {id, result | error}). */
  static async start<C extends { op: string } = WorkerCommand>(module: string = WORKER): Promise<Worker<C>> {
    // Room for 20k sockets a worker; the heap is sized for many subscribers.
    const child = adopt(fork(module, [], { execArgv: ['--import=tsx', '--max-old-space-size=2048'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const w = new Worker<C>(child);
    await w.ready;
    return w;
  }

  send<T = any>(c: C): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.send({ ...c, id });
    });
  }

  pid(): number[] {
    return this.child.pid && this.child.exitCode === null ? [this.child.pid] : [];
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    await this.send({ op: 'close' } as C).catch(() => {});
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

export async function startWorkers<C extends { op: string } = WorkerCommand>(n: number, module?: string): Promise<Worker<C>[]> {
  return Promise.all(Array.from({ length: n }, () => Worker.start<C>(module)));
}
