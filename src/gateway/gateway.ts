// The gateway: WebSockets at /v1/ws and Server-Sent Events at /v1/sse (sse.ts). It admits and
// authenticates upgrades and streams alike, runs each socket's frames (commands.ts), feeds each
// channel's hub from the bus through the fair fan-out scheduler, and re-syncs every channel from
// the database whenever the bus may have lost events (or only the channels whose subscriptions
// lapsed, when the bus says which: Redis Cluster).
import { randomUUID } from 'node:crypto';
import type { Bus, BusEvent } from '../bus/bus.js';
import type { Channels, Membership } from '../chat/channels.js';
import type { Messages } from '../chat/messages.js';
import type { Config } from '../config.js';
import type { Pool } from '../db/pool.js';
import type { Tokens, VerifiedToken } from '../auth/tokens.js';
import { isAuthFailure } from '../auth/failures.js';
import { WalcastError, asWalcastError, toErrorFrame } from '../errors.js';
import { peerAddress } from '../http/client-ip.js';
import { createEdge, type Edge } from '../http/edge.js';
import { framingProblem, refuseFraming } from '../http/framing.js';
import { corsHeaders, preflightHeaders } from '../http/origins.js';
import { send, sendError, track, type Reply } from '../http/respond.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from '../http/uws.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { AUTH_TIMEOUT_MS, CLOSE, CLOSE_CODES, PATHS, TOKEN_EXPIRING_AHEAD_MS, serverFrame, type ClientFrame } from '../protocol.js';
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
import type { PublishOptions } from './hub.js';
import type { Peer } from './peer.js';
import { HubRegistry } from './registry.js';
import { SseStream, SseTopics, parseSseRequest, type SseRequest } from './sse.js';
import { TokenLifetimes } from './token-lifetime.js';
import { UserSockets } from './users.js';

/** How long an unknown channel id is remembered as unknown (no query for it meanwhile). */
const MISSING_CHANNEL_TTL_MS = 5000;
/** Frames a socket may send while its first `auth` is being verified. */
const MAX_QUEUED_BEFORE_AUTH = 256;
/** A browser's EventSource reconnects after a random delay in [1 s, 1 s + this] when its stream breaks (the SSE `retry` field). */
const SSE_RETRY_SPREAD_MS = 2000;

/** A refused upgrade or stream, and the label it is counted under. */
class Refused {
  constructor(
    readonly reason: string,
    readonly error: unknown,
  ) {}
}

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
  /**
   * Told once a socket's or stream's token is verified (walcast records the users it has seen).
   * Never awaited: a socket does not wait for the database, and a failure is only logged.
   */
  onAuthenticated?(user: string): Promise<void>;
  /** Shared with the API of the same process (failed authentications per address); built from config if absent. */
  edge?: Edge;
}

