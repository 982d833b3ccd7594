// A throwaway PostgreSQL (wal_level=logical) for one test file: the same embedded server
// `walcast start` runs, in a temporary directory, removed at teardown.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { createLogger } from '../../src/log.js';

export interface TestDatabase extends EmbeddedDatabase {
  dir: string;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function startTestDatabase(t: Teardown, opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-test-'));
  const db = await startEmbeddedPostgres(dir, createLogger(process.env.TEST_LOG === '1' ? 'debug' : 'silent'));
  t.teardown(async () => {
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  if (opts.migrate !== false) await migrate(db.url);
  return { ...db, dir };
}
