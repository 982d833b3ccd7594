// A child process of the harness: its output, its exit, an idempotent kill, and a readiness wait.
import type { ChildProcess } from 'node:child_process';
import { adopt } from './children.js';

export interface Proc {
  name: string;
  port: number;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process ended. */
  exited: Promise<number | string | null>;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<number | string | null>;
  /** The pid while the process runs (for CPU and memory sampling), else none. */
  pids(): number[];
}

/** Wraps a child process: its output, its exit, and an idempotent kill. */
export function track(name: string, port: number, child: ChildProcess): Proc {
  adopt(child);
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    name,
    port,
    child,
    exited,
    output: () => out,
    kill: async (signal = 'SIGTERM') => {
      if (running()) child.kill(signal);
      return exited;
    },
    pids: () => (child.pid && running() ? [child.pid] : []),
  };
}

/** Polls `url` until it answers 200; fails if the process exits first or after `ms`. */
export async function waitUntilUp(proc: Proc, url: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited ${proc.child.exitCode}:\n${proc.output()}`);
    if ((await fetch(url).then((r) => r.status).catch(() => 0)) === 200) return;
    if (Date.now() > end) throw new Error(`${proc.name} did not come up within ${ms} ms:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
