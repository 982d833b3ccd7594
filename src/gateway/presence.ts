// Presence: who holds a live subscription to a channel, across every gateway. Each gateway knows
// its own subscribers and tells the others over the channel's bus topic: what changed, batched
// per event-loop turn, and its whole set whenever another gateway starts serving the channel and
// asks, and once a minute or so (repairing a lost change). Every gateway also says it is up once
// per heartbeat, for all its channels at once (the registry's `alive`); a gateway not heard from
// for three heartbeats (it died) is forgotten, and its users leave. Nothing is stored: presence
// lives as long as the gateways that hold it.
//
// Cost on a busy channel: one bus message per gateway per turn with changes (not one per user),
// one set per gateway per channel a minute, one `alive` per gateway per heartbeat. Subscribers asking for presence get presence_joined /
// presence_left frames; above `maxUsers` present users those frames stop and a
// presence_count frame (at most one per turn, when the count changed) replaces them. A count
// voids the per-user list a client holds, so per-user frames resume with the whole list
// (presence_joined for everyone present); they resume only once at most half of `maxUsers` are
// present, so a channel hovering at the threshold costs about a frame per change, not a list.
import { serverFrame } from '../protocol.js';

export interface PresenceOptions {
  /** This gateway's id (random per process). */
  gateway: string;
  /** Sends an event to every gateway serving the channel (the bus). One options object serves every channel. */
  broadcast(channel: string, event: { joined?: string[]; left?: string[]; users?: string[]; query?: boolean }): void;
  /** Sends a frame to the channel's presence subscribers (a uWS topic publish). */
  notify(channel: string, frame: string): void;
  /** Above this many present users, per-user frames give way to counts. */
  maxUsers: number;
  /** When another gateway last said it is up (its `alive` event), if it did. */
  aliveAt?(gateway: string): number | undefined;
  now?: () => number;
}

export class ChannelPresence {
  /** Live subscriptions on this gateway, per user. */
  private readonly local = new Map<string, number>();
  /** Other gateways' users, and when each gateway was last heard from. */
  private remote: Map<string, { users: Set<string>; seenAt: number }> | null = null;
  /** How many gateways (this one included) hold each present user. */
  private readonly holders = new Map<string, number>();
  /** Changes of our own set not yet told to the others (allocated while there are some). */
  private joined: Set<string> | null = null;
  private left: Set<string> | null = null;
  private flushing = false;
  private lastCount = -1;
  /** Sending counts (entered above `maxUsers`, left at `maxUsers / 2` or fewer). */
  private counting = false;
  /** Per-user frames resume at the next flush, with the whole list. */
  private resuming = false;

  constructor(
    readonly channel: string,
    private readonly o: PresenceOptions,
  ) {}

  /** Users present anywhere. */
  get users(): string[] {
    return [...this.holders.keys()];
  }

  get count(): number {
    return this.holders.size;
  }

  /** Whether per-user frames are on (at most `maxUsers` present, or at most half as many since counts began). */
  get perUser(): boolean {
    return !this.counting;
  }

  /** A subscription of `user` began on this gateway. */
  add(user: string): void {
    const n = this.local.get(user) ?? 0;
    this.local.set(user, n + 1);
    if (n === 0) {
      this.changed(user, true);
      this.hold(user);
    }
  }

  /** A subscription of `user` on this gateway ended. */
  remove(user: string): void {
    const n = this.local.get(user) ?? 0;
    if (n <= 1) {
      this.local.delete(user);
      if (n === 1) {
        this.changed(user, false);
        this.release(user);
      }
    } else {
      this.local.set(user, n - 1);
    }
  }

  /** Ask every other gateway for its set (this gateway just started serving the channel). */
  query(): void {
    this.o.broadcast(this.channel, { query: true });
  }

