// An identity provider's JSON Web Key Set (WALCAST_JWKS_URL), through jose's remote key set:
// keys picked by `kid`, cached (10 minutes), fetched again for an unknown `kid` at most once per
// cooldown. What this adds:
//  - "could not ask the IdP" (connection refused, timeout, non-200, unparsable JSON) becomes
//    `unavailable` (503, temporary), never `invalid_auth` and never acceptance;
//  - after such a failure, tokens that would need a fetch are answered `unavailable` at once for
//    a short while, instead of each request waiting for the IdP's timeout;
//  - HMAC algorithms never reach the key set (jose refuses them there too): routing is by the
//    token's `alg`, and each source has its own allowlist (verifier.ts).
import { createRemoteJWKSet, errors as joseErrors, type JWTVerifyGetKey } from 'jose';
import { WalcastError } from '../errors.js';

export interface JwksOptions {
  /** Seconds between refetches caused by an unknown `kid`. */
  cooldownS: number;
  /** Per fetch, headers and body included (ms). */
  timeoutMs?: number;
  /** After a failed fetch, this long (ms) without trying again. */
  failureBackoffMs?: number;
  /** Keys older than this are fetched again before use (ms). */
  cacheMaxAgeMs?: number;
}

/** True when the error means "the key set could not be fetched", not "the token is bad". */
export function isJwksUnavailable(e: unknown): boolean {
  if (e instanceof joseErrors.JWKSTimeout) return true;
  if (!(e instanceof joseErrors.JOSEError)) return true; // TypeError('fetch failed'), AbortError
  return e.constructor === joseErrors.JOSEError; // non-200, unparsable JSON
}

export class JwksKeys {
  private readonly remote: ReturnType<typeof createRemoteJWKSet>;
  private failedUntil = 0;
  private readonly backoffMs: number;
  /** Fetch failures so far (for tests and logs). */
  failures = 0;

  constructor(readonly url: string, o: JwksOptions) {
    this.remote = createRemoteJWKSet(new URL(url), {
      cooldownDuration: o.cooldownS * 1000,
      timeoutDuration: o.timeoutMs ?? 3000,
      cacheMaxAge: o.cacheMaxAgeMs ?? 600_000,
    });
    this.backoffMs = o.failureBackoffMs ?? 2000;
  }

  /** The key resolver for jwtVerify. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    // Within the backoff after a failure, only a fresh cache may answer (it needs no fetch).
    if (Date.now() < this.failedUntil && !this.remote.fresh) throw unavailable();
    try {
      return await this.remote(header, token);
    } catch (e) {
      if (isJwksUnavailable(e)) {
        this.failures++;
        this.failedUntil = Date.now() + this.backoffMs;
        throw unavailable(e);
      }
      throw e;
    }
  };
}

const unavailable = (cause?: unknown) =>
  new WalcastError('unavailable', 'the identity provider\'s key set (WALCAST_JWKS_URL) cannot be fetched; retry', { retryAfterMs: 2000, cause });
