// A throwaway PostgreSQL (wal_level=logical) for one test file (harness/postgres.ts), removed at
// teardown.
import pg from 'pg';
import { startPostgres, type Postgres } from '../../harness/postgres.js';

export type TestDatabase = Postgres;

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function startTestDatabase(t: Teardown, opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const db = await startPostgres(opts);
  t.teardown(() => db.remove());
  return db;
}

/**
 * A pool on the test's database, ended at teardown (before the database goes: teardowns run
 * last-in first-out). pg-pool's end() resolves once it has asked its idle clients to close, not
 * once they have: the database stopping in between terminates them (57P01), and a pool without
 * an 'error' listener then throws from the socket's handler and fails the file after all its
 * tests passed. Seen once in ten full runs (write-path.test.ts); not reproduced on demand.
 */
export function testPool(t: Teardown, url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on('error', () => {});
  t.teardown(() => pool.end());
  return pool;
}

/**
 * After `synchronous_standby_names` was set and `pg_reload_conf()` called: resolves once commits
 * wait for the standby. Whether a commit waits is decided by a flag in shared memory that the
 * checkpointer sets when it has re-read the configuration; `pg_reload_conf()` only signals the
 * postmaster and returns, so a commit right after it may not wait yet (test/no-ghost.test.ts
 * failed so, once, on a loaded machine). Sessions see the new value before that: with the
 * checkpointer stopped (SIGSTOP), a new session shows the standby's name and its commits still
 * do not wait. A probe inserts a row into a table of its own (one no publication lists) until
 * its commit waits in `SyncRep`, then cancels that wait (the commit is local and harmless).
 */
export async function untilCommitsWaitForStandby(adminUrl: string, ms = 30_000): Promise<void> {
  const watch = new pg.Client({ connectionString: adminUrl });
  const probe = new pg.Client({ connectionString: adminUrl });
  probe.on('error', () => {});
  await Promise.all([watch.connect(), probe.connect()]);
  try {
    const pid = (await probe.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    // A commit waits only if its transaction wrote WAL; creating the table must not wait itself.
    await probe.query('SET synchronous_commit = local');
    await probe.query('CREATE TABLE IF NOT EXISTS walcast_test_sync_probe (at timestamptz)');
    await probe.query('SET synchronous_commit = on');
    const end = Date.now() + ms;
    for (;;) {
      let done = false;
      const committing = probe.query('INSERT INTO walcast_test_sync_probe VALUES (now())').finally(() => (done = true));
      while (!done) {
        if ((await watch.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'`, [pid])).rowCount) {
          await watch.query('SELECT pg_cancel_backend($1)', [pid]);
          await committing;
          return;
        }
        if (Date.now() > end) {
          await watch.query('SELECT pg_cancel_backend($1)', [pid]);
          throw new Error(`commits did not start waiting for the synchronous standby within ${ms} ms`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      await committing; // committed without waiting: the checkpointer has not re-read the configuration yet
    }
  } finally {
    await Promise.all([watch.end(), probe.end()]).catch(() => {});
  }
}
