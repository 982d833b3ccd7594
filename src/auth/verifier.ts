// Token verification, one place for every source of tokens. The token's header `alg` only
// routes (it is untrusted): HS256 goes to WALCAST_SECRET (a CryptoKey imported once, allowlist
// ['HS256']), RS256/ES256/EdDSA go to the identity provider's key set (WALCAST_JWKS_URL,
// allowlist of those three). A token can therefore never be verified with HMAC keyed by a
// public key (algorithm confusion), nor with `none`, nor with an embedded `jwk`.
//
// Every accepted token has `exp` (and `sub`, a valid user id), lives at most
// WALCAST_TOKEN_MAX_LIFETIME_S, and carries WALCAST_JWT_ISSUER / WALCAST_JWT_AUDIENCE when those
// are set.
//
// Tokens are verified synchronously where no key needs fetching (verifyNow: HS256, and the key
// set's cached keys): the gateway must upgrade a WebSocket inside uWS's upgrade handler, because
// the uWS build we ship can close a socket upgraded later (docs/operations.md, "Upgrades without
// waiting"). Signatures are checked with node:crypto, the claims by jose, as jwtVerify would.
import { createHmac, timingSafeEqual, verify as verifySignature, webcrypto, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, UnsecuredJWT, type JWTPayload, type JWTVerifyOptions, type ProtectedHeaderParameters } from 'jose';
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
  private readonly secret: Buffer | null;
  readonly jwks: JwksKeys | null;
  private readonly base: JWTVerifyOptions;

  constructor(private readonly o: VerifierOptions) {
    this.secret = o.secret ? Buffer.from(o.secret, 'utf8') : null;
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
    const now = this.verifyNow(token);
    if (now) return now;
    // Null: the identity provider's key must be fetched (jose's remote key set, with its cooldown).
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token!, this.jwks!.getKey, { ...this.base, algorithms: IDP_ALGORITHMS }));
    } catch (e) {
      throw refusal(e);
    }
    return this.claims(payload, 'jwks');
  }

  /**
   * verify() without waiting, where no key needs fetching: HS256 tokens, and the identity
   * provider's tokens whose key is in the fresh cache. Null when a key must be fetched first
   * (only verify() can tell); the same refusals as verify() otherwise.
   */
  verifyNow(token: string | undefined | null): VerifiedToken | null {
    if (!token) throw new WalcastError('not_authed');
    const header = headerOf(token);
    // Checked before any key is looked at, so that both paths (here and jwtVerify's) refuse the
    // same tokens: no extension is understood, so none may be critical; b64 would change what is
    // signed; a signature has one spelling.
    if (header.crit !== undefined || header.b64 !== undefined) throw new WalcastError('invalid_auth', 'invalid token');
    const parts = token.split('.');
    if (parts.length !== 3) throw new WalcastError('invalid_auth', 'invalid token');
    const [h, p, s] = parts as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    if (sig.toString('base64url') !== s) throw new WalcastError('invalid_auth', 'invalid token');
    const signed = `${h}.${p}`;
    const alg = header.alg;
    if (alg === 'HS256') {
      if (!this.secret) throw new WalcastError('invalid_auth', 'HS256 tokens are not accepted here (no WALCAST_SECRET)');
      const expected = createHmac('sha256', this.secret).update(signed).digest();
      if (sig.length !== expected.length || !timingSafeEqual(sig, expected)) throw new WalcastError('invalid_auth', 'invalid token');
      return this.claimsOf(p, 'secret');
    }
    if (typeof alg !== 'string' || !IDP_ALGORITHMS.includes(alg)) throw new WalcastError('invalid_auth', 'unsupported token algorithm');
    if (!this.jwks) throw new WalcastError('invalid_auth', `${alg} tokens are not accepted here (no WALCAST_JWKS_URL)`);
    const key = this.jwks.keyNow(alg, header.kid);
    if (!key) return null;
    if (!signatureValid(alg, key, Buffer.from(signed), sig)) throw new WalcastError('invalid_auth', 'invalid token');
    return this.claimsOf(p, 'jwks');
  }

  /** The claims of a token whose signature is verified (its payload part, base64url). */
  private claimsOf(payloadPart: string, source: VerifiedToken['source']): VerifiedToken {
    let payload: JWTPayload;
    try {
      // jose checks the claims (exp, nbf, iat, iss, aud) exactly as jwtVerify does, on the same
      // payload behind an unsigned header built here, never taken from input.
      ({ payload } = UnsecuredJWT.decode(`${UNSIGNED_HEADER}.${payloadPart}.`, this.base));
    } catch (e) {
      throw refusal(e);
    }
    return this.claims(payload, source);
  }

  /** walcast's own rules on top of jose's: a valid user id, an exact expiry, a bounded lifetime. */
  private claims(payload: JWTPayload, source: VerifiedToken['source']): VerifiedToken {
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

/** JWS signatures of the identity provider's algorithms (ES256's is r ‖ s, not DER). */
function signatureValid(alg: string, key: KeyObject, data: Buffer, sig: Buffer): boolean {
  try {
    if (alg === 'RS256') return verifySignature('sha256', data, key, sig);
    if (alg === 'ES256') return verifySignature('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
    return verifySignature(null, data, key, sig); // EdDSA
  } catch {
    return false;
  }
}

const UNSIGNED_HEADER = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');

function headerOf(token: string): ProtectedHeaderParameters {
  try {
    return decodeProtectedHeader(token);
  } catch {
    throw new WalcastError('invalid_auth', 'malformed token');
  }
}

/** A jose error as walcast's refusal. */
function refusal(e: unknown): WalcastError {
  if (e instanceof WalcastError) return e;
  if (e instanceof joseErrors.JWTExpired) return new WalcastError('token_expired', 'token expired');
  if (e instanceof joseErrors.JWTClaimValidationFailed) return new WalcastError('invalid_auth', `invalid token: ${e.claim} ${e.reason}`);
  return new WalcastError('invalid_auth', 'invalid token');
}
