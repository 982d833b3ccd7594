// Server-Sent Events at /v1/sse: the frames of a WebSocket subscription, one way, for networks
// that block WebSockets. A stream is a Peer (peer.ts) like a socket, so the hubs serve it with
// the same catch-up and live code; what differs is here: the event format (frames that carry a
// seq get the event id `<channel>:<seq>`), the last event that says why a stream ended, topics
// (uWS publishes only to WebSockets), and backpressure, which uWS measures for sockets but not
// for HTTP responses.
//
// uWS and streamed responses (read in its sources, /work/notes/uws.md D): every write must be
// corked; res.write() buffers whatever the kernel does not take and returns false, without a
// limit; with an onWritable handler registered uWS leaves draining that buffer to the handler,
// which must write something for it to go out. So a stream, once uWS holds bytes for it, queues
// further frames itself (bounded by WALCAST_WS_MAX_BACKPRESSURE, past which it ends with 1013)
// and hands them over at the next writable event.
import { CHANNEL_ID } from '../chat/ids.js';
import { WalcastError } from '../errors.js';
import type { HttpResponse } from '../http/uws.js';
import { CLOSE, SSE_CLOSE_EVENT, parseSseEventId, retryHintOfReason, sseEventId } from '../protocol.js';
import type { Peer } from './peer.js';
import type { Entry } from './ring.js';
import { SmallMap } from '../util/small-map.js';
import type { Subscription } from './subscription.js';

/** What a request for a stream asks for. */
export interface SseRequest {
  /** Each channel once, in the order given, with where its delivery starts (undefined: live only). */
  channels: { channel: string; since: number | undefined }[];
  presence: boolean;
}

const SINCE = /^\d{1,15}$/;

/**
 * Parses `?channel=C...&channel=...&since=<n>|<channel>:<n>&presence=1` and the Last-Event-ID
 * header. A bare `since` applies to every channel, `since=<channel>:<n>` to one; Last-Event-ID
 * (`<channel>:<seq>`, the id of the last event the client got) wins over both for its channel.
 */
export function parseSseRequest(query: string, lastEventId: string, maxChannels: number): SseRequest | WalcastError {
  const bad = (message: string) => new WalcastError('invalid_arguments', message);
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(query);
  } catch {
    return bad('malformed query string');
  }
  // No channel at all is allowed: such a stream carries heartbeats and token_expiring, as a
  // socket without subscriptions does (a client knows its token and the gateway are good).
  const channels = params.getAll('channel');
  const seen = new Set<string>();
  for (const c of channels) {
    if (!CHANNEL_ID.test(c)) return bad('"channel" must be a channel id (C and 12 characters 0-9A-Z)');
    if (seen.has(c)) return bad(`channel ${c} is listed twice`);
    seen.add(c);
  }
  if (channels.length > maxChannels) return new WalcastError('too_many_subscriptions', `at most ${maxChannels} channels per stream`);
  let all: number | undefined;
  const since = new Map<string, number>();
  for (const s of params.getAll('since')) {
    if (SINCE.test(s)) {
      if (all !== undefined) return bad('"since" without a channel is given twice');
      all = Number(s);
      continue;
    }
    const id = parseSseEventId(s);
    if (!id) return bad('"since" must be a non-negative integer or <channel>:<seq>');
    if (!seen.has(id.channel)) return bad(`"since" names channel ${id.channel}, which the stream does not subscribe`);
    if (since.has(id.channel)) return bad(`"since" is given twice for ${id.channel}`);
    since.set(id.channel, id.seq);
  }
  if (lastEventId.trim() !== '') {
    const id = parseSseEventId(lastEventId);
    if (!id) return bad('Last-Event-ID must be <channel>:<seq>');
    if (!seen.has(id.channel)) return bad(`Last-Event-ID names channel ${id.channel}, which the stream does not subscribe`);
    since.set(id.channel, id.seq);
  }
  const presence = params.get('presence');
  if (presence !== null && presence !== '1' && presence !== 'true' && presence !== '0' && presence !== 'false') {
    return bad('"presence" must be 1 or 0');
  }
  return {
    channels: channels.map((channel) => ({ channel, since: since.get(channel) ?? all })),
    presence: presence === '1' || presence === 'true',
  };
}

