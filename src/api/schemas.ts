// Request shapes of docs/protocol.md's HTTP API. Bad shapes are invalid_arguments; text over the
// configured length is msg_too_long (checked in the handler, where the limit is known).
import { z } from 'zod';
import { CHANNEL_ID, USER_ID } from '../chat/ids.js';

// PostgreSQL text cannot hold NUL, and lone surrogates would be silently replaced: refuse both.
const storable = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !s.includes('\u0000') && s.isWellFormed(), 'contains NUL or unpaired surrogates');

// Checked at the edge: a malformed id never reaches a query (a NUL would make PostgreSQL fail).
const channelId = z.string().regex(CHANNEL_ID, 'not a channel id (C and 12 characters 0-9A-Z)');
const userId = z.string().regex(USER_ID, 'not a valid user id');

export const createChannel = z.object({
  name: storable(80).transform((s) => s.trim()).pipe(z.string().min(1, 'name is empty')),
  is_private: z.boolean().optional().default(false),
  /** Whether plain members may invite (owners and admins always may). */
  members_can_invite: z.boolean().optional().default(true),
});

export const join = z.object({ channel: channelId });

export const invite = z.object({ channel: channelId, users: z.array(userId).min(1).max(1000) });

export const kick = z.object({ channel: channelId, user: userId });

export const leave = z.object({ channel: channelId });

// Text length is checked separately against the configured limit (msg_too_long).
const text = z.string().min(1, 'text is empty').refine((s) => !s.includes('\u0000') && s.isWellFormed(), 'contains NUL or unpaired surrogates');
const seq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

export const postMessage = z.object({
  channel: channelId,
  text,
  client_msg_id: storable(128).pipe(z.string().min(1)).nullable().optional(),
  /** The seq of the message this one replies to. */
  reply_to: seq.nullable().optional(),
});

export const updateMessage = z.object({ channel: channelId, seq, text });

export const deleteMessage = z.object({ channel: channelId, seq });

export const reaction = z.object({ channel: channelId, seq, name: storable(64).pipe(z.string().min(1, 'name is empty')) });

// Up to Number.MAX_SAFE_INTEGER, which the SDK passes as before_seq for "the latest page".
const seqParam = z
  .string()
  .regex(/^\d{1,16}$/, 'must be a non-negative integer')
  .transform(Number)
  .pipe(z.number().max(Number.MAX_SAFE_INTEGER, 'must be at most 2^53 - 1'));

export const getMessage = z.object({ channel: channelId, seq: seqParam });

const page = {
  channel: channelId,
  after_seq: seqParam.optional().default(0),
  limit: seqParam.pipe(z.number().int().min(1).max(1000)).optional().default(100),
};

/** Oldest first after `after_seq`; with `before_seq`, the latest `limit` before it (scrolling back). */
export const history = z.object({ ...page, before_seq: seqParam.optional() });

export const replay = z.object(page);

export const presence = z.object({ channel: channelId });

export function describe(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

/** POST /dev/token (src/app/pages.ts): the user a demo token is for. */
export const devToken = z.object({ user: z.string().regex(USER_ID, 'user: 1 to 64 of A-Z a-z 0-9 _ . @ : -') });
