// Failed authentications per client address (WALCAST_AUTH_FAIL_RATE_IP / _BURST_IP): bad tokens
// at the WebSocket upgrade, in `auth` frames and on the API each take a token from the
// address's bucket. An address whose bucket is empty is refused (429 rate_limited with a hint)
// before its token is even verified, so a client guessing or replaying garbage tokens cannot
// use up the gateway's shared upgrade budget or its CPU, and valid users elsewhere keep
// connecting.
import { KeyedLimiter } from '../util/token-bucket.js';
import { WalcastError } from '../errors.js';

export class AuthFailures {
  private readonly limiter: KeyedLimiter;

  constructor(rate: number, burst: number, now?: () => number) {
    this.limiter = new KeyedLimiter(rate, burst, now);
  }

  /** A rate_limited error if the address used up its failures, else null. Takes nothing. */
  blocked(address: string): WalcastError | null {
    if (!this.limiter.enabled) return null;
    const wait = this.limiter.peek(address);
    return wait > 0 ? new WalcastError('rate_limited', 'too many failed authentications from this address; retry later', { retryAfterMs: wait }) : null;
  }

  /** Records a failed authentication of the address. */
  charge(address: string): void {
    this.limiter.check(address);
  }
}

/** Whether an error is a failed authentication (as opposed to an outage or a limit). */
export const isAuthFailure = (e: unknown): boolean =>
  e instanceof WalcastError && (e.code === 'invalid_auth' || e.code === 'token_expired');
