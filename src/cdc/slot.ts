// The replication slot: looked up and created by the relay (never in a migration: PostgreSQL
// refuses to create a logical slot in a transaction that has written).
import { randomUUID } from 'node:crypto';
import type { Pool } from '../db/pool.js';
import { RESYNC_PREFIX } from './transactions.js';
import { PG, pgCode } from '../errors.js';

export interface SlotInfo {
  slot_name: string;
  plugin: string;
  database: string;
  active: boolean;
  active_pid: number | null;
  confirmed_flush_lsn: string | null;
  restart_lsn: string | null;
  wal_status: string | null;
  safe_wal_size: number | null;
}

export async function readSlot(pool: Pool, name: string): Promise<SlotInfo | undefined> {
  const { rows } = await pool.query<SlotInfo>(
    `SELECT slot_name, plugin, database, active, active_pid, confirmed_flush_lsn::text, restart_lsn::text,
            wal_status, safe_wal_size
       FROM pg_replication_slots WHERE slot_name = $1`,
    [name],
  );
  return rows[0];
}

/**
 * Creates the slot if missing; true if this call created it. A new slot starts at the current
 * WAL position: whatever committed before (while no slot existed, or while a lost one could
 * not stream) will never reach the relay. So right after creating it we write a resync
 * request into the WAL, which the new slot does decode: the relay turns it into a `resync`
 * event and every gateway re-reads its channels from the database. This holds whoever
 * created the slot, the relay or `walcast slot create|reset`.
 */
export async function createSlot(pool: Pool, name: string, opts: { failover?: boolean } = {}): Promise<boolean> {
  try {
    // PostgreSQL 17+: a failover slot is synchronised to physical standbys (sync_replication_slots).
    if (opts.failover) await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)`, [name]);
    else await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [name]);
  } catch (e) {
    if (pgCode(e) === PG.duplicateObject) return false;
    throw e;
  }
  await pool.query('SELECT pg_logical_emit_message(false, $1, $2)', [RESYNC_PREFIX, randomUUID()]);
  return true;
}

export async function dropSlot(pool: Pool, name: string): Promise<boolean> {
  try {
    await pool.query('SELECT pg_drop_replication_slot($1)', [name]);
    return true;
  } catch (e) {
    if (pgCode(e) === PG.undefinedObject) return false;
    throw e;
  }
}

/** A slot PostgreSQL invalidated (max_slot_wal_keep_size exceeded) can never stream again. */
export const isLost = (s: SlotInfo): boolean => s.wal_status === 'lost';

/** Everything a DBA (and /metrics) wants to know about the slot, in one query. */
export interface SlotStatus {
  slot_name: string;
  exists: boolean;
  plugin: string | null;
  database: string | null;
  active: boolean;
  active_pid: number | null;
  active_by: string | null;
  confirmed_flush_lsn: string | null;
  restart_lsn: string | null;
  current_wal_lsn: string;
  retained_wal_bytes: number | null;
  lag_bytes: number | null;
  lag_seconds: number | null;
  wal_status: string | null;
  safe_wal_size: number | null;
  inactive_since: string | null;
  /** PostgreSQL 17+: synchronised to standbys; null before 17. */
  failover: boolean | null;
  publication: string;
  publication_tables: string[];
}

export async function slotStatus(pool: Pool, name: string, publication: string): Promise<SlotStatus> {
  const { rows } = await pool.query(
    `WITH s AS (SELECT * FROM pg_replication_slots WHERE slot_name = $1)
     SELECT $1::text AS slot_name, (SELECT count(*) FROM s) > 0 AS exists,
            s.plugin, s.database, coalesce(s.active, false) AS active, s.active_pid,
            nullif(concat_ws(' ', a.application_name, a.client_addr::text), '') AS active_by,
            s.confirmed_flush_lsn::text, s.restart_lsn::text, pg_current_wal_lsn()::text AS current_wal_lsn,
            pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::float8 AS retained_wal_bytes,
            pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::float8 AS lag_bytes,
            CASE
              WHEN s.slot_name IS NULL THEN NULL
              WHEN pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn) <= 0 THEN 0
              WHEN s.active THEN coalesce(extract(epoch FROM r.flush_lag), 0)
              ELSE extract(epoch FROM now() - (to_jsonb(s) ->> 'inactive_since')::timestamptz)
            END::float8 AS lag_seconds,
            s.wal_status, s.safe_wal_size::float8, to_jsonb(s) ->> 'inactive_since' AS inactive_since,
            (to_jsonb(s) ->> 'failover')::boolean AS failover,
            $2::text AS publication,
            coalesce((SELECT array_agg(schemaname || '.' || tablename ORDER BY tablename)
                        FROM pg_publication_tables WHERE pubname = $2), '{}') AS publication_tables
       FROM (SELECT 1) one
       LEFT JOIN s ON true
       LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
       LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid`,
    [name, publication],
  );
  return rows[0] as SlotStatus;
}
