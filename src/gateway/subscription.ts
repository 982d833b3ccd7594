import type { Connection } from './connection.js';

/**
 * One client's subscription to one channel. `cursor` is the last seq this subscription has
 * delivered (or skipped as already seen); a frame goes out only for seq == cursor + 1.
 *  - catchup: cursor < hub.last, reading the ring or the database;
 *  - live:    cursor == hub.last, receiving the hub's topic publishes;
 *  - ahead:   cursor > hub.last (the client has seen more than the relay has brought here yet).
 */
export class Subscription {
  state: 'pending' | 'catchup' | 'live' | 'ahead' | 'ended' = 'pending';

  constructor(
    readonly conn: Connection,
    readonly channel: string,
    public cursor: number,
  ) {}

  get ended(): boolean {
    return this.state === 'ended' || this.conn.closed;
  }
}
