// The sockets of each user on this gateway: for WALCAST_MAX_CONNECTIONS_PER_USER (per process)
// and to close a user's sockets at once when their tokens are revoked.
import type { Connection } from './connection.js';

export class UserSockets {
  /** One socket as itself (the usual case: no Set per user), several in a Set. */
  private readonly byUser = new Map<string, Connection | Set<Connection>>();

  count(user: string): number {
    const v = this.byUser.get(user);
    return v === undefined ? 0 : v instanceof Set ? v.size : 1;
  }

  add(conn: Connection): void {
    const v = this.byUser.get(conn.user);
    if (v === undefined) this.byUser.set(conn.user, conn);
    else if (v instanceof Set) v.add(conn);
    else if (v !== conn) this.byUser.set(conn.user, new Set([v, conn]));
  }

  remove(conn: Connection): void {
    const v = this.byUser.get(conn.user);
    if (v === conn) this.byUser.delete(conn.user);
    else if (v instanceof Set && v.delete(conn) && v.size === 1) this.byUser.set(conn.user, v.values().next().value!);
  }

  of(user: string): Connection[] {
    const v = this.byUser.get(user);
    return v === undefined ? [] : v instanceof Set ? [...v] : [v];
  }
}
