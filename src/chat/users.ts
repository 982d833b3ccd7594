// The users walcast has seen: a user exists once they have authenticated (an API call or a
// WebSocket). Invites name only users that exist, unless WALCAST_INVITE_UNKNOWN_USERS allows
// any id (identities live in the token issuer; walcast keeps no directory of its own).
import type { Pool } from '../db/pool.js';

/** Users remembered per process; the table is written once per user per process, then never. */
const KNOWN_MAX = 100_000;

export class Users {
  private readonly known = new Set<string>();
  /** Inserts in flight: a user's many first sockets, opened together, cost one query. */
  private readonly recording = new Map<string, Promise<void>>();

  constructor(private readonly pool: Pool) {}

  /** Records that `user` authenticated. Costs a query the first time this process sees them (a failed one is tried again next time). */
  seen(user: string): Promise<void> {
    if (this.known.has(user)) return Promise.resolve();
    let p = this.recording.get(user);
    if (!p) {
      p = this.pool
        .query('INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING', [user])
        .then(() => {
          if (this.known.size >= KNOWN_MAX) this.known.clear();
          this.known.add(user);
        })
        .finally(() => this.recording.delete(user));
      this.recording.set(user, p);
    }
    return p;
  }
}
