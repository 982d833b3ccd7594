// The SDK's connection: one WebSocket to a gateway, any number of channel subscriptions, and the
// client's half of the delivery guarantee. After any disconnect it reconnects (exponential
// backoff with full jitter and a cap, or the server's retry hint when it gave one) and
// resubscribes every channel with the last seq it delivered, so the application sees each
// channel's messages once, in order, with no gap, across gateway losses and drains. Which
// errors and close codes are worth retrying comes from src/protocol.ts, as the server sees it.
//
// Browser-safe: no Node imports. It uses the global WebSocket when there is one; on Node 20
// pass `WebSocket` from the `ws` package (or import from "walcast/sdk/node", which does).
import {
  CLOSE,
  PATHS,
  WalcastError,
  clientFrame,
  isChangeFrame,
  isErrorCode,
  isTemporary,
  retryHintOfReason,
  retryHintOfResponse,
  shouldReconnect,
  type ServerFrame,
} from '../protocol.js';
import { backoff } from '../util/backoff.js';
import { ChannelSubscription, type SubscribeOptions, type SubscriptionOwner } from './subscription.js';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** What happened to the connection's token: refreshed in place (auth_ok), or refused. */
export type AuthEvent = { type: 'refreshed'; expiresAt: number } | { type: 'expiring'; expiresAt: number } | { type: 'error'; error: WalcastError };

/** What the SDK needs of a WebSocket: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface BackoffOptions {
  /** First retry's cap, ms (default 250); the cap doubles per failed attempt... */
  baseMs?: number;
  /** ...up to this (default 30 000). The delay is uniformly random below the cap (full jitter). */
  maxMs?: number;
}

export interface ClientOptions {
  /** The gateway's WebSocket URL, e.g. ws://host:8080/v1/ws, or a function choosing one per attempt. */
  url: string | (() => string);
  /**
   * An access token, or getToken(): a function returning a fresh one. A function is called before
   * every connection attempt, and again whenever the server says the current token expires soon
   * (`token_expiring`): the fresh token goes to the open socket in an `auth` frame, so
   * subscriptions carry on without a reconnect. With a plain string the socket is closed when
   * the token expires (4001) and the client reconnects with the same, expired token, which the
   * server refuses: pass a function for long-lived clients.
   */
  token: string | (() => string | Promise<string>);
  /** WebSocket implementation; defaults to globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  backoff?: BackoffOptions;
  /** Sends a ping frame this often and reconnects when nothing arrived for twice as long (default 25 000; 0: off). */
  heartbeatMs?: number;
  /** A connection that stayed open this long resets the backoff (default 5 000). */
  stableMs?: number;
  /** Start connecting in the constructor (default true). */
  autoConnect?: boolean;
  /** Random source in [0, 1), for tests. */
  random?: () => number;
}

const OPEN = 1;
const DEFAULT_BASE_MS = 250;
const DEFAULT_MAX_MS = 30_000;
/** Tokens are refreshed on an open socket at most this often. */
const REFRESH_MIN_MS = 2000;

export class WalcastClient implements SubscriptionOwner {
  /** Reconnections so far, and the close code and retry hint that caused the last one. */
  reconnects = 0;
  lastCloseCode: number | undefined;
  lastRetryHintMs: number | undefined;
  /** When the current connection's token expires (ms since the epoch), once the server said (token_expiring or auth_ok). */
  tokenExpiresAt: number | undefined;
  /** Tokens given to the open socket in `auth` frames, and the last auth error the server sent. */
  tokenRefreshes = 0;
  lastAuthError: WalcastError | undefined;
  private readonly authListeners = new Set<(e: AuthEvent) => void>();
  private refreshing = false;
  private lastRefreshAt = 0;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private _state: ConnectionState = 'idle';
  private ws: WebSocketLike | null = null;
  private readonly subs = new Map<string, ChannelSubscription>();
  private readonly stateListeners = new Set<(s: ConnectionState) => void>();
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private openedAt = 0;
  private hintMs: number | undefined;
  private fatal: WalcastError | null = null;
  private readonly WS: WebSocketConstructor;
  private readonly random: () => number;
  private opened: Promise<void>;
  private openedResolve!: () => void;
  private openedReject!: (e: unknown) => void;

