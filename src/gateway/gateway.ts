// The WebSocket gateway at /v1/ws: authenticates the upgrade, runs subscribe/unsubscribe,
// feeds each channel's hub from the bus, ends kicked subscriptions, and re-syncs every
// channel from the database whenever the bus may have lost events.
import type { Bus, BusEvent } from '../bus/bus.js';
import type { Channels } from '../chat/channels.js';
import type { Messages } from '../chat/messages.js';
import type { Config } from '../config.js';
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
import { Hub } from './hub.js';
import { Subscription } from './subscription.js';

export interface GatewayDeps {
  config: Config;
  bus: Bus;
  tokens: Tokens;
  channels: Channels;
  messages: Messages;
  log: Logger;
  metrics: Metrics;
}

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

  constructor(private readonly d: GatewayDeps) {
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
        void this.d.tokens.verify(token).then(
          (user) => {
            if (aborted) return;
            if (this.closing) return refuse(new WalcastError('unavailable', 'gateway is shutting down'), 'closing');
            const conn = new Connection(this.nextId++, user, limits.wsMaxBackpressure, () => this.d.metrics.wsSlowClosed.inc());
            res.cork(() => res.upgrade<SocketData>({ conn }, key, protocol, extensions, context));
          },
          (e: unknown) => {
            if (aborted) return;
            refuse(e instanceof WalcastError ? e : new WalcastError('invalid_auth'), 'auth');
          },
        );
        const refuse = (e: WalcastError, reason: string) => {
          this.d.metrics.wsRefused.inc({ reason });
          res.cork(() => {
            res.writeStatus(statusLine(e.status)).writeHeader('content-type', 'application/json').end(JSON.stringify(errorBody(e)));
          });
        };
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

  /** Close every socket (1001, going away); clients resume elsewhere with their last seq. */
  async close(): Promise<void> {
    this.closing = true;
    for (const conn of [...this.conns]) conn.end(1001, 'going_away');
    for (const hub of this.hubs.values()) hub.close();
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
      const { channel: ch, member } = await this.d.channels.membership(channel, conn.user);
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
          range: (c, after, limit, upTo) => this.d.messages.range(c, after, limit, upTo),
          publish: (topic, frame) => this.app?.publish(topic, frame),
          ringSize: this.d.config.gateway.ringSize,
          pageSize: this.d.config.gateway.catchupPage,
          log: this.d.log,
          metrics: this.d.metrics,
        });
        created.ready = (async () => {
          await this.d.bus.subscribe(channel);
          created.init(await this.d.channels.lastSeq(channel));
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
    this.hubs.delete(hub.channel);
    this.d.metrics.hubs.set(this.hubs.size);
    void this.d.bus.unsubscribe(hub.channel).catch(() => {});
  }

  private onBusEvent(e: BusEvent): void {
    try {
      switch (e.kind) {
        case 'message':
          this.hubs.get(e.channel)?.onMessage(e.message, e.committedAt);
          return;
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

function bearer(header: string): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}
