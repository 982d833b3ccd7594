// Reading messages, and storing them through the group-commit writer (writer.ts), which
// assigns seq in the transaction that stores the row (see docs/sequencing.md).
import { WalcastError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import type { Channels } from './channels.js';
import { MESSAGE_COLUMNS, messageFrame, toChangeFrame, toMessage, type ChangeFrame, type EventRow, type Message, type MessageRow } from './model.js';
import { MessageWriter, type PostInput, type PostResult, type WriterOptions } from './writer.js';

export type { PostInput, PostResult, WriteHooks } from './writer.js';

export interface History {
  messages: Message[];
  has_more: boolean;
}

export interface Replay {
  changes: ChangeFrame[];
  has_more: boolean;
}

// The change log by seq: new messages (in their current state) and every other change, with the
// message a message_changed is about. Message columns come prefixed with m_.
const LOG_SQL = `
  SELECT 'message' AS kind, m.seq, NULL::bigint AS target_seq, NULL::text AS event_user, NULL::text AS name, NULL::text AS reason,
         ${MESSAGE_COLUMNS.split(', ').map((c) => `m.${c} AS m_${c}`).join(', ')}
    FROM messages m WHERE m.channel_id = $1 AND m.seq > $2 AND m.seq <= $3
  UNION ALL
  SELECT e.kind, e.seq, e.target_seq, e.user_id, e.name, e.reason,
         ${MESSAGE_COLUMNS.split(', ').map((c) => `t.${c} AS m_${c}`).join(', ')}
    FROM channel_events e
    LEFT JOIN messages t ON e.kind = 'message_changed' AND t.channel_id = e.channel_id AND t.seq = e.target_seq
   WHERE e.channel_id = $1 AND e.seq > $2 AND e.seq <= $3
  ORDER BY seq LIMIT $4`;

type LogRow = { kind: 'message' | EventRow['kind']; seq: string | number; target_seq: string | number | null; event_user: string | null; name: string | null; reason: string | null } & {
  [K in keyof MessageRow as `m_${K & string}`]: MessageRow[K];
};

function unprefix(r: LogRow): MessageRow {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) if (k.startsWith('m_')) out[k.slice(2)] = v;
  return out as unknown as MessageRow;
}

function toLogFrame(channel: string, r: LogRow): ChangeFrame {
  if (r.kind === 'message') return messageFrame(toMessage(unprefix(r)));
  const target = r.m_id ? toMessage(unprefix(r)) : undefined;
  return toChangeFrame({ channel_id: channel, seq: r.seq, kind: r.kind, target_seq: r.target_seq, user_id: r.event_user!, name: r.name, reason: r.reason }, target);
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

  /**
   * Messages in their current state (deleted ones as tombstones), ascending. After `afterSeq`
   * (has_more: newer ones exist), or with `beforeSeq` the latest `limit` before it (has_more:
   * older ones exist).
   */
  async history(channel: string, user: string, afterSeq: number, limit: number, beforeSeq?: number): Promise<History> {
    await this.channels.requireMember(channel, user);
    if (beforeSeq === undefined) {
      const rows = await this.range(channel, afterSeq, limit + 1);
      return { messages: rows.slice(0, limit), has_more: rows.length > limit };
    }
    const { rows } = await this.pool.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages
        WHERE channel_id = $1 AND seq > $2 AND seq < $3 ORDER BY seq DESC LIMIT $4`,
      [channel, afterSeq, beforeSeq, limit + 1],
    );
    return { messages: rows.slice(0, limit).reverse().map(toMessage), has_more: rows.length > limit };
  }

  /** The change log after `afterSeq` (every frame that carries a seq), for a member. */
  async replay(channel: string, user: string, afterSeq: number, limit: number): Promise<Replay> {
    const { joinedSeq } = await this.channels.requireMember(channel, user);
    // What happened before the user (last) joined is not theirs to replay.
    const changes = await this.log(channel, Math.max(afterSeq, joinedSeq - 1), limit + 1);
    return { changes: changes.slice(0, limit), has_more: changes.length > limit };
  }

  /** The change log with seq in (afterSeq, upToSeq], ascending, without a membership check (gateway use). */
  async log(channel: string, afterSeq: number, limit: number, upToSeq = Number.MAX_SAFE_INTEGER): Promise<ChangeFrame[]> {
    const { rows } = await this.pool.query<LogRow>(LOG_SQL, [channel, afterSeq, upToSeq, limit]);
    return rows.map((r) => toLogFrame(channel, r));
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
