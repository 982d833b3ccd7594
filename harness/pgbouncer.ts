// A PgBouncer in front of a test database, for the tests of walcast behind a connection pooler.
// From the PATH or /usr/sbin (Debian: apt-get install pgbouncer), on a free port, in a temporary
// directory. PgBouncer refuses to run as root: as root it runs as the `postgres` user (which the
// embedded PostgreSQL also runs as).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../src/db/embedded.js';
import { track, type Proc } from './process.js';

export interface PgBouncer extends Proc {
  /** `url` with PgBouncer's address instead of the server's. */
  url: string;
  remove(): Promise<void>;
}

export interface PgBouncerOptions {
  poolMode?: 'session' | 'transaction' | 'statement';
  /** Server connections per user and database. */
  poolSize?: number;
  /** PgBouncer 1.21+: protocol-level prepared statements kept per server connection (0: off). */
  maxPreparedStatements?: number;
}

const NOT_FOUND = 'pgbouncer not found: install the Debian package pgbouncer (apt-get install pgbouncer)';

function binary(): string {
  for (const dir of (process.env.PATH ?? '').split(':').concat('/usr/sbin')) {
    const p = path.join(dir, 'pgbouncer');
    if (dir && existsSync(p)) return p;
  }
  throw new Error(NOT_FOUND);
}

/** Starts PgBouncer for the database of `databaseUrl` (user and password taken from it). */
export async function startPgBouncer(databaseUrl: string, opts: PgBouncerOptions = {}): Promise<PgBouncer> {
  const server = new URL(databaseUrl);
  const user = decodeURIComponent(server.username);
  const database = server.pathname.slice(1);
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-pgbouncer-'));
  const ini = [
    '[databases]',
    `${database} = host=${server.hostname} port=${server.port} dbname=${database}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${path.join(dir, 'users.txt')}`,
    `pool_mode = ${opts.poolMode ?? 'transaction'}`,
    `default_pool_size = ${opts.poolSize ?? 4}`,
    'max_client_conn = 200',
    ...(opts.maxPreparedStatements === undefined ? [] : [`max_prepared_statements = ${opts.maxPreparedStatements}`]),
    `logfile =`,
    `pidfile =`,
  ].join('\n');
  // A plain-text password lets PgBouncer answer the client's SCRAM exchange and run its own with the server.
  writeFileSync(path.join(dir, 'users.txt'), `"${user}" "${decodeURIComponent(server.password).replaceAll('"', '""')}"\n`);
  writeFileSync(path.join(dir, 'pgbouncer.ini'), ini);
  const asRoot = os.userInfo().uid === 0;
  if (asRoot) {
    const ids = postgresIds();
    chmodSync(dir, 0o700);
    for (const f of ['', 'users.txt', 'pgbouncer.ini']) chownSync(path.join(dir, f), ids.uid, ids.gid);
  }
  let child: ChildProcess;
  try {
    child = spawn(binary(), [path.join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'pipe', 'pipe'], ...(asRoot ? postgresIds() : {}) });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(NOT_FOUND, { cause: e });
  }
  const proc = track(`pgbouncer:${port}`, port, child);
  await new Promise<void>((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`${NOT_FOUND} (${e.message})`)));
    const check = () =>
      /process up|listening on 127\.0\.0\.1/.test(proc.output())
        ? resolve()
        : child.exitCode !== null
          ? reject(new Error(`pgbouncer exited: ${proc.output()}`))
          : setTimeout(check, 20);
    check();
  });
  const url = new URL(databaseUrl);
  url.port = String(port);
  return {
    ...proc,
    url: url.toString(),
    remove: async () => {
      await proc.kill('SIGINT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root, and there is no postgres user to run pgbouncer as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
