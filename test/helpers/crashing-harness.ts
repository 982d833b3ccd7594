// A test process that starts a PostgreSQL, a redis-server and a PgBouncer, prints their pids and
// directories, and dies without any teardown (test/harness-reaper.test.ts).
import { startPgBouncer } from '../../harness/pgbouncer.js';
import { startPostgres } from '../../harness/postgres.js';
import { startRedis } from '../../harness/redis.js';

const db = await startPostgres({ migrate: false });
// PgBouncer connects to its server only when a client comes: none does.
const bouncer = await startPgBouncer(db.url);
const redis = await startRedis();
process.stdout.write(JSON.stringify({ pids: [bouncer.child.pid, redis.child.pid], ini: bouncer.child.spawnargs.at(-1), postgres: { pid: db.pids()[0], dir: db.dir } }) + '\n');
process.exit(1);
