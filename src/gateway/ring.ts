// The last N frames of a channel, contiguous by seq, for catch-up without the database.

export interface Entry {
  seq: number;
  frame: string;
  /** A member_left: who left, and why (their subscriptions end after this frame). */
  left?: { user: string; reason: 'left' | 'kicked' };
}

export class Ring {
  private readonly buf: (Entry | undefined)[];
  private start = 0;
  private size = 0;

  constructor(private readonly capacity: number) {
    this.buf = new Array(Math.max(0, capacity));
  }

  /** Appends; `entry.seq` must follow the last one (callers guarantee contiguity). */
  push(entry: Entry): void {
    if (this.capacity === 0) return;
    const last = this.lastSeq();
    if (last !== undefined && entry.seq !== last + 1) this.clear();
    if (this.size < this.capacity) {
      this.buf[(this.start + this.size) % this.capacity] = entry;
      this.size++;
    } else {
      this.buf[this.start] = entry;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /**
   * Adds older entries in front: `entries` (contiguous, ascending) must end right before the
   * first entry held (any run when empty). Only free room is used; newer entries are never evicted.
   */
  prepend(entries: readonly Entry[]): void {
    if (this.capacity === 0 || entries.length === 0) return;
    const first = this.firstSeq();
    if (first !== undefined && entries[entries.length - 1]!.seq !== first - 1) return;
    const room = this.capacity - this.size;
    for (let i = entries.length - 1; i >= 0 && i >= entries.length - room; i--) {
      this.start = (this.start - 1 + this.capacity) % this.capacity;
      this.buf[this.start] = entries[i];
      this.size++;
    }
  }

  /** Replaces the frame of `seq` if the ring holds it (a message changed since it was sent). */
  replace(seq: number, frame: string): void {
    const first = this.firstSeq();
    if (first === undefined || seq < first || seq >= first + this.size) return;
    const e = this.buf[(this.start + (seq - first)) % this.capacity]!;
    e.frame = frame;
  }

  firstSeq(): number | undefined {
    return this.size ? this.buf[this.start]!.seq : undefined;
  }

  lastSeq(): number | undefined {
    return this.size ? this.buf[(this.start + this.size - 1) % this.capacity]!.seq : undefined;
  }

  /** Entries with seq > after, if the ring holds all of them; undefined if it does not reach back that far. */
  after(after: number): Entry[] | undefined {
    const first = this.firstSeq();
    if (first === undefined || after + 1 < first) return undefined;
    const out: Entry[] = [];
    for (let i = after + 1 - first; i < this.size; i++) out.push(this.buf[(this.start + i) % this.capacity]!);
    return out;
  }

  clear(): void {
    this.start = 0;
    this.size = 0;
  }
}
