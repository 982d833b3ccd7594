// A test process that starts a redis-server and a PgBouncer, prints their pids and the PgBouncer's
// directory, and dies without any teardown (test/harness-reaper.test.ts).
import { startPgBouncer } from '../../harness/pgbouncer.js';
import { startRedis } from '../../harness/redis.js';

// PgBouncer connects to its server only when a client comes: this one never does.
const bouncer = await startPgBouncer('postgres://nobody:secret@127.0.0.1:9/nothing');
const redis = await startRedis();
process.stdout.write(JSON.stringify({ pids: [bouncer.child.pid, redis.child.pid], ini: bouncer.child.spawnargs.at(-1) }) + '\n');
process.exit(1);
