// The Redis bus: `walcast start` with REDIS_URL, for many gateways. Redis 7 sharded pub/sub, so
// a hot channel loads one shard of a cluster rather than every node (classic PUBLISH is
// broadcast cluster-wide). At-most-once: whatever is published while a gateway's subscriber is
// down is lost to it, and onState(true) after every reconnect tells it to re-read the database.
//
// ioredis 6.0.0, read before relying on it:
//  - It speaks RESP3 by default (`protocol: 3`, HELLO 3, silent downgrade to RESP2 when the
//    server refuses). We pin `protocol: 2`: it is the pub/sub path ioredis shipped for years,
//    it behaves the same behind proxies and managed Redis that lack HELLO, and RESP3 buys us
//    nothing here. Both work against Redis 7.
//  - Redis counts shard subscriptions apart from classic ones: SUNSUBSCRIBE of the last shard
//    channel replies 0 while a SUBSCRIBE is still active, and ioredis then leaves subscriber
//    mode, so the next classic message is lost (RESP3) or desyncs the reply queue (RESP2,
//    "Command queue state error"). Hence the control topic is sharded too: one kind of
//    subscription only, and it is always held, so the count never drops to 0.
//  - autoResubscribe does cover ssubscribe, but fire-and-forget, after 'ready' is emitted: we
//    could not tell when subscriptions are back. It is off; we re-subscribe on 'ready' and
//    report "up" once Redis confirmed every one.
//  - enableOfflineQueue: false makes commands reject at once while disconnected, and
//    maxRetriesPerRequest: 0 rejects commands in flight when the connection drops (rather than
//    resending them after a reconnect), so publish fails fast and the relay retries.
//
// This talks to one Redis node. A Redis Cluster (REDIS_CLUSTER_NODES) is src/bus/cluster.ts,
// with the same topics and payloads.
import { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { BusListeners, channelOf, type Bus, type BusEvent, type BusEventHandler, type BusStateHandler } from './bus.js';
import { CONTROL_TOPIC, isEvent, topicOf as topic, topicOfEvent } from './topics.js';

export class RedisBus implements Bus {
  readonly kind = 'redis';
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly listeners = new BusListeners();
  /** Subscribed channels, each with its (pending or settled) SSUBSCRIBE. */
  private readonly channels = new Map<string, Promise<void>>();
  /** Subscriber connected and every subscription confirmed. */
  private subUp = false;
  /** Bumped on every subscriber connection loss: a re-subscribe from an older connection must not report "up". */
  private generation = 0;
  private closed = false;

  constructor(url: string, private readonly log: Logger) {
    const options = {
      protocol: 2 as const,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
      // A half-open socket (no RST, e.g. a partitioned network) never closes: bound each command.
      commandTimeout: 5000,
      // Forever, capped: a Redis outage must not take gateways or the relay down.
      retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times - 1, 5), 2000) + Math.floor(Math.random() * 100),
    };
    this.pub = new Redis(url, { ...options, connectionName: 'walcast-pub' });
    this.sub = new Redis(url, { ...options, connectionName: 'walcast-sub' });
    this.watch(this.pub, 'publisher');
    this.watch(this.sub, 'subscriber');
    this.sub.on('ready', () => void this.resubscribe());
    this.sub.on('close', () => {
      this.generation++;
      this.setUp(false);
    });
    this.sub.on('smessage', (t: string, payload: string) => this.onMessage(t, payload));
  }

  async publish(events: readonly BusEvent[]): Promise<void> {
    if (this.closed) throw new Error('bus closed');
    if (this.pub.status !== 'ready') throw new Error(`redis bus: publisher not connected (${this.pub.status})`);
    // One connection writes in order and Redis answers in order: resolved means all delivered.
    await Promise.all(
      events.map((e) => this.pub.spublish(topicOfEvent(e), JSON.stringify(e))),
    );
  }

  subscribe(channel: string): Promise<void> {
    const existing = this.channels.get(channel);
    if (existing) return existing;
    // Fails at once while Redis is down: the gateway answers "unavailable", the client retries.
    const pending = this.sub.status === 'ready'
      ? this.sub.ssubscribe(topic(channel)).then(() => {})
      : Promise.reject(new Error(`redis bus: subscriber not connected (${this.sub.status})`));
    this.channels.set(channel, pending);
    pending.catch(() => {
      if (this.channels.get(channel) === pending) this.channels.delete(channel);
    });
    return pending;
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return;
    // Not connected: the next connection simply won't subscribe it. A failure here means the
    // connection went away with the subscription; stray messages are filtered in onMessage.
    if (this.sub.status !== 'ready') return;
    await this.sub.sunsubscribe(topic(channel)).catch((e: unknown) => {
      this.log.debug('redis bus: sunsubscribe failed', { channel, err: e as Error });
    });
  }

  onEvent(handler: BusEventHandler): void {
    this.listeners.onEvent(handler);
  }

  onState(handler: BusStateHandler): void {
    // Registered after the first connection: reported as MemoryBus does, so startup is uniform.
    this.listeners.onState(handler, this.subUp);
  }

  isUp(): boolean {
    return !this.closed && this.subUp && this.pub.status === 'ready';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subUp = false;
    await Promise.all([this.pub, this.sub].map(quit));
  }

  /** On every (re)connection: control topic first, then every channel, then report "up". */
  private async resubscribe(): Promise<void> {
    const generation = this.generation;
    const topics = [CONTROL_TOPIC, ...[...this.channels.keys()].map(topic)];
    try {
      // One channel per command: in a cluster, a multi-channel SSUBSCRIBE must hit one slot.
      await Promise.all(topics.map((t) => this.sub.ssubscribe(t)));
    } catch (e) {
      if (generation !== this.generation || this.closed) return; // lost meanwhile: the next 'ready' retries
      // Connected but refused (ACL, MOVED): start over on a fresh connection, not in a tight loop.
      this.log.error('redis bus: re-subscribing failed; reconnecting', { err: e as Error });
      setTimeout(() => {
        if (generation === this.generation && !this.closed) this.sub.disconnect(true);
      }, 1000).unref();
      return;
    }
    if (generation === this.generation && !this.closed) this.setUp(true);
  }

  private onMessage(t: string, payload: string): void {
    if (this.closed) return;
    let event: BusEvent;
    try {
      event = JSON.parse(payload) as BusEvent;
    } catch {
      this.log.warn('redis bus: dropping malformed payload', { topic: t, bytes: payload.length });
      return;
    }
    if (!isEvent(event, t)) {
      this.log.warn('redis bus: dropping unexpected event', { topic: t, kind: (event as { kind?: unknown } | null)?.kind });
      return;
    }
    // An event of a channel we just left (or whose SSUBSCRIBE failed late): not ours.
    const channel = channelOf(event);
    if (channel !== undefined && !this.channels.has(channel)) return;
    this.listeners.event(event);
  }

  private setUp(up: boolean): void {
    if (this.closed || up === this.subUp) return;
    this.subUp = up;
    if (up) this.log.info('redis bus up', { channels: this.channels.size });
    else this.log.warn('redis bus down; reconnecting');
    this.listeners.state(up);
  }

  private watch(r: Redis, role: string): void {
    // Every failed reconnect emits the same error: log it once per outage, not every attempt.
    let last = '';
    r.on('error', (e: Error) => {
      if (e.message === last) return;
      last = e.message;
      this.log.warn('redis bus: connection error', { role, err: e });
    });
    r.on('ready', () => (last = ''));
    // 'end' means ioredis gave up (it does on some connector errors); we don't.
    r.on('end', () => {
      if (this.closed) return;
      this.log.error('redis bus: connection ended; reconnecting', { role });
      setTimeout(() => {
        if (!this.closed && r.status === 'end') r.connect().catch(() => {});
      }, 1000).unref();
    });
  }
}

async function quit(r: Redis): Promise<void> {
  // QUIT lets replies in flight arrive; with the offline queue off it can only be sent when connected.
  if (r.status === 'ready') {
    try {
      await r.quit();
      return;
    } catch {
      // fall through
    }
  }
  r.disconnect();
}
