// Channels and their members. Membership is checked on every read and write. Every change of
// membership takes the channel's next seq (member_joined, member_left) in the transaction that
// makes it (drizzle/0004_change_log.sql, walcast_change_members), so it reaches subscribers in
// order with the channel's messages, and a kicked member's subscriptions end exactly there.
// Roles: the creator owns a channel; owners and admins kick and invite; members invite where
// the channel allows it. A private channel is invisible to non-members: whatever they try, it
// answers channel_not_found, exactly as a channel that does not exist.
import { WalcastError } from '../errors.js';
import type { Pool } from '../db/pool.js';
import { newChannelId } from './ids.js';
import { CHANNEL_COLUMNS, toChannel, type Channel, type ChannelRow } from './model.js';

export type Role = 'owner' | 'admin' | 'member';

export interface Membership {
  channel: Channel;
  member: boolean;
  role: Role | null;
  /** The seq of the member_joined that added the user (0: from the start). */
  joinedSeq: number;
}

export interface ChannelsOptions {
  /** Invites may name users walcast has never seen (WALCAST_INVITE_UNKNOWN_USERS). */
  inviteUnknownUsers: boolean;
}

type MemberChange = 'join' | 'invite' | 'kick' | 'leave';

export class Channels {
  constructor(
    private readonly pool: Pool,
    private readonly o: ChannelsOptions = { inviteUnknownUsers: false },
  ) {}

  async create(user: string, name: string, isPrivate: boolean, membersCanInvite = true): Promise<Channel> {
    const { rows } = await this.pool.query<ChannelRow>(
      `WITH c AS (
         INSERT INTO channels (id, name, is_private, created_by, members_can_invite) VALUES ($1, $2, $3, $4, $5)
         RETURNING ${CHANNEL_COLUMNS}
       ), m AS (
         INSERT INTO channel_members (channel_id, user_id, role, joined_seq) SELECT id, $4, 'owner', 0 FROM c
       )
       SELECT * FROM c`,
      [newChannelId(), name, isPrivate, user, membersCanInvite],
    );
    return toChannel(rows[0]!);
  }

  /** The channel and `user`'s place in it; channel_not_found if it does not exist. */
  async membership(channelId: string, user: string): Promise<Membership> {
    const { rows } = await this.pool.query<ChannelRow & { role: Role | null; joined_seq: number | null }>(
      `SELECT ${CHANNEL_COLUMNS.split(', ').map((c) => `c.${c}`).join(', ')}, m.role, m.joined_seq
         FROM channels c LEFT JOIN channel_members m ON m.channel_id = c.id AND m.user_id = $2
        WHERE c.id = $1`,
      [channelId, user],
    );
    const row = rows[0];
    if (!row) throw new WalcastError('channel_not_found');
    return { channel: toChannel(row), member: row.role !== null, role: row.role, joinedSeq: Number(row.joined_seq ?? 0) };
  }

  /** The channel, if `user` may read and write it (a private one looks absent to others). */
  async requireMember(channelId: string, user: string): Promise<Membership> {
    const m = await this.membership(channelId, user);
    if (!m.member) throw new WalcastError(m.channel.is_private ? 'channel_not_found' : 'not_in_channel');
    return m;
  }

  /** The channel's last committed seq (channel_not_found if it does not exist). */
  async lastSeq(channelId: string): Promise<number> {
    const { rows } = await this.pool.query<{ last_seq: number }>('SELECT last_seq FROM channels WHERE id = $1', [channelId]);
    if (!rows[0]) throw new WalcastError('channel_not_found');
    return Number(rows[0].last_seq);
  }

  /** Joins a public channel (a member already: nothing changes). */
  join(channelId: string, user: string): Promise<Channel> {
    return this.change(channelId, user, 'join', [user]);
  }

  invite(channelId: string, user: string, users: string[]): Promise<Channel> {
    return this.change(channelId, user, 'invite', [...new Set(users)]);
  }

  /** Removes `target`; their live subscriptions end at the member_left this takes. */
  async kick(channelId: string, user: string, target: string): Promise<void> {
    await this.change(channelId, user, 'kick', [target]);
  }

  async leave(channelId: string, user: string): Promise<void> {
    await this.change(channelId, user, 'leave', [user]);
  }

  private async change(channelId: string, actor: string, kind: MemberChange, users: string[]): Promise<Channel> {
    const { rows } = await this.pool.query<ChannelRow & { outcome: string; users: string[] | null }>(
      'SELECT * FROM walcast_change_members($1, $2, $3, $4::text[], $5)',
      [channelId, actor, kind, users, this.o.inviteUnknownUsers],
    );
    const r = rows[0]!;
    switch (r.outcome) {
      case 'ok':
        return toChannel(r);
      case 'no_channel':
        throw new WalcastError('channel_not_found');
      case 'not_member':
        throw new WalcastError('not_in_channel');
      case 'not_allowed':
        throw new WalcastError('not_allowed', kind === 'kick' ? 'only the channel\'s owner and admins may kick, and never its owner' : 'only the channel\'s owner and admins may invite here');
      case 'banned':
        throw new WalcastError('not_allowed', 'you were removed from this channel: a member must invite you back');
      case 'unknown_users':
        throw new WalcastError('user_not_found', `unknown users: ${(r.users ?? []).join(', ')}`, { detail: { users: r.users ?? [] } });
      default:
        throw new Error(`walcast_change_members answered ${r.outcome}`);
    }
  }
}
