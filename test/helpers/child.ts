// `walcast start` in a child process against a test database: for tests that must see the
// server survive (the fuzzers: the process stays up, its memory stays bounded).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { track, waitUntilUp, type Proc } from '../../harness/process.js';
import { WALCAST_BIN } from '../../harness/roles.js';
import { freePort } from '../../src/db/embedded.js';
import { ADMIN_TOKEN, SECRET } from './walcast.js';

export interface Child {
  base: string;
  ws: string;
  proc: Proc;
  alive(): boolean;
  /** Resident memory of the server process, bytes. */
  rss(): number;
  stop(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function startChild(t: Teardown, databaseUrl: string, env: Record<string, string> = {}): Promise<Child> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'walcast-child-'));
  const port = await freePort();
  const child = spawn(process.execPath, [WALCAST_BIN, 'start'], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      WALCAST_DATA_DIR: dataDir,
      WALCAST_SECRET: SECRET,
      WALCAST_ADMIN_TOKEN: ADMIN_TOKEN,
      WALCAST_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = track('walcast start', port, child);
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await proc.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  };
  t.teardown(stop);
  await waitUntilUp(proc, `${base}/healthz`);
  return {
    base,
    ws: `ws://127.0.0.1:${port}/v1/ws`,
    proc,
    alive: () => child.exitCode === null && child.signalCode === null,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024,
    stop,
  };
}
