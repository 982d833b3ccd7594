// The SDK's connection: one WebSocket to a gateway (or, where WebSockets cannot open, one
// Server-Sent Events stream: sse.ts), any number of channel subscriptions, and the client's half
// of the delivery guarantee. After any disconnect it reconnects (exponential backoff with full
// jitter and a cap, or the server's retry hint when it gave one) and resubscribes every channel
// with the last seq it delivered, so the application sees each channel's messages once, in
// order, with no gap, across gateway losses and drains. Which errors and close codes are worth
// retrying comes from src/protocol.ts, as the server sees it.
//
// Browser-safe: no Node imports. It uses the global WebSocket when there is one; on Node 20
// pass `WebSocket` from the `ws` package (or import from "walcast/sdk/node", which does). SSE
// needs only `fetch`.
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
import { openSse, sseUrlOf } from './sse.js';
import { ChannelSubscription, type SubscribeOptions, type SubscriptionOwner } from './subscription.js';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/**
 * How frames travel: `websocket`; `sse` (Server-Sent Events: receive only, see `typing`); or
 * `auto`: a WebSocket, and SSE when WebSockets cannot open (the first attempt is refused by
 * something that is not walcast, fails, or does not open within `connectTimeoutMs`).
 */
export type Transport = 'auto' | 'websocket' | 'sse';

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
  /** Default `auto`. Without a WebSocket implementation, `auto` means SSE. */
  transport?: Transport;
  /** The SSE endpoint, e.g. http://host:8080/v1/sse; default: from `url` (ws://host/v1/ws → http://host/v1/sse). */
  sseUrl?: string | (() => string);
  /** `auto`: how long a WebSocket may take to open before the client tries SSE (default 10 000). */
  connectTimeoutMs?: number;
  /** fetch for SSE; defaults to globalThis.fetch. */
  fetch?: typeof fetch;
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
  /** The transport in use (or tried next): `auto` starts with `websocket`. */
  transport: 'websocket' | 'sse';
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
  private readonly WS: WebSocketConstructor | undefined;
  private readonly random: () => number;
  /** The open (or opening) SSE stream's abort, and its token. */
  private stream: (() => void) | null = null;
  private streamToken = '';
  private restartQueued = false;
  /** `auto`: whether a WebSocket ever opened (then WebSockets work here and the client stays on them), or a stream. */
  private wsOpened = false;
  private sseOpened = false;
  /** The last WebSocket attempt was refused by walcast itself (a JSON error): not a blocked network. */
  private wsRefusedByServer = false;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private opened: Promise<void>;
  private openedResolve!: () => void;
  private openedReject!: (e: unknown) => void;

  constructor(private readonly o: ClientOptions) {
    const WS = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const mode = o.transport ?? 'auto';
    if (!WS && mode === 'websocket') throw new Error('no WebSocket implementation: pass { WebSocket } (e.g. from the "ws" package) or import "walcast/sdk/node"');
    this.WS = WS;
    this.transport = mode === 'sse' || !WS ? 'sse' : 'websocket';
    if (this.transport === 'sse' && !this.fetchFn()) throw new Error('no fetch implementation for SSE: pass { fetch }');
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
    if (this.transport === 'sse') this.restartStream();
    else if (this.ws && this._state === 'open') this.sendSubscribe(sub);
    return sub;
  }

  /**
   * Tells the channel's other subscribers that this user is typing (at most one per 2 s is
   * forwarded; the channel must be subscribed on this client). Returns false when not connected,
   * and always over SSE, which carries nothing from the client to the server.
   */
  typing(channel: string): boolean {
    if (this.transport === 'sse') return false;
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
    this.stream?.();
    this.stream = null;
    for (const sub of this.subs.values()) sub.end('closed');
    this.subs.clear();
    this.openedReject(this.fatal ?? new Error('client closed'));
  }

  /** @internal */
  _unsubscribe(sub: ChannelSubscription): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    if (this.transport === 'sse') this.restartStream();
    else if (this.ws && this._state === 'open') this.ws.send(clientFrame.unsubscribe(sub.channel));
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
    this.hintMs = undefined;
    if (this.transport === 'sse') return this.openStream(token);
    const base = typeof this.o.url === 'function' ? this.o.url() : this.o.url;
    const url = `${base}${base.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    // `auto` until a WebSocket has opened once: a failure to open may mean a network that blocks them.
    const mayFallBack = (this.o.transport ?? 'auto') === 'auto' && !this.wsOpened;
    let ws: WebSocketLike;
    try {
      ws = new this.WS!(url);
    } catch {
      return mayFallBack ? this.fallBack() : this.scheduleReconnect();
    }
    this.ws = ws;
    this.wsRefusedByServer = false;
    this.readRefusal(ws);
    let opened = false;
    if (mayFallBack) {
      this.connectTimer = setTimeout(() => {
        this.connectTimer = null;
        if (this.ws !== ws || opened) return;
        // Proxies that swallow upgrades leave the socket connecting for good.
        const t = ws as unknown as { terminate?: () => void };
        if (t.terminate) t.terminate();
        else ws.close();
      }, this.o.connectTimeoutMs ?? 10_000);
    }
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this.wsOpened = true;
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.connectTimer = null;
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
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.connectTimer = null;
      this.onDisconnect(ev.code, ev.reason, !opened && mayFallBack && !this.wsRefusedByServer);
    };
  }

  /** The socket closed or the stream ended, with this close code and reason: reconnect, give up, or fall back to SSE. */
  private onDisconnect(code: number, reason: string, fallBack = false): void {
    this.lastCloseCode = code;
    const hint = retryHintOfReason(reason);
    if (hint !== undefined) this.hintMs = hint;
    if (this.openedAt && Date.now() - this.openedAt >= (this.o.stableMs ?? 5000)) this.attempt = 0;
    this.openedAt = 0;
    if (this._state === 'closed') return;
    // auth_failed (a bad or revoked token): worth another try only with a token provider.
    if (!this.fatal && code === CLOSE.auth_failed && typeof this.o.token === 'string') {
      this.fatal = this.lastAuthError ?? new WalcastError('invalid_auth', `the server closed the connection: ${reason || 'auth_failed'}`);
    }
    if (!this.fatal && !shouldReconnect(code) && code !== CLOSE.auth_failed) this.fatal = new WalcastError('invalid_arguments', `the server closed the connection with ${code} ${reason}`);
    if (this.fatal) return this.close();
    if (fallBack) return this.fallBack();
    // An SSE stream whose subscriptions all ended (each told why): carry on with an empty one.
    if (this.transport === 'sse' && code === CLOSE.normal && this.subs.size === 0) return this.openStream(this.streamToken);
    // `auto` before anything ever opened (the server is down, or not there yet): try a
    // WebSocket again first, then SSE, on every attempt.
    if (this.transport === 'sse' && this.mayUseBoth() && !this.wsOpened && !this.sseOpened) this.transport = 'websocket';
    this.scheduleReconnect();
  }

  private mayUseBoth(): boolean {
    return (this.o.transport ?? 'auto') === 'auto' && this.WS !== undefined;
  }

  /** `auto`: the WebSocket could not open, and not because walcast said no: SSE from now on. */
  private fallBack(): void {
    this.transport = 'sse';
    this.scheduleReconnect(true);
  }

  private sseUrl(): string {
    const u = this.o.sseUrl;
    if (u) return typeof u === 'function' ? u() : u;
    return sseUrlOf(typeof this.o.url === 'function' ? this.o.url() : this.o.url, PATHS.ws, PATHS.sse);
  }

  private fetchFn(): typeof fetch | undefined {
    const f = this.o.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    return f?.bind(globalThis);
  }

  /**
   * SSE: one stream for every subscription, opened with each one's last seq (a stream without
   * any carries heartbeats, as a socket without subscriptions does). Subscribing or
   * unsubscribing replaces the stream: SSE carries nothing to the server.
   */
  private openStream(token: string): void {
    this.streamToken = token;
    this.stream?.();
    this.stream = null;
    const subs = [...this.subs.values()];
    const markOpen = () => {
      this.openedAt ||= Date.now();
      this.lastFrameAt = Date.now();
      if (this._state !== 'open') {
        this.setState('open');
        this.openedResolve();
      }
    };
    for (const sub of subs) sub.resubscribing = true;
    let abort: () => void = () => {};
    const mine = () => this.stream === abort;
    abort = openSse({
      url: this.sseUrl(),
      token,
      channels: subs.map((s) => ({ channel: s.channel, since: s.lastSeq })),
      presence: subs.some((s) => s.wantsPresence),
      fetch: this.fetchFn()!,
      handlers: {
        open: () => {
          if (!mine()) return;
          this.sseOpened = true;
          this.tokenExpiresAt = undefined;
          markOpen();
          this.startHeartbeat(null);
        },
        frame: (f) => {
          if (!mine()) return;
          this.lastFrameAt = Date.now();
          this.onFrame(f);
        },
        activity: () => {
          if (mine()) this.lastFrameAt = Date.now();
        },
        end: (code, reason) => {
          if (!mine()) return;
          this.stream = null;
          this.onDisconnect(code, reason);
        },
        refused: (status, body, retryAfter) => {
          if (!mine()) return;
          this.stream = null;
          this.onStreamRefused(status, body, retryAfter);
        },
      },
    });
    this.stream = abort;
  }

  /** The stream's channel set changed: replace it (once per turn, however many changes). */
  private restartStream(): void {
    if (this.restartQueued) return;
    this.restartQueued = true;
    queueMicrotask(() => {
      this.restartQueued = false;
      // Without a stream (connecting, or waiting to reconnect) the next one takes the change.
      if (this.transport !== 'sse' || this._state === 'closed' || !this.stream) return;
      this.openStream(this.streamToken);
    });
  }

  /** What a refused stream means: a channel refused, the token, a hint, or a server with no SSE. */
  private onStreamRefused(status: number, body: unknown, retryAfter: string | null): void {
    const b = body as { error?: unknown; channel?: unknown; message?: unknown } | null;
    const code = isErrorCode(b?.error) ? b.error : undefined;
    const sub = typeof b?.channel === 'string' ? this.subs.get(b.channel) : undefined;
    if (code && sub && !isTemporary(code)) {
      // One channel refused (not a member, no such channel): it ends, the others go on.
      this.subs.delete(sub.channel);
      sub.end(code);
      return this.openStream(this.streamToken);
    }
    if (code === 'origin_not_allowed' || code === 'invalid_arguments' || code === 'too_many_subscriptions' || (status === 401 && typeof this.o.token === 'string')) {
      this.fatal = new WalcastError(code ?? 'invalid_auth', typeof b?.message === 'string' ? b.message : `the server refused the event stream (${status})`);
      return this.close();
    }
    // `auto`: a server or proxy that does not serve SSE here: back to WebSockets.
    if (!code && this.mayUseBoth()) this.transport = 'websocket';
    this.hintMs = retryHintOfResponse(body, retryAfter);
    this.scheduleReconnect();
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
        // walcast said no (rate, drain, capacity): WebSockets work here, no reason to try SSE.
        this.wsRefusedByServer = isErrorCode(code);
        this.hintMs = retryHintOfResponse(json, res.headers?.['retry-after']);
        emitter.terminate?.();
      };
      if (typeof res.on === 'function') {
        res.on('end', done);
        res.on('error', done);
      } else done();
    });
  }

  private scheduleReconnect(now = false): void {
    this.clearTimers();
    if (this._state === 'closed') return;
    if (this._state === 'open') this.opened = this.newOpened();
    this.setState('reconnecting');
    const max = this.o.backoff?.maxMs ?? DEFAULT_MAX_MS;
    let delay: number;
    if (now) {
      delay = 0;
    } else if (this.hintMs !== undefined) {
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
        const conn = this.ws ?? this.stream;
        setTimeout(() => {
          if ((this.ws ?? this.stream) === conn && this.subs.get(sub.channel) === sub && this._state === 'open') this.sendSubscribe(sub);
        }, this.delay(sub.retryAttempt++));
        return;
      }
    }
  }

  /**
   * token_expiring: get a fresh token from getToken() and hand it to the open socket; over SSE,
   * which cannot send it, replace the stream with one opened with the fresh token (every channel
   * resumes from its last seq).
   */
  private async refreshToken(): Promise<void> {
    if (typeof this.o.token !== 'function' || this.refreshing) return;
    const ws = this.ws;
    const stream = this.stream;
    this.refreshing = true;
    this.lastRefreshAt = Date.now();
    try {
      const token = await this.o.token();
      if (this.ws === ws && ws && ws.readyState === OPEN) ws.send(clientFrame.auth(token));
      else if (stream && this.stream === stream) {
        this.tokenRefreshes++;
        const exp = jwtExpiry(token);
        this.tokenExpiresAt = exp;
        if (exp !== undefined) this.emitAuth({ type: 'refreshed', expiresAt: exp });
        this.openStream(token);
      }
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
    if (this.transport === 'sse') return this.restartStream();
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    sub.resubscribing = true;
    ws.send(clientFrame.subscribe(sub.channel, sub.lastSeq, { presence: sub.wantsPresence }));
  }

  /** Pings the socket; on an SSE stream (ws null) only watches the server's heartbeat comments. */
  private startHeartbeat(ws: WebSocketLike | null): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const every = this.o.heartbeatMs ?? 25_000;
    if (every <= 0) return;
    const stream = this.stream;
    this.heartbeat = setInterval(() => {
      if (ws ? this.ws !== ws : !stream || this.stream !== stream) return;
      if (Date.now() - this.lastFrameAt > 2 * every) {
        // Nothing for too long: the connection is dead even if TCP has not noticed.
        if (!ws) {
          stream!();
          this.stream = null;
          return this.onDisconnect(CLOSE.heartbeat_timeout, 'heartbeat timeout');
        }
        const t = ws as unknown as { terminate?: () => void };
        if (t.terminate) t.terminate();
        else ws.close(CLOSE.heartbeat_timeout, 'heartbeat timeout');
        return;
      }
      if (ws && ws.readyState === OPEN) ws.send(clientFrame.ping());
    }, every);
    (this.heartbeat as { unref?: () => void }).unref?.();
  }

  private clearTimers(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.timer = null;
    this.heartbeat = null;
  }
}

/** A token's `exp` in ms, read without verifying it (the server verifies). */
function jwtExpiry(token: string): number | undefined {
  try {
    const part = token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/');
    const exp = (JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4))) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
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
