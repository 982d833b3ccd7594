// The WebSocket gateway at /v1/ws: admits and authenticates upgrades, runs each socket's frames
// (commands.ts), feeds each channel's hub from the bus through the fair fan-out scheduler, and
// re-syncs every channel from the database whenever the bus may have lost events (or only the
// channels whose subscriptions lapsed, when the bus says which: Redis Cluster).
import { randomUUID } from 'node:crypto';
import type { Bus, BusEvent } from '../bus/bus.js';
import type { Channels } from '../chat/channels.js';
import type { Messages } from '../chat/messages.js';
import type { Config } from '../config.js';
import type { Pool } from '../db/pool.js';
import type { Tokens, VerifiedToken } from '../auth/tokens.js';
import { isAuthFailure } from '../auth/failures.js';
import { WalcastError, toErrorFrame } from '../errors.js';
import { peerAddress } from '../http/client-ip.js';
import { createEdge, type Edge } from '../http/edge.js';
import { sendError, track } from '../http/respond.js';
import type { TemplatedApp } from '../http/uws.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { AUTH_TIMEOUT_MS, CLOSE, PATHS, TOKEN_EXPIRING_AHEAD_MS, serverFrame, type ClientFrame } from '../protocol.js';
import { bearer } from '../util/bearer.js';
import { Semaphore } from '../util/semaphore.js';
import { TtlSet } from '../util/ttl-set.js';
import { CommandRate } from './command-rate.js';
import { Admission, type Refusal } from './admission.js';
import { Commands } from './commands.js';
import { Connection, type SocketData } from './connection.js';
import { drain } from './drain.js';
import { FanoutScheduler } from './fanout.js';
import { isFrameError, parseClientFrame } from './frames.js';
import { MembershipBatcher } from './membership.js';
import { HubRegistry } from './registry.js';
import { TokenLifetimes } from './token-lifetime.js';
import { UserSockets } from './users.js';

/** How long an unknown channel id is remembered as unknown (no query for it meanwhile). */
const MISSING_CHANNEL_TTL_MS = 5000;
/** Frames a socket may send while its first `auth` is being verified. */
const MAX_QUEUED_BEFORE_AUTH = 256;

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
  /** Called once an upgrade's token is verified (walcast records the users it has seen). */
  onAuthenticated?(user: string): Promise<void>;
  /** Shared with the API of the same process (failed authentications per address); built from config if absent. */
  edge?: Edge;
}

export class Gateway {
  /** This process's gateway id: presence and typing tell gateways apart by it. */
  readonly id = randomUUID();
  private readonly presenceTimer: NodeJS.Timeout;
  private readonly conns = new Set<Connection>();
  private nextId = 1;
  private app: TemplatedApp | null = null;
  private busDown = false;
  /** Every database read this gateway makes goes through here: bounded concurrency. */
  readonly db: Semaphore;
  readonly fanout: FanoutScheduler;
  readonly admission: Admission;
  private readonly registry: HubRegistry;
  private readonly commands: Commands;
  private readonly edge: Edge;
  private readonly users = new UserSockets();
  /** Token expiry and first-frame auth deadlines of every socket: one timer wheel, no timer per socket. */
  readonly lifetimes: TokenLifetimes<Connection>;

  constructor(private readonly d: GatewayDeps) {
    const g = d.config.gateway;
    const m = d.metrics;
    this.db = new Semaphore(g.dbConcurrency, {
      inFlight: (n) => m.gatewayDbInFlight.set(n),
      inFlightMax: (n) => m.gatewayDbInFlightMax.set(n),
      waiting: (n) => m.gatewayDbWaiting.set(n),
    });
    this.admission = new Admission(g);
    this.fanout = new FanoutScheduler(g.fanoutBudget, g.fanoutQueueMax, m);
    this.registry = new HubRegistry({
      bus: d.bus,
      channels: d.channels,
      messages: d.messages,
      db: this.db,
      fanout: this.fanout,
      publish: (topic, frame) => this.app?.publish(topic, frame),
      onLeft: (sub, reason) => this.commands.left(sub, reason),
      ringSize: g.ringSize,
      ringBytes: g.ringBytes,
      pageSize: g.catchupPage,
      fanoutBudget: g.fanoutBudget,
      gateway: this.id,
      presenceMaxUsers: g.presenceMaxUsers,
      log: d.log,
      metrics: m,
    });
    this.presenceTimer = setInterval(() => this.registry.presenceBeat(3 * g.presenceHeartbeatMs), g.presenceHeartbeatMs);
    this.presenceTimer.unref();
    this.commands = new Commands({
      registry: this.registry,
      membership: new MembershipBatcher(d.pool, this.db, m),
      maxSubscriptions: d.config.limits.maxSubscriptions,
      log: d.log,
      missing: new TtlSet(MISSING_CHANNEL_TTL_MS),
    });
    this.edge = d.edge ?? createEdge(d.config, d.log);
    this.lifetimes = new TokenLifetimes<Connection>(
      {
        authTimeout: (c) => {
          this.edge.abuse.note('auth_timeout', { address: c.address });
          this.edge.failures.charge(c.address);
          c.end(CLOSE.auth_timeout, 'auth_timeout');
        },
        expiring: (c, at) => void c.send(serverFrame.tokenExpiring(at)),
        expired: (c) => c.end(CLOSE.token_expired, 'token_expired'),
      },
      { warnAheadMs: TOKEN_EXPIRING_AHEAD_MS, authTimeoutMs: AUTH_TIMEOUT_MS },
    );
    d.tokens.revocations.onRevoke((user, notBefore) => this.revoke(user, notBefore));
    d.bus.onEvent((e) => this.onBusEvent(e));
    d.bus.onState((up) => this.onBusState(up));
    // Backends that can lose part of their subscriptions (Redis Cluster) report which came back.
    d.bus.onResubscribed?.((channels) => this.registry.resync(channels));
  }

