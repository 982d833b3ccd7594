// With DATABASE_URL, walcast uses a server it does not own: check what logical replication
// needs before anything else, and say what to change.
import type { Pool } from './pool.js';

export class PrerequisiteError extends Error {
  readonly code = 'prerequisite_missing';
}

export async function checkReplicationPrerequisites(pool: Pool): Promise<void> {
  const { rows } = await pool.query<{ wal_level: string; slots: string; senders: string; can_replicate: boolean; version: number }>(`
    SELECT current_setting('wal_level') AS wal_level,
           current_setting('max_replication_slots') AS slots,
           current_setting('max_wal_senders') AS senders,
           current_setting('server_version_num')::int AS version,
           (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)
             -- Amazon RDS/Aurora grant replication through membership of rds_replication.
             OR EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'rds_replication' AND pg_has_role(current_user, r.oid, 'member'))
             AS can_replicate`);
  const r = rows[0]!;
  const problems: string[] = [];
  if (r.version < 140000) problems.push(`PostgreSQL ${r.version} is too old: walcast needs 14 or newer`);
  if (r.wal_level !== 'logical')
    problems.push(`wal_level is '${r.wal_level}', needs 'logical' (ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)`);
  if (Number(r.slots) < 1) problems.push('max_replication_slots is 0, needs at least 1 (plus one per other consumer)');
  if (Number(r.senders) < 1) problems.push('max_wal_senders is 0, needs at least 1');
  if (!r.can_replicate)
    problems.push('the connecting role lacks the REPLICATION attribute (ALTER ROLE <role> WITH REPLICATION; see docs/dba.md)');
  if (problems.length) throw new PrerequisiteError(`the database is not ready for walcast:\n  - ${problems.join('\n  - ')}`);
}
