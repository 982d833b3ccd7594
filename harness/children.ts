// Every child process the harness started and that still runs. A benchmark interrupted with
// SIGINT or SIGTERM (Ctrl-C, a CI timeout, `kill`) stops them before it exits: a child left
// behind keeps its port, its CPU and its memory, and spoils the next run's figures.
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

/** Counts `child` among the harness's children until it exits. */
export function adopt<C extends ChildProcess>(child: C): C {
  if (child.exitCode !== null || child.signalCode !== null) return child;
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** The children still running. */
export const liveChildren = (): number => live.size;

/**
 * Stops every child still running: `signal` first, SIGKILL for those still there after
 * `graceMs`. Resolves once all are gone.
 */
export async function stopChildren(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  const all = [...live];
  const gone = all.map((c) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r()))));
  for (const c of all) c.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), graceMs)));
  if ((await Promise.race([Promise.all(gone), late])) === 'late') {
    for (const c of live) c.kill('SIGKILL');
    await Promise.all(gone);
  }
  clearTimeout(timer);
}
