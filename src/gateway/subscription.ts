// One client's subscription to one channel, and the only place its state changes.
//  - pending: membership not checked yet;
//  - catchup: cursor < hub.last, reading the ring or the database;
//  - live:    cursor == hub.last, on the hub's topic (uWS publish);
//  - ahead:   cursor > hub.last (the client has seen more than the relay has brought here yet);
//  - ended:   unsubscribed, kicked, replaced, or the socket closed.
// `cursor` is the last seq delivered (or skipped as already seen); a frame goes out only for
// seq == cursor + 1.
import type { Peer } from './peer.js';
import type { Entry } from './ring.js';

export type SubscriptionState = 'pending' | 'catchup' | 'live' | 'ahead' | 'ended';

export class Subscription {
  private _state: SubscriptionState = 'pending';
  cursor = 0;

  constructor(
    readonly conn: Peer,
    readonly channel: string,
    /** presence_joined / presence_left frames asked for. */
    readonly presence = false,
  ) {}

  get state(): SubscriptionState {
    return this._state;
  }

  get ended(): boolean {
    return this._state === 'ended' || this.conn.closed;
  }

  /** Membership checked: deliver everything after `cursor`. */
  startCatchUp(cursor: number): void {
    if (this._state !== 'pending') return;
    this.cursor = cursor;
    this._state = 'catchup';
  }

  /** Catch-up frames of the log, in order (at least one). */
  deliver(entries: readonly Entry[]): void {
    this.conn.sendLog(this.channel, entries);
    this.cursor = entries[entries.length - 1]!.seq;
  }

  /** Caught up: from now on the hub's topic carries its frames. */
  goLive(topic: string, cursor = this.cursor): void {
    if (this._state !== 'catchup' && this._state !== 'ahead') return;
    this.cursor = cursor;
    this._state = 'live';
    this.conn.joinTopic(topic);
  }

  /** The client is ahead of this gateway: wait for the hub to reach its cursor. */
  waitAhead(): void {
    if (this._state === 'catchup') this._state = 'ahead';
  }

  /** Ends it (idempotent); returns the state it was in. */
  end(topic: string): SubscriptionState {
    const was = this._state;
    if (was === 'live') this.conn.leaveTopic(topic);
    this._state = 'ended';
    return was;
  }
}
