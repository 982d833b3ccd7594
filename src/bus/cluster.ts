// The Redis Cluster bus: REDIS_CLUSTER_NODES. Each channel's topic (`walcast:ch:<id>`) hashes to
// a slot, so it lives on the shard that owns the slot: the relay SPUBLISHes there, and a gateway
// SSUBSCRIBEs there only for the channels its clients hold. The control topic (`walcast:ctl`:
// resyncs, revocations) is one topic on one shard that every bus subscribes. At-most-once, like
// RedisBus: what it must never do is lose a subscription *silently*.
//
// How ioredis 6.0.0's Cluster behaves (read its source before changing this):
//  - ioredis' own sharded subscribers (`shardedSubscribers: true`) re-subscribe fire-and-forget
//    and confirm nothing; after a reshard one can stay lost for good when the slot map it reads is
//    stale; while a master is down they reconnect in a hot loop. So we do not use them: this bus
//    keeps its own subscriber connection per master (a plain ioredis `Redis`, RESP2, like
//    RedisBus's), and uses the ioredis `Cluster` for publishing and as the slot map, re-read
//    every `refreshMs` by a timer of ours. Not ioredis' `slotsRefreshInterval`: when the Cluster
//    is closed while one of its periodic refreshes is in flight, that refresh's callback arms the
//    next round anyway (6.0.0), and a closed Cluster then retries forever every interval: the
//    timer keeps the process alive (seen as test/bus/cluster.test.ts not exiting on a loaded
//    machine).
//  - A subscription may lapse when (a) its connection closes (master killed, CLIENT KILL, network),
//    (b) the server pushes an unsolicited `sunsubscribe` (its slot migrated, or the master was
//    demoted by a manual failover; ioredis reports it only as a 'moved' event without the
//    channel), (c) SSUBSCRIBE is answered MOVED (also 'moved'), or (d) a slot map refresh names
//    another master for its slot. On (a) every topic confirmed on that connection lapses; on (b)
//    and (c) the topics the connection no longer holds according to the server's replies and
//    pushes (see heldChannels; every topic of the connection if that cannot be read); on (d) the
//    topics of the slots that changed hands.
//  - A lapsed topic is re-subscribed by our own SSUBSCRIBE on the slot's current master, retried
//    with backoff (and a slot map refresh) until that master replies. Only the reply counts as
//    confirmation. Then the bus reports it: the control topic through onState(true) (the
//    gateway then re-syncs every channel, as after a single Redis restart: a resync or revoke event
//    may have been lost), every other topic through onResubscribed([channel]) (the gateway
//    re-syncs that channel from the database, by seq). While a topic is lapsed, messages for it
//    from any connection are accepted; once confirmed, only from the connection it is confirmed
//    on (a demoted master keeps receiving what the shard propagates: stale, dropped).
//  - Publish: the `Cluster` fails fast (retryDelayOnFailover 0, retryDelayOnClusterDown 0, and
//    nothing is sent while it is not ready), so a publish to a shard without a master rejects in
//    milliseconds (and any publish in 5 s at most) and the
//    relay restarts its stream from the slot (duplicates are dropped by seq in the gateway).
//    Per-topic order across calls: the relay pipelines publish() calls without awaiting earlier
//    ones, and during a failover or reshard ioredis' redirections can reorder commands. So a
//    topic has one SPUBLISH in flight at a time: the events of one call for one topic go in one
//    SPUBLISH (a JSON array when there are several), and events published meanwhile wait and go
//    together in the next one once it succeeded; if it failed, what waited behind it rejects
//    too (the relay replays it, in order, from the slot).
import { Cluster, Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { BusListeners, type Bus, type BusEvent, type BusEventHandler, type BusResubscribedHandler, type BusStateHandler } from './bus.js';
import { CONTROL_TOPIC, isEvent, topicOf, topicOfEvent } from './topics.js';
/** A publish not answered by then is failed (its outcome is unknown: the relay replays, the gateway drops duplicates). */
const PUBLISH_TIMEOUT_MS = 5000;

/** Per-shard counts for /metrics; `shard` is the master's host:port at send time. */
export interface ShardObserver {
  published(shard: string, events: number): void;
  publishFailed(shard: string): void;
  subscribed(shard: string): void;
  subscribeFailed(shard: string): void;
  lapsed(shard: string, topics: number): void;
}

export interface ClusterBusOptions {
  /** How often the slot map is re-read (ms); it is also re-read after every lapse and MOVED. */
  refreshMs?: number;
  observer?: ShardObserver;
}

interface TopicState {
  topic: string;
  /** null for the control topic. */
  channel: string | null;
  slot: number;
  /** The master whose SSUBSCRIBE reply confirmed the subscription; null while it may have lapsed. */
  node: string | null;
  /** Confirmed at least once: a later confirmation is a re-subscription (re-sync). */
  confirmedOnce: boolean;
  /** The connection an SSUBSCRIBE is in flight on. */
  via: string | null;
  /** Bumped on every lapse: a reply to an SSUBSCRIBE sent before it does not confirm. */
  gen: number;
  attempts: number;
  timer: NodeJS.Timeout | null;
  /** The first subscribe() waiting for the first confirmation. */
  first: { resolve(): void; reject(e: Error): void } | null;
}

export class ClusterBus implements Bus {
  readonly kind = 'redis-cluster';
  private readonly pub: Cluster;
  /** Our subscriber connection to each master, by host:port. */
  private readonly conns = new Map<string, Redis>();
  private readonly topics = new Map<string, TopicState>();
  private readonly listeners = new BusListeners();
  /** Per topic: whether an SPUBLISH is in flight, and the events waiting for it to succeed. */
  private readonly outbox = new Map<string, { pending: BusEvent[]; waiters: { resolve(): void; reject(e: Error): void }[] }>();
  private masters = new Set<string>();
  private up = false;
  private closed = false;
  private readonly refreshTimer: NodeJS.Timeout;
  private resubscribed: string[] = [];
  private readonly observer: ShardObserver | undefined;
  private readonly errorsSeen = new Map<string, string>();

  constructor(
    seeds: readonly string[],
    private readonly log: Logger,
    o: ClusterBusOptions = {},
  ) {
    this.observer = o.observer;
    const nodes = seeds.map((s) => {
      const i = s.lastIndexOf(':');
      return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
    });
    this.pub = new Cluster(nodes, {
      // Not false: with it, a command for a node whose connection is still opening (the first
      // publishes to a new master) is rejected as "Connection is closed". publish() refuses to
      // send while the cluster is not ready instead, and bounds every publish (PUBLISH_TIMEOUT_MS).
      enableOfflineQueue: true,
      retryDelayOnFailover: 0,
      retryDelayOnClusterDown: 0,
      maxRedirections: 6,
      slotsRefreshInterval: 0, // our own timer (see the top of this file)
      slotsRefreshTimeout: 1000,
      clusterRetryStrategy: (times: number) => backoffMs(times),
      redisOptions: { protocol: 2, connectionName: 'walcast-pub', commandTimeout: 5000 },
    });
    this.pub.on('error', (e: Error) => this.logError('cluster', e));
    this.pub.on('node error', (e: Error, key: string) => this.logError(`node ${key}`, e));
    this.pub.on('ready', () => this.onRefresh());
    this.pub.on('refresh', () => this.onRefresh());
    this.pub.on('close', () => {
      if (!this.closed) this.log.warn('redis cluster bus: no node of the cluster reachable; reconnecting');
    });
    this.topics.set(CONTROL_TOPIC, this.state(CONTROL_TOPIC, null));
    this.refreshTimer = setInterval(() => this.refresh(), o.refreshMs ?? 1000);
    this.refreshTimer.unref();
  }

  async publish(events: readonly BusEvent[]): Promise<void> {
    if (this.closed) throw new Error('bus closed');
    if (this.pub.status !== 'ready') throw new Error(`redis cluster bus: not connected (${this.pub.status})`);
    const byTopic = new Map<string, BusEvent[]>();
    for (const e of events) {
      const t = topicOfEvent(e);
      (byTopic.get(t) ?? byTopic.set(t, []).get(t)!).push(e);
    }
    await Promise.all([...byTopic].map(([t, evs]) => this.publishTopic(t, evs)));
  }

  subscribe(channel: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('bus closed'));
    const topic = topicOf(channel);
    const existing = this.topics.get(topic);
    if (existing) {
      if (existing.node !== null || existing.confirmedOnce) return Promise.resolve();
      return new Promise((resolve, reject) => chain(existing, resolve, reject));
    }
    const t = this.state(topic, channel);
    this.topics.set(topic, t);
    return new Promise<void>((resolve, reject) => {
      t.first = { resolve, reject };
      // Fails at once while the shard has no reachable master: the gateway answers "unavailable".
      const why = this.attempt(t, true);
      if (why) this.failFirst(t, new Error(`redis cluster bus: ${why}`));
    });
  }

  async unsubscribe(channel: string): Promise<void> {
    const topic = topicOf(channel);
    const t = this.topics.get(topic);
    if (!t) return;
    this.topics.delete(topic);
    if (t.timer) clearTimeout(t.timer);
    t.first?.reject(new Error('unsubscribed'));
    t.first = null;
    // Stray messages are filtered by the topic map; a failure here means the connection went away
    // with the subscription.
    const key = t.node ?? t.via;
    const conn = key ? this.conns.get(key) : undefined;
    if (conn?.status === 'ready') await conn.sunsubscribe(topic).catch(() => {});
  }

  onEvent(handler: BusEventHandler): void {
    this.listeners.onEvent(handler);
  }

  onState(handler: BusStateHandler): void {
    this.listeners.onState(handler, this.up);
  }

  onResubscribed(handler: BusResubscribedHandler): void {
    this.listeners.onResubscribed(handler);
  }

  isUp(): boolean {
    return !this.closed && this.up && this.pub.status === 'ready';
  }

  /** The master owning `channel`'s slot, per the current slot map (tests, diagnostics). */
  shardOf(channel: string | null): string | undefined {
    return this.owner(keySlot(channel === null ? CONTROL_TOPIC : topicOf(channel)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    clearInterval(this.refreshTimer);
    for (const t of this.topics.values()) {
      if (t.timer) clearTimeout(t.timer);
      t.first?.reject(new Error('bus closed'));
    }
    const conns = [...this.conns.values()];
    this.conns.clear();
    for (const c of conns) c.disconnect();
    try {
      if (this.pub.status === 'ready') await this.pub.quit();
      else this.pub.disconnect();
    } catch {
      this.pub.disconnect();
    }
  }

  // --- publish ---------------------------------------------------------------------------------

  /**
   * One SPUBLISH at a time per topic, in call order: events published while one is in flight wait
   * and go together in the next (one SPUBLISH, a JSON array), so a hot channel costs one round
   * trip per batch, not per relayed transaction. If an SPUBLISH fails, what waited behind it is
   * rejected too (never delivered after a gap); the relay replays all of it from the slot.
   */
  private publishTopic(topic: string, events: BusEvent[]): Promise<void> {
    const box = this.outbox.get(topic);
    if (box) {
      box.pending.push(...events);
      return new Promise((resolve, reject) => box.waiters.push({ resolve, reject }));
    }
    const next = { pending: [] as BusEvent[], waiters: [] as { resolve(): void; reject(e: Error): void }[] };
    this.outbox.set(topic, next);
    return this.send(topic, events).then(
      () => this.sendNext(topic),
      (e: unknown) => {
        this.failQueued(topic, e);
        throw e;
      },
    );
  }

  /** The SPUBLISH that just succeeded had followers: send them as one. */
  private sendNext(topic: string): void {
    const box = this.outbox.get(topic);
    if (!box || box.pending.length === 0) {
      this.outbox.delete(topic);
      return;
    }
    const { pending, waiters } = box;
    this.outbox.set(topic, { pending: [], waiters: [] });
    this.send(topic, pending).then(
      () => {
        for (const w of waiters) w.resolve();
        this.sendNext(topic);
      },
      (e: unknown) => {
        for (const w of waiters) w.reject(e as Error);
        this.failQueued(topic, e);
      },
    );
  }

  private failQueued(topic: string, e: unknown): void {
    const box = this.outbox.get(topic);
    this.outbox.delete(topic);
    const err = new Error(`redis cluster bus: an earlier publish to ${topic} failed: ${(e as Error)?.message ?? e}`);
    for (const w of box?.waiters ?? []) w.reject(err);
  }

  private send(topic: string, events: BusEvent[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('bus closed'));
    const payload = JSON.stringify(events.length === 1 ? events[0] : events);
    const shard = this.owner(keySlot(topic)) ?? 'unknown';
    return withTimeout(this.pub.spublish(topic, payload), PUBLISH_TIMEOUT_MS, `SPUBLISH to ${shard}`).then(
      () => this.observer?.published(shard, events.length),
      (e: unknown) => {
        this.observer?.publishFailed(shard);
        throw e;
      },
    );
  }

  // --- subscriptions ---------------------------------------------------------------------------

  private state(topic: string, channel: string | null): TopicState {
    return { topic, channel, slot: keySlot(topic), node: null, confirmedOnce: false, via: null, gen: 0, attempts: 0, timer: null, first: null };
  }

  private owner(slot: number): string | undefined {
    return this.pub.slots[slot]?.[0];
  }

  /**
   * Sends SSUBSCRIBE for a lapsed (or new) topic to its slot's master. Returns why it could not
   * be sent, or null (sent, or waiting for a new connection's 'ready', which retries it).
   */
  private attempt(t: TopicState, first = false): string | null {
    if (this.closed || t.node !== null || t.via !== null) return null;
    const key = this.owner(t.slot);
    if (!key || this.pub.status !== 'ready') {
      if (!first) this.retryLater(t);
      return `no slot map yet (cluster ${this.pub.status})`;
    }
    let conn = this.conns.get(key);
    if (!conn) conn = this.connect(key);
    if (conn.status !== 'ready') {
      // A new connection retries its pending topics once ready; a reconnecting one is a dead master.
      if (first && (conn.status === 'connecting' || conn.status === 'connect' || conn.status === 'wait')) return null;
      if (!first) this.retryLater(t);
      return `the master of slot ${t.slot} (${key}) is not reachable (${conn.status})`;
    }
    const gen = t.gen;
    t.via = key;
    conn.ssubscribe(t.topic).then(
      () => {
        if (t.via === key) t.via = null;
        if (this.topics.get(t.topic) !== t || this.closed) return;
        if (t.gen !== gen || this.conns.get(key) !== conn) return this.retryLater(t); // lapsed meanwhile
        this.confirm(t, key);
      },
      (e: unknown) => {
        if (t.via === key) t.via = null;
        this.observer?.subscribeFailed(key);
        if (this.topics.get(t.topic) !== t || this.closed) return;
        const msg = (e as Error)?.message ?? String(e);
        if (/MOVED|ASK|CLUSTERDOWN/.test(msg)) this.refresh();
        if (t.first && !t.confirmedOnce) return this.failFirst(t, new Error(`redis cluster bus: SSUBSCRIBE on ${key} failed: ${msg}`));
        this.log.debug('redis cluster bus: re-subscribe failed; retrying', { topic: t.topic, node: key, err: e as Error });
        this.retryLater(t);
      },
    );
    return null;
  }

  private confirm(t: TopicState, key: string): void {
    t.node = key;
    t.attempts = 0;
    if (t.timer) clearTimeout(t.timer);
    t.timer = null;
    this.observer?.subscribed(key);
    const again = t.confirmedOnce;
    t.confirmedOnce = true;
    t.first?.resolve();
    t.first = null;
    if (t.channel === null) return this.setUp(true);
    if (again) {
      if (this.resubscribed.length === 0) queueMicrotask(() => this.flushResubscribed());
      this.resubscribed.push(t.channel);
    }
  }

  private flushResubscribed(): void {
    const channels = this.resubscribed.filter((c) => this.topics.get(topicOf(c))?.node != null);
    this.resubscribed = [];
    if (channels.length === 0 || this.closed) return;
    this.log.info('redis cluster bus: subscriptions confirmed again; re-syncing their channels', { channels: channels.length });
    this.listeners.resubscribed(channels);
  }

  private failFirst(t: TopicState, e: Error): void {
    if (t.channel === null) return this.retryLater(t); // the control topic is never given up
    if (this.topics.get(t.topic) === t) this.topics.delete(t.topic);
    if (t.timer) clearTimeout(t.timer);
    t.first?.reject(e);
    t.first = null;
  }

  private retryLater(t: TopicState): void {
    if (t.timer || this.closed || this.topics.get(t.topic) !== t) return;
    const delay = backoffMs(++t.attempts);
    t.timer = setTimeout(() => {
      t.timer = null;
      // A dead master stays in the slot map until its replica is promoted: ask again.
      if (t.attempts > 1) this.refresh();
      this.attempt(t);
    }, delay);
    t.timer.unref();
  }

  /** Topics matching `pred` may have lost their subscription: re-subscribe them. */
  private lapse(pred: (t: TopicState) => boolean, why: string, shard: string): void {
    const lapsed: TopicState[] = [];
    for (const t of this.topics.values()) {
      if (t.node !== null && pred(t)) {
        t.node = null;
        t.gen++;
        lapsed.push(t);
      } else if (t.via !== null && pred({ ...t, node: t.via })) {
        t.gen++; // the reply to the SSUBSCRIBE in flight confirms nothing
      }
    }
    if (lapsed.length === 0) return;
    this.observer?.lapsed(shard, lapsed.length);
    this.warnOnce(`lapse:${shard}:${why}`, 'redis cluster bus: subscriptions may have lapsed; re-subscribing, then re-syncing their channels', {
      shard,
      why,
      topics: lapsed.length,
    });
    if (lapsed.some((t) => t.channel === null)) this.setUp(false);
    for (const t of lapsed) this.attempt(t);
  }

  /** The slot map was (re)read: follow owner changes, retry what is pending, drop connections to non-masters. */
  private onRefresh(): void {
    if (this.closed) return;
    const masters = new Set<string>();
    for (const s of this.pub.slots) if (s?.[0]) masters.add(s[0]);
    this.masters = masters;
    const moved = new Map<string, TopicState[]>();
    for (const t of this.topics.values()) {
      if (t.node !== null && t.node !== this.owner(t.slot)) (moved.get(t.node) ?? moved.set(t.node, []).get(t.node)!).push(t);
    }
    for (const [old, list] of moved) {
      const set = new Set(list);
      this.lapse((t) => set.has(t), 'the slot map names another master', old);
      // The old node may still hold them (a demoted master keeps receiving): leave it.
      const conn = this.conns.get(old);
      if (conn?.status === 'ready') for (const t of list) void conn.sunsubscribe(t.topic).catch(() => {});
    }
    for (const t of this.topics.values()) {
      if (t.node === null && t.via === null) {
        if (t.timer) clearTimeout(t.timer);
        t.timer = null;
        this.attempt(t);
      }
    }
    for (const [key, conn] of this.conns) {
      if (!masters.has(key) && ![...this.topics.values()].some((t) => t.node === key || t.via === key)) {
        this.conns.delete(key);
        conn.disconnect();
      }
    }
  }

  private refresh(): void {
    if (!this.closed && this.pub.status === 'ready') this.pub.refreshSlotsCache();
  }

  /** Our subscriber connection to one master. */
  private connect(key: string): Redis {
    const i = key.lastIndexOf(':');
    const conn: Redis = new Redis({
      host: key.slice(0, i),
      port: Number(key.slice(i + 1)),
      protocol: 2,
      connectionName: 'walcast-ssub',
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
      commandTimeout: 5000,
      // Reconnect while this node is a master in the slot map; a replaced master is let go.
      retryStrategy: (times: number): number | null => (!this.closed && this.conns.get(key) === conn && this.masters.has(key) ? backoffMs(times) : null),
    });
    this.conns.set(key, conn);
    conn.on('error', (e: Error) => this.logError(`subscriber ${key}`, e));
    conn.on('ready', () => {
      this.errorsSeen.delete(`subscriber ${key}`);
      for (const t of this.topics.values()) {
        if (t.node === null && t.via === null && this.owner(t.slot) === key) {
          if (t.timer) clearTimeout(t.timer);
          t.timer = null;
          this.attempt(t);
        }
      }
    });
    conn.on('close', () => {
      if (this.closed) return;
      this.lapse((t) => t.node === key, 'connection closed', key);
      // New topics waiting for this connection's first 'ready' fail now, as RedisBus's do.
      for (const t of [...this.topics.values()]) {
        if (t.first && !t.confirmedOnce && t.via === null && t.node === null && this.owner(t.slot) === key) {
          this.failFirst(t, new Error(`redis cluster bus: the master of slot ${t.slot} (${key}) is not reachable`));
        }
      }
      this.refresh();
    });
    conn.on('end', () => {
      if (this.conns.get(key) === conn) this.conns.delete(key);
    });
    // An unsolicited `sunsubscribe` push (slot migrated, master demoted) or MOVED to SSUBSCRIBE.
    conn.on('moved', () => {
      if (this.closed) return;
      const held = heldChannels(conn);
      this.lapse((t) => t.node === key && !held?.has(t.topic), 'sunsubscribe push or MOVED', key);
      this.refresh();
    });
    conn.on('smessage', (t: string, payload: string) => this.onMessage(key, t, payload));
    return conn;
  }

  private onMessage(key: string, topic: string, payload: string): void {
    if (this.closed) return;
    const t = this.topics.get(topic);
    // Not ours (left, or a subscription that failed late), or from a connection it is not confirmed on.
    if (!t || (t.node !== null && t.node !== key)) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      this.log.warn('redis cluster bus: dropping malformed payload', { topic, bytes: payload.length });
      return;
    }
    for (const event of Array.isArray(parsed) ? parsed : [parsed]) {
      if (!isEvent(event, topic)) {
        this.log.warn('redis cluster bus: dropping unexpected event', { topic, kind: (event as { kind?: unknown } | null)?.kind });
        continue;
      }
      this.listeners.event(event);
    }
  }

  private setUp(up: boolean): void {
    if (this.closed || up === this.up) return;
    this.up = up;
    if (up) this.log.info('redis cluster bus up', { channels: this.topics.size - 1, masters: this.masters.size });
    else this.log.warn('redis cluster bus down (control topic lapsed); re-subscribing');
    this.listeners.state(up);
  }

  /** Every failed reconnect repeats the same error: log it once per outage, not every attempt. */
  private logError(where: string, e: Error): void {
    if (this.closed || this.errorsSeen.get(where) === e.message) return;
    this.errorsSeen.set(where, e.message);
    this.log.warn('redis cluster bus: connection error', { where, err: e });
  }

  private readonly warned = new Map<string, number>();
  private warnOnce(key: string, msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if ((this.warned.get(key) ?? 0) > now - 5000) return this.log.debug(msg, fields);
    this.warned.set(key, now);
    this.log.warn(msg, fields);
  }
}

/**
 * The shard channels the connection holds according to the server's replies and pushes (ioredis
 * keeps them in `condition.subscriber`, a declared property; its DataHandler removes a channel
 * on a `sunsubscribe` push *before* emitting 'moved'). So on 'moved' only the topics missing
 * from it lapse, rather than every topic of the shard (one push per moved slot during a
 * reshard). undefined when it cannot be read: then every topic of the connection lapses.
 */
function heldChannels(conn: Redis): Set<string> | undefined {
  const sub = conn.condition?.subscriber;
  if (sub === false) return new Set(); // the server's count reached 0: none held
  if (!sub || typeof sub.channels !== 'function') return undefined;
  try {
    return new Set(sub.channels('ssubscribe'));
  } catch {
    return undefined;
  }
}

function chain(t: TopicState, resolve: () => void, reject: (e: Error) => void): void {
  const prev = t.first;
  t.first = {
    resolve: () => {
      prev?.resolve();
      resolve();
    },
    reject: (e) => {
      prev?.reject(e);
      reject(e);
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis cluster bus: ${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** 100 ms doubling to 2 s, with jitter. */
function backoffMs(times: number): number {
  return Math.min(100 * 2 ** Math.min(Math.max(times, 1) - 1, 5), 2000) + Math.floor(Math.random() * 100);
}

// --- hash slots (CRC16-XMODEM of the key, or of its {hash tag}, mod 16384) ----------------------

const CRC16 = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    table[i] = c;
  }
  return table;
})();

/** The cluster hash slot of a key (as `CLUSTER KEYSLOT`). */
export function keySlot(key: string): number {
  let k = key;
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) k = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const b of Buffer.from(k)) crc = ((crc << 8) & 0xffff) ^ CRC16[((crc >> 8) ^ b) & 0xff]!;
  return crc & 16383;
}
