// A throwaway PostgreSQL (wal_level=logical) for one test file: the same embedded server
// `walcast start` runs, in a temporary directory, removed at teardown.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { createLogger } from '../../src/log.js';

export interface TestDatabase {
  url: string;
  dir: string;
  /** Stops the server (a fast shutdown, as SIGINT); `start` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function startTestDatabase(t: Teardown, opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-test-'));
  const log = createLogger(process.env.TEST_LOG === '1' ? 'debug' : 'silent');
  let server: EmbeddedDatabase | null = await startEmbeddedPostgres(dir, log);
  const db: TestDatabase = {
    url: server.url,
    dir,
    stop: async () => {
      await server?.stop();
      server = null;
    },
    start: async () => {
      if (server) return;
      server = await startEmbeddedPostgres(dir, log);
      if (server.url !== db.url) throw new Error(`restarted on another address: ${server.url}`);
    },
  };
  t.teardown(async () => {
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  if (opts.migrate !== false) await migrate(db.url);
  return db;
}
