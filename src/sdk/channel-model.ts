// What a chat UI renders for one channel, kept up to date from the change log: the messages in
// their current state (edits, tombstones, reaction counts), who is typing, who is present. It
// starts from a history page (rows in their current state) and applies every later frame.
//
// Rows carry `changed_seq`, the seq of the last change applied to them, and a change frame is
// applied only if its seq is higher: replaying the log over current state never counts a
// reaction twice or resurrects an edited text, wherever the rows came from.
import type { ChangeFrame, Message } from '../protocol.js';
import { TYPING_INTERVAL_MS } from '../protocol.js';
import type { WalcastApi } from './api.js';
import type { WalcastClient } from './client.js';
import type { ChannelSubscription } from './subscription.js';

export class ChannelModel {
  /** Messages by seq. */
  private readonly bySeq = new Map<number, Message>();
  /** Users who joined or left while watched (member frames), by last known state. */
  readonly members = new Map<string, boolean>();
  /** Users typing, until when (ms). */
  private readonly typingUntil = new Map<string, number>();
  /** Users with a live subscription to the channel (needs presence frames); empty while the server sends counts. */
  readonly present = new Set<string>();
  /** How many are present, while the server sends counts instead of users (big channels); undefined otherwise. */
  presentCount: number | undefined;
  /** The highest seq applied (history rows or frames). */
  lastSeq = 0;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly channel: string,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** The messages, oldest first (deleted ones as tombstones: `deleted_at` set, no text). */
  get messages(): Message[] {
    return [...this.bySeq.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Users typing right now. */
  get typing(): string[] {
    const t = this.now();
    return [...this.typingUntil].filter(([, until]) => until > t).map(([u]) => u);
  }

  /** Calls `fn` after every change of the model; returns a function that stops it. */
  onUpdate(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Rows from `conversations.history` (current state): newer rows replace older copies. */
  load(messages: readonly Message[]): void {
    for (const m of messages) {
      const held = this.bySeq.get(m.seq);
      if (!held || m.changed_seq >= held.changed_seq) this.bySeq.set(m.seq, m);
      this.lastSeq = Math.max(this.lastSeq, m.changed_seq);
    }
    this.emit();
  }

  /** One frame of the change log, in seq order. */
  apply(f: ChangeFrame): void {
    this.lastSeq = Math.max(this.lastSeq, f.seq);
    switch (f.type) {
      case 'message':
      case 'message_changed': {
        const held = this.bySeq.get(f.message.seq);
        if (!held || f.message.changed_seq >= held.changed_seq) this.bySeq.set(f.message.seq, f.message);
        this.typingUntil.delete(f.message.user);
        break;
      }
      case 'message_deleted':
        this.touch(f.target_seq, f.seq, (m) => ({ ...m, text: '', deleted_at: m.deleted_at ?? new Date(this.now()).toISOString(), reactions: {} }));
        break;
      case 'reaction_added':
      case 'reaction_removed':
        this.touch(f.target_seq, f.seq, (m) => {
          const reactions = { ...m.reactions };
          const n = (reactions[f.name] ?? 0) + (f.type === 'reaction_added' ? 1 : -1);
          if (n > 0) reactions[f.name] = n;
          else delete reactions[f.name];
          return { ...m, reactions };
        });
        break;
      case 'member_joined':
        this.members.set(f.user, true);
        break;
      case 'member_left':
        this.members.set(f.user, false);
        this.present.delete(f.user);
        break;
    }
    this.emit();
  }

  typingBy(user: string): void {
    this.typingUntil.set(user, this.now() + TYPING_INTERVAL_MS * 1.5);
    this.emit();
  }

  presenceCount(count: number): void {
    // A count replaces the list; the whole list comes again when per-user frames resume.
    this.present.clear();
    this.presentCount = count;
    this.emit();
  }

  presence(user: string, present: boolean): void {
    this.presentCount = undefined;
    if (present) this.present.add(user);
    else this.present.delete(user);
    this.emit();
  }

  /** Applies `change` to a held message unless the message already reflects `seq`. */
  private touch(target: number, seq: number, change: (m: Message) => Message): void {
    const m = this.bySeq.get(target);
    if (!m || m.changed_seq >= seq) return;
    this.bySeq.set(target, { ...change(m), changed_seq: seq });
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}

export interface WatchOptions {
  /** Messages to load first (the latest page); default 50. */
  pageSize?: number;
  /** Receive presence frames. */
  presence?: boolean;
}

/** A watched channel: the model, its subscription, and scrolling back through older history. */
export interface WatchedChannel {
  model: ChannelModel;
  subscription: ChannelSubscription;
  /** Loads the page of messages before the oldest one held; resolves false when there is none. */
  loadOlder(): Promise<boolean>;
  close(): void;
}

/**
 * Loads the latest page of a channel's history, then subscribes from there: the model is
 * complete and follows every change, across reconnects.
 */
export async function watchChannel(client: WalcastClient, api: WalcastApi, channel: string, o: WatchOptions = {}): Promise<WatchedChannel> {
  const model = new ChannelModel(channel);
  const pageSize = o.pageSize ?? 50;
  const first = await api.history(channel, { beforeSeq: Number.MAX_SAFE_INTEGER, limit: pageSize });
  model.load(first.messages);
  let olderExist = first.has_more;
  const subscription = client.subscribe(channel, {
    since: model.lastSeq,
    presence: o.presence,
    onChange: (f) => model.apply(f),
    onTyping: (user) => model.typingBy(user),
    onPresence: ({ user, present }) => model.presence(user, present),
    onPresenceCount: (count) => model.presenceCount(count),
  });
  return {
    model,
    subscription,
    loadOlder: async () => {
      if (!olderExist) return false;
      const oldest = model.messages[0]?.seq ?? Number.MAX_SAFE_INTEGER;
      const page = await api.history(channel, { beforeSeq: oldest, limit: pageSize });
      model.load(page.messages);
      olderExist = page.has_more;
      return page.messages.length > 0;
    },
    close: () => subscription.unsubscribe(),
  };
}
