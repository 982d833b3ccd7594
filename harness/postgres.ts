// A throwaway PostgreSQL (wal_level=logical): the same embedded server `walcast start` runs, in a
// temporary directory that `remove()` deletes. Tests start one per file, benchmarks one per run.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { createLogger } from '../src/log.js';
import { postmasterPid, withDescendants } from './proc-stats.js';
import { whenWeDie } from './process.js';

export interface Postgres {
  /** The application role (walcast_app: not a superuser). */
  url: string;
  /** The superuser, for what tests and benchmarks do as an administrator (ALTER SYSTEM, CHECKPOINT). */
  adminUrl: string;
  port: number;
  dir: string;
  /** Stops the server (a fast shutdown); `start` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and deletes its directory. */
  remove(): Promise<void>;
  /** The postmaster and its backends (for CPU sampling). */
  pids(): number[];
}

export async function startPostgres(opts: { migrate?: boolean; logLevel?: 'silent' | 'error' | 'debug' } = {}): Promise<Postgres> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-pg-'));
  const log = createLogger(opts.logLevel ?? (process.env.TEST_LOG === '1' ? 'debug' : 'silent'));
  let server: EmbeddedDatabase | null = await startEmbeddedPostgres(dir, log);
  const reaper = reapWhenGone(dir);
  const db: Postgres = {
    url: server.url,
    adminUrl: server.adminUrl,
    port: server.port,
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
    remove: async () => {
      await db.stop();
      reaper.cancel();
      rmSync(dir, { recursive: true, force: true });
    },
    pids: () => {
      const pm = server ? postmasterPid(server.port) : undefined;
      return pm ? withDescendants(pm) : [];
    },
  };
  if (opts.migrate !== false) await migrate(db.url);
  return db;
}

/**
 * A test killed by its timeout (SIGKILL) cannot stop its server: it is stopped once the process
 * is gone (immediate shutdown, then the directory goes).
 */
function reapWhenGone(dir: string) {
  return whenWeDie('if [ -f "$PG_PIDFILE" ]; then kill -QUIT "$(head -1 "$PG_PIDFILE")" 2>/dev/null; sleep 2; fi\nrm -rf -- "$PG_DIR"', {
    PG_PIDFILE: path.join(dir, 'pg', 'postmaster.pid'),
    PG_DIR: dir,
  });
}
