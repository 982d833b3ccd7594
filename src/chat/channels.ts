// Channels and their members. Membership is checked on every read and write; a kick is a
// DELETE that the relay turns into a kick event, in order with the channel's messages.
import { WalcastError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import { newChannelId } from './ids.js';
import { CHANNEL_COLUMNS, toChannel, type Channel, type ChannelRow } from './model.js';

export interface Membership {
  channel: Channel;
  member: boolean;
}

export class Channels {
  constructor(private readonly pool: Pool) {}

  async create(user: string, name: string, isPrivate: boolean): Promise<Channel> {
    const { rows } = await this.pool.query<ChannelRow>(
      `WITH c AS (
         INSERT INTO channels (id, name, is_private, created_by) VALUES ($1, $2, $3, $4)
         RETURNING ${CHANNEL_COLUMNS}
       ), m AS (
         INSERT INTO channel_members (channel_id, user_id) SELECT id, $4 FROM c
       )
       SELECT * FROM c`,
      [newChannelId(), name, isPrivate, user],
    );
    return toChannel(rows[0]!);
  }

  /** The channel and whether `user` is a member; channel_not_found if it does not exist. */
  async membership(channelId: string, user: string): Promise<Membership> {
    const { rows } = await this.pool.query<ChannelRow & { member: boolean }>(
      `SELECT ${CHANNEL_COLUMNS},
              EXISTS (SELECT 1 FROM channel_members m WHERE m.channel_id = c.id AND m.user_id = $2) AS member
         FROM channels c WHERE c.id = $1`,
      [channelId, user],
    );
    const row = rows[0];
    if (!row) throw new WalcastError('channel_not_found');
    return { channel: toChannel(row), member: row.member };
  }

  /** The channel, if `user` may read and write it. */
  async requireMember(channelId: string, user: string): Promise<Channel> {
    const m = await this.membership(channelId, user);
    if (!m.member) throw new WalcastError('not_in_channel');
    return m.channel;
  }

  /** The channel's last committed seq (channel_not_found if it does not exist). */
  async lastSeq(channelId: string): Promise<number> {
    const { rows } = await this.pool.query<{ last_seq: number }>('SELECT last_seq FROM channels WHERE id = $1', [channelId]);
    if (!rows[0]) throw new WalcastError('channel_not_found');
    return Number(rows[0].last_seq);
  }

  async join(channelId: string, user: string): Promise<Channel> {
    const m = await this.membership(channelId, user);
    if (m.member) return m.channel;
    // A private channel is invisible to non-members: joining one looks like joining nothing.
    if (m.channel.is_private) throw new WalcastError('channel_not_found');
    await this.pool.query(
      'INSERT INTO channel_members (channel_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
      [channelId, user],
    );
    return m.channel;
  }

  async invite(channelId: string, user: string, users: string[]): Promise<Channel> {
    const channel = await this.requireMember(channelId, user);
    await this.pool.query(
      `INSERT INTO channel_members (channel_id, user_id)
       SELECT $1, u FROM unnest($2::text[]) AS u ON CONFLICT DO NOTHING`,
      [channelId, [...new Set(users)]],
    );
    return channel;
  }

  /** Removes `target`; its live subscriptions end when the DELETE reaches the gateways. */
  async kick(channelId: string, user: string, target: string): Promise<void> {
    await this.requireMember(channelId, user);
    await this.pool.query('DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2', [channelId, target]);
  }
}
