// `walcast slot ...`: replication slot administration for DBAs.
import type { Config } from '../config.js';
import { createPool, type Pool } from '../db/pool.js';
import { PUBLICATION } from '../cdc/relay.js';
import { createSlot, dropSlot, readSlot, slotStatus, type SlotStatus } from '../cdc/slot.js';

export interface SlotFlags {
  json: boolean;
  force: boolean;
  failover?: boolean;
  warnBytes?: string;
  critBytes?: string;
  warnSeconds?: string;
  critSeconds?: string;
}

const USAGE = `usage: walcast slot <command>
  status [--json]           the slot, its position, retained WAL, lag, publication
  create [--failover]       create it (the relay also does at start); --failover: a PostgreSQL 17+ failover slot
  drop [--force]            drop it; refuses while a relay streams it unless --force
  reset [--force]           drop and recreate (after the slot was lost); gateways re-sync
  check [--warn-bytes N] [--crit-bytes N] [--warn-seconds N] [--crit-seconds N]
                            for monitoring: exit 0 ok, 1 warning, 2 critical`;

const out = (s: string) => process.stdout.write(s + '\n');

export async function runSlotCommand(databaseUrl: string, config: Config, args: string[], flags: SlotFlags): Promise<number> {
  const pool = createPool(databaseUrl, 1, 'walcast-slot');
  try {
    switch (args[0]) {
      case 'status': {
        const s = await slotStatus(pool, config.slot, PUBLICATION);
        if (flags.json) out(JSON.stringify(s));
        else printStatus(s);
        return s.exists ? 0 : 1;
      }
      case 'create': {
        const created = await createSlot(pool, config.slot, { failover: flags.failover || config.relay.slotFailover });
        out(created ? `created slot ${config.slot}` : `slot ${config.slot} already exists`);
        return 0;
      }
      case 'drop':
        return (await drop(pool, config.slot, flags.force, false)) ? 0 : 1;
      case 'reset': {
        if (!(await drop(pool, config.slot, flags.force, true))) return 1;
        await createSlot(pool, config.slot, { failover: flags.failover || config.relay.slotFailover });
        out(`created slot ${config.slot} at the current WAL position; a resync request is in the WAL, so every gateway will re-read its channels from the database once the relay streams again.`);
        return 0;
      }
      case 'check':
        return check(await slotStatus(pool, config.slot, PUBLICATION), flags);
      default:
        out(USAGE);
        return 2;
    }
  } finally {
    await pool.end();
  }
}

async function drop(pool: Pool, slot: string, force: boolean, lostIsFine: boolean): Promise<boolean> {
  const info = await readSlot(pool, slot);
  if (!info) {
    out(`slot ${slot} does not exist`);
    return true;
  }
  if (info.active && !force) {
    out(`slot ${slot} is streaming to PID ${info.active_pid}. Stop the relay(s) first, or pass --force (the relay reconnects and recreates it).`);
    return false;
  }
  if (info.active) await pool.query('SELECT pg_terminate_backend($1)', [info.active_pid]);
  // The walsender takes a moment to release the slot after it is terminated.
  for (let i = 0; ; i++) {
    try {
      await dropSlot(pool, slot);
      break;
    } catch (e) {
      if (i >= 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  out(
    `dropped slot ${slot}${info.wal_status === 'lost' && lostIsFine ? ' (it was lost)' : ''}. ` +
      'What this costs: the WAL it held is released, and changes committed until a new slot exists are never streamed; ' +
      'the new slot asks every gateway to re-sync from the database, so clients see no gap, but kicks made meanwhile only take effect at their next subscribe.',
  );
  return true;
}

function check(s: SlotStatus, f: SlotFlags): number {
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  const warnBytes = num(f.warnBytes, 1 << 30);
  const critBytes = num(f.critBytes, 4 * (1 << 30));
  const warnSeconds = num(f.warnSeconds, 60);
  const critSeconds = num(f.critSeconds, 600);
  const facts = `retained=${s.retained_wal_bytes ?? '-'}B lag=${s.lag_bytes ?? '-'}B lag_seconds=${s.lag_seconds === null ? '-' : s.lag_seconds.toFixed(1)} wal_status=${s.wal_status ?? '-'} active=${s.active}`;
  const crit: string[] = [];
  const warn: string[] = [];
  if (!s.exists) crit.push('slot does not exist');
  else {
    if (s.wal_status === 'lost') crit.push('slot is lost (invalidated)');
    else if (s.wal_status === 'unreserved') crit.push('slot is about to be invalidated (wal_status unreserved)');
    else if (s.wal_status === 'extended') warn.push('slot holds WAL beyond max_wal_size (wal_status extended)');
    const retained = s.retained_wal_bytes ?? 0;
    if (retained >= critBytes) crit.push(`retained WAL ${retained} >= ${critBytes}`);
    else if (retained >= warnBytes) warn.push(`retained WAL ${retained} >= ${warnBytes}`);
    const lag = s.lag_seconds ?? 0;
    if (lag >= critSeconds) crit.push(`lag ${lag.toFixed(0)} s >= ${critSeconds} s`);
    else if (lag >= warnSeconds) warn.push(`lag ${lag.toFixed(0)} s >= ${warnSeconds} s`);
    if (!s.active) warn.push('no relay is streaming the slot');
  }
  const [code, word, reasons] = crit.length ? [2, 'CRITICAL', crit] : warn.length ? [1, 'WARNING', warn] : [0, 'OK', []];
  out(`WALCAST SLOT ${word} - ${s.slot_name}${reasons.length ? ': ' + [...crit, ...warn].join('; ') : ''} | ${facts}`);
  return code;
}

function printStatus(s: SlotStatus): void {
  if (!s.exists) {
    out(`slot ${s.slot_name}: does not exist (the relay creates it at start, or: walcast slot create)`);
    return;
  }
  const mb = (b: number | null) => (b === null ? '-' : b < 1024 * 1024 ? `${b} B` : `${(b / 1024 / 1024).toFixed(1)} MiB`);
  const rows: [string, string][] = [
    ['slot', s.slot_name],
    ['plugin', s.plugin ?? '-'],
    ['database', s.database ?? '-'],
    ['active', s.active ? `yes, PID ${s.active_pid}${s.active_by ? ` (${s.active_by})` : ''}` : `no${s.inactive_since ? `, since ${s.inactive_since}` : ''}`],
    ['confirmed_flush_lsn', s.confirmed_flush_lsn ?? '-'],
    ['restart_lsn', s.restart_lsn ?? '-'],
    ['current WAL', s.current_wal_lsn],
    ['retained WAL', mb(s.retained_wal_bytes)],
    ['lag', `${mb(s.lag_bytes)}, ${s.lag_seconds === null ? '-' : s.lag_seconds.toFixed(1) + ' s'}`],
    ['wal_status', s.wal_status ?? '-'],
    ['failover', s.failover === null ? '- (PostgreSQL < 17)' : s.failover ? 'yes' : 'no'],
    ['safe_wal_size', s.safe_wal_size === null ? 'unlimited (max_slot_wal_keep_size = -1)' : mb(s.safe_wal_size)],
    ['publication', `${s.publication}: ${s.publication_tables.join(', ') || '(missing: run walcast migrate)'}`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) out(`${k.padEnd(w)}  ${v}`);
}
