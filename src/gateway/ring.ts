// The last frames of a channel, contiguous by seq, for catch-up without the database. Bounded
// by entries and by bytes, and allocated as it fills: a gateway serving ten thousand quiet
// channels holds ten thousand nearly empty rings, not ten thousand full-size arrays.

export interface Entry {
  seq: number;
  frame: string;
  /** A member_left: who left, and why (their subscriptions end after this frame). */
  left?: { user: string; reason: 'left' | 'kicked' };
}

export class Ring {
  /** Live entries are items[head..]; the dead prefix is dropped now and then, not per push. */
  private items: (Entry | undefined)[] = [];
  private head = 0;
  private bytes = 0;

  constructor(
    private readonly maxEntries: number,
    /** Frame characters (≈ bytes: frames are mostly ASCII JSON) held at most. */
    private readonly maxBytes: number = Number.MAX_SAFE_INTEGER,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  /** Characters of frames held. */
  get weight(): number {
    return this.bytes;
  }

  /** Appends; `entry.seq` must follow the last one (a jump clears the ring rather than leave a hole). */
  push(entry: Entry): void {
    if (this.maxEntries === 0) return;
    const last = this.lastSeq();
    if (last !== undefined && entry.seq !== last + 1) this.clear();
    this.items.push(entry);
    this.bytes += entry.frame.length;
    this.trim();
  }

  /**
   * Adds older entries in front: `entries` (contiguous, ascending) must end right before the
   * first entry held (any run when empty). Only free room is used; newer entries are never evicted.
   */
  prepend(entries: readonly Entry[]): void {
    if (this.maxEntries === 0 || entries.length === 0) return;
    const first = this.firstSeq();
    if (first !== undefined && entries[entries.length - 1]!.seq !== first - 1) return;
    const taken: Entry[] = [];
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i]!;
      if (this.size + taken.length >= this.maxEntries || this.bytes + e.frame.length > this.maxBytes) break;
      taken.push(e);
      this.bytes += e.frame.length;
    }
    if (taken.length === 0) return;
    taken.reverse();
    this.items = [...taken, ...this.items.slice(this.head)];
    this.head = 0;
  }

  /** Replaces the frame of `seq` if the ring holds it (a message changed since it was sent). */
  replace(seq: number, frame: string): void {
    const first = this.firstSeq();
    if (first === undefined || seq < first || seq >= first + this.size) return;
    const e = this.items[this.head + (seq - first)]!;
    this.bytes += frame.length - e.frame.length;
    e.frame = frame;
    this.trim();
  }

  firstSeq(): number | undefined {
    return this.size ? this.items[this.head]!.seq : undefined;
  }

  lastSeq(): number | undefined {
    return this.size ? this.items[this.items.length - 1]!.seq : undefined;
  }

  /** Entries with seq > after, if the ring holds all of them; undefined if it does not reach back that far. */
  after(after: number): Entry[] | undefined {
    const first = this.firstSeq();
    if (first === undefined || after + 1 < first) return undefined;
    return this.items.slice(this.head + (after + 1 - first)) as Entry[];
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
  }

  private trim(): void {
    while (this.size > 0 && (this.size > this.maxEntries || this.bytes > this.maxBytes)) {
      this.bytes -= this.items[this.head]!.frame.length;
      this.items[this.head++] = undefined;
    }
    // Drop the dead prefix once it is as large as what is alive (amortised O(1) per push).
    if (this.head > 64 && this.head >= this.size) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
