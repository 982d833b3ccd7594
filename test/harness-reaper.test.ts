// The servers a test starts (redis-server, PgBouncer) do not outlive a test process that dies
// without its teardown (a crash, an unhandled error): they would keep their ports and CPU, and
// pile up over a CI run.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { until } from './helpers/walcast.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill -0; it holds nothing.
    return !/^Z/.test(execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim());
  } catch {
    return false;
  }
};

t.test('redis-server and PgBouncer are stopped, and PgBouncer\'s files deleted, when their test process dies', async (t) => {
  const script = fileURLToPath(new URL('./helpers/crashing-harness.ts', import.meta.url));
  let out = '';
  try {
    execFileSync(process.execPath, ['--import=tsx', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000 });
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? '');
  }
  const started = JSON.parse(out.trim().split('\n').at(-1)!) as { pids: number[]; ini: string };
  t.equal(started.pids.length, 2);
  // Should the reaper fail, this test still leaves nothing behind.
  t.teardown(() => started.pids.filter(alive).forEach((pid) => process.kill(pid, 'SIGKILL')));
  await until(() => started.pids.every((pid) => !alive(pid)), 'both servers gone', 30_000);
  await until(() => !existsSync(path.dirname(started.ini)), "PgBouncer's directory deleted", 30_000);
  t.pass('gone');
});
