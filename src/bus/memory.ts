// The in-process bus: `walcast start` without REDIS_URL. Buses made on the same broker see each
// other's events, as processes on one Redis do; delivery is synchronous and in order.
import { channelOf, type Bus, type BusEvent, type BusEventHandler, type BusStateHandler } from './bus.js';

/** What several in-process buses share: which bus listens to which channel. */
export class MemoryBroker {
  readonly buses = new Set<MemoryBus>();

  deliver(event: BusEvent): void {
    for (const bus of this.buses) bus.receive(event);
  }
}

export class MemoryBus implements Bus {
  readonly kind = 'memory';
  private readonly handlers: BusEventHandler[] = [];
  private readonly subscribed = new Set<string>();
  private closed = false;

  constructor(private readonly broker = new MemoryBroker()) {
    broker.buses.add(this);
  }

  async publish(events: readonly BusEvent[]): Promise<void> {
    if (this.closed) throw new Error('bus closed');
    for (const event of events) this.broker.deliver(event);
  }

  /** Another bus on the same broker (for a worker reached through the bridge). */
  sibling(): MemoryBus {
    return new MemoryBus(this.broker);
  }

  async subscribe(channel: string): Promise<void> {
    if (this.closed) throw new Error('bus closed');
    this.subscribed.add(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    this.subscribed.delete(channel);
  }

  onEvent(handler: BusEventHandler): void {
    this.handlers.push(handler);
  }

  onState(handler: BusStateHandler): void {
    // Never goes down; report "up" once so subscribers start the same way as with Redis.
    queueMicrotask(() => handler(true));
  }

  isUp(): boolean {
    return !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.broker.buses.delete(this);
  }

  /** @internal From the broker: channel events only if subscribed, control events always. */
  receive(event: BusEvent): void {
    const channel = channelOf(event);
    if (this.closed || (channel !== undefined && !this.subscribed.has(channel))) return;
    for (const h of this.handlers) h(event);
  }
}
