// Token buckets: `rate` tokens per second, at most `burst` saved up. Used for chat.postMessage
// (per user, per channel) and for WebSocket upgrades at the gateway. In-memory and per process:
// with several processes behind a balancer the effective limit is that many times higher.

export class TokenBucket {
  private tokens: number;
  private last: number;
  /** Virtual time (ms) until which refused callers have been told to wait: spreads their returns. */
  private horizon = 0;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  private refill(t: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000);
    this.last = t;
  }

  /** Takes one token, or returns false. A rate of 0 means unlimited. */
  take(): boolean {
    if (this.rate <= 0) return true;
    const t = this.now();
    this.refill(t);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Milliseconds until one token is available (0 if one is). */
  waitMs(): number {
    if (this.rate <= 0) return 0;
    this.refill(this.now());
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.rate);
  }

  /**
   * For a refused caller: when to come back, so that refused callers return spread out at the
   * bucket's rate instead of all together (each refusal books the next free slot), capped.
   */
  reserve(maxMs: number): number {
    if (this.rate <= 0) return 0;
    const t = this.now();
    this.horizon = Math.min(Math.max(this.horizon, t + this.waitMs()) + 1000 / this.rate, t + maxMs);
    return Math.max(1, Math.ceil(this.horizon - t));
  }

  /** Returns a token taken by `take` (the request was refused by a later check). */
  give(): void {
    this.tokens = Math.min(this.burst, this.tokens + 1);
  }

  /** Full and untouched for a while: can be forgotten. */
  idle(): boolean {
    this.refill(this.now());
    return this.tokens >= this.burst;
  }
}

/** Buckets by key (a user, a channel), forgetting full ones so the map stays small. */
export class KeyedLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private takes = 0;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get enabled(): boolean {
    return this.rate > 0;
  }

  /** 0 if allowed (a token was taken), otherwise milliseconds until the key has a token again. */
  check(key: string): number {
    if (!this.enabled) return 0;
    if (++this.takes % 1024 === 0) this.sweep();
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = new TokenBucket(this.rate, this.burst, this.now)));
    return b.take() ? 0 : b.waitMs();
  }

  /** Like check, but takes nothing: 0 if the key has a token, else milliseconds until it has one. */
  peek(key: string): number {
    if (!this.enabled) return 0;
    return this.buckets.get(key)?.waitMs() ?? 0;
  }

  /** Gives back a token taken by `check` (the request was refused by a later limit). */
  refund(key: string): void {
    this.buckets.get(key)?.give();
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(): void {
    for (const [k, b] of this.buckets) if (b.idle()) this.buckets.delete(k);
  }
}
