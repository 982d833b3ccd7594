// redis-server processes for tests and benchmarks, from the PATH (Debian: apt-get install
// redis-server), on free ports, without persistence.
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../src/db/embedded.js';
import { reapWithUs, track, type Proc } from './process.js';

export interface RedisProc extends Proc {
  url: string;
  /** A new redis-server on the same port (after a kill). */
  restart(): Promise<RedisProc>;
}

const NOT_FOUND = 'redis-server not found on PATH: install the Debian package redis-server (apt-get install redis-server)';

export async function startRedis(port?: number, extraArgs: string[] = []): Promise<RedisProc> {
  const p = port ?? (await freePort());
  let child: ChildProcess;
  try {
    child = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    throw new Error(NOT_FOUND, { cause: e });
  }
  const proc = track(`redis:${p}`, p, child);
  await new Promise<void>((resolve, reject) => {
    child.once('error', () => reject(new Error(NOT_FOUND)));
    const check = () =>
      /Ready to accept connections/.test(proc.output())
        ? resolve()
        : child.exitCode !== null
          ? reject(new Error(`redis-server exited: ${proc.output()}`))
          : setTimeout(check, 20);
    check();
  });
  reapWithUs(proc, `^redis-server 127\\.0\\.0\\.1:${p}( |$)`);
  return { ...proc, url: `redis://127.0.0.1:${p}`, restart: () => startRedis(p, extraArgs) };
}
