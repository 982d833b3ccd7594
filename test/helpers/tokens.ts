// Tokens a client should never get through with, signed by hand.
import { SignJWT } from 'jose';
import { SECRET } from './walcast.js';

const key = (s: string) => new TextEncoder().encode(s);

/** Signed with the right secret, expired an hour ago. */
export function expiredToken(user: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(user).setIssuedAt(now - 7200).setExpirationTime(now - 3600).sign(key(SECRET));
}

/** Well-formed and unexpired, signed with another secret. */
export function forgedToken(user: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setIssuedAt().setExpirationTime('1h').sign(key('another-secret-another-secret-xx'));
}