  constructor(private readonly o: ClientOptions) {
    const WS = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new Error('no WebSocket implementation: pass { WebSocket } (e.g. from the "ws" package) or import "walcast/sdk/node"');
    this.WS = WS;
    this.random = o.random ?? Math.random;
    this.opened = this.newOpened();
    if (o.autoConnect !== false) this.connect();
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** Calls `fn` on every state change; returns a function that stops it. */
  onState(fn: (s: ConnectionState) => void): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /** Calls `fn` when the token is refreshed on the open socket or refused; returns a function that stops it. */
  onAuth(fn: (e: AuthEvent) => void): () => void {
    this.authListeners.add(fn);
    return () => this.authListeners.delete(fn);
  }

  /** Starts connecting (if not already); resolves once a connection is open. */
  connect(): Promise<void> {
    if (this._state === 'idle' || this._state === 'closed') {
      this.fatal = null;
      this.attempt = 0;
      void this.open();
    }
    return this.opened;
  }

  /** Resolves when the client is (again) connected. */
  whenOpen(): Promise<void> {
    return this._state === 'open' ? Promise.resolve() : this.opened;
  }

  subscribe(channel: string, opts: SubscribeOptions = {}): ChannelSubscription {
    this.subs.get(channel)?.end('replaced');
    const sub = new ChannelSubscription(this, channel, opts);
    this.subs.set(channel, sub);
    if (this.ws && this._state === 'open') this.sendSubscribe(sub);
    return sub;
  }

  /**
   * Tells the channel's other subscribers that this user is typing (at most one per 2 s is
   * forwarded; the channel must be subscribed on this client). Returns false when not connected.
   */
  typing(channel: string): boolean {
    const ws = this.ws;
    if (!ws || this._state !== 'open' || !this.subs.has(channel)) return false;
    ws.send(clientFrame.typing(channel));
    return true;
  }

  /** Closes for good: no reconnect; every subscription ends. */
  close(): void {
    this.clearTimers();
    this.setState('closed');
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      try {
        ws.close(CLOSE.normal, 'client closing');
      } catch {
        /* already closed */
      }
    }
    for (const sub of this.subs.values()) sub.end('closed');
    this.subs.clear();
    this.openedReject(this.fatal ?? new Error('client closed'));
  }

