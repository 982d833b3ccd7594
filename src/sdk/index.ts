// walcast client SDK: one WebSocket to a gateway, any number of channel subscriptions, and the
// client's half of the delivery guarantee. After any disconnect it reconnects (exponential
// backoff with full jitter and a cap, or the server's retry hint when it gave one) and
// resubscribes every channel with the last seq it delivered, so the application sees each
// channel's messages once, in order, with no gap, across gateway losses and drains.
//
// Browser-safe: no Node imports. It uses the global WebSocket when there is one; on Node 20
// pass `WebSocket` from the `ws` package (or import from "walcast/sdk/node", which does).

// Type-only: erased at run time, so the SDK stays free of server code.
import type { Message } from '../chat/model.js';
export type { Channel, Message } from '../chat/model.js';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

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
  /** An access token, or a function returning a fresh one; it is called before every connection attempt. */
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

export interface SubscribeOptions {
  /** Deliver every message with seq > since, then live ones. Without it: live ones only. */
  since?: number;
  onMessage?: (message: Message) => void;
  /** The subscription ended for good: a server error (e.g. not_in_channel), or kicked. */
  onEnd?: (reason: string | undefined) => void;
}

export class WalcastError extends Error {
  constructor(
    readonly code: string,
    message?: string,
  ) {
    super(message ?? code);
    this.name = 'WalcastError';
  }
}

type Frame = { type: string; channel?: string; seq?: number; message?: Message; code?: string; reason?: string };

const OPEN = 1;
/** Subscription errors that retrying will not fix. */
const FATAL_SUB_ERRORS = new Set(['not_in_channel', 'channel_not_found', 'too_many_subscriptions', 'invalid_arguments']);

/**
 * A subscription to one channel. Messages come through `onMessage` and/or as an async iterator
 * (`for await (const m of sub)`; leaving the loop unsubscribes). `lastSeq` is the last seq
 * delivered (or the channel's seq at subscribe, for a live-only subscription).
 */
export class ChannelSubscription implements AsyncIterable<Message> {
  lastSeq: number | undefined;
  state: 'pending' | 'active' | 'ended' = 'pending';
  endReason: string | undefined;
  /** Frames dropped as duplicates (seq already delivered), and resubscriptions after a gap. */
  duplicatesDropped = 0;
  gapsRepaired = 0;
  /** Resolves at the first `subscribed`; rejects if the subscription ends before. */
  readonly ready: Promise<void>;
  private readyResolve!: () => void;
  private readyReject!: (e: unknown) => void;
  private readonly queue: Message[] = [];
  private readonly takers: ((r: IteratorResult<Message>) => void)[] = [];
  /** Waiting for `subscribed` after a (re)subscribe: gaps before it are expected, not repaired. */
  resubscribing = true;
  retryAttempt = 0;

