// Parsing what clients send (the frames of src/protocol.ts): every malformed frame becomes the
// error to answer it with, never an exception.
import type { ClientFrame, ErrorCode } from '../protocol.js';

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
      if (typeof f.channel !== 'string' || f.channel.length === 0 || f.channel.length > 64) {
        return { code: 'invalid_arguments', message: '"channel" must be a channel id' };
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
    default:
      return { code: 'unknown_type', message: `unknown frame type ${JSON.stringify(f.type).slice(0, 40)}` };
  }
}

export const isFrameError = (f: ClientFrame | FrameError): f is FrameError => 'code' in f;
