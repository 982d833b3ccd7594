// One channel subscription of the SDK: delivers the channel's change log (new messages, edits,
// deletes, reactions, members joining and leaving) in seq order, each frame once, through typed
// callbacks and/or async iterators, and remembers the last seq delivered, whatever the frame's
// type, so the client resumes from it after any reconnect. Typing and presence are ephemeral:
// no seq, best effort.
import type { ChangeFrame, Message } from '../protocol.js';

type Of<T extends ChangeFrame['type']> = Extract<ChangeFrame, { type: T }>;

export interface SubscribeOptions {
  /** Deliver every change with seq > since, then live ones. Without it: live ones only. */
  since?: number;
  /** Also receive presence_joined / presence_left for this channel. */
  presence?: boolean;
  /** A new message. */
  onMessage?: (message: Message) => void;
  onMessageChanged?: (frame: Of<'message_changed'>) => void;
  onMessageDeleted?: (frame: Of<'message_deleted'>) => void;
  onReactionAdded?: (frame: Of<'reaction_added'>) => void;
  onReactionRemoved?: (frame: Of<'reaction_removed'>) => void;
  onMemberJoined?: (frame: Of<'member_joined'>) => void;
  onMemberLeft?: (frame: Of<'member_left'>) => void;
  /** Every frame of the change log, whatever its type, in seq order (after the typed callback). */
  onChange?: (frame: ChangeFrame) => void;
  /** Someone (else) is typing in the channel. */
  onTyping?: (user: string) => void;
  /** Someone's presence in the channel changed (needs `presence: true`). */
  onPresence?: (change: { user: string; present: boolean }) => void;
  /** On channels with more present users than the server lists one by one: how many are present. */
  onPresenceCount?: (count: number) => void;
  /** The subscription ended for good: unsubscribed, replaced, kicked, left, a permanent server error (e.g. not_in_channel), or the client closed. */
  onEnd?: (reason: string | undefined) => void;
}

const HANDLERS = {
  message_changed: 'onMessageChanged',
  message_deleted: 'onMessageDeleted',
  reaction_added: 'onReactionAdded',
  reaction_removed: 'onReactionRemoved',
  member_joined: 'onMemberJoined',
  member_left: 'onMemberLeft',
} as const;

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
 * A subscription to one channel. New messages come through `onMessage` and/or as an async
 * iterator (`for await (const m of sub)`; leaving the loop unsubscribes); every change through
 * the typed callbacks, `onChange`, or `sub.changes()`. `lastSeq` is the last seq delivered (or
 * the channel's seq at subscribe, for a live-only subscription).
 */
export class ChannelSubscription implements AsyncIterable<Message> {
  lastSeq: number | undefined;
  /** Where delivery started, as the server confirmed it (your `since`, later if you joined the channel after it). */
  startedAfter: number | undefined;
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
  /** Change frames waiting for a `changes()` reader (only once someone asked for them). */
  private changeQueue: ChangeFrame[] | null = null;
  private readonly changeTakers: ((r: IteratorResult<ChangeFrame>) => void)[] = [];
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

  /** Every change frame from now on, as an async iterator (leaving the loop unsubscribes). */
  changes(): AsyncIterable<ChangeFrame> {
    this.changeQueue ??= [];
    const queue = this.changeQueue;
    return {
      [Symbol.asyncIterator]: () => ({
        next: () => {
          const f = queue.shift();
          if (f) return Promise.resolve({ value: f, done: false });
          if (this.state === 'ended') return Promise.resolve({ value: undefined, done: true });
          return new Promise((resolve) => this.changeTakers.push(resolve));
        },
        return: () => {
          this.unsubscribe();
          return Promise.resolve({ value: undefined, done: true });
        },
      }),
    };
  }

  /**
   * @internal The server's answer: `seq` is the channel's last seq, `since` where delivery
   * starts (later than asked when the user joined the channel after it).
   */
  _subscribed(seq: number, since: number | undefined): void {
    if (this.lastSeq === undefined) this.lastSeq = since ?? seq;
    else if (since !== undefined && since > this.lastSeq) this.lastSeq = since;
    this.startedAfter ??= this.lastSeq;
    this.resubscribing = false;
    this.retryAttempt = 0;
    if (this.state === 'pending') this.state = 'active';
    this.readyResolve();
  }

  /** @internal Applies a change frame: delivers seq == lastSeq + 1 only. Returns false on a gap. */
  _change(f: ChangeFrame): boolean {
    if (this.state === 'ended') return true;
    const last = this.lastSeq;
    if (last !== undefined && f.seq <= last) {
      this.duplicatesDropped++;
      return true;
    }
    if (last !== undefined && f.seq !== last + 1) return this.resubscribing; // a gap: caller resubscribes
    this.lastSeq = f.seq;
    if (f.type === 'message') {
      this.opts.onMessage?.(f.message);
      const taker = this.takers.shift();
      if (taker) taker({ value: f.message, done: false });
      else this.queue.push(f.message);
    } else {
      (this.opts[HANDLERS[f.type]] as ((frame: ChangeFrame) => void) | undefined)?.(f);
    }
    this.opts.onChange?.(f);
    if (this.changeQueue) {
      const taker = this.changeTakers.shift();
      if (taker) taker({ value: f, done: false });
      else this.changeQueue.push(f);
    }
    return true;
  }

  /** @internal */
  _typing(user: string): void {
    if (this.state !== 'ended') this.opts.onTyping?.(user);
  }

  /** @internal */
  _presence(user: string, present: boolean): void {
    if (this.state !== 'ended') this.opts.onPresence?.({ user, present });
  }

  /** @internal */
  _presenceCount(count: number): void {
    if (this.state !== 'ended') this.opts.onPresenceCount?.(count);
  }

  /** @internal Whether the server should send presence frames. */
  get wantsPresence(): boolean {
    return this.opts.presence === true;
  }

  /** @internal */
  end(reason: string | undefined): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.endReason = reason;
    this.readyReject(new SubscriptionEnded(reason ?? 'unsubscribed'));
    for (const t of this.takers.splice(0)) t({ value: undefined, done: true });
    for (const t of this.changeTakers.splice(0)) t({ value: undefined, done: true });
    this.opts.onEnd?.(reason);
  }
}
