// The shapes walcast answers with, as zod schemas: each API method's success body, the error
// body, and every server frame (WebSocket and SSE alike). They describe src/protocol.ts's types
// for /openapi.json (openapi.ts); the tests parse real answers and frames with them, so the
// description cannot drift from what the server sends. Nothing here validates at run time.
import { z } from 'zod';
import { CHANNEL_ID } from '../chat/ids.js';
import { ERRORS, type ApiMethod, type ChangeFrame, type Channel as ChannelType, type ErrorCode, type Message as MessageType, type ServerFrame } from '../protocol.js';

const channelId = z.string().regex(CHANNEL_ID);
const seq = z.number().int().min(1);
const timestamp = z.string().describe('ISO-8601, milliseconds');

export const Channel = z
  .object({
    id: channelId,
    name: z.string(),
    is_private: z.boolean(),
    last_seq: z.number().int().min(0).describe("the seq of the channel's latest change"),
  })
  .meta({ id: 'Channel' });

export const Message = z
  .object({
    id: z.string().describe('uuid'),
    channel: channelId,
    seq: seq.describe("its place in the channel's change log"),
    user: z.string().describe('its author'),
    text: z.string().describe('"" once deleted'),
    client_msg_id: z.string().nullable().describe("the poster's idempotency key"),
    created_at: timestamp,
    reply_to: seq.nullable().describe('the seq of the message it answers'),
    edited_at: timestamp.nullable(),
    deleted_at: timestamp.nullable(),
    reactions: z.record(z.string(), z.number().int().min(1)).describe('reaction name → how many users reacted with it'),
    changed_seq: seq.describe('the seq of the last change applied to this row'),
  })
  .strict()
  .meta({ id: 'Message' });

const change = <T extends ChangeFrame['type'], S extends z.ZodRawShape>(type: T, shape: S) =>
  z.object({ type: z.literal(type), channel: channelId, seq, ...shape }).strict();

const members = { user: z.string() };
const reaction = { target_seq: seq, user: z.string(), name: z.string() };

export const ChangeFrameSchema = z
  .discriminatedUnion('type', [
    change('message', { message: Message }),
    change('message_changed', { message: Message }),
    change('message_deleted', { target_seq: seq }),
    change('reaction_added', reaction),
    change('reaction_removed', reaction),
    change('member_joined', members),
    change('member_left', { ...members, reason: z.enum(['left', 'kicked']) }),
  ])
  .meta({ id: 'ChangeFrame', description: "A frame of the channel's change log: gapless, in order, exactly once, resumable by seq" });

const errorCode = z.enum(Object.keys(ERRORS) as [ErrorCode, ...ErrorCode[]]);

export const ServerFrameSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('subscribed'), channel: channelId, seq: z.number().int().min(0), since: z.number().int().min(0) }).strict(),
    ...ChangeFrameSchema.options,
    z.object({ type: z.literal('unsubscribed'), channel: channelId, reason: z.string().optional() }).strict(),
    z.object({ type: z.literal('typing'), channel: channelId, user: z.string() }).strict(),
    z.object({ type: z.literal('presence_joined'), channel: channelId, user: z.string() }).strict(),
    z.object({ type: z.literal('presence_left'), channel: channelId, user: z.string() }).strict(),
    z.object({ type: z.literal('presence_count'), channel: channelId, count: z.number().int().min(0) }).strict(),
    z
      .object({ type: z.literal('error'), code: errorCode, channel: z.string().optional(), message: z.string().optional(), retry_after_ms: z.number().int().min(0).optional() })
      .strict(),
    z.object({ type: z.literal('pong') }).strict(),
    z.object({ type: z.literal('token_expiring'), expires_at: z.number().int().describe('ms since the epoch') }).strict(),
    z.object({ type: z.literal('auth_ok'), expires_at: z.number().int().describe('ms since the epoch') }).strict(),
  ])
  .meta({ id: 'ServerFrame', description: 'A frame from the server, over a WebSocket or as the data of an SSE event' });

export const ErrorBody = z
  .object({
    ok: z.literal(false),
    error: errorCode,
    message: z.string().optional().describe('why, for people'),
    retry_after_ms: z.number().int().min(0).optional().describe('when to come back (with the Retry-After header, in seconds)'),
    channel: z.string().optional().describe('the channel an SSE stream was refused for'),
    users: z.array(z.string()).optional().describe('user_not_found: the unknown users'),
  })
  .meta({ id: 'Error' });

const ok = <S extends z.ZodRawShape>(shape: S) => z.object({ ok: z.literal(true), ...shape }).strict();
const withMessage = ok({ message: Message });
const withChannel = ok({ channel: Channel });

/** Each method's success body (200). */
export const RESPONSES: Record<ApiMethod, z.ZodType> = {
  'conversations.create': withChannel,
  'conversations.join': withChannel,
  'conversations.invite': withChannel,
  'conversations.kick': ok({}),
  'conversations.leave': ok({}),
  'chat.postMessage': withMessage,
  'chat.update': withMessage,
  'chat.delete': withMessage,
  'reactions.add': withMessage,
  'reactions.remove': withMessage,
  'chat.getMessage': withMessage,
  'conversations.history': ok({ messages: z.array(Message).describe('ascending by seq'), has_more: z.boolean() }),
  'conversations.replay': ok({ changes: z.array(ChangeFrameSchema).describe('ascending by seq'), has_more: z.boolean() }),
  'conversations.presence': ok({ users: z.array(z.string()), count: z.number().int().min(0) }),
};

// The schemas and src/protocol.ts's types describe the same frames: either side changing alone
// fails to compile.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameFrames: Same<z.infer<typeof ServerFrameSchema>, ServerFrame> = true;
const sameChanges: Same<z.infer<typeof ChangeFrameSchema>, ChangeFrame> = true;
const sameMessage: Same<z.infer<typeof Message>, MessageType> = true;
const sameChannel: Same<z.infer<typeof Channel>, ChannelType> = true;
void [sameFrames, sameChanges, sameMessage, sameChannel];