  constructor(
    private readonly client: WalcastClient,
    readonly channel: string,
    private readonly opts: SubscribeOptions,
  ) {
    this.lastSeq = opts.since;
    this.ready = new Promise<void>((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.ready.catch(() => {}); // nobody has to await it
  }

  unsubscribe(): void {
    if (this.state === 'ended') return;
    this.client._unsubscribe(this);
    this.end(undefined);
  }

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return {
      next: () => {
        const m = this.queue.shift();
        if (m) return Promise.resolve({ value: m, done: false });
        if (this.state === 'ended') return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.takers.push(resolve));
      },
      return: () => {
        this.unsubscribe();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  /** @internal */
  _subscribed(seq: number): void {
    if (this.lastSeq === undefined) this.lastSeq = seq;
    this.resubscribing = false;
    this.retryAttempt = 0;
    if (this.state === 'pending') this.state = 'active';
    this.readyResolve();
  }

  /** @internal Applies a message frame: delivers seq == lastSeq + 1 only. Returns false on a gap. */
  _message(seq: number, m: Message): boolean {
    if (this.state === 'ended') return true;
    const last = this.lastSeq;
    if (last !== undefined && seq <= last) {
      this.duplicatesDropped++;
      return true;
    }
    if (last !== undefined && seq !== last + 1) return this.resubscribing; // a gap: caller resubscribes
    this.lastSeq = seq;
    this.opts.onMessage?.(m);
    const taker = this.takers.shift();
    if (taker) taker({ value: m, done: false });
    else this.queue.push(m);
    return true;
  }

  /** @internal */
  end(reason: string | undefined): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.endReason = reason;
    this.readyReject(new WalcastError(reason ?? 'unsubscribed'));
    for (const t of this.takers.splice(0)) t({ value: undefined, done: true });
    this.opts.onEnd?.(reason);
  }
}

export class WalcastClient {
  /** Reconnections so far, and the close code and retry hint that caused the last one. */
  reconnects = 0;
  lastCloseCode: number | undefined;
  lastRetryHintMs: number | undefined;
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

  /** Closes for good: no reconnect; every subscription ends. */
  close(): void {
    this.clearTimers();
    this.setState('closed');
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      try {
        ws.close(1000, 'client closing');
      } catch {
        /* already closed */
      }
    }
    for (const sub of this.subs.values()) sub.end('closed');
    this.subs.clear();
    this.openedReject(this.fatal ?? new WalcastError('closed'));
  }

  /** @internal */
  _unsubscribe(sub: ChannelSubscription): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    if (this.ws && this._state === 'open') this.ws.send(JSON.stringify({ type: 'unsubscribe', channel: sub.channel }));
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
    // The `ws` package shows a refused upgrade's HTTP response (browsers do not): read the
    // retry hint (503/429 with Retry-After and retry_after_ms) and notice a bad token (401).
    const emitter = ws as unknown as { on?: (ev: string, fn: (...a: any[]) => void) => void; terminate?: () => void };
    if (typeof emitter.on === 'function') {
      emitter.on('unexpected-response', (_req: unknown, res: any) => {
        const status: number = res.statusCode;
        let body = '';
        res.on?.('data', (d: unknown) => (body += String(d)));
        const done = () => {
          if (status === 401 && typeof this.o.token === 'string') {
            this.fatal = new WalcastError('invalid_auth', 'the gateway refused the token');
          }
          let hint: number | undefined;
          try {
            const v = JSON.parse(body)?.retry_after_ms;
            if (typeof v === 'number' && v >= 0) hint = v;
          } catch {
            /* no JSON body */
          }
          const header = Number(res.headers?.['retry-after']);
          if (hint === undefined && Number.isFinite(header) && header >= 0) hint = header * 1000;
          this.hintMs = hint;
          emitter.terminate?.();
        };
        if (typeof res.on === 'function') {
          res.on('end', done);
          res.on('error', done);
        } else done();
      });
    }
    ws.onopen = () => {
      if (this.ws !== ws) return;
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
      const text = typeof ev.data === 'string' ? ev.data : decode(ev.data);
      let f: Frame;
      try {
        f = JSON.parse(text) as Frame;
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
      const m = /retry_after_ms=(\d+)/.exec(ev.reason ?? '');
      if (m) this.hintMs = Number(m[1]);
      if (this.openedAt && Date.now() - this.openedAt >= (this.o.stableMs ?? 5000)) this.attempt = 0;
      this.openedAt = 0;
      if (this._state === 'closed') return;
      if (this.fatal) return this.close();
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    this.clearTimers();
    if (this._state === 'closed') return;
    if (this._state === 'open') this.opened = this.newOpened();
    this.setState('reconnecting');
    const base = this.o.backoff?.baseMs ?? 250;
    const max = this.o.backoff?.maxMs ?? 30_000;
    let delay: number;
    if (this.hintMs !== undefined) {
      // The server said when: come then, plus a little jitter so equal hints do not arrive together.
      delay = Math.min(max, this.hintMs) + this.random() * base;
      this.lastRetryHintMs = this.hintMs;
    } else {
      delay = this.random() * Math.min(max, base * 2 ** this.attempt);
    }
    this.attempt++;
    this.reconnects++;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.open();
    }, delay);
  }

  private onFrame(f: Frame): void {
    const sub = f.channel !== undefined ? this.subs.get(f.channel) : undefined;
    switch (f.type) {
      case 'subscribed':
        if (sub && typeof f.seq === 'number') sub._subscribed(f.seq);
        return;
      case 'message':
        if (sub && typeof f.seq === 'number' && f.message) {
          if (!sub._message(f.seq, f.message)) {
            // A gap the server should never leave: ask again from the last seq delivered.
            sub.gapsRepaired++;
            this.sendSubscribe(sub);
          }
        }
        return;
      case 'unsubscribed':
        // Our own unsubscribe is answered too (that sub is already gone); a reason means the server ended it.
        if (sub && f.reason) {
          this.subs.delete(sub.channel);
          sub.end(f.reason);
        }
        return;
      case 'error':
        if (!sub) return;
        if (FATAL_SUB_ERRORS.has(f.code ?? '')) {
          this.subs.delete(sub.channel);
          sub.end(f.code);
          return;
        }
        // e.g. `unavailable` (the bus is down): try this channel again after a jittered delay.
        {
          const ws = this.ws;
          const base = this.o.backoff?.baseMs ?? 250;
          const delay = this.random() * Math.min(this.o.backoff?.maxMs ?? 30_000, base * 2 ** sub.retryAttempt++);
          setTimeout(() => {
            if (this.ws === ws && this.subs.get(sub.channel) === sub && this._state === 'open') this.sendSubscribe(sub);
          }, delay);
        }
        return;
    }
  }

  private sendSubscribe(sub: ChannelSubscription): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    sub.resubscribing = true;
    const frame: Record<string, unknown> = { type: 'subscribe', channel: sub.channel };
    if (sub.lastSeq !== undefined) frame.since = sub.lastSeq;
    ws.send(JSON.stringify(frame));
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
        else ws.close(4000, 'heartbeat timeout');
        return;
      }
      if (ws.readyState === OPEN) ws.send('{"type":"ping"}');
    }, every);
    (this.heartbeat as { unref?: () => void }).unref?.();
  }

  private clearTimers(): void {
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

/** Creates a client and starts connecting. */
export function createClient(options: ClientOptions): WalcastClient {
  return new WalcastClient(options);
}