  /** @internal */
  _unsubscribe(sub: ChannelSubscription): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    if (this.ws && this._state === 'open') this.ws.send(clientFrame.unsubscribe(sub.channel));
  }

  private newOpened(): Promise<void> {
    const p = new Promise<void>((resolve, reject) => {
      this.openedResolve = resolve;
      this.openedReject = reject;
    });
    p.catch(() => {});
    return p;
  }

  private setState(s: ConnectionState): void {
    if (this._state === s) return;
    this._state = s;
    for (const l of this.stateListeners) {
      try {
        l(s);
      } catch {
        /* a listener's problem */
      }
    }
  }

  private delay(attempt: number): number {
    return backoff(attempt, { baseMs: this.o.backoff?.baseMs ?? DEFAULT_BASE_MS, maxMs: this.o.backoff?.maxMs ?? DEFAULT_MAX_MS, random: this.random });
  }

  private async open(): Promise<void> {
    this.setState(this.attempt === 0 && this.reconnects === 0 ? 'connecting' : 'reconnecting');
    let token: string;
    try {
      token = typeof this.o.token === 'function' ? await this.o.token() : this.o.token;
    } catch {
      return this.scheduleReconnect();
    }
    if (this._state === 'closed') return;
    const base = typeof this.o.url === 'function' ? this.o.url() : this.o.url;
    const url = `${base}${base.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url);
    } catch {
      return this.scheduleReconnect();
    }
    this.ws = ws;
    this.hintMs = undefined;
    this.readRefusal(ws);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.tokenExpiresAt = undefined;
      this.openedAt = Date.now();
      this.lastFrameAt = Date.now();
      this.setState('open');
      this.openedResolve();
      for (const sub of this.subs.values()) this.sendSubscribe(sub);
      this.startHeartbeat(ws);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      let f: ServerFrame;
      try {
        f = JSON.parse(typeof ev.data === 'string' ? ev.data : decode(ev.data)) as ServerFrame;
      } catch {
        return;
      }
      this.onFrame(f);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lastCloseCode = ev.code;
      const hint = retryHintOfReason(ev.reason);
      if (hint !== undefined) this.hintMs = hint;
      if (this.openedAt && Date.now() - this.openedAt >= (this.o.stableMs ?? 5000)) this.attempt = 0;
      this.openedAt = 0;
      if (this._state === 'closed') return;
      // auth_failed (a bad or revoked token): worth another try only with a token provider.
      if (!this.fatal && ev.code === CLOSE.auth_failed && typeof this.o.token === 'string') {
        this.fatal = this.lastAuthError ?? new WalcastError('invalid_auth', `the server closed the socket: ${ev.reason || 'auth_failed'}`);
      }
      if (!this.fatal && !shouldReconnect(ev.code) && ev.code !== CLOSE.auth_failed) this.fatal = new WalcastError('invalid_arguments', `the server closed the socket with ${ev.code} ${ev.reason}`);
      if (this.fatal) return this.close();
      this.scheduleReconnect();
    };
  }

  /**
   * The `ws` package shows a refused upgrade's HTTP response (browsers do not): read its retry
   * hint (503/429 with Retry-After and retry_after_ms) and notice a permanent refusal (401).
   */
  private readRefusal(ws: WebSocketLike): void {
    const emitter = ws as unknown as { on?: (ev: string, fn: (...a: any[]) => void) => void; terminate?: () => void };
    if (typeof emitter.on !== 'function') return;
    emitter.on('unexpected-response', (_req: unknown, res: any) => {
      const status: number = res.statusCode;
      let body = '';
      res.on?.('data', (d: unknown) => (body += String(d)));
      const done = () => {
        let json: unknown = null;
        try {
          json = JSON.parse(body);
        } catch {
          /* no JSON body */
        }
        const code = (json as { error?: unknown } | null)?.error;
        // A string token that the server refuses for good will be refused again: stop.
        if (status === 401 && typeof this.o.token === 'string') {
          this.fatal = new WalcastError(isErrorCode(code) ? code : 'invalid_auth', 'the gateway refused the token');
        }
        this.hintMs = retryHintOfResponse(json, res.headers?.['retry-after']);
        emitter.terminate?.();
      };
      if (typeof res.on === 'function') {
        res.on('end', done);
        res.on('error', done);
      } else done();
    });
  }

  private scheduleReconnect(): void {
    this.clearTimers();
    if (this._state === 'closed') return;
    if (this._state === 'open') this.opened = this.newOpened();
    this.setState('reconnecting');
    const max = this.o.backoff?.maxMs ?? DEFAULT_MAX_MS;
    let delay: number;
    if (this.hintMs !== undefined) {
      // The server said when: come then, plus a little jitter so equal hints do not arrive together.
      delay = Math.min(max, this.hintMs) + this.random() * (this.o.backoff?.baseMs ?? DEFAULT_BASE_MS);
      this.lastRetryHintMs = this.hintMs;
    } else {
      delay = this.delay(this.attempt);
    }
    this.attempt++;
    this.reconnects++;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.open();
    }, delay);
  }

  private onFrame(f: ServerFrame): void {
    if (f.type === 'pong') return;
    if (f.type === 'token_expiring') {
      this.tokenExpiresAt = f.expires_at;
      this.emitAuth({ type: 'expiring', expiresAt: f.expires_at });
      // The server warns at once when less than 30 s remain, also right after an auth_ok for a
      // short-lived token: refresh at most once per REFRESH_MIN_MS, never a tight loop.
      const wait = Math.min(Math.max(0, this.lastRefreshAt + REFRESH_MIN_MS - Date.now()), Math.max(0, f.expires_at - Date.now() - 1000));
      if (this.refreshTimer) clearTimeout(this.refreshTimer);
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = null;
        void this.refreshToken();
      }, wait);
      return;
    }
    if (f.type === 'auth_ok') {
      this.tokenExpiresAt = f.expires_at;
      this.tokenRefreshes++;
      this.emitAuth({ type: 'refreshed', expiresAt: f.expires_at });
      return;
    }
    if (f.type === 'error' && f.channel === undefined) {
      // Not about a channel: the token (auth), or a limit on the connection.
      this.lastAuthError = new WalcastError(isErrorCode(f.code) ? f.code : 'internal_error', f.message);
      this.emitAuth({ type: 'error', error: this.lastAuthError });
      return;
    }
    const sub = this.subs.get(f.channel ?? '');
    if (!sub) return;
    if (isChangeFrame(f)) {
      if (!sub._change(f)) {
        // A gap the server should never leave: ask again from the last seq delivered.
        sub.gapsRepaired++;
        this.sendSubscribe(sub);
      }
      return;
    }
    switch (f.type) {
      case 'subscribed':
        sub._subscribed(f.seq, f.since);
        return;
      case 'typing':
        sub._typing(f.user);
        return;
      case 'presence_joined':
      case 'presence_left':
        sub._presence(f.user, f.type === 'presence_joined');
        return;
      case 'presence_count':
        sub._presenceCount(f.count);
        return;
      case 'unsubscribed':
        // Our own unsubscribe is answered too (that sub is already gone); a reason means the server ended it.
        if (f.reason) {
          this.subs.delete(sub.channel);
          sub.end(f.reason);
        }
        return;
      case 'error': {
        if (!isTemporary(f.code)) {
          this.subs.delete(sub.channel);
          sub.end(f.code);
          return;
        }
        // e.g. `unavailable` (the bus is down): try this channel again after a jittered delay.
        const ws = this.ws;
        setTimeout(() => {
          if (this.ws === ws && this.subs.get(sub.channel) === sub && this._state === 'open') this.sendSubscribe(sub);
        }, this.delay(sub.retryAttempt++));
        return;
      }
    }
  }

  /** token_expiring: get a fresh token from getToken() and hand it to the open socket. */
  private async refreshToken(): Promise<void> {
    if (typeof this.o.token !== 'function' || this.refreshing) return;
    const ws = this.ws;
    this.refreshing = true;
    this.lastRefreshAt = Date.now();
    try {
      const token = await this.o.token();
      if (this.ws === ws && ws && ws.readyState === OPEN) ws.send(clientFrame.auth(token));
    } catch (e) {
      // The server closes the socket at expiry (4001); the reconnect asks getToken() again.
      this.emitAuth({ type: 'error', error: new WalcastError('invalid_auth', `getToken() failed: ${(e as Error)?.message ?? e}`) });
    } finally {
      this.refreshing = false;
    }
  }

  private emitAuth(e: AuthEvent): void {
    for (const l of this.authListeners) {
      try {
        l(e);
      } catch {
        /* a listener's problem */
      }
    }
  }

  private sendSubscribe(sub: ChannelSubscription): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    sub.resubscribing = true;
    ws.send(clientFrame.subscribe(sub.channel, sub.lastSeq, { presence: sub.wantsPresence }));
  }

  private startHeartbeat(ws: WebSocketLike): void {
    const every = this.o.heartbeatMs ?? 25_000;
    if (every <= 0) return;
    this.heartbeat = setInterval(() => {
      if (this.ws !== ws) return;
      if (Date.now() - this.lastFrameAt > 2 * every) {
        // Nothing for too long: the connection is dead even if TCP has not noticed.
        const t = ws as unknown as { terminate?: () => void };
        if (t.terminate) t.terminate();
        else ws.close(CLOSE.heartbeat_timeout, 'heartbeat timeout');
        return;
      }
      if (ws.readyState === OPEN) ws.send(clientFrame.ping());
    }, every);
    (this.heartbeat as { unref?: () => void }).unref?.();
  }

  private clearTimers(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.timer = null;
    this.heartbeat = null;
  }
}

function detach(ws: WebSocketLike): void {
  ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
}

function decode(data: unknown): string {
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data)) return new TextDecoder().decode(data as Uint8Array);
  return String(data);
}

/** A gateway URL from a page's or server's base URL: http(s)://host → ws(s)://host/v1/ws. */
export function gatewayUrl(base: string): string {
  return base.replace(/^http/, 'ws').replace(/\/$/, '') + PATHS.ws;
}

/** Creates a client and starts connecting. */
export function createClient(options: ClientOptions): WalcastClient {
  return new WalcastClient(options);
}