  get connections(): number {
    return this.conns.size;
  }

  get maxConnections(): number {
    return this.admission.maxConnections;
  }

  /** Subscriptions held by this gateway's sockets, and the channels they cover (the ops page). */
  get subscriptions(): number {
    let n = 0;
    for (const c of this.conns) n += c.subs.size;
    return n;
  }

  get channels(): number {
    return this.registry.size;
  }

  mount(app: TemplatedApp): void {
    this.app = app;
    const { limits } = this.d.config;
    const m = this.d.metrics;
    app.ws<SocketData>(PATHS.ws, {
      maxPayloadLength: limits.wsMaxPayload,
      maxBackpressure: limits.wsMaxBackpressure,
      // A frame dropped for backpressure would be a gap: close the socket instead, the client resumes by seq.
      closeOnBackpressureLimit: 1,
      idleTimeout: limits.wsIdleTimeoutS,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        // uWS's request is valid only until this function returns: read everything now.
        const token = new URLSearchParams(req.getQuery() ?? '').get('token') || bearer(req.getHeader('authorization'));
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const origin = req.getHeader('origin');
        const host = req.getHeader('host');
        const address = this.edge.addresses.of(peerAddress(res), req.getHeader('x-forwarded-for'));
        const reply = track(res);
        const refuse = (reason: string, error: unknown) => {
          m.wsRefused.inc({ reason });
          sendError(res, reply, error, this.d.log);
        };
        // Cheap refusals first, none of which costs a token verification or the shared budget.
        if (!this.edge.origins.allows(origin, host)) {
          this.edge.abuse.note('origin_refused', { origin: origin.slice(0, 100) });
          return refuse('origin', new WalcastError('origin_not_allowed', 'this origin may not open WebSockets here (WALCAST_ALLOWED_ORIGINS)'));
        }
        const blocked = this.edge.failures.blocked(address);
        if (blocked) {
          this.edge.abuse.note('ip_blocked', { address });
          return refuse('address', blocked);
        }
        const refusal = this.admission.admit(this.conns.size);
        if (refusal) return refuse(refusal.reason, refusal.error);
        const upgrade = (user: string, v: VerifiedToken | null) => {
          const conn = new Connection(this.nextId++, user, address, limits.wsMaxBackpressure, () => m.wsSlowClosed.inc());
          if (v) {
            conn.expiresAt = v.exp * 1000;
            conn.iat = v.iat;
          }
          res.cork(() => res.upgrade<SocketData>({ conn }, key, protocol, extensions, context));
        };
        // No token: the socket opens unauthenticated and must send `auth` first, within 5 s.
        if (!token) return upgrade('', null);
        void this.d.tokens.verifyToken(token).then(
          async (v) => {
            try {
              await this.d.onAuthenticated?.(v.sub);
            } catch (e) {
              return refuse('unavailable', e);
            }
            if (reply.aborted) return;
            if (this.admission.closing) return refuse('closing', this.admission.refuseClosing().error);
            const over = this.overUserLimit(v.sub);
            if (over) {
              this.admission.giveBack();
              this.edge.abuse.note('user_connection_limit', { user: v.sub });
              return refuse('user_limit', over);
            }
            upgrade(v.sub, v);
          },
          (e: unknown) => {
            // A failed authentication is charged to the caller's address, not to the shared budget.
            this.admission.giveBack();
            if (isAuthFailure(e)) {
              this.edge.failures.charge(address);
              this.edge.abuse.note('bad_token', { address, code: (e as WalcastError).code });
            }
            refuse('auth', e);
          },
        );
      },
      open: (ws) => {
        const conn = ws.getUserData().conn;
        conn.attach(ws);
        this.conns.add(conn);
        m.wsConnections.set(this.conns.size);
        if (conn.user) {
          this.users.add(conn);
          this.lifetimes.authed(conn, conn.expiresAt);
        } else {
          this.lifetimes.awaitAuth(conn);
        }
      },
      message: (ws, data, isBinary) => {
        const conn = ws.getUserData().conn;
        // Decode now: uWS reuses `data` once this callback returns. uWS has already closed
        // sockets whose text frames are not UTF-8 (1006), so this decodes valid UTF-8 only.
        const text = isBinary ? null : Buffer.from(data).toString('utf8');
        if (!this.admitFrame(conn)) return;
        if (text === null) {
          this.edge.abuse.note('bad_frame', { code: 'binary' });
          return void conn.send(serverFrame.error('invalid_json', undefined, 'frames are JSON text'));
        }
        if (conn.authPending) {
          if (conn.queued!.length >= MAX_QUEUED_BEFORE_AUTH) return conn.end(CLOSE.policy_violation, 'policy_violation');
          conn.queued!.push(text);
          return;
        }
        this.onFrame(conn, text);
      },
      drain: (ws) => ws.getUserData().conn.onDrain(),
      close: (ws) => {
        const conn = ws.getUserData().conn;
        conn.markClosed();
        this.conns.delete(conn);
        if (conn.user) this.users.remove(conn);
        this.lifetimes.forget(conn);
        m.wsConnections.set(this.conns.size);
        this.commands.closed(conn);
      },
    });
  }

  /** too_many_connections if the user already holds WALCAST_MAX_CONNECTIONS_PER_USER sockets here. */
  private overUserLimit(user: string): WalcastError | null {
    const max = this.d.config.abuse.maxConnectionsPerUser;
    if (max <= 0 || this.users.count(user) < max) return null;
    return new WalcastError('too_many_connections', `at most ${max} sockets per user on this gateway`, {
      retryAfterMs: Math.min(this.d.config.gateway.retryHintMaxMs, 1000 + Math.floor(Math.random() * 4000)),
    });
  }

  /** The per-socket frame rate: false when the frame is refused (answered, or the socket closed). */
  private admitFrame(conn: Connection): boolean {
    const { commandRate, commandBurst } = this.d.config.abuse;
    if (commandRate <= 0) return true;
    const now = performance.now();
    conn.rate ??= new CommandRate(commandRate, commandBurst, now);
    const wait = conn.rate.take(now);
    if (wait === 0) return true;
    this.edge.abuse.note('command_flood', { user: conn.user, address: conn.address });
    if (wait < 0) conn.end(CLOSE.policy_violation, 'policy_violation');
    else conn.send(serverFrame.error('rate_limited', undefined, 'too many frames; slow down', wait));
    return false;
  }

  /** One text frame of a socket, in order. */
  private onFrame(conn: Connection, text: string): void {
    if (conn.closed) return;
    const frame = parseClientFrame(text);
    if (isFrameError(frame)) {
      this.edge.abuse.note('bad_frame', { code: frame.code });
      conn.send(serverFrame.error(frame.code, frame.channel, frame.message));
      // A socket that has not authenticated gets nothing but `auth` answered.
      if (!conn.user) conn.end(CLOSE.auth_failed, 'auth_failed');
      return;
    }
    if (frame.type === 'auth') return this.auth(conn, frame.token);
    if (!conn.user) {
      conn.send(serverFrame.error('not_authed', undefined, 'send {"type":"auth","token":...} first'));
      return conn.end(CLOSE.auth_failed, 'auth_failed');
    }
    this.commands.run(conn, frame as ClientFrame);
  }

  /**
   * An `auth` frame: the first one of a socket opened without a token, or a fresh token for the
   * same user. Frames arriving while a first `auth` is verified wait for it, in order.
   */
  private auth(conn: Connection, token: string): void {
    const first = !conn.user;
    const blocked = this.edge.failures.blocked(conn.address);
    if (blocked) {
      conn.send(serverFrame.error('rate_limited', undefined, blocked.message, blocked.retryAfterMs));
      if (first) conn.end(CLOSE.auth_failed, 'auth_failed');
      return;
    }
    if (first) {
      conn.authPending = true;
      conn.queued = [];
    }
    void this.d.tokens.verifyToken(token).then(
      async (v) => {
        if (conn.closed) return;
        if (!first && v.sub !== conn.user) {
          conn.send(serverFrame.error('invalid_auth', undefined, 'the token is for another user'));
          return conn.end(CLOSE.auth_failed, 'auth_failed');
        }
        if (first) {
          try {
            await this.d.onAuthenticated?.(v.sub);
          } catch (e) {
            const err = toErrorFrame(e, this.d.log);
            conn.send(serverFrame.error(err.code, undefined, err.message));
            return conn.end(CLOSE.auth_failed, 'auth_failed');
          }
          if (conn.closed) return;
          const over = this.overUserLimit(v.sub);
          if (over) {
            this.edge.abuse.note('user_connection_limit', { user: v.sub });
            conn.send(serverFrame.error('too_many_connections', undefined, over.message, over.retryAfterMs));
            return conn.end(CLOSE.too_many_connections, 'too_many_connections');
          }
          conn.user = v.sub;
          this.users.add(conn);
        }
        conn.iat = v.iat;
        conn.send(serverFrame.authOk(v.exp * 1000));
        this.lifetimes.authed(conn, v.exp * 1000);
        if (first) {
          const queued = conn.queued ?? [];
          conn.authPending = false;
          conn.queued = null;
          for (const f of queued) this.onFrame(conn, f);
        }
      },
      (e: unknown) => {
        if (conn.closed) return;
        const err = toErrorFrame(e, this.d.log);
        conn.send(serverFrame.error(err.code, undefined, err.message));
        if (isAuthFailure(e)) {
          this.edge.failures.charge(conn.address);
          this.edge.abuse.note('bad_token', { address: conn.address, code: err.code });
          return conn.end(err.code === 'token_expired' ? CLOSE.token_expired : CLOSE.auth_failed, err.code === 'token_expired' ? 'token_expired' : 'auth_failed');
        }
        // unavailable (the identity provider's keys cannot be fetched): the socket keeps its
        // current deadline (auth timeout or expiry); the client may send `auth` again.
        if (first) {
          conn.authPending = false;
          conn.queued = null;
        }
      },
    );
  }

  /** A user's tokens issued before notBefore were revoked: close their sockets opened with such tokens. */
  private revoke(user: string, notBefore: number): void {
    for (const conn of this.users.of(user)) {
      if (conn.iat === undefined || conn.iat < notBefore) conn.end(CLOSE.auth_failed, 'token_revoked');
    }
  }

  /**
   * Who holds a live subscription to the channel, on every gateway. A channel served here is
   * answered from its hub; otherwise a hub is made for the moment, which asks the other
   * gateways for their sets, and `waitMs` later the answer is what came back.
   */
  async presenceOf(channel: string, waitMs: number): Promise<string[]> {
    const hub = await this.registry.acquire(channel);
    hub.holds++;
    try {
      if (hub.subs.size === 0 && waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
      return hub.presence.users;
    } finally {
      hub.holds--;
      this.registry.release(hub);
    }
  }

  /**
   * Graceful stop: refuse new upgrades, then drain the sockets (drain.ts); clients resume
   * elsewhere with their last seq. Resolves once every socket was told to go.
   */
  async close(): Promise<void> {
    this.admission.closing = true;
    clearInterval(this.presenceTimer);
    const g = this.d.config.gateway;
    await drain([...this.conns], {
      rate: g.drainRate,
      windowMs: g.drainWindowMs,
      hint: () => this.admission.drainHint(),
      onClose: () => this.d.metrics.wsDrained.inc(),
    });
    this.registry.closeAll();
    this.lifetimes.stop();
  }

  private onBusEvent(e: BusEvent): void {
    try {
      switch (e.kind) {
        case 'change': {
          const hub = this.registry.get(e.channel);
          if (hub) this.fanout.push(hub, e);
          return;
        }
        case 'resync':
          this.d.log.warn('resync requested upstream; re-reading every channel from the database', { epoch: e.epoch });
          this.registry.resyncAll();
          return;
        case 'presence':
          this.registry.get(e.channel)?.presence.onRemote(e.gateway, e);
          return;
        case 'typing':
          if (e.gateway !== this.id) this.registry.get(e.channel)?.remoteTyping(e.user);
          return;
        case 'revoke':
          // Every process applies it (app/node.ts); the gateway closes sockets through onRevoke.
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
      this.d.log.info('bus back; re-syncing every channel from the database', { channels: this.registry.size });
      this.registry.resyncAll();
    }
  }
}
