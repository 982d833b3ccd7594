// The WebSocket gateway at /v1/ws: authenticates the upgrade, runs subscribe/unsubscribe,
// feeds each channel's hub from the bus, ends kicked subscriptions, and re-syncs every
// channel from the database whenever the bus may have lost events.
import { readFileSync } from 'node:fs';
import type { Bus, BusEvent } from '../bus/bus.js';
import type { Channels } from '../chat/channels.js';
import type { Messages } from '../chat/messages.js';
import type { Config } from '../config.js';
import type { Pool } from '../db/pool.js';
import { TokenBucket } from '../api/ratelimit.js';
import { WalcastError } from '../errors.js';
import type { Tokens } from '../auth/tokens.js';
import { errorBody, statusLine } from '../http/respond.js';
import type { TemplatedApp } from '../http/uws.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { Connection, type SocketData } from './connection.js';
import {
  errorFrame,
  isFrameError,
  parseClientFrame,
  pongFrame,
  subscribedFrame,
  unsubscribedFrame,
  type ClientFrame,
} from './frames.js';
import { FanoutScheduler } from './fanout.js';
import { Hub } from './hub.js';
import { Semaphore } from './limiter.js';
import { MembershipBatcher } from './membership.js';
import { Subscription } from './subscription.js';

export interface GatewayDeps {
  config: Config;
  bus: Bus;
  tokens: Tokens;
  channels: Channels;
  messages: Messages;
  log: Logger;
  metrics: Metrics;
  /** For the membership checks at subscribe, batched per channel (one query for many users). */
  pool: Pool;
}

/** Close code of a graceful drain (1012, service restart); the reason carries `retry_after_ms=<n>`. */
export const DRAIN_CLOSE_CODE = 1012;

export class Gateway {
  private readonly hubs = new Map<string, Hub>();
  private readonly conns = new Set<Connection>();
  /**
   * Subscriptions between their membership check and joining their hub, per (channel, user),
   * and the kicks seen meanwhile: a kick in that window must not be missed.
   */
  private readonly checking = new Map<string, { count: number; kicks: number }>();
  private nextId = 1;
  private app: TemplatedApp | null = null;
  private busDown = false;
  private closing = false;
  /** Every database read this gateway makes goes through here: bounded concurrency. */
  readonly db: Semaphore;
  private readonly membership: MembershipBatcher;
  private readonly upgrades: TokenBucket;
  readonly fanout: FanoutScheduler;
  /** WALCAST_WS_MAX_CONNECTIONS, or (when 0) the process's open-files limit minus headroom. */
  readonly maxConnections: number;

  constructor(private readonly d: GatewayDeps) {
    const g = d.config.gateway;
    this.db = new Semaphore(g.dbConcurrency, d.metrics);
    this.membership = new MembershipBatcher(d.pool, this.db, d.metrics);
    this.upgrades = new TokenBucket(g.upgradeRate, g.upgradeBurst);
    this.fanout = new FanoutScheduler(g.fanoutBudget, g.fanoutQueueMax, d.metrics);
    this.maxConnections = g.maxConnections > 0 ? g.maxConnections : Math.max(0, openFilesLimit() - FD_HEADROOM);
    d.bus.onEvent((e) => this.onBusEvent(e));
    d.bus.onState((up) => this.onBusState(up));
  }

  get connections(): number {
    return this.conns.size;
  }

