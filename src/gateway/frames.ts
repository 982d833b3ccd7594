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
    case 'unsubscribe': {
      if (typeof f.channel !== 'string' || f.channel.length === 0 || f.channel.length > 64) {
        return { code: 'invalid_arguments', message: '"channel" must be a channel id' };
      }
      if (f.type === 'unsubscribe') return { type: 'unsubscribe', channel: f.channel };
      if (f.since !== undefined && f.since !== null && !(Number.isSafeInteger(f.since) && (f.since as number) >= 0)) {
        return { code: 'invalid_arguments', channel: f.channel, message: '"since" must be a non-negative integer' };
      }
      return f.since === undefined || f.since === null ? { type: 'subscribe', channel: f.channel } : { type: 'subscribe', channel: f.channel, since: f.since as number };
    }
    case 'ping':
      return { type: 'ping' };
    default:
      return { code: 'unknown_type', message: `unknown frame type ${JSON.stringify(f.type).slice(0, 40)}` };
  }
}

export const isFrameError = (f: ClientFrame | FrameError): f is FrameError => 'code' in f;
