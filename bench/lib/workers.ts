// Forks bench/worker.ts processes (or another entry point speaking the same IPC: `ready`, then
// one reply per request id, and a `close` op) and talks to them over IPC.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { WorkerCommand } from '../worker.js';

const WORKER = fileURLToPath(new URL('../worker.ts', import.meta.url));

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

  /** A bench/worker.ts process, or another entry point speaking the same IPC (`entry`, a file path). */
  static async start<C extends { op: string } = WorkerCommand>(entry = WORKER): Promise<Worker<C>> {
    // Room for 20k sockets a worker; the heap is sized for many subscribers.
    const child = fork(entry, [], { execArgv: ['--import=tsx', '--max-old-space-size=2048'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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
    await this.send({ op: 'close' } as C).catch(() => {}); // every worker entry point has `close`
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

export async function startWorkers(n: number): Promise<Worker[]> {
  return Promise.all(Array.from({ length: n }, () => Worker.start()));
}
