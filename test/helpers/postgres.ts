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