  mount(app: TemplatedApp): void {
    this.app = app;
    const { limits } = this.d.config;
    app.ws<SocketData>('/v1/ws', {
      maxPayloadLength: limits.wsMaxPayload,
      maxBackpressure: limits.wsMaxBackpressure,
      // A frame dropped for backpressure would be a gap: close the socket instead, the client resumes by seq.
      closeOnBackpressureLimit: 1,
      idleTimeout: limits.wsIdleTimeoutS,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        const token = new URLSearchParams(req.getQuery() ?? '').get('token') ?? bearer(req.getHeader('authorization'));
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        let aborted = false;
        res.onAborted(() => (aborted = true));
        const refuse = (e: WalcastError, reason: string, retryAfterMs?: number) => {
          this.d.metrics.wsRefused.inc({ reason });
          if (retryAfterMs === undefined) {
            res.cork(() => {
              res.writeStatus(statusLine(e.status)).writeHeader('content-type', 'application/json').end(JSON.stringify(errorBody(e)));
            });
            return;
          }
          // A retry hint: 503 with Retry-After (seconds, rounded up) and the precise retry_after_ms in the body.
          const body = JSON.stringify({ ...errorBody(e), retry_after_ms: retryAfterMs });
          res.cork(() => {
            res
              .writeStatus(statusLine(503))
              .writeHeader('content-type', 'application/json')
              .writeHeader('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))))
              .end(body);
          });
        };
        // Admission before anything costs: a refused upgrade is a few bytes and no token check.
        const admit = this.admit();
        if (admit) return refuse(admit.error, admit.reason, admit.retryAfterMs);
        void this.d.tokens.verify(token).then(
          (user) => {
            if (aborted) return;
            if (this.closing) return refuse(new WalcastError('unavailable', 'gateway is shutting down'), 'closing', this.drainHint());
            const conn = new Connection(this.nextId++, user, limits.wsMaxBackpressure, () => this.d.metrics.wsSlowClosed.inc());
            res.cork(() => res.upgrade<SocketData>({ conn }, key, protocol, extensions, context));
          },
          (e: unknown) => {
            if (aborted) return;
            refuse(e instanceof WalcastError ? e : new WalcastError('invalid_auth'), 'auth');
          },
        );
      },
      open: (ws) => {
        const conn = ws.getUserData().conn;
        conn.attach(ws);
        this.conns.add(conn);
        this.d.metrics.wsConnections.set(this.conns.size);
      },
      message: (ws, data, isBinary) => {
        const conn = ws.getUserData().conn;
        // Decode now: uWS reuses `data` once this callback returns.
        if (isBinary) return void conn.send(errorFrame('invalid_json', undefined, 'frames are JSON text'));
        const frame = parseClientFrame(Buffer.from(data).toString('utf8'));
        if (isFrameError(frame)) return void conn.send(errorFrame(frame.code, frame.channel, frame.message));
        this.onFrame(conn, frame);
      },
      drain: (ws) => ws.getUserData().conn.onDrain(),
      close: (ws) => {
        const conn = ws.getUserData().conn;
        conn.markClosed();
        this.conns.delete(conn);
        this.d.metrics.wsConnections.set(this.conns.size);
        for (const sub of conn.subs.values()) this.endSubscription(sub);
        conn.subs.clear();
      },
    });
  }

  /**
   * Whether a new upgrade may proceed: refused while draining, beyond WALCAST_WS_MAX_CONNECTIONS,
   * or when the upgrade token bucket is empty (each refusal books a later slot as its hint, so
   * refused clients come back spread out at the bucket's rate).
   */
  private admit(): { error: WalcastError; reason: string; retryAfterMs: number } | null {
    const g = this.d.config.gateway;
    if (this.closing) return { error: new WalcastError('unavailable', 'gateway is shutting down'), reason: 'closing', retryAfterMs: this.drainHint() };
    if (this.maxConnections > 0 && this.conns.size >= this.maxConnections) {
      const hint = Math.min(g.retryHintMaxMs, 1000 + Math.floor(Math.random() * 4000));
      return { error: new WalcastError('unavailable', 'gateway is full'), reason: 'full', retryAfterMs: hint };
    }
    if (!this.upgrades.take()) {
      return { error: new WalcastError('rate_limited', 'too many new connections; retry later'), reason: 'rate_limited', retryAfterMs: this.upgrades.reserve(g.retryHintMaxMs) };
    }
    return null;
  }

  /** A random delay in [0, WALCAST_DRAIN_RETRY_MS]: clients of a draining gateway come back spread out. */
  private drainHint(): number {
    return Math.floor(Math.random() * (this.d.config.gateway.drainRetryMs + 1));
  }

