// The bus carries committed events from whoever turns rows into events (the CDC relay, or a
// comparison source) to the gateways. One narrow interface, interchangeable backends: the
// in-process one for a single node, Redis for many. It is allowed to lose events (Redis
// pub/sub is at-most-once); gateways repair from the database by seq.
import type { ChangeFrame, Message } from '../protocol.js';

export type BusEvent =
  /**
   * One entry of a channel's change log (a new message, an edit, a member leaving...), as
   * clients get it. `target`: the message a change is about, after the change (gateways refresh
   * their cached frame of it). `committedAt` (ms since epoch, from the WAL) is for latency
   * metrics only.
   */
  | { kind: 'change'; channel: string; seq: number; frame: ChangeFrame; target?: Message; committedAt?: number }
  /** Events may have been lost upstream (e.g. the replication slot was recreated): every gateway re-reads every channel it serves. */
  | { kind: 'resync'; epoch: string }
  /** Someone is typing (ephemeral: never stored, no seq). `gateway` already told its own sockets. */
  | { kind: 'typing'; channel: string; user: string; gateway: string }
  /**
   * Who holds a live subscription to a channel on one gateway: what changed (`joined`, `left`),
   * its whole set (`users`: periodically, and in answer to a `query`), or a request that every
   * gateway send its set (`query`).
   */
  | { kind: 'presence'; channel: string; gateway: string; joined?: string[]; left?: string[]; users?: string[]; query?: boolean }
  /**
   * A gateway is up, so its presence sets stand. Sent every presence heartbeat on the control
   * topic: one message per gateway, however many channels it serves. A gateway not heard from
   * for three heartbeats is gone, and its users leave every channel.
   */
  | { kind: 'alive'; gateway: string }
  /** An operator revoked a user's tokens issued before `notBefore` (seconds): every process forgets them, gateways close such sockets. */
  | { kind: 'revoke'; user: string; notBefore: number };

/** The channel a channel-scoped event travels with (its topic), or undefined for a control event (every gateway gets those). */
export const channelOf = (e: BusEvent): string | undefined => ('channel' in e ? e.channel : undefined);

/** A change-log event for a new message (the comparison sources publish these). */
export const messageEvent = (m: Message, committedAt?: number): BusEvent => ({
  kind: 'change',
  channel: m.channel,
  seq: m.seq,
  frame: { type: 'message', channel: m.channel, seq: m.seq, message: m },
  ...(committedAt !== undefined ? { committedAt } : {}),
});

export type BusEventHandler = (event: BusEvent) => void;
export type BusStateHandler = (up: boolean) => void;
/** Channels whose subscription may have lapsed and is confirmed active again: re-read them from the database. */
export type BusResubscribedHandler = (channels: readonly string[]) => void;

export interface Bus {
  /** `bridge`: the bus of another thread or process, reached through a message channel (bridge.ts). */
  readonly kind: 'memory' | 'redis' | 'redis-cluster' | 'bridge';
  /** Resolves once the broker has accepted every event, in order; the relay acknowledges only then. */
  publish(events: readonly BusEvent[]): Promise<void>;
  /** Receive a channel's events from now on; resolves once the subscription is active. */
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Channel events of subscribed channels, and every control event (resync, revoke). */
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

/**
 * The handlers a bus backend calls, kept once for every backend. A state handler registered
 * while the bus is already up hears so at once (in a microtask), as from a fresh start.
 */
export class BusListeners {
  private readonly events: BusEventHandler[] = [];
  private readonly states: BusStateHandler[] = [];
  private readonly resubs: BusResubscribedHandler[] = [];

  onEvent(handler: BusEventHandler): void {
    this.events.push(handler);
  }

  onState(handler: BusStateHandler, upNow: boolean): void {
    this.states.push(handler);
    if (upNow) queueMicrotask(() => handler(true));
  }

  onResubscribed(handler: BusResubscribedHandler): void {
    this.resubs.push(handler);
  }

  event(e: BusEvent): void {
    for (const h of this.events) h(e);
  }

  state(up: boolean): void {
    for (const h of this.states) h(up);
  }

  resubscribed(channels: readonly string[]): void {
    for (const h of this.resubs) h(channels);
  }
}
