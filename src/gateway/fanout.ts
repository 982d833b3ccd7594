// Fair fan-out across channels. Live events are queued per channel and applied round-robin,
// each channel spending at most `budget` socket-frames (events x live subscribers) per
// event-loop turn before the next channel gets its turn; between turns the loop goes back to
// I/O, so a quiet channel's event waits for at most one budget of each busy channel's work,
// never for a hot channel's whole backlog. A channel whose queue is full stops queueing: the
// events it drops leave a gap that its hub later fills from the database by seq, so shedding
// load costs latency on the hot channel, never a loss.
import type { Metrics } from '../metrics.js';
import type { Hub, LiveChange } from './hub.js';

export class FanoutScheduler {
  private readonly queues = new Map<Hub, LiveChange[]>();
  /** Channels with queued events, in round-robin order. */
  private active: Hub[] = [];
  private scheduled = false;
  /** Socket-frames each channel fanned out at once in the current macrotask (reset every turn). */
  private readonly spentNow = new Map<Hub, number>();
  private resetArmed = false;

  constructor(
    /** Socket-frames per channel per turn; 0: no queue, every event is applied at once. */
    private readonly budget: number,
    private readonly queueMax: number,
    private readonly metrics: Metrics,
  ) {}

  push(hub: Hub, change: LiveChange): void {
    if (this.budget <= 0) return hub.onChange(change);
    let q = this.queues.get(hub);
    if (!q) {
      // Nothing queued for this channel and it has budget left in this macrotask: no reason
      // to wait a turn. A burst (many events arriving in one I/O callback) spends the budget,
      // then queues, so another channel's event in the same burst still goes out at once.
      const spent = this.spentNow.get(hub) ?? 0;
      if (spent < this.budget) {
        this.spentNow.set(hub, spent + Math.max(1, hub.liveSubscribers));
        this.armReset();
        hub.onChange(change);
        return;
      }
      this.queues.set(hub, (q = []));
      this.active.push(hub);
    }
    if (q.length >= this.queueMax) {
      this.metrics.fanoutShed.inc();
      return; // the hub will see the gap at the next event it gets and read the rest from the database
    }
    q.push(change);
    this.schedule();
  }

  /** Events queued for a channel (tests, metrics). */
  queued(hub: Hub): number {
    return this.queues.get(hub)?.length ?? 0;
  }

  forget(hub: Hub): void {
    this.spentNow.delete(hub);
    if (this.queues.delete(hub)) this.active = this.active.filter((h) => h !== hub);
  }

  private armReset(): void {
    if (this.resetArmed) return;
    this.resetArmed = true;
    setImmediate(() => {
      this.resetArmed = false;
      this.spentNow.clear();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.turn());
  }

  /** One round over the channels with work: each applies events until its budget is spent. */
  private turn(): void {
    this.scheduled = false;
    const round = this.active;
    this.active = [];
    for (const hub of round) {
      const q = this.queues.get(hub);
      if (!q) continue;
      const cost = Math.max(1, hub.liveSubscribers);
      let spent = 0;
      let i = 0;
      while (i < q.length && (i === 0 || spent + cost <= this.budget)) {
        const e = q[i++]!;
        spent += cost;
        try {
          hub.onChange(e);
        } catch {
          // a hub failing must not stall the others; its next gap fill repairs it
        }
      }
      q.splice(0, i);
      if (q.length > 0) {
        this.metrics.fanoutDeferred.inc();
        this.active.push(hub);
      } else {
        this.queues.delete(hub);
      }
    }
    if (this.active.length > 0) this.schedule();
  }
}
