// An identity provider's JSON Web Key Set (WALCAST_JWKS_URL), through jose's remote key set:
// keys picked by `kid`, cached (10 minutes), fetched again for an unknown `kid` at most once per
// cooldown. What this adds:
//  - "could not ask the IdP" (connection refused, timeout, non-200, unparsable JSON) becomes
//    `unavailable` (503, temporary), never `invalid_auth` and never acceptance;
//  - after such a failure, tokens that would need a fetch are answered `unavailable` at once for
//    a short while, instead of each request waiting for the IdP's timeout;
//  - HMAC algorithms never reach the key set (jose refuses them there too): routing is by the
//    token's `alg`, and each source has its own allowlist (verifier.ts);
//  - keyNow(): the key from the fresh cache without waiting, so that a gateway can upgrade a
//    WebSocket inside uWS's upgrade handler (verifier.ts says why).
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, errors as joseErrors, type JWK, type JWTVerifyGetKey } from 'jose';
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

/** What each accepted algorithm needs of a key: jose's own table (lib/jws_algorithms.js). */
const KEY_FOR: Record<string, { kty: string; crv?: string; minRsaBits?: number }> = {
  RS256: { kty: 'RSA', minRsaBits: 2048 },
  ES256: { kty: 'EC', crv: 'P-256' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
};
/** JWK members of private keys: createPublicKey would derive a public key from them, jose refuses the set. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'priv'];
/** Imported keys kept; the map is emptied when full (key sets are small, rotations rare). */
const IMPORTED_MAX = 64;

export class JwksKeys {
  private readonly remote: ReturnType<typeof createRemoteJWKSet>;
  private readonly imported = new Map<string, KeyObject | null>();
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

  /**
   * The key for a token's `alg` and `kid` from the cached key set, without fetching. Null when
   * only getKey can tell: nothing cached, the cache is stale, not exactly one key fits (jose's
   * rules, isUsableJWK: key type and curve for the algorithm, the `kid`, and `alg`, `use`,
   * `key_ops`, `ext` when the key states them), or the one that fits is anything but a plain
   * public verification key (jose then refuses it, with its own error).
   */
  keyNow(alg: string, kid: unknown): KeyObject | null {
    const need = KEY_FOR[alg];
    if (!need || !this.remote.fresh || (kid !== undefined && typeof kid !== 'string')) return null;
    const fit = (this.remote.jwks()?.keys ?? []).filter(
      (k: JWK) =>
        k.kty === need.kty &&
        (!need.crv || k.crv === need.crv) &&
        (kid === undefined || k.kid === kid) &&
        (k.alg === undefined || k.alg === alg) &&
        (k.use === undefined || k.use === 'sig') &&
        (k.key_ops === undefined || (Array.isArray(k.key_ops) && k.key_ops.includes('verify'))) &&
        (k.ext === undefined || typeof k.ext === 'boolean'),
    );
    if (fit.length !== 1) return null;
    const jwk = fit[0]!;
    const plain = (jwk.key_ops === undefined || (jwk.key_ops.length === 1 && jwk.key_ops[0] === 'verify')) && !PRIVATE_MEMBERS.some((m) => m in jwk);
    return plain ? this.importKey(jwk, need.minRsaBits) : null;
  }

  private importKey(jwk: JWK, minRsaBits?: number): KeyObject | null {
    const id = JSON.stringify(jwk);
    let key = this.imported.get(id);
    if (key === undefined) {
      try {
        key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
      } catch {
        key = null;
      }
      if (key && minRsaBits && (key.asymmetricKeyDetails?.modulusLength ?? 0) < minRsaBits) key = null;
      if (this.imported.size >= IMPORTED_MAX) this.imported.clear();
      this.imported.set(id, key);
    }
    return key;
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
