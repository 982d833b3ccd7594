// `walcast start` (embedded PostgreSQL, in-process bus) in its own process, for the single-node
// benchmarks: resolves once /readyz answers 200, with the demo token it printed.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/db/embedded.js';

const BIN = fileURLToPath(new URL('../../bin/walcast.js', import.meta.url));

export interface Standalone {
  base: string;
  token: string;
  stop(): void;
}

export async function startStandalone(env: Record<string, string> = {}): Promise<Standalone> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'walcast-bench-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(process.execPath, [BIN, 'start'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', WALCAST_DATA_DIR: dataDir, WALCAST_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  server.stdout!.on('data', (d) => (out += d));
  process.on('exit', () => server.kill('SIGKILL'));
  const stop = () => {
    server.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
    server.kill('SIGTERM');
  };
  for (let i = 0; ; i++) {
    if ((await fetch(`${base}/readyz`).then((r) => r.status).catch(() => 0)) === 200 && /demo token/.test(out)) break;
    if (i > 600 || server.exitCode !== null) {
      stop();
      throw new Error('walcast did not become ready');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { base, token: /demo token \(user "demo"\): (\S+)/.exec(out)![1]!, stop };
}
