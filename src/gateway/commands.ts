// What a client's frames do: subscribe (membership check, then catch-up from `since`, then
// live), unsubscribe, ping; and kicks arriving from the bus, which end the kicked user's
// subscriptions of that channel.
import { WalcastError, toErrorFrame } from '../errors.js';
import type { Logger } from '../log.js';
import { serverFrame, type ClientFrame } from '../protocol.js';
import type { Connection } from './connection.js';
import type { MembershipBatcher } from './membership.js';
import type { HubRegistry } from './registry.js';
import { Subscription } from './subscription.js';
import type { TtlSet } from '../util/ttl-set.js';

export interface CommandDeps {
  registry: HubRegistry;
  membership: MembershipBatcher;
  maxSubscriptions: number;
  log: Logger;
  /**
   * Channel ids recently found not to exist (a negative cache, a few seconds): a storm of
   * subscribes to unknown ids costs no query. Only absence is cached, never membership, so a
   * kick or an invite is seen by the next subscribe as before.
   */
  missing?: TtlSet;
}

export class Commands {
  /**
   * Subscriptions between their membership check and joining their hub, per (channel, user),
   * and the kicks seen meanwhile: a kick in that window must not be missed.
   */
  private readonly checking = new Map<string, { count: number; kicks: number }>();

  constructor(private readonly d: CommandDeps) {}

  run(conn: Connection, f: ClientFrame): void {
    switch (f.type) {
      case 'subscribe':
        void this.subscribe(conn, f.channel, f.since).catch((e: unknown) => {
          const sub = conn.subs.get(f.channel);
          if (sub && sub.state !== 'ended') this.end(sub);
          const err = toErrorFrame(e, this.d.log, f.channel);
          conn.send(serverFrame.error(err.code, err.channel));
        });
        return;
      case 'unsubscribe': {
        const sub = conn.subs.get(f.channel);
        if (sub) this.end(sub);
        conn.send(serverFrame.unsubscribed(f.channel));
        return;
      }
      case 'ping':
        conn.send(serverFrame.pong());
        return;
    }
  }

  /** Ends a subscription: off its hub (and topic), out of its connection. */
  end(sub: Subscription): void {
    if (sub.conn.subs.get(sub.channel) === sub) sub.conn.subs.delete(sub.channel);
    const hub = this.d.registry.get(sub.channel);
    if (hub) {
      hub.remove(sub);
      this.d.registry.release(hub);
    } else {
      sub.end('');
    }
  }

  /** The socket is gone: every subscription of it ends. */
  closed(conn: Connection): void {
    for (const sub of [...conn.subs.values()]) this.end(sub);
    conn.subs.clear();
  }

  /** A member was removed: end that user's subscriptions of the channel, telling each socket why. */
  kick(channel: string, user: string): void {
    const window = this.checking.get(`${channel}\u0000${user}`);
    if (window) window.kicks++;
    const hub = this.d.registry.get(channel);
    if (!hub) return;
    for (const sub of [...hub.subs]) {
      if (sub.conn.user !== user) continue;
      this.end(sub);
      sub.conn.send(serverFrame.unsubscribed(channel, 'kicked'));
    }
  }

  private async subscribe(conn: Connection, channel: string, since: number | undefined): Promise<void> {
    if (this.d.missing?.has(channel)) throw new WalcastError('channel_not_found');
    const previous = conn.subs.get(channel);
    if (previous) this.end(previous); // a new subscribe replaces the old one
    else if (conn.subs.size >= this.d.maxSubscriptions) {
      conn.send(serverFrame.error('too_many_subscriptions', channel, `at most ${this.d.maxSubscriptions} per connection`));
      return;
    }
    const sub = new Subscription(conn, channel);
    conn.subs.set(channel, sub);
    const key = `${channel}\u0000${conn.user}`;
    const window = this.checking.get(key) ?? { count: 0, kicks: 0 };
    this.checking.set(key, window);
    window.count++;
    const kicksBefore = window.kicks;
    let hub;
    let lastSeq: number;
    try {
      const { channel: ch, member } = await this.d.membership.check(channel, conn.user).catch((e: unknown) => {
        if (e instanceof WalcastError && e.code === 'channel_not_found') this.d.missing?.add(channel);
        throw e;
      });
      if (sub.ended) return;
      if (!member) throw new WalcastError('not_in_channel');
      hub = await this.d.registry.acquire(channel);
      if (sub.ended) return this.d.registry.release(hub);
      if (window.kicks !== kicksBefore) {
        this.d.registry.release(hub);
        throw new WalcastError('not_in_channel');
      }
      lastSeq = ch.last_seq;
    } finally {
      if (--window.count === 0) this.checking.delete(key);
    }
    // The channel's last committed seq as of the membership read: a subscription without
    // `since` delivers what commits after it.
    sub.startCatchUp(since ?? lastSeq);
    conn.send(serverFrame.subscribed(channel, lastSeq));
    try {
      await hub.catchUp(sub);
    } finally {
      if (sub.ended) this.end(sub);
    }
  }
}