  /**
   * Graceful stop: refuse new upgrades, then close sockets gradually, WALCAST_DRAIN_RATE per
   * second but within WALCAST_DRAIN_WINDOW_MS, each with 1012 and a reason carrying a retry
   * hint; clients resume elsewhere with their last seq. Resolves once every socket is closed.
   */
  async close(): Promise<void> {
    this.closing = true;
    const g = this.d.config.gateway;
    const conns = [...this.conns];
    // Shuffle so that no group of clients (e.g. the oldest) always goes first.
    for (let i = conns.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [conns[i], conns[j]] = [conns[j]!, conns[i]!];
    }
    const TICK_MS = 20;
    const duration = Math.min(g.drainWindowMs, (conns.length * 1000) / g.drainRate);
    const ticks = Math.max(1, Math.floor(duration / TICK_MS));
    const perTick = Math.ceil(conns.length / ticks);
    for (let i = 0; i < conns.length; i += perTick) {
      if (i > 0) await new Promise((r) => setTimeout(r, TICK_MS));
      for (const conn of conns.slice(i, i + perTick)) {
        if (conn.closed) continue;
        this.d.metrics.wsDrained.inc();
        conn.end(DRAIN_CLOSE_CODE, `draining retry_after_ms=${this.drainHint()}`);
      }
    }
    for (const hub of this.hubs.values()) {
      hub.close();
      this.fanout.forget(hub);
    }
    this.hubs.clear();
  }

  private onFrame(conn: Connection, f: ClientFrame): void {
    switch (f.type) {
      case 'subscribe':
        void this.subscribe(conn, f.channel, f.since).catch((e: unknown) => {
          const code = e instanceof WalcastError ? e.code : 'unavailable';
          if (!(e instanceof WalcastError)) this.d.log.warn('subscribe failed', { channel: f.channel, err: e as Error });
          const sub = conn.subs.get(f.channel);
          if (sub && sub.state !== 'ended') this.endSubscription(sub);
          conn.send(errorFrame(code, f.channel));
        });
        return;
      case 'unsubscribe': {
        const sub = conn.subs.get(f.channel);
        if (sub) this.endSubscription(sub);
        conn.send(unsubscribedFrame(f.channel));
        return;
      }
      case 'ping':
        conn.send(pongFrame());
        return;
    }
  }

  private async subscribe(conn: Connection, channel: string, since: number | undefined): Promise<void> {
    const previous = conn.subs.get(channel);
    if (previous) this.endSubscription(previous); // a new subscribe replaces the old one
    else if (conn.subs.size >= this.d.config.limits.maxSubscriptions) {
      conn.send(errorFrame('too_many_subscriptions', channel, `at most ${this.d.config.limits.maxSubscriptions} per connection`));
      return;
    }
    const sub = new Subscription(conn, channel, 0);
    conn.subs.set(channel, sub);
    const key = `${channel}\u0000${conn.user}`;
    const window = this.checking.get(key) ?? { count: 0, kicks: 0 };
    this.checking.set(key, window);
    window.count++;
    const kicksBefore = window.kicks;
    let hub: Hub;
    let lastSeq: number;
    try {
      const { channel: ch, member } = await this.membership.check(channel, conn.user);
      if (sub.ended) return;
      if (!member) throw new WalcastError('not_in_channel');
      hub = await this.hub(channel);
      if (sub.ended) return this.release(hub);
      if (window.kicks !== kicksBefore) {
        this.release(hub);
        throw new WalcastError('not_in_channel');
      }
      lastSeq = ch.last_seq;
    } finally {
      if (--window.count === 0) this.checking.delete(key);
    }
    // The channel's last committed seq as of the membership read: a subscription without
    // `since` delivers what commits after it.
    sub.cursor = since ?? lastSeq;
    conn.send(subscribedFrame(channel, lastSeq));
    try {
      await hub.catchUp(sub);
    } finally {
      if (sub.ended) this.endSubscription(sub);
    }
  }

