// One channel subscription of the SDK: delivers the channel's messages in seq order, each once,
// through `onMessage` and/or as an async iterator, and remembers the last seq delivered so the
// client can resume from it after any reconnect.
import type { Message } from '../protocol.js';

export interface SubscribeOptions {
  /** Deliver every message with seq > since, then live ones. Without it: live ones only. */
  since?: number;
  onMessage?: (message: Message) => void;
  /** The subscription ended for good: unsubscribed, replaced, kicked, a permanent server error (e.g. not_in_channel), or the client closed. */
  onEnd?: (reason: string | undefined) => void;
}

/** Why `ready` rejected or the subscription ended: a protocol error code or an unsubscribe reason. */
export class SubscriptionEnded extends Error {
  constructor(readonly reason: string) {
    super(`subscription ended: ${reason}`);
    this.name = 'SubscriptionEnded';
  }
}

/** What a subscription needs of its client. */
export interface SubscriptionOwner {
  _unsubscribe(sub: ChannelSubscription): void;
}

/**
 * A subscription to one channel. Messages come through `onMessage` and/or as an async iterator
 * (`for await (const m of sub)`; leaving the loop unsubscribes). `lastSeq` is the last seq
 * delivered (or the channel's seq at subscribe, for a live-only subscription).
 */
export class ChannelSubscription implements AsyncIterable<Message> {
  lastSeq: number | undefined;
  state: 'pending' | 'active' | 'ended' = 'pending';
  endReason: string | undefined;
  /** Frames dropped as duplicates (seq already delivered), and resubscriptions after a gap. */
  duplicatesDropped = 0;
  gapsRepaired = 0;
  /** Resolves at the first `subscribed`; rejects (SubscriptionEnded) if the subscription ends before. */
  readonly ready: Promise<void>;
  private readyResolve!: () => void;
  private readyReject!: (e: unknown) => void;
  private readonly queue: Message[] = [];
  private readonly takers: ((r: IteratorResult<Message>) => void)[] = [];
  /** @internal Waiting for `subscribed` after a (re)subscribe: gaps before it are expected, not repaired. */
  resubscribing = true;
  /** @internal Failed (temporary) subscribe attempts in a row. */
  retryAttempt = 0;

  constructor(
    private readonly owner: SubscriptionOwner,
    readonly channel: string,
    private readonly opts: SubscribeOptions,
  ) {
    this.lastSeq = opts.since;
    this.ready = new Promise<void>((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.ready.catch(() => {}); // nobody has to await it
  }

  unsubscribe(): void {
    if (this.state === 'ended') return;
    this.owner._unsubscribe(this);
    this.end(undefined);
  }

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return {
      next: () => {
        const m = this.queue.shift();
        if (m) return Promise.resolve({ value: m, done: false });
        if (this.state === 'ended') return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.takers.push(resolve));
      },
      return: () => {
        this.unsubscribe();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  /** @internal */
  _subscribed(seq: number): void {
    if (this.lastSeq === undefined) this.lastSeq = seq;
    this.resubscribing = false;
    this.retryAttempt = 0;
    if (this.state === 'pending') this.state = 'active';
    this.readyResolve();
  }

  /** @internal Applies a message frame: delivers seq == lastSeq + 1 only. Returns false on a gap. */
  _message(seq: number, m: Message): boolean {
    if (this.state === 'ended') return true;
    const last = this.lastSeq;
    if (last !== undefined && seq <= last) {
      this.duplicatesDropped++;
      return true;
    }
    if (last !== undefined && seq !== last + 1) return this.resubscribing; // a gap: caller resubscribes
    this.lastSeq = seq;
    this.opts.onMessage?.(m);
    const taker = this.takers.shift();
    if (taker) taker({ value: m, done: false });
    else this.queue.push(m);
    return true;
  }

  /** @internal */
  end(reason: string | undefined): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.endReason = reason;
    this.readyReject(new SubscriptionEnded(reason ?? 'unsubscribed'));
    for (const t of this.takers.splice(0)) t({ value: undefined, done: true });
    this.opts.onEnd?.(reason);
  }
}
