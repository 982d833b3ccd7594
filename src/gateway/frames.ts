// Parsing what clients send (the frames of src/protocol.ts): every malformed frame becomes the
// error to answer it with, never an exception.
import { CHANNEL_ID } from '../chat/ids.js';
import type { ClientFrame, ErrorCode } from '../protocol.js';

/** Longest token an `auth` frame may carry (the frame itself is bounded by WALCAST_WS_MAX_PAYLOAD). */
export const MAX_TOKEN_CHARS = 8192;

export type FrameError = { code: ErrorCode; channel?: string; message: string };

/** A client frame, or the error to answer it with. Never throws. */
export function parseClientFrame(data: string): ClientFrame | FrameError {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return { code: 'invalid_json', message: 'frame is not valid JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { code: 'invalid_arguments', message: 'frame must be a JSON object' };
  const f = v as Record<string, unknown>;
  if (typeof f.type !== 'string') return { code: 'invalid_arguments', message: 'frame needs a string "type"' };
  switch (f.type) {
    case 'subscribe':
    case 'unsubscribe':
    case 'typing': {
      // Channel ids are checked here, at the edge: nothing malformed reaches a query or a log.
      if (typeof f.channel !== 'string' || !CHANNEL_ID.test(f.channel)) {
        // Echo a short string back, so the client can tell which of its subscriptions failed.
        const echo = typeof f.channel === 'string' && f.channel.length <= 64 ? { channel: f.channel } : {};
        return { code: 'invalid_arguments', ...echo, message: '"channel" must be a channel id (C and 12 characters 0-9A-Z)' };
      }
      if (f.type !== 'subscribe') return { type: f.type, channel: f.channel };
      if (f.since !== undefined && f.since !== null && !(Number.isSafeInteger(f.since) && (f.since as number) >= 0)) {
        return { code: 'invalid_arguments', channel: f.channel, message: '"since" must be a non-negative integer' };
      }
      if (f.presence !== undefined && typeof f.presence !== 'boolean') {
        return { code: 'invalid_arguments', channel: f.channel, message: '"presence" must be a boolean' };
      }
      return {
        type: 'subscribe',
        channel: f.channel,
        ...(f.since === undefined || f.since === null ? {} : { since: f.since as number }),
        ...(f.presence ? { presence: true } : {}),
      };
    }
    case 'ping':
      return { type: 'ping' };
    case 'auth':
      if (typeof f.token !== 'string' || f.token.length === 0 || f.token.length > MAX_TOKEN_CHARS) {
        return { code: 'invalid_arguments', message: '"token" must be a non-empty string' };
      }
      return { type: 'auth', token: f.token };
    default:
      return { code: 'unknown_type', message: `unknown frame type ${JSON.stringify(f.type).slice(0, 40)}` };
  }
}

export const isFrameError = (f: ClientFrame | FrameError): f is FrameError => 'code' in f;
