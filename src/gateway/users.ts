// The sockets and SSE streams of each user on this gateway: for WALCAST_MAX_CONNECTIONS_PER_USER (per process)
// and to close a user's sockets at once when their tokens are revoked.
import type { Peer } from './peer.js';

export class UserSockets {
  private readonly byUser = new Map<string, Set<Peer>>();

  count(user: string): number {
    return this.byUser.get(user)?.size ?? 0;
  }

  add(conn: Peer): void {
    let set = this.byUser.get(conn.user);
    if (!set) this.byUser.set(conn.user, (set = new Set()));
    set.add(conn);
  }

  remove(conn: Peer): void {
    const set = this.byUser.get(conn.user);
    if (!set?.delete(conn)) return;
    if (set.size === 0) this.byUser.delete(conn.user);
  }

  of(user: string): Peer[] {
    return [...(this.byUser.get(user) ?? [])];
  }
}