/** An SSE event carrying one frame; frames are JSON text, which never contains a line break. */
export const sseEvent = (frame: string, id?: string): string => (id === undefined ? `data: ${frame}\n\n` : `id: ${id}\ndata: ${frame}\n\n`);

/** The last event of a stream: why it ended, as a WebSocket close code and reason (with a retry hint: `retry`). */
export function sseCloseEvent(code: number, reason: string): string {
  const hint = retryHintOfReason(reason);
  return `${hint === undefined ? '' : `retry: ${hint}\n`}event: ${SSE_CLOSE_EVENT}\ndata: ${JSON.stringify({ code, reason })}\n\n`;
}

/** The SSE streams on each topic (a channel's change log, its presence): uWS publishes only to sockets. */
export class SseTopics {
  private readonly byTopic = new Map<string, Set<SseStream>>();

  join(topic: string, s: SseStream): void {
    let set = this.byTopic.get(topic);
    if (!set) this.byTopic.set(topic, (set = new Set()));
    set.add(s);
  }

  leave(topic: string, s: SseStream): void {
    const set = this.byTopic.get(topic);
    if (!set?.delete(s)) return;
    if (set.size === 0) this.byTopic.delete(topic);
  }

  /** The event is built and encoded once for every stream on the topic (uWS takes bytes without a copy). */
  publish(topic: string, frame: string, id: string | undefined, except?: Peer): void {
    const set = this.byTopic.get(topic);
    if (!set) return;
    const event = Buffer.from(sseEvent(frame, id));
    // A stream that ends for being slow leaves the set during the loop: Sets allow that.
    for (const s of set) if (s !== except) s.write(event);
  }
}

export interface SseStreamOptions {
  maxBackpressure: number;
  topics: SseTopics;
  /** The stream went past maxBackpressure and is being ended with 1013. */
  onSlow(s: SseStream): void;
  /** The stream ended: `code` null when the client went away, else what the server ended it with. Called once. */
  onClosed(s: SseStream, code: number | null): void;
}

/** One client's event stream. After it ended (either way) the response is never touched again. */
export class SseStream implements Peer {
  readonly transport = 'sse';
  closed = false;
  expiresAt = 0;
  iat: number | undefined = undefined;
  /** @internal token-lifetime.ts bookkeeping. */
  lifeStage = 0;
  lifeBucket = 0;
  readonly subs = new SmallMap<string, Subscription>();
  private readonly joined = new Set<string>();
  /** uWS holds bytes it could not write yet: frames wait in `queue` until the next writable event. */
  private blocked = false;
  private queue: Buffer[] = [];
  private queued = 0;
  private waiters: (() => void)[] | null = null;
  private releasing = false;

  constructor(
    readonly id: number,
    public user: string,
    readonly address: string,
    private readonly res: HttpResponse,
    private readonly o: SseStreamOptions,
  ) {}

  /** Sends the head and a first comment (so that proxies and clients see the stream at once). */
  start(headers: Record<string, string>, retryMs: number): void {
    const res = this.res;
    res.onWritable(() => this.onWritable());
    res.cork(() => {
      res
        .writeStatus('200 OK')
        .writeHeader('content-type', 'text/event-stream; charset=utf-8')
        .writeHeader('cache-control', 'no-cache, no-transform')
        // nginx would buffer the stream otherwise.
        .writeHeader('x-accel-buffering', 'no')
        // A client reconnecting after the stream ended must not reuse this connection: it may
        // belong to a gateway that is draining.
        .writeHeader('connection', 'close');
      for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
      // `retry`: how long a browser's EventSource waits before reconnecting if the stream breaks.
      res.write(`: walcast\nretry: ${Math.round(retryMs)}\n\n`);
    });
  }

  send(frames: string | readonly string[]): boolean {
    if (typeof frames === 'string') return this.write(sseEvent(frames));
    if (frames.length === 0) return !this.closed;
    return this.write(frames.map((f) => sseEvent(f)).join(''));
  }

