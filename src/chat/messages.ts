// Reading messages, and storing them through the group-commit writer (writer.ts), which
// assigns seq in the transaction that stores the row (see docs/sequencing.md).
import { WalcastError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import type { Channels } from './channels.js';
import { MESSAGE_COLUMNS, toMessage, type Message, type MessageRow } from './model.js';
import { MessageWriter, type PostInput, type PostResult, type WriterOptions } from './writer.js';

export type { PostInput, PostResult, WriteHooks } from './writer.js';

export interface History {
  messages: Message[];
  has_more: boolean;
}

export class Messages {
  private readonly writer: MessageWriter;

  constructor(
    private readonly pool: Pool,
    private readonly channels: Channels,
    writer: WriterOptions = { lanes: 1, batchMax: 1 },
  ) {
    this.writer = new MessageWriter(pool, writer);
  }

  /** Stores a message; a retry with the same client_msg_id returns the first one. */
  post(input: PostInput): Promise<PostResult> {
    return this.writer.post(input);
  }

  /** Posts waiting for a database lane. */
  get queueDepth(): number {
    return this.writer.queueDepth;
  }

  /** Finishes the posts in hand; new ones are refused. */
  close(): Promise<void> {
    return this.writer.close();
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
}
