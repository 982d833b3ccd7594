// The replication slot: looked up and created by the relay (never in a migration: PostgreSQL
// refuses to create a logical slot in a transaction that has written).
import type { Pool } from '../db/pool.js';
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

/** Creates the slot if missing; true if this call created it. */
export async function createSlot(pool: Pool, name: string): Promise<boolean> {
  try {
    await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [name]);
    return true;
  } catch (e) {
    if (pgCode(e) === PG.duplicateObject) return false;
    throw e;
  }
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