  private endSubscription(sub: Subscription): void {
    if (sub.conn.subs.get(sub.channel) === sub) sub.conn.subs.delete(sub.channel);
    const hub = this.hubs.get(sub.channel);
    // Hub.remove takes a live subscription off the channel's topic; it marks the subscription
    // ended itself, and must see its state as it was.
    if (hub) {
      hub.remove(sub);
      this.release(hub);
    }
    sub.state = 'ended';
  }

  /** The channel's hub, created on first use: bus subscription first, then last_seq, so no event falls in between. */
  private async hub(channel: string): Promise<Hub> {
    for (;;) {
      let hub = this.hubs.get(channel);
      if (!hub) {
        const created = new Hub(channel, {
          range: (c, after, limit, upTo) => this.db.run(() => this.d.messages.range(c, after, limit, upTo)),
          publish: (topic, frame) => this.app?.publish(topic, frame),
          ringSize: this.d.config.gateway.ringSize,
          pageSize: this.d.config.gateway.catchupPage,
          fanoutBudget: this.d.config.gateway.fanoutBudget,
          log: this.d.log,
          metrics: this.d.metrics,
        });
        created.ready = (async () => {
          await this.d.bus.subscribe(channel);
          created.init(await this.db.run(() => this.d.channels.lastSeq(channel)));
        })();
        this.hubs.set(channel, created);
        this.d.metrics.hubs.set(this.hubs.size);
        hub = created;
        created.ready.catch(() => {
          if (this.hubs.get(channel) === created) this.drop(created);
        });
      }
      await hub.ready;
      // The hub may have been dropped (last subscriber left) while we waited: start over.
      if (this.hubs.get(channel) === hub) return hub;
    }
  }

  private release(hub: Hub): void {
    if (hub.size === 0 && this.hubs.get(hub.channel) === hub) {
      // Let subscriptions that are between their membership check and catch-up keep it.
      queueMicrotask(() => {
        if (hub.size === 0 && this.hubs.get(hub.channel) === hub) this.drop(hub);
      });
    }
  }

  private drop(hub: Hub): void {
    hub.close();
    this.fanout.forget(hub);
    this.hubs.delete(hub.channel);
    this.d.metrics.hubs.set(this.hubs.size);
    void this.d.bus.unsubscribe(hub.channel).catch(() => {});
  }

  private onBusEvent(e: BusEvent): void {
    try {
      switch (e.kind) {
        case 'message': {
          const hub = this.hubs.get(e.channel);
          if (hub) this.fanout.push(hub, e.message, e.committedAt);
          return;
        }
        case 'kick':
          this.kick(e.channel, e.user);
          return;
        case 'resync':
          this.d.log.warn('resync requested upstream; re-reading every channel from the database', { epoch: e.epoch });
          for (const hub of this.hubs.values()) hub.resync();
          return;
      }
    } catch (err) {
      this.d.log.error('bus event handling failed', { err: err as Error, kind: e.kind });
    }
  }

  private onBusState(up: boolean): void {
    if (!up) {
      this.busDown = true;
      this.d.log.warn('bus down; sockets stay open, channels will re-sync when it returns');
      return;
    }
    if (this.busDown) {
      this.busDown = false;
      this.d.log.info('bus back; re-syncing every channel from the database', { channels: this.hubs.size });
      for (const hub of this.hubs.values()) hub.resync();
    }
  }

  private kick(channel: string, user: string): void {
    const window = this.checking.get(`${channel}\u0000${user}`);
    if (window) window.kicks++;
    const hub = this.hubs.get(channel);
    if (!hub) return;
    for (const sub of [...hub.subs]) {
      if (sub.conn.user !== user) continue;
      this.endSubscription(sub);
      sub.conn.send(unsubscribedFrame(channel, 'kicked'));
    }
  }
}

/**
 * File descriptors kept free for the database pool, Redis and sockets being refused. Without a
 * cap, a gateway at its open-files limit makes uSockets spin on a failing accept() at 100% CPU.
 */
const FD_HEADROOM = 512;

/** The soft RLIMIT_NOFILE on Linux (0 when unknown). */
function openFilesLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function bearer(header: string): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}
