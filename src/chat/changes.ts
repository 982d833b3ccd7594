// Changes to a message: edits and deletes (its author only), reactions (any member). Each takes
// the channel's next seq in the transaction that makes it (drizzle/0004_change_log.sql,
// walcast_change_message), and reaches subscribers through the WAL like a new message. A
// refused change, and one that changes nothing (a reaction already there or already gone, a
// message already deleted), takes no seq.
import type { Pool } from '../db/pool.js';
import { WalcastError } from '../errors.js';
import type { ChangeType } from '../protocol.js';
import { MESSAGE_COLUMNS, toMessage, type Message, type MessageRow } from './model.js';

export type MessageChange = Extract<ChangeType, 'message_changed' | 'message_deleted' | 'reaction_added' | 'reaction_removed'>;

export interface ChangeResult {
  /** The message after the change (or as it was, when nothing changed). */
  message: Message;
  /** The seq the change took, or null when nothing changed. */
  seq: number | null;
}

type Row = MessageRow & { outcome: string; change_seq: number | null; is_private: boolean | null };

export class Changes {
  constructor(private readonly pool: Pool) {}

  update(channel: string, user: string, seq: number, text: string): Promise<ChangeResult> {
    return this.apply(channel, user, 'message_changed', seq, text, null);
  }

  delete(channel: string, user: string, seq: number): Promise<ChangeResult> {
    return this.apply(channel, user, 'message_deleted', seq, null, null);
  }

  react(channel: string, user: string, seq: number, name: string, on: boolean): Promise<ChangeResult> {
    return this.apply(channel, user, on ? 'reaction_added' : 'reaction_removed', seq, null, name);
  }

  private async apply(channel: string, user: string, kind: MessageChange, target: number, text: string | null, name: string | null): Promise<ChangeResult> {
    const { rows } = await this.pool.query<Row>(
      `SELECT outcome, change_seq, is_private, ${MESSAGE_COLUMNS} FROM walcast_change_message($1, $2, $3, $4, $5, $6)`,
      [channel, user, kind, target, text, name],
    );
    const r = rows[0]!;
    switch (r.outcome) {
      case 'ok':
      case 'noop':
        return { message: toMessage(r), seq: r.change_seq === null ? null : Number(r.change_seq) };
      case 'no_channel':
        throw new WalcastError('channel_not_found');
      case 'not_member':
        throw new WalcastError(r.is_private ? 'channel_not_found' : 'not_in_channel');
      case 'no_message':
        throw new WalcastError('message_not_found');
      case 'not_author':
        throw new WalcastError(kind === 'message_changed' ? 'cant_update_message' : 'cant_delete_message');
      default:
        throw new Error(`walcast_change_message answered ${r.outcome}`);
    }
  }
}
