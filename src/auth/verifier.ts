// Token verification, one place for every source of tokens. The token's header `alg` only
// routes (it is untrusted): HS256 goes to WALCAST_SECRET (a CryptoKey imported once, allowlist
// ['HS256']), RS256/ES256/EdDSA go to the identity provider's key set (WALCAST_JWKS_URL,
// allowlist of those three). A token can therefore never be verified with HMAC keyed by a
// public key (algorithm confusion), nor with `none`, nor with an embedded `jwk`.
//
// Every accepted token has `exp` (and `sub`, a valid user id), lives at most
// WALCAST_TOKEN_MAX_LIFETIME_S, and carries WALCAST_JWT_ISSUER / WALCAST_JWT_AUDIENCE when those
// are set.
import { webcrypto } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { USER_ID } from '../chat/ids.js';
import { WalcastError } from '../errors.js';
import { JwksKeys } from './jwks.js';

export interface VerifiedToken {
  sub: string;
  /** Seconds since the epoch. */
  exp: number;
  /** Seconds since the epoch, when the token says. */
  iat?: number;
  /** Which key verified it. */
  source: 'secret' | 'jwks';
}

export interface VerifierOptions {
  /** WALCAST_SECRET; null: HS256 tokens are refused. */
  secret: string | null;
  jwksUrl?: string;
  jwksCooldownS?: number;
  issuer?: string;
  audience?: string;
  maxLifetimeS: number;
}

/** Tolerated clock difference for nbf/iat/exp, seconds. */
export const CLOCK_TOLERANCE_S = 5;
const IDP_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];

export class TokenVerifier {
  private readonly hmac: Promise<webcrypto.CryptoKey> | null;
  readonly jwks: JwksKeys | null;
  private readonly base: JWTVerifyOptions;

  constructor(private readonly o: VerifierOptions) {
    this.hmac = o.secret
      ? webcrypto.subtle.importKey('raw', new TextEncoder().encode(o.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify'])
      : null;
    this.jwks = o.jwksUrl ? new JwksKeys(o.jwksUrl, { cooldownS: o.jwksCooldownS ?? 30 }) : null;
    this.base = {
      requiredClaims: ['exp', 'sub'],
      clockTolerance: CLOCK_TOLERANCE_S,
      ...(o.issuer ? { issuer: o.issuer } : {}),
      ...(o.audience ? { audience: o.audience } : {}),
    };
  }

  /** The HS256 key (for signing: `walcast token`, the demo token, tests). */
  signingKey(): Promise<webcrypto.CryptoKey> {
    if (!this.hmac) throw new Error('no WALCAST_SECRET: HS256 tokens cannot be signed');
    return this.hmac;
  }

  /**
   * The verified claims, or: not_authed (no token), token_expired, invalid_auth (anything else
   * wrong with the token), unavailable (the key set could not be fetched: retry).
   */
  async verify(token: string | undefined | null): Promise<VerifiedToken> {
    if (!token) throw new WalcastError('not_authed');
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new WalcastError('invalid_auth', 'malformed token');
    }
    let payload: JWTPayload;
    let source: VerifiedToken['source'];
    try {
      if (alg === 'HS256') {
        if (!this.hmac) throw new WalcastError('invalid_auth', 'HS256 tokens are not accepted here (no WALCAST_SECRET)');
        source = 'secret';
        ({ payload } = await jwtVerify(token, await this.hmac, { ...this.base, algorithms: ['HS256'] }));
      } else if (typeof alg === 'string' && IDP_ALGORITHMS.includes(alg)) {
        if (!this.jwks) throw new WalcastError('invalid_auth', `${alg} tokens are not accepted here (no WALCAST_JWKS_URL)`);
        source = 'jwks';
        ({ payload } = await jwtVerify(token, this.jwks.getKey, { ...this.base, algorithms: IDP_ALGORITHMS }));
      } else {
        throw new WalcastError('invalid_auth', 'unsupported token algorithm');
      }
    } catch (e) {
      if (e instanceof WalcastError) throw e;
      if (e instanceof joseErrors.JWTExpired) throw new WalcastError('token_expired', 'token expired');
      if (e instanceof joseErrors.JWTClaimValidationFailed) throw new WalcastError('invalid_auth', `invalid token: ${e.claim} ${e.reason}`);
      throw new WalcastError('invalid_auth', 'invalid token');
    }
    const { sub, exp, iat } = payload;
    if (typeof sub !== 'string' || !USER_ID.test(sub)) throw new WalcastError('invalid_auth', 'invalid token: sub is not a valid user id');
    if (typeof exp !== 'number' || !Number.isFinite(exp)) throw new WalcastError('invalid_auth', 'invalid token: no exp');
    const now = Date.now() / 1000;
    // The clock tolerance is for nbf/iat set by another machine; expiry itself is exact.
    if (exp <= now) throw new WalcastError('token_expired', 'token expired');
    const max = this.o.maxLifetimeS + CLOCK_TOLERANCE_S;
    if (exp - now > max || (typeof iat === 'number' && exp - iat > max)) {
      throw new WalcastError('invalid_auth', `invalid token: lives longer than ${this.o.maxLifetimeS} s (WALCAST_TOKEN_MAX_LIFETIME_S)`);
    }
    return { sub, exp, ...(typeof iat === 'number' && Number.isFinite(iat) ? { iat } : {}), source };
  }
}
