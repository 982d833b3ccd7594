// The one mapping from a database row to each wire shape of src/protocol.ts. The API, the relay
// (rows decoded from the WAL) and the gateway (catch-up reads) all use these, so a message or a
// change looks byte-for-byte the same whichever path delivered it.
import type { Channel, ChangeFrame, LeaveReason, Message } from '../protocol.js';

export type { Channel, ChangeFrame, Message } from '../protocol.js';

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
  reply_to: number | string | null;
  edited_at: Date | string | null;
  deleted_at: Date | string | null;
  /** jsonb: parsed by pg, text in the WAL. */
  reactions: Record<string, number> | string | null;
  changed_seq: number | string;
}

/** A row of channel_events: a change other than a new message. */
export interface EventRow {
  channel_id: string;
  seq: number | string;
  kind: Exclude<ChangeFrame['type'], 'message'>;
  target_seq: number | string | null;
  user_id: string;
  name: string | null;
  reason: string | null;
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
  reply_to: r.reply_to === null || r.reply_to === undefined ? null : Number(r.reply_to),
  edited_at: r.edited_at ? isoTimestamp(r.edited_at) : null,
  deleted_at: r.deleted_at ? isoTimestamp(r.deleted_at) : null,
  reactions: typeof r.reactions === 'string' ? (JSON.parse(r.reactions) as Record<string, number>) : (r.reactions ?? {}),
  changed_seq: r.changed_seq === null || r.changed_seq === undefined ? Number(r.seq) : Number(r.changed_seq),
});

/**
 * The frame of a change-log row. `target` is the message the change is about, in its state
 * after the change (a message_changed frame carries it).
 */
export function toChangeFrame(e: EventRow, target: Message | undefined): ChangeFrame {
  const base = { channel: e.channel_id, seq: Number(e.seq) };
  const targetSeq = Number(e.target_seq);
  switch (e.kind) {
    case 'message_changed':
      if (!target) throw new Error(`message_changed ${e.channel_id}:${e.seq} without its message`);
      return { type: 'message_changed', ...base, message: target };
    case 'message_deleted':
      return { type: 'message_deleted', ...base, target_seq: targetSeq };
    case 'reaction_added':
    case 'reaction_removed':
      return { type: e.kind, ...base, target_seq: targetSeq, user: e.user_id, name: e.name ?? '' };
    case 'member_joined':
      return { type: 'member_joined', ...base, user: e.user_id };
    case 'member_left':
      return { type: 'member_left', ...base, user: e.user_id, reason: (e.reason ?? 'left') as LeaveReason };
  }
}

export const messageFrame = (m: Message): ChangeFrame => ({ type: 'message', channel: m.channel, seq: m.seq, message: m });

/** Millisecond ISO-8601, whatever the source (a Date from pg, or WAL text with microseconds). */
function isoTimestamp(v: Date | string): string {
  if (v instanceof Date) return v.toISOString();
  const d = new Date(v.includes('T') ? v : v.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
  return Number.isNaN(d.getTime()) ? String(v) : d.toISOString();
}

export const MESSAGE_COLUMNS = 'id, channel_id, seq, user_id, text, client_msg_id, created_at, reply_to, edited_at, deleted_at, reactions, changed_seq';
export const CHANNEL_COLUMNS = 'id, name, is_private, last_seq';
