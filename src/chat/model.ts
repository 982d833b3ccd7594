// The one mapping from a database row to each wire shape of src/protocol.ts. The API, the relay
// (rows decoded from the WAL) and the gateway (catch-up reads) all use these, so a message looks
// byte-for-byte the same whichever path delivered it.
import type { Channel, Message } from '../protocol.js';

export type { Channel, Message } from '../protocol.js';

export interface ChannelRow {
  id: string;
  name: string;
  is_private: boolean;
  last_seq: number | string;
}

export interface MessageRow {
  id: string;
  channel_id: string;
  seq: number | string;
  user_id: string;
  text: string;
  client_msg_id: string | null;
  created_at: Date | string;
}

export const toChannel = (r: ChannelRow): Channel => ({
  id: r.id,
  name: r.name,
  is_private: r.is_private,
  last_seq: Number(r.last_seq),
});

export const toMessage = (r: MessageRow): Message => ({
  id: r.id,
  channel: r.channel_id,
  seq: Number(r.seq),
  user: r.user_id,
  text: r.text,
  client_msg_id: r.client_msg_id ?? null,
  created_at: isoTimestamp(r.created_at),
});

/** Millisecond ISO-8601, whatever the source (a Date from pg, or WAL text with microseconds). */
function isoTimestamp(v: Date | string): string {
  if (v instanceof Date) return v.toISOString();
  const d = new Date(v.includes('T') ? v : v.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
  return Number.isNaN(d.getTime()) ? String(v) : d.toISOString();
}

export const MESSAGE_COLUMNS = 'id, channel_id, seq, user_id, text, client_msg_id, created_at';
export const CHANNEL_COLUMNS = 'id, name, is_private, last_seq';
