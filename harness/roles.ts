// walcast's roles as child processes (`walcast api|relay|gateway`), or any other entry point with
// the same command line (the benchmarks' comparison sources), each on its own port.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/db/embedded.js';
import { track, waitUntilUp, type Proc } from './process.js';

/** The walcast command on the sources, through tsx: tests and benchmarks never run a stale dist/ (test/package.test.ts runs the built package). */
export const WALCAST_BIN = fileURLToPath(new URL('../bin/walcast-dev.js', import.meta.url));

export type RoleName = 'api' | 'relay' | 'gateway';

export interface RoleProc extends Proc {
  role: RoleName;
  url: string;
  /** The same role again, same port and environment (after a kill). */
  restart(extraEnv?: Record<string, string>): Promise<RoleProc>;
}

export interface RoleOptions {
  port?: number;
  /** Suffix of the process name (relay-2, gateway-3). */
  index?: number;
  /** Node arguments to run instead of bin/walcast-dev.js (e.g. ['--import=tsx', 'bench/sources/serve.ts']); the role is appended. */
  command?: string[];
}

export async function startRole(role: RoleName, env: Record<string, string>, o: RoleOptions = {}): Promise<RoleProc> {
  const port = o.port ?? (await freePort());
  const child = spawn(process.execPath, [...(o.command ?? [WALCAST_BIN]), role], {
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = track(`${role}${o.index ? `-${o.index}` : ''}`, port, child);
  const url = `http://127.0.0.1:${port}`;
  // A standby relay is alive but not ready (it does not stream): wait for liveness only.
  await waitUntilUp(proc, url + (role === 'relay' ? '/healthz' : '/readyz'));
  return { ...proc, role, url, restart: (extra = {}) => startRole(role, { ...env, ...extra }, { ...o, port }) };
}
