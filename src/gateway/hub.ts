// A channel served by this gateway: its change log (messages, edits, deletes, reactions,
// members joining and leaving: every frame that carries a seq). `last` is the highest seq it has
// seen contiguously; live events are applied only as last + 1 (duplicates dropped, gaps filled
// from the database first), so everything it fans out is in order, once, and committed.
// Subscriptions catch up from its ring, then from the database, and join the live topic in the
// same tick as their last catch-up frame: JavaScript is single-threaded, so no event can fall in
// between. A member_left ends the leaving user's subscriptions right after that frame, wherever
// each subscription is (live, catching up, or ahead).
import type { LeaveReason, Message } from '../protocol.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { TYPING_INTERVAL_MS, serverFrame, sseEventId, type ChangeFrame } from '../protocol.js';
import type { Peer } from './peer.js';
import { ChannelPresence, type PresenceOptions } from './presence.js';
import { Ring, type Entry } from './ring.js';
import type { Subscription } from './subscription.js';

/** A change as the bus brings it: the frame, and the message it touched (after the change). */
export interface LiveChange {
  frame: ChangeFrame;
  target?: Message;
  committedAt?: number;
}

/** The ring's entry for a frame: serialised once. */
export function toEntry(f: ChangeFrame): Entry {
  const entry: Entry = { seq: f.seq, frame: serverFrame.change(f) };
  if (f.type === 'member_left') entry.left = { user: f.user, reason: f.reason };
  return entry;
}

export interface PublishOptions {
  /** The frame's SSE event id (`<channel>:<seq>`), for frames of the change log. */
  id?: string;
  /** A peer that must not get it (the typing user's own socket). */
  except?: Peer;
}

export interface HubDeps {
  /** The committed change log with seq in (after, upTo], ascending, at most `limit`. */
  readLog(channel: string, after: number, limit: number, upTo?: number): Promise<ChangeFrame[]>;
  /** A subscription's user left the channel at a frame it was just sent: end it, telling the client why. */
  onLeft(sub: Subscription, reason: LeaveReason): void;
  /** How presence reaches the other gateways and the presence subscribers (shared by every hub). */
  presence: PresenceOptions;
  /** Tells the other gateways that a user here is typing. */
  broadcastTyping(channel: string, user: string): void;
  /** Fan a frame out to every peer on the topic (serialised once); see PublishOptions. */
  publish(topic: string, frame: string, o?: PublishOptions): void;
  ringSize: number;
  ringBytes: number;
  pageSize: number;
  /** Socket-frames to fan out before yielding the event loop while applying a page from the database (0: no limit). */
  fanoutBudget?: number;
  log: Logger;
  metrics: Metrics;
}

/** The uWS topic of a channel's presence subscribers. */
export const presenceTopicOf = (channel: string): string => `p:${channel}`;

const RETRY_MS = 250;
const MAX_CATCHUP_FAILURES = 8;

export class Hub {
  last = 0;
  ready: Promise<void> = Promise.resolve();
  readonly topic: string;
  readonly subs = new Set<Subscription>();
  private initialized = false;
  private closed = false;
  /** Events that came before the hub knew where it starts (allocated only then). */
  private early: LiveChange[] | null = null;
  private readonly ring: Ring;
  /** Events past a gap, by seq, until the gap is filled (allocated while there are some). */
  private pending: Map<number, LiveChange> | null = null;
  private filling = false;
  private wantResync = false;
  private ahead: Set<Subscription> | null = null;
  private liveCount = 0;
  /**
   * Catch-up pages being read, by their start (`after`): a subscription whose cursor falls inside
   * one joins it instead of querying, so N clients resuming the channel cost about one read.
   */
  private pages: Map<number, { after: number; upTo: number; rows: Promise<Entry[]> }> | null = null;

  /** Who holds a live subscription to the channel, on every gateway. */
  readonly presence: ChannelPresence;
  /** Presence subscribers' topic. */
  readonly presenceTopic: string;
  /** When each user last had a typing indicator forwarded (at most one per TYPING_INTERVAL_MS). */
  private typingAt: Map<string, number> | null = null;

