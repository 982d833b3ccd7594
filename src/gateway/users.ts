// The sockets and SSE streams of each user on this gateway: for WALCAST_MAX_CONNECTIONS_PER_USER (per process)
// and to close a user's sockets at once when their tokens are revoked.
import type { Peer } from './peer.js';

export class UserSockets {
  /** One socket as itself (the usual case: no Set per user), several in a Set. */
  private readonly byUser = new Map<string, Peer | Set<Peer>>();

  count(user: string): number {
    const v = this.byUser.get(user);
    return v === undefined ? 0 : v instanceof Set ? v.size : 1;
  }

  add(conn: Peer): void {
    const v = this.byUser.get(conn.user);
    if (v === undefined) this.byUser.set(conn.user, conn);
    else if (v instanceof Set) v.add(conn);
    else if (v !== conn) this.byUser.set(conn.user, new Set([v, conn]));
  }

  remove(conn: Peer): void {
    const v = this.byUser.get(conn.user);
    if (v === conn) this.byUser.delete(conn.user);
    else if (v instanceof Set && v.delete(conn) && v.size === 1) this.byUser.set(conn.user, v.values().next().value!);
  }

  of(user: string): Peer[] {
    const v = this.byUser.get(user);
    return v === undefined ? [] : v instanceof Set ? [...v] : [v];
  }
}
