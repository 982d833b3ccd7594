// What a client's frames do: subscribe (membership check, then catch-up from `since`, then
// live), unsubscribe, ping. Membership changes need nothing here: a member_left travels in the
// channel's log, after the membership check of any subscription that could still see it, and
// the hub ends the leaving user's subscriptions at that frame.
import type { Membership } from '../chat/channels.js';
import { WalcastError, toErrorFrame } from '../errors.js';
import type { Logger } from '../log.js';
import { serverFrame, type ClientFrame, type LeaveReason } from '../protocol.js';
import type { Connection } from './connection.js';
import type { MembershipBatcher } from './membership.js';
import type { Peer } from './peer.js';
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
  constructor(private readonly d: CommandDeps) {}

  run(conn: Connection, f: ClientFrame): void {
    switch (f.type) {
      case 'subscribe':
        return this.start(conn, f.channel, f.since, f.presence === true);
      case 'unsubscribe': {
        const sub = conn.subs.get(f.channel);
        if (sub) this.end(sub);
        conn.send(serverFrame.unsubscribed(f.channel));
        return;
      }
      case 'typing': {
        // Only a member, i.e. a socket subscribed to the channel, may say so.
        const sub = conn.subs.get(f.channel);
        const hub = sub && sub.state !== 'pending' && !sub.ended ? this.d.registry.get(f.channel) : undefined;
        if (!sub || !hub) conn.send(serverFrame.error('invalid_arguments', f.channel, 'subscribe to the channel before typing in it'));
        else hub.localTyping(sub);
        return;
      }
      case 'ping':
        conn.send(serverFrame.pong());
        return;
    }
  }

  /** Runs a subscription until it ends; a failure is answered with an `error` frame for the channel. */
  start(conn: Peer, channel: string, since: number | undefined, presence: boolean, checked?: Membership): void {
    void this.subscribe(conn, channel, since, presence, checked).catch((e: unknown) => {
      const sub = conn.subs.get(channel);
      if (sub && sub.state !== 'ended') this.end(sub);
      const err = toErrorFrame(e, this.d.log, channel);
      conn.send(serverFrame.error(err.code, err.channel));
    });
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
    sub.conn.subscriptionEnded();
  }

  /** The socket or stream is gone: every subscription of it ends. */
  closed(conn: Peer): void {
    for (const sub of conn.subs.values()) this.end(sub);
    conn.subs.clear();
  }

  /** The subscription's user left the channel at the last frame it was sent: end it, saying why. */
  left(sub: Subscription, reason: LeaveReason): void {
    if (sub.state === 'ended') return;
    this.end(sub);
    sub.conn.send(serverFrame.unsubscribed(sub.channel, reason));
  }

  /**
   * The user's membership of the channel, if they may subscribe to it: channel_not_found (also
   * for a private channel they are not in) or not_in_channel otherwise.
   */
  async check(channel: string, user: string): Promise<Membership> {
    const m = await this.membership(channel, user);
    refuseNonMember(m);
    return m;
  }

  private membership(channel: string, user: string): Promise<Membership> {
    if (this.d.missing?.has(channel)) return Promise.reject(new WalcastError('channel_not_found'));
    return this.d.membership.check(channel, user).catch((e: unknown) => {
      if (e instanceof WalcastError && e.code === 'channel_not_found') this.d.missing?.add(channel);
      throw e;
    });
  }

  /**
   * Subscribes and serves the subscription until it ends. `checked`: a membership the caller
   * has just checked (an SSE stream checks every channel before it answers).
   */
  private async subscribe(conn: Peer, channel: string, since: number | undefined, presence: boolean, checked?: Membership): Promise<void> {
    if (!checked && this.d.missing?.has(channel)) throw new WalcastError('channel_not_found');
    const previous = conn.subs.get(channel);
    if (previous) this.end(previous); // a new subscribe replaces the old one
    else if (conn.subs.size >= this.d.maxSubscriptions) {
      conn.send(serverFrame.error('too_many_subscriptions', channel, `at most ${this.d.maxSubscriptions} per connection`));
      return;
    }
    const sub = new Subscription(conn, channel, presence);
    conn.subs.set(channel, sub);
    const m = checked ?? (await this.membership(channel, conn.user));
    if (sub.ended) return;
    refuseNonMember(m);
    const { channel: ch, joinedSeq } = m;
    const hub = await this.d.registry.acquire(channel);
    if (sub.ended) return this.d.registry.release(hub);
    // The channel's last committed seq as of the membership read: a subscription without `since`
    // delivers what commits after it. Nothing from before the user (last) joined is theirs.
    const lastSeq = ch.last_seq;
    const cursor = Math.max(since ?? lastSeq, joinedSeq - 1);
    sub.startCatchUp(cursor);
    conn.send(serverFrame.subscribed(channel, lastSeq, cursor));
    try {
      await hub.catchUp(sub);
    } finally {
      if (sub.ended) this.end(sub);
    }
  }
}

/** A private channel is invisible to non-members, as absent as an unknown one. */
function refuseNonMember(m: Membership): void {
  if (!m.member) throw new WalcastError(m.channel.is_private ? 'channel_not_found' : 'not_in_channel');
}
