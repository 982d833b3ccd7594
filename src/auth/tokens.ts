// Access tokens: JWT, HS256, `sub` = user id. Verified at every HTTP request and at the
// WebSocket upgrade, so verification is cached: a token verified once is accepted from memory
// until its `exp` (the signature cannot change; the clock is checked on every use).
import { randomBytes, webcrypto } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { WalcastError } from '../errors.js';
import { USER_ID } from '../chat/ids.js';

/** Verified tokens kept in memory at most; the cache is simply emptied when full. */
const CACHE_MAX = 10_000;

export class Tokens {
  private readonly raw: Uint8Array;
  /** Imported once: jose would import a raw key again on every verification. */
  private readonly key: Promise<webcrypto.CryptoKey>;
  private readonly verified = new Map<string, { sub: string; exp: number }>();

  constructor(secret: string) {
    this.raw = new TextEncoder().encode(secret);
    this.key = webcrypto.subtle.importKey('raw', this.raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  }

  async sign(user: string, ttlSeconds: number): Promise<string> {
    if (!USER_ID.test(user)) throw new WalcastError('invalid_arguments', `user id must match ${USER_ID}`);
    const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(user).setIssuedAt();
    if (ttlSeconds > 0) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds);
    return jwt.sign(await this.key);
  }

  /** The user id, or not_authed (no token) / invalid_auth (bad, expired or forged token). */
  async verify(token: string | undefined | null): Promise<string> {
    if (!token) throw new WalcastError('not_authed');
    const hit = this.verified.get(token);
    if (hit) {
      if (hit.exp * 1000 > Date.now()) return hit.sub;
      this.verified.delete(token);
      throw new WalcastError('invalid_auth', 'token expired');
    }
    try {
      const { payload } = await jwtVerify(token, await this.key, { algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string' || !USER_ID.test(payload.sub)) throw new WalcastError('invalid_auth');
      // Only tokens that expire are cached: one without `exp` would stay forever.
      if (typeof payload.exp === 'number') {
        if (this.verified.size >= CACHE_MAX) this.verified.clear();
        this.verified.set(token, { sub: payload.sub, exp: payload.exp });
      }
      return payload.sub;
    } catch (e) {
      if (e instanceof WalcastError) throw e;
      const reason = e instanceof joseErrors.JWTExpired ? 'token expired' : 'invalid token';
      throw new WalcastError('invalid_auth', reason);
    }
  }
}

/** WALCAST_SECRET, or (for `start` and `token` on the same machine) one kept in the data dir. */
export async function resolveSecret(configured: string | undefined, dataDir: string, create: boolean): Promise<string> {
  if (configured) return configured;
  const file = path.join(dataDir, 'secret');
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch (e) {
    if (!create) throw new Error(`no WALCAST_SECRET set and no ${file}: set WALCAST_SECRET (the same value for every role)`, { cause: e });
  }
  await fs.mkdir(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  await fs.writeFile(file, secret + '\n', { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  return (await fs.readFile(file, 'utf8')).trim();
}