  sendLog(channel: string, entries: readonly Entry[]): boolean {
    return this.write(entries.map((e) => sseEvent(e.frame, sseEventId(channel, e.seq))).join(''));
  }

  /** Keeps proxies from timing the stream out, and finds dead peers (a write that cannot go out). */
  heartbeat(): void {
    if (!this.blocked) this.write(':\n\n');
  }

  /** @internal Writes an event (or several), or queues it while uWS holds earlier bytes. */
  write(chunk: string | Buffer): boolean {
    if (this.closed) return false;
    if (this.blocked) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      this.queue.push(bytes);
      this.queued += bytes.length;
      if (this.queued > this.o.maxBackpressure) {
        this.o.onSlow(this);
        this.end(CLOSE.slow_consumer, 'slow_consumer');
        return false;
      }
      return true;
    }
    const res = this.res;
    let ok = true;
    res.cork(() => {
      ok = res.write(chunk);
    });
    if (!ok) this.blocked = true;
    return true;
  }

  /**
   * uWS's writable event. With this handler registered uWS does not drain its own buffer: a write
   * does (it flushes the buffer first), so one always happens here, the queue or a comment.
   */
  private onWritable(): boolean {
    if (this.closed) return true;
    const res = this.res;
    const chunk = this.queue.length > 0 ? Buffer.concat(this.queue) : ':\n';
    this.queue = [];
    this.queued = 0;
    let ok = true;
    res.cork(() => {
      ok = res.write(chunk);
    });
    if (ok) {
      this.blocked = false;
      this.releaseSoon();
    }
    return ok;
  }

  hasRoomFor(_bytes: number): boolean {
    // uWS does not say how much it holds: while it holds anything there is no room, otherwise
    // one batch up to the limit (as on a socket, where an empty buffer takes any frame).
    return !this.closed && !this.blocked;
  }

  room(): number {
    return this.hasRoomFor(0) ? this.o.maxBackpressure : 0;
  }

  get headroom(): number {
    return this.o.maxBackpressure / 2;
  }

  waitRoomFor(bytes: number): Promise<void> {
    if (this.closed || this.hasRoomFor(bytes)) return Promise.resolve();
    return new Promise<void>((resolve) => (this.waiters ??= []).push(resolve));
  }

  /** Catch-ups resume after uWS's writable dispatch has returned, never inside it. */
  private releaseSoon(): void {
    if (!this.waiters || this.releasing) return;
    this.releasing = true;
    setImmediate(() => {
      this.releasing = false;
      if (this.blocked && !this.closed) return;
      const ws = this.waiters ?? [];
      this.waiters = null;
      for (const w of ws) w();
    });
  }

  joinTopic(topic: string): void {
    if (this.closed) return;
    this.joined.add(topic);
    this.o.topics.join(topic, this);
  }

  leaveTopic(topic: string): void {
    this.joined.delete(topic);
    this.o.topics.leave(topic, this);
  }

  subscriptionEnded(): void {
    // After the frames that say why (unsubscribed, error) have been written in this turn.
    queueMicrotask(() => {
      if (!this.closed && this.subs.size === 0) this.end(CLOSE.normal, 'unsubscribed');
    });
  }

  /** Ends the stream: what is queued, then the `close` event, then the end of the response. */
  end(code: number, reason: string): void {
    if (this.closed) return;
    const rest = Buffer.concat([...this.queue, Buffer.from(sseCloseEvent(code, reason))]);
    const res = this.res;
    this.markClosed();
    res.cork(() => {
      res.end(rest);
    });
    this.o.onClosed(this, code);
  }

  /** uWS's onAborted: the client went away (or uWS cut the connection); the response is gone. */
  aborted(): void {
    if (this.closed) return;
    this.markClosed();
    this.o.onClosed(this, null);
  }

  private markClosed(): void {
    this.closed = true;
    this.queue = [];
    this.queued = 0;
    for (const t of this.joined) this.o.topics.leave(t, this);
    this.joined.clear();
    const ws = this.waiters ?? [];
    this.waiters = null;
    for (const w of ws) w();
  }
}
