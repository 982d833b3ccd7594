// Bounds the gateway's database reads (catch-up pages, gap fills, membership batches): at most
// `max` in flight, the rest wait in FIFO order. Together with coalescing (one read per channel
// and page start, one membership query per channel per batch) this keeps a reconnect storm of
// N clients from turning into N concurrent queries.
import type { Metrics } from '../metrics.js';

export class Semaphore {
  private active = 0;
  private peak = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly max: number,
    private readonly metrics?: Metrics,
  ) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) {
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        this.metrics?.gatewayDbWaiting.set(this.waiting.length);
      });
      this.metrics?.gatewayDbWaiting.set(this.waiting.length);
    } else {
      this.active++;
    }
    this.observe();
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // the slot passes straight to the next waiter
      else this.active--;
      this.observe();
    }
  }

  get inFlight(): number {
    return this.active;
  }

  get highWater(): number {
    return this.peak;
  }

  private observe(): void {
    if (this.active > this.peak) {
      this.peak = this.active;
      this.metrics?.gatewayDbInFlightMax.set(this.peak);
    }
    this.metrics?.gatewayDbInFlight.set(this.active);
  }
}