  constructor(
    readonly channel: string,
    private readonly deps: HubDeps,
  ) {
    this.topic = `c:${channel}`;
    this.presenceTopic = presenceTopicOf(channel);
    this.ring = new Ring(deps.ringSize, deps.ringBytes);
    this.presence = new ChannelPresence(channel, deps.presence);
  }

  /**
   * A user of this gateway is typing (`sub` is their subscription): the channel's other sockets
   * here get it at once, the other gateways through the bus. False when throttled.
   */
  localTyping(sub: Subscription): boolean {
    if (!this.mayType(sub.conn.user)) return false;
    this.deps.publish(this.topic, serverFrame.typing(this.channel, sub.conn.user), { except: sub.conn });
    this.deps.broadcastTyping(this.channel, sub.conn.user);
    return true;
  }

  /** A user on another gateway is typing. */
  remoteTyping(user: string): void {
    if (this.liveCount > 0 && this.mayType(user)) this.deps.publish(this.topic, serverFrame.typing(this.channel, user));
  }

  private mayType(user: string): boolean {
    const now = Date.now();
    this.typingAt ??= new Map();
    const last = this.typingAt.get(user);
    if (last !== undefined && now - last < TYPING_INTERVAL_MS) return false;
    if (this.typingAt.size > 10_000) this.typingAt.clear();
    this.typingAt.set(user, now);
    return true;
  }

  /** The channel's committed last_seq, read after the bus subscription was active. */
  init(lastSeq: number): void {
    this.last = lastSeq;
    this.initialized = true;
    const early = this.early ?? [];
    this.early = null;
    for (const c of early) this.onChange(c);
  }

  onChange(c: LiveChange): void {
    if (this.closed) return;
    if (!this.initialized) {
      (this.early ??= []).push(c);
      return;
    }
    const seq = c.frame.seq;
    if (seq <= this.last) {
      this.deps.metrics.duplicatesDropped.inc();
      return;
    }
    if (seq === this.last + 1) {
      this.apply(c.frame, c.target);
      if (c.committedAt && this.liveCount > 0) this.deps.metrics.commitToSend.observe(Math.max(0, Date.now() - c.committedAt) / 1000);
      this.drainPending();
      return;
    }
    (this.pending ??= new Map()).set(seq, c);
    void this.fill();
  }

  /** Events may have been lost upstream: re-read the channel from the database from `last` on. */
  resync(): void {
    if (this.closed || !this.initialized) return;
    this.deps.metrics.resyncs.inc();
    this.wantResync = true;
    void this.fill();
  }

