// A committed transaction can reach the relay before other sessions can see it. PostgreSQL
// flushes the commit record to the WAL first (and the walsender may decode and send it from
// then on) and only afterwards removes the transaction from the set of running ones that new
// snapshots consult; in between, the committing backend can be descheduled for milliseconds on
// a busy machine, or wait for a synchronous standby for as long as that takes. A frame
// published in that window is a "ghost": chat.getMessage for it answers 404.
//
// So the relay publishes a transaction only once a snapshot taken after it was decoded shows it
// finished. One `pg_current_snapshot()` query serves every transaction waiting at that moment
// (at most one is in flight), and transactions are released strictly in commit order, because
// the bus must see them in that order.

/** A snapshot as pg_current_snapshot() prints it: `xmin:xmax:xip,xip,...` (64-bit xids). */
export interface Snapshot {
  xmin: bigint;
  xmax: bigint;
  running: Set<bigint>;
}

export function parseSnapshot(text: string): Snapshot {
  const m = /^(\d+):(\d+):([\d,]*)$/.exec(text.trim());
  if (!m) throw new Error(`not a snapshot: ${text}`);
  return { xmin: BigInt(m[1]!), xmax: BigInt(m[2]!), running: new Set(m[3] ? m[3].split(',').map(BigInt) : []) };
}

/** The 64-bit xid of a 32-bit one (pgoutput's Begin carries 32 bits), relative to a snapshot's xmax. */
export function fullXid(xid: number, s: Snapshot): bigint {
  let full = (s.xmax & ~0xffffffffn) | BigInt(xid >>> 0);
  if (full > s.xmax) full -= 0x100000000n;
  return full;
}

/** Whether a transaction that committed had finished (left the running set) as of the snapshot. */
export function finishedIn(xid: number, s: Snapshot): boolean {
  const full = fullXid(xid, s);
  return full < s.xmin || (full < s.xmax && !s.running.has(full));
}

export class VisibilityGate {
  private readonly waiting: { xid: number; release: () => void; fail: (e: unknown) => void }[] = [];
  private querying = false;
  private closed = false;
  /** Rounds in a row in which the oldest waiter was still running: back off, not spin. */
  private stuck = 0;

  constructor(private readonly snapshot: () => Promise<string>) {}

  /** Resolves once transaction `xid` is visible to new snapshots, after every transaction queued before it. */
  visible(xid: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('visibility gate closed'));
    return new Promise((release, fail) => {
      this.waiting.push({ xid, release, fail });
      this.check();
    });
  }

  /** Fails whoever waits (the stream is ending). */
  close(e: Error): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.fail(e);
  }

  private check(): void {
    if (this.querying || this.waiting.length === 0) return;
    this.querying = true;
    this.snapshot().then(
      (text) => {
        this.querying = false;
        const s = parseSnapshot(text);
        // In order: a later transaction may be visible before an earlier one; it still waits.
        let released = 0;
        while (this.waiting.length > 0 && finishedIn(this.waiting[0]!.xid, s)) {
          this.waiting.shift()!.release();
          released++;
        }
        if (this.waiting.length === 0) return;
        // Whoever still waits needs a newer snapshot: at once, unless the oldest is slow to finish
        // (a synchronous standby, a starved backend): then back off up to 50 ms.
        this.stuck = released > 0 ? 0 : this.stuck + 1;
        if (this.stuck === 0) setImmediate(() => this.check());
        else setTimeout(() => this.check(), Math.min(50, 2 ** (this.stuck - 1)));
      },
      (e: unknown) => {
        this.querying = false;
        this.close(e as Error);
      },
    );
  }
}
