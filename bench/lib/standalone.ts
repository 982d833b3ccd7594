// `walcast start` (api, relay and gateway in one process, in-process bus) in its own process, for
// the single-node benchmarks: resolves once /readyz answers 200, with the demo token it printed.
// Without DATABASE_URL in `env` it runs its own embedded PostgreSQL in a temporary data dir; with
// it (the ingest scenario), it uses that database, so it shares the run's PostgreSQL.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { track, waitUntilUp } from '../../harness/process.js';
import { WALCAST_BIN } from '../../harness/roles.js';
import { freePort } from '../../src/db/embedded.js';
import { PATHS } from '../../src/protocol.js';

export interface Standalone {
  base: string;
  token: string;
  /** For /metrics: the admin token `start` generated and printed. */
  adminToken: string;
  /** The `walcast start` process while it runs (its embedded PostgreSQL is among its descendants). */
  pids(): number[];
  stop(): Promise<void>;
}

export interface StandaloneOptions {
  /** Node flags before bin/walcast.js (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Another checkout's bin/walcast.js (default: this one's). */
  bin?: string;
}

export async function startStandalone(env: Record<string, string> = {}, o: StandaloneOptions = {}): Promise<Standalone> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'walcast-bench-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), o.bin ?? WALCAST_BIN, 'start'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', WALCAST_DATA_DIR: dataDir, WALCAST_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = track('walcast start', port, child);
  child.stderr!.pipe(process.stderr);
  const kill = () => child.kill('SIGKILL');
  process.on('exit', kill);
  const stop = async () => {
    process.off('exit', kill);
    await proc.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitUntilUp(proc, base + PATHS.readyz);
    const end = Date.now() + 10_000;
    while (!/demo token/.test(proc.output()) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const token = /demo token \(user "demo"\): (\S+)/.exec(proc.output())?.[1];
    if (!token) throw new Error(`walcast start printed no demo token:\n${proc.output()}`);
    const adminToken = /admin token \([^)]*\): (\S+)/.exec(proc.output())?.[1] ?? '';
    return { base, token, adminToken, pids: proc.pids, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
