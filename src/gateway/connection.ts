// One client WebSocket: its user, its subscriptions, and safe sends. After uWS ran the close
// handler the socket object must never be touched again, so every send goes through here.
import type { WebSocket } from '../http/uws.js';
import { CLOSE } from '../protocol.js';
import type { Peer } from './peer.js';
import type { Entry } from './ring.js';
import type { Subscription } from './subscription.js';
import type { CommandRate } from './command-rate.js';
import { SmallMap } from '../util/small-map.js';

/** The topic every socket holds and nothing publishes to (see attach). */
const ANCHOR_TOPIC = '#';

/** How often a socket waiting for drain is re-checked, in case uWS emits no drain event. */
const DRAIN_CHECK_MS = 250;

export interface SocketData {
  conn: Connection;
}

export class Connection implements Peer {
  readonly transport = 'ws';
  closed = false;
  /** When its token expires (ms since the epoch); 0 until authenticated. */
  expiresAt = 0;
  /** The token's `iat` (seconds), for revocations. */
  iat: number | undefined = undefined;
  /** @internal token-lifetime.ts bookkeeping. */
  lifeStage = 0;
  lifeBucket = 0;
  /** The first `auth` of a socket opened without a token is being verified. */
  authPending = false;
  /** Frames received while that first `auth` is verified, run once it succeeds. */
  queued: string[] | null = null;
  /** Its frame rate (allocated at its first frame). */
  rate: CommandRate | null = null;
  readonly subs = new SmallMap<string, Subscription>();
  private ws: WebSocket<SocketData> | null = null;
  /** Catch-ups waiting for the buffer to drain (allocated only while someone waits). */
  private drainWaiters: { bytes: number; resolve: () => void }[] | null = null;
  private drainTimer: NodeJS.Timeout | null = null;
  private releasing = false;

  constructor(
    readonly id: number,
    /** The authenticated user; '' on a socket opened without a token, until its `auth` frame. */
    public user: string,
    /** The client's address (per-address limits). */
    readonly address: string,
    private readonly maxBackpressure: number,
    private readonly onSlow: (conn: Connection) => void,
  ) {}

  attach(ws: WebSocket<SocketData>): void {
    this.ws = ws;
    // Every socket holds one topic that is never published to, so that leaving its last real
    // topic never frees its uWS subscriber: uWS drops a freed subscriber's pending publishes
    // (a member_left published just before the leaver's subscription ends would be lost), and
    // a socket with no subscriber takes uSockets' writev fast path for big frames, which can
    // lose the writable poll (connection.ts waitRoomFor).
    ws.subscribe(ANCHOR_TOPIC);
  }

  /** Sends frames in one corked batch. A frame uWS dropped would leave a gap, so the socket is closed instead (the client resumes by seq). */
  send(frames: string | readonly string[]): boolean {
    const ws = this.ws;
    if (this.closed || !ws) return false;
    let dropped = false;
    ws.cork(() => {
      if (typeof frames === 'string') dropped = ws.send(frames) === 2;
      else for (const f of frames) if (ws.send(f) === 2) { dropped = true; break; }
    });
    if (dropped && !this.closed) {
      this.onSlow(this);
      this.end(CLOSE.slow_consumer, 'slow_consumer');
      return false;
    }
    return !this.closed;
  }

  sendLog(_channel: string, entries: readonly Entry[]): boolean {
    return this.send(entries.map((e) => e.frame));
  }

  /** A socket keeps running without subscriptions. */
  subscriptionEnded(): void {}

  /**
   * Whether `bytes` more may be queued now without taking the socket past the backpressure
   * limit. uWS refuses a send only once the buffer is already over the limit, so a big frame
   * queued near it would make the next send (even a pong) be dropped and the socket closed. An
   * empty buffer always takes one frame, however big.
   */
  hasRoomFor(bytes: number): boolean {
    if (this.closed || !this.ws) return false;
    const buffered = this.ws.getBufferedAmount();
    return buffered === 0 || buffered + bytes <= this.maxBackpressure;
  }

  /** Bytes that may still be queued without passing the backpressure limit. */
  room(): number {
    return this.closed || !this.ws ? 0 : Math.max(0, this.maxBackpressure - this.ws.getBufferedAmount());
  }

  /** Half the limit: what a subscription keeps free for live traffic when it joins it. */
  get headroom(): number {
    return this.maxBackpressure / 2;
  }

  /**
   * Resolves once `bytes` more fit (hasRoomFor), or the socket closed. Waiters are released after
   * uWS's writable dispatch has returned, never inside it: a send of 16 KiB or more made there
   * (uSockets' writev fast path, taken when nothing is buffered and the socket has no topic)
   * loses its writable poll when the dispatch returns, so the unsent rest would sit in the buffer
   * with no further drain event and the socket would stall for good. A timer re-checks too,
   * because uWS emits no drain when the buffer empties through another write.
   */
  waitRoomFor(bytes: number): Promise<void> {
    if (this.closed || this.hasRoomFor(bytes)) return Promise.resolve();
    const p = new Promise<void>((resolve) => (this.drainWaiters ??= []).push({ bytes, resolve }));
    this.armDrainCheck();
    return p;
  }

  /** uWS's drain handler: the socket took some of its buffer. */
  onDrain(): void {
    if (!this.drainWaiters || this.releasing) return;
    this.releasing = true;
    setImmediate(() => {
      this.releasing = false;
      this.releaseWaiters();
    });
  }

  private armDrainCheck(): void {
    if (this.drainTimer) return;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = null;
      this.releaseWaiters();
      if (this.drainWaiters) this.armDrainCheck();
    }, DRAIN_CHECK_MS);
  }

  /** Releases the waiters whose bytes fit now (all of them once the socket closed). */
  private releaseWaiters(): void {
    if (!this.drainWaiters) return;
    const ready = this.drainWaiters.filter((w) => this.closed || this.hasRoomFor(w.bytes));
    const waiting = this.drainWaiters.filter((w) => !ready.includes(w));
    this.drainWaiters = waiting.length ? waiting : null;
    if (!this.drainWaiters && this.drainTimer) {
      clearTimeout(this.drainTimer);
      this.drainTimer = null;
    }
    for (const w of ready) w.resolve();
  }

  /** Publishes to a topic's other sockets (uWS skips this one). */
  publishToOthers(topic: string, frame: string): void {
    if (!this.closed) this.ws?.publish(topic, frame);
  }

  joinTopic(topic: string): void {
    if (!this.closed) this.ws?.subscribe(topic);
  }

  leaveTopic(topic: string): void {
    if (!this.closed) this.ws?.unsubscribe(topic);
  }

  end(code: number, reason: string): void {
    if (this.closed || !this.ws) return;
    const ws = this.ws;
    ws.cork(() => ws.end(code, reason));
  }

  /** Called from uWS's close handler: from here on the socket is gone. */
  markClosed(): void {
    this.closed = true;
    this.ws = null;
    this.releaseWaiters();
  }
}