  /** What another gateway said. */
  onRemote(gateway: string, e: { joined?: string[]; left?: string[]; users?: string[]; query?: boolean }): void {
    if (gateway === this.o.gateway) return;
    if (e.query) {
      if (this.local.size > 0) this.o.broadcast(this.channel, { users: [...this.local.keys()] });
      return;
    }
    this.remote ??= new Map();
    let entry = this.remote.get(gateway);
    if (!entry) this.remote.set(gateway, (entry = { users: new Set(), seenAt: this.now() }));
    entry.seenAt = this.now();
    if (e.users) {
      const next = new Set(e.users);
      for (const u of entry.users) if (!next.has(u)) this.release(u);
      for (const u of next) if (!entry.users.has(u)) this.hold(u);
      entry.users = next;
    }
    for (const u of e.joined ?? []) {
      if (entry.users.has(u)) continue;
      entry.users.add(u);
      this.hold(u);
    }
    for (const u of e.left ?? []) {
      if (!entry.users.delete(u)) continue;
      this.release(u);
    }
  }

  /** The heartbeat: send our set if `refresh`; forget gateways not heard from (on this channel or by `alive`) for `expireMs`. */
  beat(expireMs: number, refresh = true): void {
    if (refresh && this.local.size > 0) this.o.broadcast(this.channel, { users: [...this.local.keys()] });
    if (!this.remote) return;
    const limit = this.now() - expireMs;
    for (const [gw, entry] of this.remote) {
      if (entry.seenAt >= limit || (this.o.aliveAt?.(gw) ?? 0) >= limit) continue;
      this.remote.delete(gw);
      for (const u of entry.users) this.release(u);
    }
    if (this.remote.size === 0) this.remote = null;
  }

  /** Whether anything is left to track (the hub may go once nobody is subscribed here). */
  get empty(): boolean {
    return this.local.size === 0;
  }

  /** The frames that bring a new presence subscriber up to date. */
  snapshotFrames(): string[] {
    if (!this.perUser) return [serverFrame.presenceCount(this.channel, this.count)];
    return this.users.map((u) => serverFrame.presence('presence_joined', this.channel, u));
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** Our own set changed: tell the others (batched per turn). */
  private changed(user: string, present: boolean): void {
    if (present) {
      if (!this.left?.delete(user)) (this.joined ??= new Set()).add(user);
    } else if (!this.joined?.delete(user)) (this.left ??= new Set()).add(user);
    this.schedule();
  }

  private hold(user: string): void {
    const n = this.holders.get(user) ?? 0;
    this.holders.set(user, n + 1);
    if (n === 0) this.emit(user, true);
  }

  private release(user: string): void {
    const n = this.holders.get(user) ?? 0;
    if (n <= 1) {
      this.holders.delete(user);
      if (n === 1) this.emit(user, false);
    } else this.holders.set(user, n - 1);
  }

  private emit(user: string, present: boolean): void {
    if (!this.counting && this.holders.size > this.o.maxUsers) this.counting = true;
    else if (this.counting && this.holders.size <= Math.floor(this.o.maxUsers / 2)) {
      this.counting = false;
      this.resuming = true;
    }
    // While a resume is pending, the list it sends covers this change.
    if (!this.counting && !this.resuming) this.o.notify(this.channel, serverFrame.presence(present ? 'presence_joined' : 'presence_left', this.channel, user));
    this.schedule();
  }

  private schedule(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      if (this.joined?.size || this.left?.size) this.o.broadcast(this.channel, { joined: [...(this.joined ?? [])], left: [...(this.left ?? [])] });
      this.joined = this.left = null;
      // Past the threshold, a count, at most once per turn. On the way back, a last count, then
      // the whole list (clients dropped theirs at the first count).
      if (this.resuming) {
        this.resuming = false;
        this.o.notify(this.channel, serverFrame.presenceCount(this.channel, this.count));
        for (const u of this.holders.keys()) this.o.notify(this.channel, serverFrame.presence('presence_joined', this.channel, u));
      } else if (this.counting && this.count !== this.lastCount) this.o.notify(this.channel, serverFrame.presenceCount(this.channel, this.count));
      this.lastCount = this.count;
    });
  }
}
