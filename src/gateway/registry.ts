// The channels this gateway serves, one hub each, created on first subscribe and dropped when
// the last subscription leaves. A hub subscribes to the bus first and reads the channel's
// last_seq second, so no event can fall between the two (events that arrive meanwhile wait in
// the hub until it knows where it starts).
import type { Bus, BusEvent } from '../bus/bus.js';
import type { Channels } from '../chat/channels.js';
import { WalcastError } from '../errors.js';
import type { Messages } from '../chat/messages.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Semaphore } from '../util/semaphore.js';
import type { FanoutScheduler } from './fanout.js';
import { Hub, presenceTopicOf, type HubDeps } from './hub.js';

export interface RegistryDeps {
  bus: Bus;
  channels: Channels;
  messages: Messages;
  /** Every database read of the gateway goes through it. */
  db: Semaphore;
  fanout: FanoutScheduler;
  /** Fans a frame out to a topic's peers (WebSockets through uWS, SSE streams). */
  publish: HubDeps['publish'];
  /** A subscription's user left the channel (hub.ts). */
  onLeft: HubDeps['onLeft'];
  ringSize: number;
  ringBytes: number;
  pageSize: number;
  fanoutBudget: number;
  /** This gateway's id (presence and typing tell gateways apart by it). */
  gateway: string;
  presenceMaxUsers: number;
  log: Logger;
  metrics: Metrics;
}

/** Every this many heartbeats a channel's whole set goes out again (repairs a lost change). */
const REFRESH_EVERY = 12;

/** A channel's place among the heartbeats (a string hash: stable, and spread evenly). */
function spread(channel: string): number {
  let h = 0;
  for (let i = 0; i < channel.length; i++) h = (h * 31 + channel.charCodeAt(i)) | 0;
  return h >>> 0;
}

export class HubRegistry {
  private readonly hubs = new Map<string, Hub>();
  /** When each other gateway last said it is up (its `alive` event). */
  private readonly aliveAt = new Map<string, number>();
  private beats = 0;
  /** What every hub needs, made once: per-hub closures would cost each channel a few hundred bytes. */
  private readonly hubDeps: HubDeps;

  constructor(private readonly d: RegistryDeps) {
    this.hubDeps = {
      readLog: (c, after, limit, upTo) => d.db.run(() => d.messages.log(c, after, limit, upTo)),
      publish: d.publish,
      onLeft: d.onLeft,
      presence: {
        gateway: d.gateway,
        maxUsers: d.presenceMaxUsers,
        broadcast: (channel, e) => this.publish({ kind: 'presence', channel, gateway: d.gateway, ...e }),
        notify: (channel, frame) => d.publish(presenceTopicOf(channel), frame),
        aliveAt: (gateway) => this.aliveAt.get(gateway),
      },
      broadcastTyping: (channel, user) => this.publish({ kind: 'typing', channel, user, gateway: d.gateway }),
      ringSize: d.ringSize,
      ringBytes: d.ringBytes,
      pageSize: d.pageSize,
      fanoutBudget: d.fanoutBudget,
      log: d.log,
      metrics: d.metrics,
    };
  }

  get(channel: string): Hub | undefined {
    return this.hubs.get(channel);
  }

  get size(): number {
    return this.hubs.size;
  }

  all(): IterableIterator<Hub> {
    return this.hubs.values();
  }

  /** The channel's hub, ready to serve: created on first use. */
  async acquire(channel: string): Promise<Hub> {
    for (;;) {
      let hub = this.hubs.get(channel);
      if (!hub) hub = this.create(channel);
      await hub.ready;
      // The hub may have been dropped (last subscriber left) while we waited: start over.
      if (this.hubs.get(channel) === hub) return hub;
    }
  }

  /** Drops the hub once nobody uses it (after this turn: a subscription may be about to join it). */
  release(hub: Hub): void {
    if (hub.size > 0 || this.hubs.get(hub.channel) !== hub) return;
    queueMicrotask(() => {
      if (hub.size === 0 && this.hubs.get(hub.channel) === hub) this.drop(hub);
    });
  }

  /** Another gateway is up. */
  alive(gateway: string): void {
    this.aliveAt.set(gateway, Date.now());
  }

  /**
   * The presence heartbeat: gateways gone quiet lose their users on every channel served here,
   * and a twelfth of the channels send their whole set (each channel every REFRESH_EVERY beats).
   * Liveness travels once per gateway (`alive`), not once per channel: with 10,000 channels on
   * six gateways, a set per channel per beat was 12,000 bus messages a second at idle.
   */
  presenceBeat(expireMs: number): void {
    const turn = this.beats++ % REFRESH_EVERY;
    const forgetBefore = Date.now() - 10 * expireMs;
    for (const [g, at] of this.aliveAt) if (at < forgetBefore) this.aliveAt.delete(g);
    for (const hub of this.hubs.values()) hub.presence.beat(expireMs, spread(hub.channel) % REFRESH_EVERY === turn);
  }

  /** Every hub re-reads its channel from the database from where it is (events may have been lost). */
  resyncAll(): void {
    for (const hub of this.hubs.values()) hub.resync();
  }

  /**
   * These channels' bus subscriptions lapsed and are active again: their hubs re-read from the
   * database. A hub still starting re-reads once it knows where it starts (its last_seq may
   * have been read before the lapse).
   */
  resync(channels: readonly string[]): void {
    for (const channel of channels) {
      const hub = this.hubs.get(channel);
      if (hub) void hub.ready.then(() => hub.resync(), () => {});
    }
  }

  closeAll(): void {
    for (const hub of this.hubs.values()) {
      hub.close();
      this.d.fanout.forget(hub);
    }
    this.hubs.clear();
    this.d.metrics.hubs.set(0);
  }

  private create(channel: string): Hub {
    const d = this.d;
    const hub = new Hub(channel, this.hubDeps);
    hub.ready = (async () => {
      await d.bus.subscribe(channel).catch((e: unknown) => {
        throw new WalcastError('unavailable', 'the bus is unavailable; retry', { retryAfterMs: 1000, cause: e });
      });
      hub.init(await d.db.run(() => d.channels.lastSeq(channel)));
      hub.presence.query();
    })();
    hub.ready.catch(() => {
      if (this.hubs.get(channel) === hub) this.drop(hub);
    });
    this.hubs.set(channel, hub);
    d.metrics.hubs.set(this.hubs.size);
    return hub;
  }

  /** Ephemeral events (presence, typing): best effort, a lost one is not worth a failure. */
  private publish(e: BusEvent): void {
    void this.d.bus.publish([e]).catch(() => {});
  }

  private drop(hub: Hub): void {
    hub.close();
    this.d.fanout.forget(hub);
    this.hubs.delete(hub.channel);
    this.d.metrics.hubs.set(this.hubs.size);
    void this.d.bus.unsubscribe(hub.channel).catch(() => {});
  }
}
