// The tables walcast owns. The database is the only source of truth and the only history;
// everything downstream (bus, gateway rings) is a cache repaired from here by seq.
import { sql } from 'drizzle-orm';
import { bigint, boolean, index, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

export const channels = pgTable('channels', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  isPrivate: boolean('is_private').notNull().default(false),
  createdBy: text('created_by').notNull(),
  // The per-channel counter: seq is taken from here, under this row's lock, in the
  // transaction that stores the message (see src/chat/messages.ts).
  lastSeq: bigint('last_seq', { mode: 'number' }).notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().default(sql`now()`),
});

export const channelMembers = pgTable(
  'channel_members',
  {
    channelId: text('channel_id')
      .notNull()
      .references(() => channels.id, { onDelete: 'cascade' }),
    userId: text('user_id').notNull(),
    joinedAt: timestamp('joined_at', { withTimezone: true, mode: 'date' }).notNull().default(sql`now()`),
  },
  // The primary key is the replica identity: a DELETE (a kick) reaches the relay with both columns.
  (t) => [primaryKey({ columns: [t.channelId, t.userId] }), index('channel_members_user_idx').on(t.userId)],
);

export const messages = pgTable(
  'messages',
  {
    channelId: text('channel_id')
      .notNull()
      .references(() => channels.id, { onDelete: 'cascade' }),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    id: uuid('id').notNull(),
    userId: text('user_id').notNull(),
    text: text('text').notNull(),
    clientMsgId: text('client_msg_id'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().default(sql`now()`),
  },
  (t) => [
    // (channel_id, seq) is both the uniqueness rule and the index every history read walks.
    primaryKey({ columns: [t.channelId, t.seq] }),
    uniqueIndex('messages_id_key').on(t.id),
    uniqueIndex('messages_idempotency_key').on(t.channelId, t.userId, t.clientMsgId),
  ],
);

// Token revocations (src/auth/revocations.ts): a user's tokens issued before not_before
// (seconds since the epoch) are refused everywhere.
export const revocations = pgTable(
  'revocations',
  {
    userId: text('user_id').primaryKey(),
    notBefore: bigint('not_before', { mode: 'number' }).notNull(),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }).notNull().default(sql`now()`),
  },
  (t) => [index('revocations_revoked_at_idx').on(t.revokedAt)],
);
