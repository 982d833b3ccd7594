// A PgBouncer in front of a test database, for the tests of walcast behind a connection pooler.
// From the PATH or /usr/sbin (Debian: apt-get install pgbouncer), on a free port, in a temporary
// directory. PgBouncer refuses to run as root: as root it runs as the `postgres` user (which the
// embedded PostgreSQL also runs as).
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../src/db/embedded.js';
import { reapWithUs, track, type Proc } from './process.js';

export interface PgBouncer extends Proc {
  /** `url` with PgBouncer's address instead of the server's. */
  url: string;
  /** Stops it (at once: open transactions are cut) and deletes its directory. */
  remove(): Promise<void>;
}

export interface PgBouncerOptions {
  poolMode?: 'session' | 'transaction' | 'statement';
  /** Server connections per user and database. */
  poolSize?: number;
  /**
   * Keep protocol-level prepared statements across server connections (PgBouncer 1.21+,
   * `max_prepared_statements`). Off by default, which on 1.24+ means setting it to 0: the
   * tests want the pooler that loses them.
   */
  preparedStatements?: boolean;
}

const NOT_FOUND = 'pgbouncer not found: install the Debian package pgbouncer (apt-get install pgbouncer)';
const START_TIMEOUT_MS = 30_000;

function binary(): string {
  for (const dir of (process.env.PATH ?? '').split(':').concat('/usr/sbin')) {
    const p = path.join(dir, 'pgbouncer');
    if (dir && existsSync(p)) return p;
  }
  throw new Error(NOT_FOUND);
}

let version: [number, number] | null = null;

/** The installed PgBouncer's version, as [major, minor] (asked once). */
export function pgBouncerVersion(): [number, number] {
  if (version) return version;
  const out = execFileSync(binary(), ['--version'], { encoding: 'utf8' });
  const m = /PgBouncer (\d+)\.(\d+)/.exec(out);
  if (!m) throw new Error(`cannot read the version of pgbouncer from: ${out}`);
  return (version = [Number(m[1]), Number(m[2])]);
}

/** Whether the installed PgBouncer is at least `major.minor`. */
export function pgBouncerAtLeast(major: number, minor: number): boolean {
  const [a, b] = pgBouncerVersion();
  return a > major || (a === major && b >= minor);
}

/** Starts PgBouncer for the database of `databaseUrl` (user and password taken from it). */
export async function startPgBouncer(databaseUrl: string, opts: PgBouncerOptions = {}): Promise<PgBouncer> {
  const exe = binary();
  const server = new URL(databaseUrl);
  const user = decodeURIComponent(server.username);
  const database = server.pathname.slice(1);
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-pgbouncer-'));
  const cleanUp = () => rmSync(dir, { recursive: true, force: true });
  const tracksPrepared = pgBouncerAtLeast(1, 21);
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
    ...(tracksPrepared ? [`max_prepared_statements = ${opts.preparedStatements ? 200 : 0}`] : []),
    'logfile =',
    'pidfile =',
  ].join('\n');
  if (opts.preparedStatements && !tracksPrepared) throw new Error('this PgBouncer is older than 1.21: it cannot keep prepared statements');
  let child;
  try {
    // A plain-text password lets PgBouncer answer the client's SCRAM exchange and run its own with the server.
    writeFileSync(path.join(dir, 'users.txt'), `"${user}" "${decodeURIComponent(server.password).replaceAll('"', '""')}"\n`, { mode: 0o600 });
    writeFileSync(path.join(dir, 'pgbouncer.ini'), ini, { mode: 0o600 });
    const runAs = os.userInfo().uid === 0 ? postgresIds() : null;
    if (runAs) {
      chmodSync(dir, 0o700);
      for (const f of ['', 'users.txt', 'pgbouncer.ini']) chownSync(path.join(dir, f), runAs.uid, runAs.gid);
    }
    child = spawn(exe, [path.join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'pipe', 'pipe'], ...(runAs ?? {}) });
  } catch (e) {
    cleanUp();
    throw e;
  }
  const proc = track(`pgbouncer:${port}`, port, child);
  const stop = async () => {
    // An immediate shutdown, which cuts open transactions: SIGTERM up to 1.22, SIGQUIT since 1.23
    // (where SIGTERM waits for every client to leave).
    const killed = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
    await proc.kill(pgBouncerAtLeast(1, 23) ? 'SIGQUIT' : 'SIGTERM');
    clearTimeout(killed);
    cleanUp();
  };
  const up = await Promise.race([
    new Promise<true>((resolve) => {
      const check = () => (/listening on 127\.0\.0\.1/.test(proc.output()) ? resolve(true) : setTimeout(check, 20).unref());
      check();
    }),
    proc.exited.then((code) => `pgbouncer exited (${code}): ${proc.output()}`),
    new Promise<string>((resolve) => setTimeout(() => resolve(`pgbouncer did not listen within ${START_TIMEOUT_MS} ms: ${proc.output()}`), START_TIMEOUT_MS).unref()),
  ]);
  if (up !== true) {
    await stop();
    throw new Error(up);
  }
  reapWithUs(proc, path.join(dir, 'pgbouncer.ini'), dir);
  const url = new URL(databaseUrl);
  url.port = String(port);
  return { ...proc, url: url.toString(), remove: stop };
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root, and there is no postgres user to run pgbouncer as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
