// A throwaway PostgreSQL (wal_level=logical) for one test file (harness/postgres.ts), removed at
// teardown.
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