  /** Serve a subscription from its cursor: ring, then database pages, then live. */
  async catchUp(sub: Subscription): Promise<void> {
    if (sub.state !== 'catchup') return;
    this.subs.add(sub);
    this.presence.add(sub.conn.user);
    if (sub.presence) {
      sub.conn.joinTopic(this.presenceTopic);
      sub.conn.send(this.presence.snapshotFrames());
    }
    let failures = 0;
    // Rows read but not sent yet: a page is sent in slices that fit the socket's room.
    let page: Entry[] = [];
    while (!sub.ended) {
      if (sub.cursor === this.last) {
        // Join live traffic only with room for it: a buffer filled by catch-up would make the
        // next live burst close a client that reads perfectly well.
        if (!sub.conn.hasRoomFor(sub.conn.headroom)) {
          await sub.conn.waitRoomFor(sub.conn.headroom);
          continue;
        }
        return this.goLive(sub);
      }
      if (sub.cursor > this.last) {
        sub.waitAhead();
        (this.ahead ??= new Set()).add(sub);
        return;
      }
      while (page.length > 0 && page[0]!.seq <= sub.cursor) page.shift();
      const source =
        page.length > 0 && page[0]!.seq === sub.cursor + 1 ? page : this.ring.lastSeq() === this.last ? this.ring.after(sub.cursor) : undefined;
      if (source && source.length > 0) {
        // Never push more than the socket can hold: a large backlog (big messages, or a small
        // WALCAST_WS_MAX_BACKPRESSURE) would otherwise close a resuming client as a slow consumer.
        const next = Buffer.byteLength(source[0]!.frame);
        if (!sub.conn.hasRoomFor(next)) {
          await sub.conn.waitRoomFor(next);
          continue;
        }
        const slice = fit(source, sub.conn.room());
        // The user left the channel in this stretch: deliver up to that frame, then end.
        const leftAt = slice.findIndex((e) => e.left?.user === sub.conn.user);
        if (leftAt >= 0) {
          this.deliver(sub, slice.slice(0, leftAt + 1));
          return this.deps.onLeft(sub, slice[leftAt]!.left!.reason);
        }
        this.deliver(sub, slice);
        continue;
      }
      let rows: Entry[];
      try {
        rows = await this.page(sub.cursor);
        failures = 0;
      } catch (e) {
        if (++failures >= MAX_CATCHUP_FAILURES) throw e;
        this.deps.log.warn('catch-up read failed; retrying', { channel: this.channel, err: e as Error });
        await sleep(RETRY_MS * failures);
        continue;
      }
      if (sub.ended) return;
      // A shared page may start before this cursor; keep only the contiguous run after it.
      page = [];
      let cursor = sub.cursor;
      for (const r of rows) {
        if (r.seq <= cursor) continue;
        if (r.seq !== cursor + 1) break;
        page.push(r);
        cursor = r.seq;
      }
      if (page.length === 0) {
        // Rows below `last` are committed, so this should not happen; back off rather than spin.
        await sleep(RETRY_MS);
      }
    }
  }

  /**
   * The page of committed rows after `after` (up to the hub's `last`), serialised once: joins a
   * read in flight that covers `after + 1`, or starts one. A page that ends where the ring begins
   * (or at `last`, when the ring is empty) is put into the ring, so later resumers of the same
   * stretch need no read at all.
   */
  private page(after: number): Promise<Entry[]> {
    let best: { after: number; upTo: number; rows: Promise<Entry[]> } | undefined;
    for (const p of this.pages?.values() ?? []) {
      if (p.after <= after && after + 1 <= Math.min(p.upTo, p.after + this.deps.pageSize) && (!best || p.after > best.after)) best = p;
    }
    if (best) {
      this.deps.metrics.catchupCoalesced.inc();
      return best.rows;
    }
    const upTo = this.last;
    this.deps.metrics.catchupReads.inc();
    const rows = this.deps.readLog(this.channel, after, this.deps.pageSize, upTo).then((rs) => {
      const entries: Entry[] = [];
      let expect = after + 1;
      for (const r of rs) {
        if (r.seq !== expect) break;
        entries.push(toEntry(r));
        expect++;
      }
      if (!this.closed && entries.length > 0) {
        const end = entries[entries.length - 1]!.seq;
        const first = this.ring.firstSeq();
        if (first === undefined ? end === this.last : end === first - 1) this.ring.prepend(entries);
      }
      return entries;
    });
    const entry = { after, upTo, rows };
    (this.pages ??= new Map()).set(after, entry);
    const done = () => {
      if (this.pages?.get(after) !== entry) return;
      this.pages.delete(after);
      if (this.pages.size === 0) this.pages = null;
    };
    rows.then(done, done);
    return rows;
  }

  /** Subscriptions receiving the live topic. */
  get liveSubscribers(): number {
    return this.liveCount;
  }

  /** Ends a subscription of this channel (idempotent). */
  remove(sub: Subscription): void {
    const was = sub.end(this.topic);
    if (!this.subs.delete(sub)) return;
    this.ahead?.delete(sub);
    if (was === 'live') this.liveCount--;
    if (sub.presence) sub.conn.leaveTopic(this.presenceTopic);
    this.presence.remove(sub.conn.user);
  }

  /** Users of the hub: its subscriptions, and anything holding it (a presence lookup). */
  get size(): number {
    return this.subs.size + this.holds;
  }

  /** Holders other than subscriptions (the registry keeps the hub while any remain). */
  holds = 0;

  close(): void {
    this.closed = true;
    this.pending = null;
  }

