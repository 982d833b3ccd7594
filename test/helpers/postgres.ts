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
 * Applies ALTER SYSTEM settings and waits until they are in force. `pg_reload_conf()` only
 * signals the postmaster and returns: a session that reads its next command before the
 * postmaster has re-read the files and signalled it still runs it with the old values (a race
 * that failed test/no-ghost.test.ts once on a loaded machine). A session forked after the re-read
 * sees the new values, and the postmaster signals every running session before it forks another;
 * a signalled session re-reads the files before it runs its next command. So once a fresh
 * session sees every value, every session will.
 */
export async function reloadSettings(adminUrl: string, expected: Record<string, string>): Promise<void> {
  const show = async () => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      const { rows } = await c.query<{ name: string; setting: string }>('SELECT name, current_setting(name) AS setting FROM unnest($1::text[]) name', [Object.keys(expected)]);
      return rows.every((r) => r.setting === expected[r.name]);
    } finally {
      await c.end();
    }
  };
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query('SELECT pg_reload_conf()');
  } finally {
    await admin.end();
  }
  const end = Date.now() + 30_000;
  while (!(await show())) {
    if (Date.now() > end) throw new Error(`settings not in force 30 s after pg_reload_conf(): ${JSON.stringify(expected)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
