// Frames per socket (WALCAST_WS_COMMAND_RATE / _BURST): a token bucket per connection, created
// at its first frame. A frame over the rate is answered `rate_limited` (with retry_after_ms);
// a socket that keeps sending regardless, more refused frames than its burst within a window,
// is closed with 1008 policy_violation. One client's subscribe storm then costs the gateway a
// bounded number of membership checks, whatever it sends.

/** Refused frames within this window... */
const ABUSE_WINDOW_MS = 10_000;

export class CommandRate {
  private tokens: number;
  private at: number;
  private refused = 0;
  private refusedSince = 0;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  /**
   * 0: the frame may run. Otherwise the milliseconds until one may, negated (< 0) when the
   * socket should be closed for flooding.
   */
  take(now: number): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000);
    this.at = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    if (now - this.refusedSince > ABUSE_WINDOW_MS) {
      this.refusedSince = now;
      this.refused = 0;
    }
    const wait = Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.rate));
    return ++this.refused > this.burst ? -wait : wait;
  }
}
