// Access tokens: JWTs with `sub` = user id and a required `exp`, verified by TokenVerifier
// (verifier.ts: HS256 with WALCAST_SECRET, or RS256/ES256/EdDSA with the identity provider's
// key set). Verified at every HTTP request, at every WebSocket upgrade and in `auth` frames, so
// verification is cached: a token verified once is accepted from memory until its `exp` (the
// signature cannot change; the clock and the user's revocations are checked on every use).
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SignJWT } from 'jose';
import { WalcastError } from '../errors.js';
import { USER_ID } from '../chat/ids.js';
import { Revocations } from './revocations.js';
import { TokenVerifier, type VerifiedToken, type VerifierOptions } from './verifier.js';

export type { VerifiedToken } from './verifier.js';

/** Verified tokens kept in memory at most; the cache is simply emptied when full. */
const CACHE_MAX = 10_000;
/** A token verified with the identity provider's keys is re-verified after this long (a key it removed stops working). */
const JWKS_CACHE_MS = 600_000;
/** Without configuration, tokens live at most a day. */
const DEFAULT_MAX_LIFETIME_S = 86_400;

export interface TokenOptions extends Partial<Omit<VerifierOptions, 'secret'>> {
  revocations?: Revocations;
}

export class Tokens {
  readonly verifier: TokenVerifier;
  readonly revocations: Revocations;
  private readonly verified = new Map<string, VerifiedToken & { until: number }>();

  constructor(
    secret: string | null,
    private readonly o: TokenOptions = {},
  ) {
    this.verifier = new TokenVerifier({ maxLifetimeS: DEFAULT_MAX_LIFETIME_S, ...o, secret });
    this.revocations = o.revocations ?? new Revocations();
    this.revocations.onRevoke((user) => this.purge(user));
  }

  /** An HS256 token for `user`, valid for ttlSeconds (1 s to WALCAST_TOKEN_MAX_LIFETIME_S). */
  async sign(user: string, ttlSeconds: number): Promise<string> {
    if (!USER_ID.test(user)) throw new WalcastError('invalid_arguments', `user id must match ${USER_ID}`);
    const max = this.o.maxLifetimeS ?? DEFAULT_MAX_LIFETIME_S;
    if (!(Number.isInteger(ttlSeconds) && ttlSeconds > 0 && ttlSeconds <= max)) {
      throw new WalcastError('invalid_arguments', `ttl must be 1 to ${max} seconds (WALCAST_TOKEN_MAX_LIFETIME_S)`);
    }
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(user).setIssuedAt(now).setExpirationTime(now + ttlSeconds);
    if (this.o.issuer) jwt.setIssuer(this.o.issuer);
    if (this.o.audience) jwt.setAudience(this.o.audience);
    return jwt.sign(await this.verifier.signingKey());
  }

  /** The user id, or not_authed / token_expired / invalid_auth / unavailable (see verifyToken). */
  async verify(token: string | undefined | null): Promise<string> {
    return (await this.verifyToken(token)).sub;
  }

  /** The token's verified claims; the same refusals as TokenVerifier.verify, and invalid_auth for a revoked token. */
  async verifyToken(token: string | undefined | null): Promise<VerifiedToken> {
    // verifier.verify() tries verifyNow() itself: calling verifyTokenNow() first would do it twice.
    return this.cached(token) ?? this.remember(token!, await this.verifier.verify(token));
  }

  /**
   * verifyToken without waiting, where that is possible: a token verified before, or one whose
   * key is at hand (TokenVerifier.verifyNow). Null when only verifyToken can tell.
   */
  verifyTokenNow(token: string | undefined | null): VerifiedToken | null {
    const hit = this.cached(token);
    if (hit) return hit;
    const v = this.verifier.verifyNow(token);
    return v && this.remember(token!, v);
  }

  /** A cached verification still valid (exp and revocations checked), or null. */
  private cached(token: string | undefined | null): VerifiedToken | null {
    if (!token) throw new WalcastError('not_authed');
    const now = Date.now();
    const hit = this.verified.get(token);
    if (!hit) return null;
    if (hit.exp * 1000 <= now) {
      this.verified.delete(token);
      throw new WalcastError('token_expired', 'token expired');
    }
    if (hit.until > now) return this.notRevoked(hit);
    this.verified.delete(token);
    return null;
  }

  private remember(token: string, v: VerifiedToken): VerifiedToken {
    if (this.verified.size >= CACHE_MAX) this.verified.clear();
    this.verified.set(token, { ...v, until: v.source === 'jwks' ? Date.now() + JWKS_CACHE_MS : Infinity });
    return this.notRevoked(v);
  }

  private notRevoked<T extends VerifiedToken>(v: T): T {
    if (this.revocations.revoked(v.sub, v.iat)) throw new WalcastError('invalid_auth', 'token revoked');
    return v;
  }

  /** Forgets the cached tokens of a user (after a revocation). */
  purge(user: string): void {
    for (const [token, v] of this.verified) if (v.sub === user) this.verified.delete(token);
  }
}

/** WALCAST_SECRET, or (for `start` and `token` on the same machine) one kept in the data dir. */
export function resolveSecret(configured: string | undefined, dataDir: string, create: boolean): Promise<string> {
  return resolveKept(configured, dataDir, 'secret', create, 'no WALCAST_SECRET set and no {file}: set WALCAST_SECRET (the same value for every role)');
}

/** WALCAST_ADMIN_TOKEN, or (for `start` and `revoke` on the same machine) one kept in the data dir. */
export function resolveAdminToken(configured: string | undefined, dataDir: string, create: boolean): Promise<string> {
  return resolveKept(configured, dataDir, 'admin-token', create, 'no WALCAST_ADMIN_TOKEN set and no {file}: set WALCAST_ADMIN_TOKEN');
}

async function resolveKept(configured: string | undefined, dataDir: string, name: string, create: boolean, missing: string): Promise<string> {
  if (configured) return configured;
  const file = path.join(dataDir, name);
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch (e) {
    if (!create) throw new Error(missing.replace('{file}', file), { cause: e });
  }
  await fs.mkdir(dataDir, { recursive: true });
  const value = randomBytes(32).toString('base64url');
  await fs.writeFile(file, value + '\n', { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  return (await fs.readFile(file, 'utf8')).trim();
}
