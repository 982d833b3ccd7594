// Storing and reading messages. seq is assigned here, in the statement that stores the row:
// the UPDATE takes the channel row's lock and bumps its counter, the INSERT uses the new
// value, and the lock is held until COMMIT. So per channel, seq starts at 1, has no gaps (a
// failed statement rolls its increment back) and commit order equals seq order, which is the
// order pgoutput streams the commits in. The cost: one channel's writers queue on that row for
// the length of a commit (see docs/sequencing.md).
import { PG, WalcastError, pgCode } from '../errors.js';
import type { Pool } from '../db/pool.js';
import type { Channels } from './channels.js';
import { newMessageId } from './ids.js';
import { MESSAGE_COLUMNS, toMessage, type Message, type MessageRow } from './model.js';

const POST_SQL = `
  WITH ch AS (
    UPDATE channels SET last_seq = last_seq + 1
     WHERE id = $1
       AND EXISTS (SELECT 1 FROM channel_members WHERE channel_id = $1 AND user_id = $3)
     RETURNING last_seq
  )
  INSERT INTO messages (channel_id, seq, id, user_id, text, client_msg_id)
  SELECT $1, last_seq, $2, $3, $4, $5 FROM ch
  RETURNING ${MESSAGE_COLUMNS}`;

const FIND_RETRY_SQL = `
  SELECT ${MESSAGE_COLUMNS} FROM messages
   WHERE channel_id = $1 AND user_id = $2 AND client_msg_id = $3
     AND EXISTS (SELECT 1 FROM channel_members WHERE channel_id = $1 AND user_id = $2)`;

export interface PostInput {
  channel: string;
  user: string;
  text: string;
  clientMsgId: string | null;
}

export interface History {
  messages: Message[];
  has_more: boolean;
}

/**
 * The write path's one extension point. walcast itself sets none; the benchmarks wire in the
 * designs walcast replaces (publish before or after COMMIT, a slow commit) through it.
 */
export interface WriteHooks {
  /** Inside the transaction, after the rows are written, before COMMIT; a throw rolls them back. */
  beforeCommit?(stored: readonly Message[]): Promise<void>;
  /** After COMMIT, before the caller is answered. */
  afterCommit?(stored: readonly Message[]): Promise<void>;
}

export class Messages {
  constructor(
    private readonly pool: Pool,
    private readonly channels: Channels,
    private readonly hooks: WriteHooks = {},
  ) {}

  /** Stores a message; a retry with the same client_msg_id returns the first one. */
  async post(input: PostInput): Promise<{ message: Message; created: boolean }> {
    if (input.clientMsgId !== null) {
      const existing = await this.findRetry(input);
      if (existing) return { message: existing, created: false };
    }
    try {
      const params = [input.channel, newMessageId(), input.user, input.text, input.clientMsgId];
      const row = this.hooks.beforeCommit ? await this.postInTransaction(params) : (await this.pool.query<MessageRow>(POST_SQL, params)).rows[0];
      if (row) {
        const message = toMessage(row);
        await this.hooks.afterCommit?.([message]);
        return { message, created: true };
      }
    } catch (e) {
      // Two retries raced past the lookup: the unique index stopped the second, whose
      // statement (and its seq increment) rolled back. Return the first.
      if (pgCode(e) === PG.uniqueViolation && input.clientMsgId !== null) {
        const existing = await this.findRetry(input);
        if (existing) return { message: existing, created: false };
      }
      throw e;
    }
    // No row: the channel is missing or the user is not a member. Say which.
    await this.channels.requireMember(input.channel, input.user);
    throw new WalcastError('unavailable', 'message was not stored; retry');
  }

  /**
   * The same statement in an explicit transaction, with the beforeCommit hook between it and
   * COMMIT. The channel row stays locked meanwhile, so a slow hook also delays the channel's
   * next writers (as any slow transaction would).
   */
  private async postInTransaction(params: unknown[]): Promise<MessageRow | undefined> {
    const client = await this.pool.connect();
    let ok = false;
    try {
      await client.query('BEGIN');
      const row = (await client.query<MessageRow>(POST_SQL, params)).rows[0];
      if (row) await this.hooks.beforeCommit?.([toMessage(row)]);
      await client.query('COMMIT');
      ok = true;
      return row;
    } finally {
      // A connection whose ROLLBACK failed is discarded rather than returned to the pool.
      const broken = !ok && (await client.query('ROLLBACK').then(() => false, () => true));
      client.release(broken);
    }
  }

  async get(channel: string, user: string, seq: number): Promise<Message> {
    await this.channels.requireMember(channel, user);
    const row = await this.read(channel, seq);
    if (!row) throw new WalcastError('message_not_found');
    return row;
  }

  async history(channel: string, user: string, afterSeq: number, limit: number): Promise<History> {
    await this.channels.requireMember(channel, user);
    const rows = await this.range(channel, afterSeq, limit + 1);
    return { messages: rows.slice(0, limit), has_more: rows.length > limit };
  }

  /** Committed messages with seq > afterSeq, ascending, without a membership check (gateway use). */
  async range(channel: string, afterSeq: number, limit: number, upToSeq = Number.MAX_SAFE_INTEGER): Promise<Message[]> {
    const { rows } = await this.pool.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages
        WHERE channel_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4`,
      [channel, afterSeq, upToSeq, limit],
    );
    return rows.map(toMessage);
  }

  private async read(channel: string, seq: number): Promise<Message | undefined> {
    const { rows } = await this.pool.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE channel_id = $1 AND seq = $2`,
      [channel, seq],
    );
    return rows[0] && toMessage(rows[0]);
  }

  private async findRetry(input: PostInput): Promise<Message | undefined> {
    const { rows } = await this.pool.query<MessageRow>(FIND_RETRY_SQL, [input.channel, input.user, input.clientMsgId]);
    return rows[0] && toMessage(rows[0]);
  }
}
