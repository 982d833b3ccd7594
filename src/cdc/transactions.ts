// Turns the pgoutput stream into bus events, one committed transaction at a time: new messages
// (inserts into messages) and changes (inserts into channel_events, with the message they touch
// taken from its UPDATE in the same transaction), each with its seq. Rows are held from Begin
// until Commit and only then released, with the commit's end LSN, which the relay acknowledges
// after the bus accepted them. Pure logic: no I/O here.
import type { Pgoutput } from 'pg-logical-replication';
import type { BusEvent } from '../bus/bus.js';
import { messageFrame, toChangeFrame, toMessage, type ChangeFrame, type EventRow, type Message, type MessageRow } from '../chat/model.js';

export type ChangeEvent = Extract<BusEvent, { kind: 'change' }>;

const changeEvent = (frame: ChangeFrame, target: Message | undefined, committedAt: number | undefined): ChangeEvent => ({
  kind: 'change',
  channel: frame.channel,
  seq: frame.seq,
  frame,
  ...(target ? { target } : {}),
  ...(committedAt !== undefined ? { committedAt } : {}),
});

/** The columns a tuple actually carries (pgoutput leaves unchanged TOASTed ones undefined). */
function definedOnly(row: Record<string, unknown> | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row ?? {})) if (v !== undefined) out[k] = v;
  return out;
}

export const HEARTBEAT_PREFIX = 'walcast.heartbeat';
/** Written right after a slot is (re)created: what committed before it never reaches the stream. */
export const RESYNC_PREFIX = 'walcast.resync';

export type Decoded =
  | { kind: 'none' }
  /**
   * A whole committed transaction (`xid`): publish `events`, then acknowledge `endLsn`. When
   * `unresolved` > 0, some change events still need their target message read back (see
   * resolveChanges) before they can be published.
   */
  | { kind: 'commit'; xid: number; events: ChangeEvent[]; endLsn: string; unresolved: number; committedAt: number | undefined }
  /** A heartbeat written by a relay: `sentAt` is its database timestamp (ms). */
  | { kind: 'heartbeat'; lsn: string; sentAt: number }
  /** The slot was (re)created: every gateway must re-read its channels from the database. */
  | { kind: 'resync'; lsn: string; epoch: string };

interface OpenTransaction {
  xid: number;
  /** New messages, in WAL order. */
  messages: Message[];
  /** Change-log rows, in WAL order. */
  changes: EventRow[];
  /** Messages as updated in this transaction, by "channel:seq" (the targets of its changes). */
  updated: Map<string, Message>;
  /** Targets PostgreSQL sent without some column (see below): the relay reads them back. */
  incomplete: Set<string>;
}

export class TransactionAssembler {
  private open: OpenTransaction | null = null;

  get inTransaction(): boolean {
    return this.open !== null;
  }

  push(msg: Pgoutput.Message): Decoded {
    switch (msg.tag) {
      case 'begin':
        this.open = { xid: msg.xid, messages: [], changes: [], updated: new Map(), incomplete: new Set() };
        return { kind: 'none' };
      case 'insert':
        if (msg.relation.name === 'messages') this.open?.messages.push(toMessage(msg.new as MessageRow));
        else if (msg.relation.name === 'channel_events') this.open?.changes.push(msg.new as EventRow);
        return { kind: 'none' };
      case 'update':
        if (msg.relation.name === 'messages' && this.open) {
          // An unchanged value stored out of line (a long text under a reaction) is left out of
          // the new tuple (undefined); with REPLICA IDENTITY FULL the old tuple has it (and the
          // library copies it over). Without FULL it is missing: mark it for a read-back.
          const row = { ...(msg.old ?? {}), ...definedOnly(msg.new) } as MessageRow;
          const key = `${row.channel_id}:${row.seq}`;
          if (Object.values(row).some((v) => v === undefined) || row.text === undefined) this.open.incomplete.add(key);
          else this.open.updated.set(key, toMessage(row));
        }
        return { kind: 'none' };
      case 'commit': {
        const open = this.open;
        this.open = null;
        const committedAt = typeof msg.commitTime === 'bigint' ? Number(msg.commitTime / 1000n) : undefined;
        const events: ChangeEvent[] = [];
        for (const m of open?.messages ?? []) events.push(changeEvent(messageFrame(m), undefined, committedAt));
        const unresolved: ChangeEvent[] = [];
        for (const c of open?.changes ?? []) {
          const key = `${c.channel_id}:${c.target_seq}`;
          const target = c.target_seq === null ? undefined : open!.updated.get(key);
          if (c.target_seq !== null && !target && c.kind !== 'member_joined' && c.kind !== 'member_left') {
            // Filled in by the relay (readBack) before publishing.
            const e = { kind: 'change', channel: c.channel_id, seq: Number(c.seq), frame: null as unknown as ChangeFrame, pending: c } as ChangeEvent & { pending: EventRow };
            events.push(e);
            unresolved.push(e);
            continue;
          }
          events.push(changeEvent(toChangeFrame(c, target), target, committedAt));
        }
        // One channel's entries in seq order (a batch interleaves channels; each keeps its order).
        events.sort((a, b) => (a.channel === b.channel ? a.seq - b.seq : 0));
        return { kind: 'commit', xid: open?.xid ?? 0, events, endLsn: msg.commitEndLsn ?? '0/0', unresolved: unresolved.length, committedAt };
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
        // relation, type, origin, truncate, delete: nothing a subscriber needs.
        return { kind: 'none' };
    }
  }

  reset(): void {
    this.open = null;
  }
}
