// The users walcast has seen: a user exists once they have authenticated (an API call or a
// WebSocket). Invites name only users that exist, unless WALCAST_INVITE_UNKNOWN_USERS allows
// any id (identities live in the token issuer; walcast keeps no directory of its own).
import type { Pool } from '../db/pool.js';

/** Users remembered per process; the table is written once per user per process, then never. */
const KNOWN_MAX = 100_000;

export class Users {
  private readonly known = new Set<string>();

  constructor(private readonly pool: Pool) {}

  /** Records that `user` authenticated. Costs a query the first time this process sees them. */
  async seen(user: string): Promise<void> {
    if (this.known.has(user)) return;
    await this.pool.query('INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING', [user]);
    if (this.known.size >= KNOWN_MAX) this.known.clear();
    this.known.add(user);
  }
}
