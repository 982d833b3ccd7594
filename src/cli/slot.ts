// `walcast slot ...`: replication slot administration for DBAs.
import type { Config } from '../config.js';
import { createPool } from '../db/pool.js';
import { PUBLICATION } from '../cdc/relay.js';
import { createSlot, dropSlot, readSlot } from '../cdc/slot.js';

export interface SlotFlags {
  json: boolean;
  force: boolean;
}

export async function runSlotCommand(databaseUrl: string, config: Config, args: string[], flags: SlotFlags): Promise<number> {
  const pool = createPool(databaseUrl, 1, 'walcast-slot');
  const out = (s: string) => process.stdout.write(s + '\n');
  try {
    switch (args[0]) {
      case 'status': {
        const { rows } = await pool.query(
          `SELECT s.slot_name, s.plugin, s.database, s.active, s.active_pid,
                  a.application_name AS active_by, s.confirmed_flush_lsn::text, s.restart_lsn::text,
                  pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint AS retained_wal_bytes,
                  pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint AS lag_bytes,
                  s.wal_status, s.safe_wal_size,
                  (SELECT array_agg(schemaname || '.' || tablename ORDER BY tablename) FROM pg_publication_tables WHERE pubname = $2) AS publication_tables
             FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
            WHERE s.slot_name = $1`,
          [config.slot, PUBLICATION],
        );
        const row = rows[0];
        if (flags.json) out(JSON.stringify(row ? { ...row, publication: PUBLICATION } : { slot_name: config.slot, exists: false }));
        else if (!row) out(`slot ${config.slot}: does not exist (the relay creates it at start, or: walcast slot create)`);
        else {
          const width = Math.max(...Object.keys(row).map((k) => k.length));
          out(`publication${' '.repeat(Math.max(1, width - 10))} ${PUBLICATION}`);
          for (const [k, v] of Object.entries(row)) out(`${k.padEnd(width)}  ${Array.isArray(v) ? v.join(', ') : v ?? '-'}`);
        }
        return row ? 0 : 1;
      }
      case 'create': {
        const created = await createSlot(pool, config.slot);
        out(created ? `created slot ${config.slot}` : `slot ${config.slot} already exists`);
        return 0;
      }
      case 'drop': {
        const info = await readSlot(pool, config.slot);
        if (!info) {
          out(`slot ${config.slot} does not exist`);
          return 0;
        }
        if (info.active && !flags.force) {
          out(`slot ${config.slot} is in use by PID ${info.active_pid}; stop the relay first, or pass --force.`);
          return 1;
        }
        if (info.active) await pool.query('SELECT pg_terminate_backend($1)', [info.active_pid]);
        await dropSlot(pool, config.slot);
        out(`dropped slot ${config.slot}. The next relay start creates a new one and asks every gateway to re-sync from the database.`);
        return 0;
      }
      default:
        out('usage: walcast slot <status|create|drop> [--json] [--force]');
        return 2;
    }
  } finally {
    await pool.end();
  }
}
