// Membership checks at subscribe, batched per channel: every (channel, user) asked for while a
// channel has no query in flight goes into that channel's next query, so ten thousand clients
// resubscribing to one channel after a gateway loss cost a handful of queries, not ten
// thousand. A request never joins a query that is already running: the answer it gets was read
// after it was asked, which the gateway's kick window relies on.
import type { Pool } from '../db/pool.js';
import type { Membership, Role } from '../chat/channels.js';
import { CHANNEL_COLUMNS, toChannel, type ChannelRow } from '../chat/model.js';
import { WalcastError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { Semaphore } from '../util/semaphore.js';

interface Waiter {
  resolve(m: Membership): void;
  reject(e: unknown): void;
}

interface ChannelBatch {
  /** Requests for the next query, by user. */
  next: Map<string, Waiter[]>;
  running: boolean;
}

const SQL = `
  SELECT ${CHANNEL_COLUMNS.split(', ').map((c) => `c.${c}`).join(', ')},
         coalesce((SELECT json_object_agg(m.user_id, json_build_array(m.role, m.joined_seq))
                     FROM channel_members m WHERE m.channel_id = c.id AND m.user_id = ANY($2::text[])), '{}') AS members
    FROM channels c WHERE c.id = $1`;

/** At most this many users per query; a bigger batch is split. */
const MAX_USERS_PER_QUERY = 5000;

export class MembershipBatcher {
  private readonly channels = new Map<string, ChannelBatch>();

  constructor(
    private readonly pool: Pool,
    private readonly db: Semaphore,
    private readonly metrics: Metrics,
  ) {}

  check(channel: string, user: string): Promise<Membership> {
    let b = this.channels.get(channel);
    if (!b) this.channels.set(channel, (b = { next: new Map(), running: false }));
    const batch = b;
    return new Promise<Membership>((resolve, reject) => {
      const list = batch.next.get(user);
      if (list) list.push({ resolve, reject });
      else batch.next.set(user, [{ resolve, reject }]);
      // Wait one turn so that the requests arriving together share the query.
      if (!batch.running && batch.next.size === 1 && list === undefined) setImmediate(() => this.run(channel));
    });
  }

  private async run(channel: string): Promise<void> {
    const b = this.channels.get(channel);
    if (!b || b.running || b.next.size === 0) return;
    b.running = true;
    const users = [...b.next.keys()].slice(0, MAX_USERS_PER_QUERY);
    const waiters = users.map((u) => [u, b.next.get(u)!] as const);
    for (const u of users) b.next.delete(u);
    try {
      this.metrics.membershipBatches.inc();
      const { rows } = await this.db.run(() => this.pool.query<ChannelRow & { members: Record<string, [Role, number]> }>(SQL, [channel, users]));
      const row = rows[0];
      if (!row) {
        const e = new WalcastError('channel_not_found');
        for (const [, ws] of waiters) for (const w of ws) w.reject(e);
      } else {
        const ch = toChannel(row);
        for (const [u, ws] of waiters) {
          const m = row.members[u];
          const membership: Membership = { channel: ch, member: m !== undefined, role: m?.[0] ?? null, joinedSeq: Number(m?.[1] ?? 0) };
          for (const w of ws) w.resolve(membership);
        }
      }
    } catch (e) {
      for (const [, ws] of waiters) for (const w of ws) w.reject(e);
    } finally {
      b.running = false;
      if (b.next.size > 0) setImmediate(() => this.run(channel));
      else if (this.channels.get(channel) === b) this.channels.delete(channel);
    }
  }
}
