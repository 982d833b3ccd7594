// Turns the pgoutput stream into bus events, one committed transaction at a time. Rows are
// held from Begin until Commit and only then released, with the commit's end LSN, which the
// relay acknowledges after the bus accepted them. Pure logic: no I/O here.
import type { Pgoutput } from 'pg-logical-replication';
import type { BusEvent } from '../bus/bus.js';
import { toMessage, type MessageRow } from '../chat/model.js';

export const HEARTBEAT_PREFIX = 'walcast.heartbeat';
/** Written right after a slot is (re)created: what committed before it never reaches the stream. */
export const RESYNC_PREFIX = 'walcast.resync';

export type Decoded =
  | { kind: 'none' }
  /** A whole committed transaction (`xid`): publish `events`, then acknowledge `endLsn`. */
  | { kind: 'commit'; xid: number; events: BusEvent[]; endLsn: string }
  /** A heartbeat written by a relay: `sentAt` is its database timestamp (ms). */
  | { kind: 'heartbeat'; lsn: string; sentAt: number }
  /** The slot was (re)created: every gateway must re-read its channels from the database. */
  | { kind: 'resync'; lsn: string; epoch: string };

export class TransactionAssembler {
  private open: BusEvent[] | null = null;
  private xid = 0;

  get inTransaction(): boolean {
    return this.open !== null;
  }

  push(msg: Pgoutput.Message): Decoded {
    switch (msg.tag) {
      case 'begin':
        this.open = [];
        this.xid = msg.xid;
        return { kind: 'none' };
      case 'insert':
        if (msg.relation.name === 'messages') {
          const message = toMessage(msg.new as MessageRow);
          this.open?.push({ kind: 'message', channel: message.channel, seq: message.seq, message });
        }
        return { kind: 'none' };
      case 'delete':
        if (msg.relation.name === 'channel_members') {
          const row = (msg.key ?? msg.old) as { channel_id?: string; user_id?: string } | null;
          if (row?.channel_id && row.user_id) this.open?.push({ kind: 'kick', channel: row.channel_id, user: row.user_id });
        }
        return { kind: 'none' };
      case 'commit': {
        const events = this.open ?? [];
        this.open = null;
        const committedAt = typeof msg.commitTime === 'bigint' ? Number(msg.commitTime / 1000n) : undefined;
        if (committedAt !== undefined) for (const e of events) if (e.kind === 'message') e.committedAt = committedAt;
        return { kind: 'commit', xid: this.xid, events, endLsn: msg.commitEndLsn ?? '0/0' };
      }
      case 'message':
        if (!msg.transactional && msg.prefix === HEARTBEAT_PREFIX && msg.messageLsn) {
          const sentAt = Number(new TextDecoder().decode(msg.content));
          return { kind: 'heartbeat', lsn: msg.messageLsn, sentAt: Number.isFinite(sentAt) ? sentAt : Date.now() };
        }
        if (!msg.transactional && msg.prefix === RESYNC_PREFIX && msg.messageLsn) {
          return { kind: 'resync', lsn: msg.messageLsn, epoch: new TextDecoder().decode(msg.content) };
        }
        return { kind: 'none' };
      default:
        // relation, type, origin, truncate, update: nothing a subscriber needs.
        return { kind: 'none' };
    }
  }

  reset(): void {
    this.open = null;
  }
}
