// The bus carries committed events from whoever turns rows into events (the CDC relay, or a
// comparison source) to the gateways. One narrow interface, interchangeable backends: the
// in-process one for a single node, Redis for many. It is allowed to lose events (Redis
// pub/sub is at-most-once); gateways repair from the database by seq.
import type { Message } from '../chat/model.js';

export type BusEvent =
  /** `committedAt` (ms since epoch, from the WAL) is for latency metrics only. */
  | { kind: 'message'; channel: string; seq: number; message: Message; committedAt?: number }
  /** A membership ended (kick): that user's subscriptions to the channel end. */
  | { kind: 'kick'; channel: string; user: string }
  /** Events may have been lost upstream (e.g. the replication slot was recreated): every gateway re-reads every channel it serves. */
  | { kind: 'resync'; epoch: string };

export type BusEventHandler = (event: BusEvent) => void;
export type BusStateHandler = (up: boolean) => void;
/** Channels whose subscription may have lapsed and is confirmed active again: re-read them from the database. */
export type BusResubscribedHandler = (channels: readonly string[]) => void;

export interface Bus {
  readonly kind: 'memory' | 'redis' | 'redis-cluster';
  /** Resolves once the broker has accepted every event, in order; the relay acknowledges only then. */
  publish(events: readonly BusEvent[]): Promise<void>;
  /** Receive a channel's events from now on; resolves once the subscription is active. */
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Channel events of subscribed channels, and every control event (kick, resync). */
  onEvent(handler: BusEventHandler): void;
  /** Called on every loss and every (re)gain of the broker; on a regain, subscribers must re-sync. */
  onState(handler: BusStateHandler): void;
  /**
   * Optional, for backends that can lose part of their subscriptions (a Redis Cluster shard failing
   * over, a slot moving): called once those channels' subscriptions are confirmed active again,
   * so only they re-sync. Backends without it report every lapse through onState.
   */
  onResubscribed?(handler: BusResubscribedHandler): void;
  isUp(): boolean;
  close(): Promise<void>;
}
