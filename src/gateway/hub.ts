// A channel served by this gateway. `last` is the highest seq it has seen contiguously; live
// events are applied only as last + 1 (duplicates dropped, gaps filled from the database
// first), so everything it fans out is in order, once, and committed. Subscriptions catch up
// from its ring, then from the database, and join the live topic in the same tick as their
// last catch-up frame: JavaScript is single-threaded, so no event can fall in between.
import type { Message } from '../chat/model.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { messageFrame } from './frames.js';
import { Ring } from './ring.js';
import type { Subscription } from './subscription.js';

export interface HubDeps {
  /** Committed messages with seq in (after, upTo], ascending, at most `limit`. */
  range(channel: string, after: number, limit: number, upTo?: number): Promise<Message[]>;
  /** Fan a frame out to every socket on the topic (uWS native publish: serialised once). */
  publish(topic: string, frame: string): void;
  ringSize: number;
  pageSize: number;
  log: Logger;
  metrics: Metrics;
}

const RETRY_MS = 250;
const MAX_CATCHUP_FAILURES = 8;

export class Hub {
  last = 0;
  ready: Promise<void> = Promise.resolve();
  readonly topic: string;
  readonly subs = new Set<Subscription>();
  private initialized = false;
  private closed = false;
  private early: Message[] = [];
  private readonly ring: Ring;
  private readonly pending = new Map<number, Message>();
  private filling = false;
  private wantResync = false;
  private readonly ahead = new Set<Subscription>();
  private liveCount = 0;

  constructor(
    readonly channel: string,
    private readonly deps: HubDeps,
  ) {
    this.topic = `c:${channel}`;
    this.ring = new Ring(deps.ringSize);
  }

  /** The channel's committed last_seq, read after the bus subscription was active. */
  init(lastSeq: number): void {
    this.last = lastSeq;
    this.initialized = true;
    const early = this.early;
    this.early = [];
    for (const m of early) this.onMessage(m);
  }

  onMessage(m: Message, committedAt?: number): void {
    if (this.closed) return;
    if (!this.initialized) {
      this.early.push(m);
      return;
    }
    if (m.seq <= this.last) {
      this.deps.metrics.duplicatesDropped.inc();
      return;
    }
    if (m.seq === this.last + 1) {
      this.apply(m);
      if (committedAt && this.liveCount > 0) this.deps.metrics.commitToSend.observe(Math.max(0, Date.now() - committedAt) / 1000);
      this.drainPending();
      return;
    }
    this.pending.set(m.seq, m);
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
    this.subs.add(sub);
    sub.state = 'catchup';
    let failures = 0;
    while (!sub.ended) {
      if (sub.cursor === this.last) return this.goLive(sub);
      if (sub.cursor > this.last) {
        sub.state = 'ahead';
        this.ahead.add(sub);
        return;
      }
      const fromRing = this.ring.lastSeq() === this.last ? this.ring.after(sub.cursor) : undefined;
      if (fromRing) {
        this.deliver(sub, fromRing.map((e) => e.frame), this.last);
        continue;
      }
      if (!sub.conn.hasRoom()) {
        await sub.conn.waitDrain();
        continue;
      }
      let rows: Message[];
      try {
        this.deps.metrics.catchupReads.inc();
        rows = await this.deps.range(this.channel, sub.cursor, this.deps.pageSize, this.last);
        failures = 0;
      } catch (e) {
        if (++failures >= MAX_CATCHUP_FAILURES) throw e;
        this.deps.log.warn('catch-up read failed; retrying', { channel: this.channel, err: e as Error });
        await sleep(RETRY_MS * failures);
        continue;
      }
      if (sub.ended) return;
      const frames: string[] = [];
      let cursor = sub.cursor;
      for (const r of rows) {
        if (r.seq !== cursor + 1) break;
        frames.push(messageFrame(r));
        cursor = r.seq;
      }
      if (frames.length === 0) {
        // Rows below `last` are committed, so this should not happen; back off rather than spin.
        await sleep(RETRY_MS);
        continue;
      }
      this.deliver(sub, frames, cursor);
    }
  }

  remove(sub: Subscription): void {
    if (!this.subs.delete(sub)) return;
    this.ahead.delete(sub);
    if (sub.state === 'live') {
      this.liveCount--;
      sub.conn.leaveTopic(this.topic);
    }
    sub.state = 'ended';
  }

  get size(): number {
    return this.subs.size;
  }

  close(): void {
    this.closed = true;
    this.pending.clear();
  }

  private deliver(sub: Subscription, frames: string[], cursor: number): void {
    sub.conn.send(frames);
    sub.cursor = cursor;
    this.deps.metrics.wsFramesOut.inc({ path: 'catchup' }, frames.length);
  }

  private goLive(sub: Subscription): void {
    sub.state = 'live';
    this.liveCount++;
    sub.conn.joinTopic(this.topic);
  }

  private apply(m: Message): void {
    this.last = m.seq;
    const frame = messageFrame(m);
    this.ring.push({ seq: m.seq, frame });
    if (this.liveCount > 0) {
      this.deps.publish(this.topic, frame);
      this.deps.metrics.wsFramesOut.inc({ path: 'live' }, this.liveCount);
    }
    if (this.ahead.size > 0) {
      for (const sub of this.ahead) {
        if (sub.ended || sub.cursor > this.last) continue;
        // The hub has reached what this client had already seen: it joins live from here.
        this.ahead.delete(sub);
        sub.cursor = this.last;
        this.goLive(sub);
      }
    }
  }

  private drainPending(): void {
    for (let m = this.pending.get(this.last + 1); m; m = this.pending.get(this.last + 1)) {
      this.pending.delete(m.seq);
      this.apply(m);
    }
    for (const seq of this.pending.keys()) if (seq <= this.last) this.pending.delete(seq);
  }

  /** One database reader per channel, shared by every gap and resync. */
  private async fill(): Promise<void> {
    if (this.filling) return;
    this.filling = true;
    try {
      while (!this.closed && (this.pending.size > 0 || this.wantResync)) {
        const resyncing = this.wantResync;
        this.wantResync = false;
        const upTo = resyncing ? undefined : Math.min(...this.pending.keys()) - 1;
        let rows: Message[];
        try {
          if (!resyncing) this.deps.metrics.gapFills.inc();
          rows = await this.deps.range(this.channel, this.last, this.deps.pageSize, upTo);
        } catch (e) {
          this.wantResync ||= resyncing;
          this.deps.log.warn('database read for the live stream failed; retrying', { channel: this.channel, err: e as Error });
          await sleep(RETRY_MS);
          continue;
        }
        for (const r of rows) if (r.seq === this.last + 1) this.apply(r);
        this.drainPending();
        if (resyncing && rows.length === this.deps.pageSize) this.wantResync = true;
        else if (!resyncing && rows.length === 0 && this.pending.size > 0) await sleep(RETRY_MS / 5);
      }
    } finally {
      this.filling = false;
    }
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
