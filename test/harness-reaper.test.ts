// The servers a test starts (PostgreSQL, redis-server, PgBouncer) do not outlive a test process that dies
// without its teardown (a crash, an unhandled error): they would keep their ports and CPU, and
// pile up over a CI run.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { until } from './helpers/walcast.js';

/** Whether `pid` still runs `command` (a zombie holds nothing; a pid reused by another program does not count). */
const runs = (pid: number, command: string) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z' && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(command);
  } catch {
    return false;
  }
};

t.test('PostgreSQL, redis-server and PgBouncer are stopped, and their files deleted, when their test process dies', async (t) => {
  const script = fileURLToPath(new URL('./helpers/crashing-harness.ts', import.meta.url));
  let out = '';
  try {
    execFileSync(process.execPath, ['--import=tsx', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000 });
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? '');
  }
  const started = JSON.parse(out.trim().split('\n').at(-1)!) as { pids: number[]; ini: string; postgres: { pid: number; dir: string } };
  const [bouncer, redis] = started.pids as [number, number];
  t.ok(runs(bouncer, 'pgbouncer') || !existsSync(`/proc/${bouncer}`), 'the first pid was PgBouncer');
  // Should the reaper fail, this test still leaves nothing behind.
  t.teardown(() => {
    if (runs(bouncer, 'pgbouncer')) process.kill(bouncer, 'SIGKILL');
    if (runs(redis, 'redis-server')) process.kill(redis, 'SIGKILL');
  });
  await until(() => !runs(bouncer, 'pgbouncer') && !runs(redis, 'redis-server'), 'both servers gone', 30_000);
  await until(() => !existsSync(path.dirname(started.ini)), "PgBouncer's directory deleted", 30_000);
  await until(() => !runs(started.postgres.pid, 'postgres') && !existsSync(started.postgres.dir), 'PostgreSQL stopped and its directory deleted', 30_000);
  t.pass('gone');
});
