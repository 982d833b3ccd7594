// Access tokens: JWT, HS256, `sub` = user id. Verified at every HTTP request and at the
// WebSocket upgrade.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { WalcastError } from '../errors.js';
import { USER_ID } from '../chat/ids.js';

export class Tokens {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async sign(user: string, ttlSeconds: number): Promise<string> {
    if (!USER_ID.test(user)) throw new WalcastError('invalid_arguments', `user id must match ${USER_ID}`);
    const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(user).setIssuedAt();
    if (ttlSeconds > 0) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds);
    return jwt.sign(this.key);
  }

  /** The user id, or not_authed (no token) / invalid_auth (bad, expired or forged token). */
  async verify(token: string | undefined | null): Promise<string> {
    if (!token) throw new WalcastError('not_authed');
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string' || !USER_ID.test(payload.sub)) throw new WalcastError('invalid_auth');
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
