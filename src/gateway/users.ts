// The sockets of each user on this gateway: for WALCAST_MAX_CONNECTIONS_PER_USER (per process)
// and to close a user's sockets at once when their tokens are revoked.
import type { Connection } from './connection.js';

export class UserSockets {
  private readonly byUser = new Map<string, Set<Connection>>();

  count(user: string): number {
    return this.byUser.get(user)?.size ?? 0;
  }

  add(conn: Connection): void {
    let set = this.byUser.get(conn.user);
    if (!set) this.byUser.set(conn.user, (set = new Set()));
    set.add(conn);
  }

  remove(conn: Connection): void {
    const set = this.byUser.get(conn.user);
    if (!set?.delete(conn)) return;
    if (set.size === 0) this.byUser.delete(conn.user);
  }

  of(user: string): Connection[] {
    return [...(this.byUser.get(user) ?? [])];
  }
}