export class Gateway {
  /** This process's gateway id: presence and typing tell gateways apart by it. */
  readonly id = randomUUID();
  private readonly presenceTimer: NodeJS.Timeout;
  /** Every open WebSocket and SSE stream. */
  private readonly conns = new Set<Peer>();
  private readonly streams = new Set<SseStream>();
  private readonly topics = new SseTopics();
  private seenFailures = 0;
  private seenWarnedAt = 0;
  private sseHeartbeat: NodeJS.Timeout | null = null;
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
  readonly lifetimes: TokenLifetimes<Peer>;

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
      publish: (topic, frame, o) => this.publish(topic, frame, o),
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
    this.presenceTimer = setInterval(() => {
      void d.bus.publish([{ kind: 'alive', gateway: this.id }]).catch(() => {});
      this.registry.presenceBeat(3 * g.presenceHeartbeatMs);
    }, g.presenceHeartbeatMs);
    this.presenceTimer.unref();
    this.commands = new Commands({
      registry: this.registry,
      membership: new MembershipBatcher(d.pool, this.db, m),
      maxSubscriptions: d.config.limits.maxSubscriptions,
      log: d.log,
      missing: new TtlSet(MISSING_CHANNEL_TTL_MS),
    });
    this.edge = d.edge ?? createEdge(d.config, d.log);
    this.lifetimes = new TokenLifetimes<Peer>(
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

  private readonly onSlowConsumer = (): void => this.d.metrics.wsSlowClosed.inc();

  /** Open WebSockets and SSE streams. */
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
        const refuse = (r: Refused) => {
          m.wsRefused.inc({ reason: r.reason });
          sendError(res, reply, r.error, this.d.log);
        };
        const refused = this.precheck(origin, host, address, 'WebSockets');
        if (refused) return refuse(refused);
        const upgrade = (user: string, v: VerifiedToken | null) => {
          // Nothing made in this function may outlive the upgrade: a closure kept by the
          // connection would keep this whole scope (request strings, response) per socket.
          const conn = new Connection(this.nextId++, user, address, limits.wsMaxBackpressure, this.onSlowConsumer);
          if (v) {
            conn.expiresAt = v.exp * 1000;
            conn.iat = v.iat;
          }
          res.cork(() => res.upgrade<SocketData>({ conn }, key, protocol, extensions, context));
        };
        // No token: the socket opens unauthenticated and must send `auth` first, within 5 s.
        if (!token) return upgrade('', null);
        const admit = (v: VerifiedToken) => {
          const late = this.admitUser(v.sub);
          if (late) return refuse(late);
          upgrade(v.sub, v);
        };
        // Upgrade inside this handler whenever the token can be checked without waiting (almost
        // always: Tokens.verifyTokenNow). The uWS build we ship can close a socket it upgrades
        // later, right after the 101 (docs/operations.md, "Upgrades without waiting"): only a
        // token whose key must be fetched takes that path.
        let now: VerifiedToken | null;
        try {
          now = this.authorizeNow(token, address);
        } catch (r) {
          return refuse(r as Refused);
        }
        if (now) return admit(now);
        void this.authorize(token, address).then(
          (v) => {
            if (!reply.aborted) admit(v);
          },
          (r: Refused) => refuse(r),
        );
      },
      open: (ws) => {
        const conn = ws.getUserData().conn;
        conn.attach(ws);
        this.conns.add(conn);
        this.countConnections();
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
        this.countConnections();
        this.commands.closed(conn);
      },
    });
    app.any(PATHS.sse, (res, req) => this.sse(res, req));
    this.sseHeartbeat = setInterval(() => {
      for (const s of this.streams) s.heartbeat();
    }, this.d.config.gateway.sseHeartbeatMs);
    this.sseHeartbeat.unref();
  }

  private countConnections(): void {
    this.d.metrics.wsConnections.set(this.conns.size - this.streams.size);
    this.d.metrics.sseConnections.set(this.streams.size);
  }

  /** A frame for a topic's peers: WebSockets through uWS's publish, SSE streams through theirs. */
  private publish(topic: string, frame: string, o?: PublishOptions): void {
    const except = o?.except;
    if (except instanceof Connection) except.publishToOthers(topic, frame);
    else this.app?.publish(topic, frame);
    this.topics.publish(topic, frame, o?.id, except);
  }

  /**
   * The refusals that cost no token verification, cheapest first: the origin, an address that
   * failed to authenticate too often, the gateway's capacity and upgrade rate. Null: go ahead
   * (holding one of the upgrade rate's tokens, given back if the token or the user is refused).
   */
  private precheck(origin: string, host: string, address: string, what: string): Refused | null {
    if (!this.edge.origins.allows(origin, host)) {
      this.edge.abuse.note('origin_refused', { origin: origin.slice(0, 100) });
      return new Refused('origin', new WalcastError('origin_not_allowed', `this origin may not open ${what} here (WALCAST_ALLOWED_ORIGINS)`));
    }
    const blocked = this.edge.failures.blocked(address);
    if (blocked) {
      this.edge.abuse.note('ip_blocked', { address });
      return new Refused('address', blocked);
    }
    const refusal = this.admission.admit(this.conns.size);
    return refusal ? new Refused(refusal.reason, refusal.error) : null;
  }

  /** Verifies a token after precheck; rejects with a Refused (a failed authentication is charged to the address, not to the shared budget). */
  private async authorize(token: string, address: string): Promise<VerifiedToken> {
    let v: VerifiedToken;
    try {
      v = await this.d.tokens.verifyToken(token);
    } catch (e) {
      throw this.refusedToken(e, address);
    }
    this.seen(v.sub);
    return v;
  }

  /** authorize() without waiting, where the token allows it (Tokens.verifyTokenNow); null: call authorize(). Throws a Refused. */
  private authorizeNow(token: string, address: string): VerifiedToken | null {
    let v: VerifiedToken | null;
    try {
      v = this.d.tokens.verifyTokenNow(token);
    } catch (e) {
      throw this.refusedToken(e, address);
    }
    if (v) this.seen(v.sub);
    return v;
  }

  private refusedToken(e: unknown, address: string): Refused {
    this.admission.giveBack();
    if (isAuthFailure(e)) {
      this.edge.failures.charge(address);
      this.edge.abuse.note('bad_token', { address, code: (e as WalcastError).code });
    }
    return new Refused('auth', e);
  }

  /** Records the user in the background (GatewayDeps.onAuthenticated); failures are logged at most every 10 s, with a count. */
  private seen(user: string): void {
    if (!this.d.onAuthenticated) return;
    Promise.resolve(user)
      .then((u) => this.d.onAuthenticated!(u))
      .catch((e: unknown) => {
        this.seenFailures++;
        if (Date.now() - this.seenWarnedAt < 10_000) return;
        this.seenWarnedAt = Date.now();
        this.d.log.warn('could not record users as seen; each is tried again at their next connection', { failures: this.seenFailures, user, error: String(e) });
        this.seenFailures = 0;
      });
  }

  /** Just before a verified user gets a socket or stream: refused while draining, or beyond the user's connections. */
  private admitUser(user: string): Refused | null {
    if (this.admission.closing) return new Refused('closing', this.admission.refuseClosing().error);
    const over = this.overUserLimit(user);
    if (!over) return null;
    this.admission.giveBack();
    this.edge.abuse.note('user_connection_limit', { user });
    return new Refused('user_limit', over);
  }

  /**
   * GET /v1/sse: the stream starts only once everything that can be refused was checked (the
   * request, the token, every channel's membership), so refusals are ordinary JSON errors.
   */
  private sse(res: HttpResponse, req: HttpRequest): void {
    if (framingProblem(req)) return refuseFraming(res);
    const reply = track(res);
    // uWS's request is valid only until this function returns: read everything now.
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const query = req.getQuery() ?? '';
    const token = new URLSearchParams(query).get('token') || bearer(req.getHeader('authorization'));
    const lastEventId = req.getHeader('last-event-id');
    const origin = req.getHeader('origin');
    const host = req.getHeader('host');
    const address = this.edge.addresses.of(peerAddress(res), req.getHeader('x-forwarded-for'));
    const m = this.d.metrics;
    const allowed = this.edge.origins.allows(origin, host);
    const cors = allowed ? corsHeaders(origin) : {};
    const refuse = (r: Refused) => {
      m.sseRefused.inc({ reason: r.reason });
      sendError(res, reply, r.error, this.d.log, false, cors);
    };
    if (method === 'OPTIONS' && allowed) {
      return send(res, reply, 204, '', 'text/plain', { ...preflightHeaders(origin), 'access-control-allow-headers': 'authorization, last-event-id' });
    }
    if (method !== 'GET' && allowed) return refuse(new Refused('method', new WalcastError('method_not_allowed', `${PATHS.sse} takes GET`)));
    const asked = parseSseRequest(query, lastEventId, this.d.config.limits.maxSubscriptions);
    if (allowed && asked instanceof WalcastError) return refuse(new Refused('arguments', asked));
    const refused = this.precheck(origin, host, address, 'event streams');
    if (refused) return refuse(refused);
    const request = asked as Exclude<typeof asked, WalcastError>;
    if (!token) {
      this.admission.giveBack();
      return refuse(new Refused('auth', new WalcastError('not_authed', 'an event stream needs a token: ?token= or Authorization: Bearer')));
    }
    void (async () => {
      let v: VerifiedToken;
      try {
        v = await this.authorize(token, address);
      } catch (r) {
        return refuse(r as Refused);
      }
      // Every channel is checked before the stream answers: a refusal is still a JSON error,
      // naming its channel.
      let memberships: Membership[];
      try {
        memberships = await Promise.all(
          request.channels.map((c) =>
            this.commands.check(c.channel, v.sub).catch((e: unknown) => {
              const err = asWalcastError(e, this.d.log);
              throw new WalcastError(err.code, err.message, { detail: { ...err.detail, channel: c.channel }, retryAfterMs: err.retryAfterMs, cause: e });
            }),
          ),
        );
      } catch (e) {
        return refuse(new Refused('channel', e));
      }
      if (reply.aborted) return;
      const late = this.admitUser(v.sub);
      if (late) return refuse(late);
      this.openStream(res, reply, v, address, cors, request, memberships);
    })();
  }

  private openStream(res: HttpResponse, reply: Reply, v: VerifiedToken, address: string, cors: Record<string, string>, request: SseRequest, memberships: Membership[]): void {
    const m = this.d.metrics;
    const stream = new SseStream(this.nextId++, v.sub, address, res, {
      maxBackpressure: this.d.config.limits.wsMaxBackpressure,
      topics: this.topics,
      onSlow: () => m.sseSlowClosed.inc(),
      onClosed: (s, code) => {
        this.conns.delete(s);
        this.streams.delete(s);
        this.users.remove(s);
        this.lifetimes.forget(s);
        this.countConnections();
        m.sseClosed.inc({ reason: code === null ? 'client' : (CLOSE_CODES[code]?.name ?? String(code)) });
        this.commands.closed(s);
      },
    });
    stream.expiresAt = v.exp * 1000;
    stream.iat = v.iat;
    res.onAborted(() => {
      reply.aborted = true;
      stream.aborted();
    });
    reply.done = true;
    stream.start(cors, 1000 + Math.random() * SSE_RETRY_SPREAD_MS);
    this.conns.add(stream);
    this.streams.add(stream);
    this.users.add(stream);
    this.countConnections();
    this.lifetimes.authed(stream, stream.expiresAt);
    request.channels.forEach((c, i) => this.commands.start(stream, c.channel, c.since, request.presence, memberships[i]));
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
      (v) => {
        if (conn.closed) return;
        if (!first && v.sub !== conn.user) {
          conn.send(serverFrame.error('invalid_auth', undefined, 'the token is for another user'));
          return conn.end(CLOSE.auth_failed, 'auth_failed');
        }
        if (first) {
          this.seen(v.sub);
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
   * Graceful stop: refuse new upgrades and streams, then drain the sockets and streams
   * (drain.ts); clients resume elsewhere with their last seq. Resolves once every one was told to go.
   */
  async close(): Promise<void> {
    this.admission.closing = true;
    clearInterval(this.presenceTimer);
    if (this.sseHeartbeat) clearInterval(this.sseHeartbeat);
    const g = this.d.config.gateway;
    await drain([...this.conns], {
      rate: g.drainRate,
      windowMs: g.drainWindowMs,
      hint: () => this.admission.drainHint(),
      // SSE streams are counted by walcast_sse_closed_total{reason="draining"}.
      onClose: (peer) => peer.transport === 'ws' && this.d.metrics.wsDrained.inc(),
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
        case 'alive':
          this.registry.alive(e.gateway);
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