  private deliver(sub: Subscription, entries: Entry[]): void {
    sub.deliver(entries);
    this.deps.metrics.wsFramesOut.inc({ path: 'catchup' }, entries.length);
  }

  private goLive(sub: Subscription, cursor?: number): void {
    sub.goLive(this.topic, cursor);
    this.liveCount++;
  }

  /** Applies the next frame of the log (seq == last + 1). */
  private apply(f: ChangeFrame, target?: Message): void {
    this.last = f.seq;
    const entry = toEntry(f);
    this.ring.push(entry);
    // A resuming client reading the ring gets the message as the database has it now.
    if (target) this.ring.replace(target.seq, serverFrame.message(target));
    if (this.liveCount > 0) {
      this.deps.publish(this.topic, entry.frame, { id: sseEventId(this.channel, f.seq) });
      this.deps.metrics.wsFramesOut.inc({ path: 'live' }, this.liveCount);
    }
    if (entry.left) {
      for (const sub of [...this.subs]) {
        if (sub.conn.user !== entry.left.user) continue;
        // Live ones just got the frame; ahead ones had seen it: both end here. Those catching
        // up meet it in their own stretch.
        if (sub.state === 'live' || sub.state === 'ahead') this.deps.onLeft(sub, entry.left.reason);
      }
    }
    if (this.ahead) {
      for (const sub of this.ahead) {
        if (sub.ended || sub.cursor > this.last) continue;
        // The hub has reached what this client had already seen: it joins live from here.
        this.ahead.delete(sub);
        this.goLive(sub, this.last);
      }
      if (this.ahead?.size === 0) this.ahead = null;
    }
  }

  private drainPending(): void {
    const pending = this.pending;
    if (!pending) return;
    for (let c = pending.get(this.last + 1); c; c = pending.get(this.last + 1)) {
      pending.delete(c.frame.seq);
      this.apply(c.frame, c.target);
    }
    for (const seq of pending.keys()) if (seq <= this.last) pending.delete(seq);
    if (pending.size === 0 && this.pending === pending) this.pending = null;
  }

  /** One database reader per channel, shared by every gap and resync. */
  private async fill(): Promise<void> {
    if (this.filling) return;
    this.filling = true;
    try {
      while (!this.closed && (this.pending || this.wantResync)) {
        const resyncing = this.wantResync;
        this.wantResync = false;
        const upTo = resyncing || !this.pending ? undefined : Math.min(...this.pending.keys()) - 1;
        let rows: ChangeFrame[];
        try {
          if (!resyncing) this.deps.metrics.gapFills.inc();
          rows = await this.deps.readLog(this.channel, this.last, this.deps.pageSize, upTo);
        } catch (e) {
          this.wantResync ||= resyncing;
          this.deps.log.warn('database read for the live stream failed; retrying', { channel: this.channel, err: e as Error });
          await sleep(RETRY_MS);
          continue;
        }
        // Apply the page in budget-sized slices, yielding between them: a gap fill on a channel
        // with a huge audience must not hold the event loop (and every other channel) for long.
        const budget = this.deps.fanoutBudget ?? 0;
        let spent = 0;
        for (const r of rows) {
          if (this.closed) break;
          if (r.seq !== this.last + 1) continue;
          this.apply(r);
          spent += Math.max(1, this.liveCount);
          if (budget > 0 && spent >= budget) {
            spent = 0;
            await new Promise<void>((resolve) => setImmediate(resolve));
          }
        }
        this.drainPending();
        if (resyncing && rows.length === this.deps.pageSize) this.wantResync = true;
        else if (!resyncing && rows.length === 0 && this.pending) await sleep(RETRY_MS / 5);
      }
    } finally {
      this.filling = false;
    }
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The leading entries whose frames fit in `bytes` (at least one: the caller checked it fits). */
function fit(entries: readonly Entry[], bytes: number): Entry[] {
  let used = 0;
  let n = 0;
  for (; n < entries.length; n++) {
    const size = Buffer.byteLength(entries[n]!.frame);
    if (n > 0 && used + size > bytes) break;
    used += size;
  }
  return entries.slice(0, n);
}
