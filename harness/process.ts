// A child process of the harness: its output, its exit, an idempotent kill, and a readiness wait.
import { spawn, type ChildProcess } from 'node:child_process';
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

/**
 * Runs `script` (sh, with `env`) once this process is gone, however it ended: a crash or a
 * SIGKILL (a test's timeout) skips every teardown. The detached shell learns of the death by end
 * of file on a pipe from this process (no polling, no pid of ours that could be reused).
 * `cancel()` drops it, once the teardown did the work.
 */
export function whenWeDie(script: string, env: Record<string, string> = {}): { cancel(): void } {
  const sh = spawn('sh', ['-c', `read _\n${script}`], { detached: true, stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, ...env } });
  sh.unref();
  (sh.stdin as unknown as { unref(): void }).unref();
  sh.stdin!.on('error', () => {});
  return { cancel: () => void sh.kill() };
}

/**
 * For servers a test starts (redis-server, PgBouncer): kills `proc` and deletes `dir` once this
 * process is gone, unless `proc` exited first. The command line is checked against `pattern` (an
 * extended regex) before the kill, in case the pid is another process's by then.
 */
export function reapWithUs(proc: Proc, pattern: string, dir?: string): void {
  const pid = proc.child.pid;
  if (pid === undefined) return;
  const reaper = whenWeDie(
    [
      `if tr '\\0' ' ' < /proc/${pid}/cmdline 2>/dev/null | grep -Eq -- "$WALCAST_REAP_PATTERN"; then kill -KILL ${pid}; fi`,
      '[ -z "$WALCAST_REAP_DIR" ] || rm -rf -- "$WALCAST_REAP_DIR"',
    ].join('\n'),
    { WALCAST_REAP_PATTERN: pattern, WALCAST_REAP_DIR: dir ?? '' },
  );
  void proc.exited.then(() => reaper.cancel());
}
