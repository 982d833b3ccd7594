// The in-process bus: `walcast start` without REDIS_URL. Delivery is synchronous and in order.
import type { Bus, BusEvent, BusEventHandler, BusStateHandler } from './bus.js';

export class MemoryBus implements Bus {
  readonly kind = 'memory';
  private readonly handlers: BusEventHandler[] = [];
  private readonly subscribed = new Set<string>();
  private closed = false;

  async publish(events: readonly BusEvent[]): Promise<void> {
    if (this.closed) throw new Error('bus closed');
    for (const event of events) {
      if (event.kind === 'message' && !this.subscribed.has(event.channel)) continue;
      for (const h of this.handlers) h(event);
    }
  }

  async subscribe(channel: string): Promise<void> {
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
  }
}
