// At most `max` tasks in flight, the rest wait in FIFO order. The gateway runs every database
// read through one (catch-up pages, gap fills, membership batches), so that together with
// coalescing a reconnect storm of N clients never turns into N concurrent queries.

/** Where a semaphore reports its load (the gateway wires these to gauges). */
export interface SemaphoreGauges {
  inFlight(n: number): void;
  inFlightMax(n: number): void;
  waiting(n: number): void;
}

export class Semaphore {
  private active = 0;
  private peak = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly max: number,
    private readonly gauges?: SemaphoreGauges,
  ) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) {
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        this.gauges?.waiting(this.waiting.length);
      });
      this.gauges?.waiting(this.waiting.length);
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
      this.gauges?.inFlightMax(this.peak);
    }
    this.gauges?.inFlight(this.active);
  }
}
