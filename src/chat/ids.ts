import { randomBytes, randomUUID } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32: no I, L, O, U

/** Channel ids look like Slack's: "C" and 12 base32 characters (60 random bits). */
export function newChannelId(): string {
  const bytes = randomBytes(12);
  let s = 'C';
  for (const b of bytes) s += ALPHABET[b & 31];
  return s;
}

export const newMessageId = (): string => randomUUID();

export const USER_ID = /^[A-Za-z0-9_.@:-]{1,64}$/;
export const CHANNEL_ID = /^C[0-9A-Z]{12}$/;
