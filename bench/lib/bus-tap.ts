// A listener on the Redis bus (walcast's own RedisBus, as a gateway subscribes): sees every event
// of some channels as the gateways get them, one Redis hop after the relay's publish. The
// benchmarks use it for the relay's side of latency per kind of change (the event's committedAt,
// from the WAL, to its arrival here) and to count presence traffic. It adds one subscriber to
// each channel's topic, so Redis sends one more copy of each event.
import { RedisBus } from '../../src/bus/redis.js';
import type { BusEvent } from '../../src/bus/bus.js';
import { createLogger } from '../../src/log.js';

export interface BusTap {
  /** Called for each event with its arrival (wall clock, ms with fractions). */
  onEvent(handler: (e: BusEvent, at: number) => void): void;
  close(): Promise<void>;
}

export async function busTap(url: string, channels: string[]): Promise<BusTap> {
  const bus = new RedisBus(url, createLogger('error'));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bus tap: Redis not ready within 10 s')), 10_000);
    bus.onState((up) => {
      if (up) (clearTimeout(timer), resolve());
    });
  });
  await Promise.all(channels.map((c) => bus.subscribe(c)));
  const handlers: ((e: BusEvent, at: number) => void)[] = [];
  bus.onEvent((e) => {
    const at = performance.timeOrigin + performance.now();
    for (const h of handlers) h(e, at);
  });
  return { onEvent: (h) => void handlers.push(h), close: () => bus.close() };
}
