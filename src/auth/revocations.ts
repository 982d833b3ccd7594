// Revoking a user's tokens: an operator (`walcast revoke <user>`, POST /admin/revoke) stores
// (user, not_before) in the `revocations` table; from then on every token of that user issued
// before not_before (`iat` < not_before, or no `iat` at all) is refused by the API and the
// gateways, and the gateways close that user's sockets opened with such tokens (4003). Every
// process keeps the table in memory: loaded at start, updated by a bus control event the
// revoking process publishes (at once), and by a poll of the table (in case the bus lost the
// event: Redis pub/sub is at-most-once).
import type { Pool } from '../db/pool.js';

export type RevocationListener = (user: string, notBefore: number) => void;

/** The in-memory view: user → not_before (seconds since the epoch). */
export class Revocations {
  private readonly notBefore = new Map<string, number>();
  private readonly listeners = new Set<RevocationListener>();

  /** Whether a token of `user` issued at `iat` (seconds; undefined: unknown) is revoked. */
  revoked(user: string, iat: number | undefined): boolean {
    const nb = this.notBefore.get(user);
    return nb !== undefined && (iat === undefined || iat < nb);
  }

  /** Records a revocation; listeners hear of it if it is new or later than the one known. */
  apply(user: string, notBefore: number): boolean {
    const known = this.notBefore.get(user);
    if (known !== undefined && known >= notBefore) return false;
    this.notBefore.set(user, notBefore);
    for (const l of this.listeners) l(user, notBefore);
    return true;
  }

  onRevoke(fn: RevocationListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get size(): number {
    return this.notBefore.size;
  }
}

/** The `revocations` table (drizzle/0004_revocations.sql). */
export class RevocationStore {
  /** Database time of the last successful read, minus a margin for transactions committing late. */
  private since: string | null = null;

  constructor(private readonly pool: Pool) {}

  /**
   * Revokes every token of `user` issued so far: not_before is the next whole second of the
   * database's clock (a token minted in the same second as the revocation is refused too; mint
   * a new one a second later). Returns not_before.
   */
  async revoke(user: string): Promise<number> {
    const { rows } = await this.pool.query<{ not_before: string }>(
      `INSERT INTO revocations (user_id, not_before) VALUES ($1, floor(extract(epoch FROM clock_timestamp()))::bigint + 1)
       ON CONFLICT (user_id) DO UPDATE SET not_before = GREATEST(revocations.not_before, EXCLUDED.not_before), revoked_at = now()
       RETURNING not_before`,
      [user],
    );
    return Number(rows[0]!.not_before);
  }

  /** Revocations stored since the last call (all of them the first time). */
  async changes(): Promise<[string, number][]> {
    const { rows } = await this.pool.query<{ db_now: string; user_id: string | null; not_before: string | null }>(
      `SELECT (now() - interval '60 seconds')::text AS db_now, r.user_id, r.not_before
         FROM (SELECT 1) one
         LEFT JOIN revocations r ON $1::timestamptz IS NULL OR r.revoked_at >= $1::timestamptz`,
      [this.since],
    );
    this.since = rows[0]?.db_now ?? this.since;
    return rows.filter((r) => r.user_id !== null).map((r) => [r.user_id!, Number(r.not_before)]);
  }
}
