// The raw PostgreSQL baseline of the ingest scenario: pgbench running single-row autocommit
// INSERTs of a 100-byte text into a table shaped like `messages` (its columns, defaults, primary
// key, unique indexes and its foreign key to a channels table), from N clients, on the run's
// PostgreSQL. The rate is pgbench's own (without the connection time); latencies come from its
// per-transaction log; its CPU is sampled from /proc like every other process.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { adopt } from '../../harness/children.js';
import { Hist, type HistData } from './hist.js';

/** pgbench on the PATH, else the newest /usr/lib/postgresql/<v>/bin/pgbench; null if none. */
export function findPgbench(): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, 'pgbench');
    if (dir && existsSync(p)) return p;
  }
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(path.join(root, v, 'bin/pgbench')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(root, versions[0]!, 'bin/pgbench') : null;
}

/** The baseline's tables (dropped and created afresh): raw_channels(id) and raw_messages like messages. */
export async function createRawTables(dbUrl: string, channels: number): Promise<void> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    await c.query(`DROP TABLE IF EXISTS raw_messages; DROP TABLE IF EXISTS raw_channels; DROP SEQUENCE IF EXISTS raw_seq`);
    await c.query(`CREATE TABLE raw_channels (id text PRIMARY KEY)`);
    await c.query(`INSERT INTO raw_channels SELECT 'raw-' || i FROM generate_series(0, $1::int - 1) i`, [channels]);
    // LIKE ... INCLUDING ALL: columns, defaults, NOT NULLs, the primary key and the unique indexes.
    await c.query(`CREATE TABLE raw_messages (LIKE messages INCLUDING ALL)`);
    await c.query(`ALTER TABLE raw_messages ADD FOREIGN KEY (channel_id) REFERENCES raw_channels (id) ON DELETE CASCADE`);
    await c.query(`CREATE SEQUENCE raw_seq`);
    await c.query(`ANALYZE raw_channels, raw_messages`);
  } finally {
    await c.end();
  }
}

export async function dropRawTables(dbUrl: string): Promise<void> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    await c.query(`DROP TABLE IF EXISTS raw_messages; DROP TABLE IF EXISTS raw_channels; DROP SEQUENCE IF EXISTS raw_seq`);
  } finally {
    await c.end();
  }
}

/** The raw baseline's transaction: one row into raw_messages, on one of `channels` channels. */
export const rawInsertScript = (channels: number, textBytes: number) =>
  `\\set ch random(0, ${channels - 1})\n` +
  // changed_seq = seq, as walcast stores a new message (the change log's column, NOT NULL).
  `INSERT INTO raw_messages (channel_id, seq, id, user_id, text, client_msg_id, changed_seq) ` +
  `SELECT 'raw-' || :ch, n.s, gen_random_uuid(), 'bench', '${'x'.repeat(textBytes)}', NULL, n.s FROM (SELECT nextval('raw_seq') AS s) n;\n`;

/**
 * walcast's write without its API: one call of walcast_post_batch2 (as src/chat/writer.ts makes
 * it) storing `k` posts of `user` on the client's channel (client i on channels[i % n]).
 */
export const postBatchScript = (channels: string[], user: string, k: number, textBytes: number) =>
  `SELECT count(*) FROM walcast_post_batch2(` +
  `array_fill((ARRAY[${channels.map((c) => `'${c}'`).join(',')}])[1 + :client_id % ${channels.length}], ARRAY[${k}]), ` +
  `array_fill('${user}'::text, ARRAY[${k}]), array_fill('${'x'.repeat(textBytes)}'::text, ARRAY[${k}]), ` +
  `array_fill(NULL::text, ARRAY[${k}]), ARRAY(SELECT gen_random_uuid() FROM generate_series(1, ${k})), array_fill(NULL::bigint, ARRAY[${k}]));\n`;

export interface PgbenchOptions {
  bin: string;
  dbUrl: string;
  clients: number;
  seconds: number;
  /** The transaction script (pgbench -f). */
  script: string;
  /** pgbench -M: simple, extended or prepared. */
  mode: string;
  /** Called with pgbench's pid once it runs (for CPU sampling). */
  onStart?(pid: number): void;
}

export interface PgbenchResult {
  tps: number;
  transactions: number;
  failed: number;
  seconds: number;
  /** Per-transaction latency, ms (from pgbench's log). */
  hist: HistData;
  command: string;
}

export async function runPgbench(o: PgbenchOptions): Promise<PgbenchResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-pgbench-'));
  try {
    const script = path.join(dir, 'script.sql');
    writeFileSync(script, o.script);
    const jobs = Math.max(1, Math.min(o.clients, os.cpus().length));
    const args = ['-n', '-f', script, '-c', String(o.clients), '-j', String(jobs), '-T', String(Math.max(1, Math.round(o.seconds))), '-M', o.mode, '--log', `--log-prefix=${path.join(dir, 'log')}`, o.dbUrl];
    const child = adopt(spawn(o.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    if (child.pid) o.onStart?.(child.pid);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    });
    if (code !== 0) throw new Error(`pgbench exited ${code}:\n${out}`);
    const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
    const hist = new Hist();
    for (const f of readdirSync(dir).filter((x) => x.startsWith('log.'))) {
      // client_id transaction_no time_us script_no time_epoch time_us_part
      for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        const us = Number(line.split(' ')[2]);
        if (line && Number.isFinite(us)) hist.add(us / 1000);
      }
    }
    return {
      tps: num(/tps = ([\d.]+) \(without initial connection time\)/),
      transactions: num(/number of transactions actually processed: (\d+)/),
      failed: num(/number of failed transactions: (\d+)/) || 0,
      seconds: num(/duration: (\d+) s/),
      hist: hist.data(),
      command: `pgbench ${args.slice(0, -1).map((a) => (a.startsWith('--log-prefix') ? '--log-prefix=…' : a === script ? 'script.sql' : a)).join(' ')} <url>`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
