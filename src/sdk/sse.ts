// The SDK's Server-Sent Events transport: one GET /v1/sse stream carrying every channel the
// client subscribes, read with fetch (browsers and Node 18+ alike). fetch, unlike the browser's
// EventSource, sends the token in a header rather than the URL, shows a refusal's status and
// JSON body (its retry hint, which channel was refused), and shows the heartbeat comments, so a
// silent dead connection is noticed. Browser-safe: no Node imports.
import { SSE_CLOSE_EVENT, type ServerFrame } from '../protocol.js';

export interface SseMessage {
  /** The event type ('message' when the stream named none). */
  event: string;
  data: string;
  /** The last event id seen on the stream so far ('' if none). */
  lastEventId: string;
}

/**
 * An event stream parser as the HTML standard's "event stream interpretation" describes it: lines
 * end with CRLF, LF or CR (also split across chunks), `data` lines join with LF, comments are
 * reported, `id` sets the last event id, `retry` the reconnection time.
 */
export class SseParser {
  private buf = '';
  private afterCR = false;
  private started = false;
  private data: string[] = [];
  private event = '';
  private idBuffer = '';
  /** The last event id (kept across events, as EventSource does). */
  lastEventId = '';
  retryMs: number | undefined;

  constructor(
    private readonly onMessage: (m: SseMessage) => void,
    private readonly onComment: (text: string) => void = () => {},
  ) {}

  push(text: string): void {
    if (text === '') return;
    let s = text;
    // A CR ended the previous chunk: an LF opening this one belongs to it (CRLF split in two).
    if (this.afterCR && s.charCodeAt(0) === 10) s = s.slice(1);
    this.afterCR = false;
    s = this.buf + s;
    if (!this.started && s.length > 0) {
      this.started = true;
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    }
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(s.slice(start, i));
      if (c === 13) {
        if (i === s.length - 1) this.afterCR = true;
        else if (s.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.buf = s.slice(start);
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.charCodeAt(0) === 58 /* : */) return this.onComment(line.slice(1));
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        return;
      case 'event':
        this.event = value;
        return;
      case 'id':
        if (!value.includes('\u0000')) this.idBuffer = value;
        return;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        return;
    }
  }

  private dispatch(): void {
    this.lastEventId = this.idBuffer;
    const data = this.data;
    const event = this.event;
    this.data = [];
    this.event = '';
    if (data.length === 0) return;
    this.onMessage({ event: event || 'message', data: data.join('\n'), lastEventId: this.lastEventId });
  }
}

export interface SseChannelRequest {
  channel: string;
  /** Deliver what follows this seq; undefined: live only. */
  since: number | undefined;
}

export interface SseHandlers {
  /** The server answered 200 and the stream began. */
  open(): void;
  frame(f: ServerFrame): void;
  /** Anything arrived (a heartbeat comment too): the connection is alive. */
  activity(): void;
  /** The stream ended: its `close` event's code and reason, or 1006 when it broke without one. */
  end(code: number, reason: string): void;
  /** The server refused the stream: its status, JSON body (null if none) and Retry-After header. */
  refused(status: number, body: unknown, retryAfter: string | null): void;
}

export interface SseOpenOptions {
  url: string;
  token: string;
  channels: readonly SseChannelRequest[];
  presence: boolean;
  fetch: typeof fetch;
  handlers: SseHandlers;
}

/** The URL of a stream: every channel, and `since=<channel>:<seq>` for those resuming. */
export function sseStreamUrl(base: string, channels: readonly SseChannelRequest[], presence: boolean): string {
  const qs = new URLSearchParams();
  for (const c of channels) qs.append('channel', c.channel);
  for (const c of channels) if (c.since !== undefined) qs.append('since', `${c.channel}:${c.since}`);
  if (presence) qs.set('presence', '1');
  return `${base}${base.includes('?') ? '&' : '?'}${qs}`;
}

/** Opens a stream; the returned function aborts it (no handler is called after that). */
export function openSse(o: SseOpenOptions): () => void {
  const ac = new AbortController();
  let done = false;
  const finish = (fn: () => void) => {
    if (done) return;
    done = true;
    fn();
    ac.abort();
  };
  void (async () => {
    let res: Response;
    try {
      res = await o.fetch(sseStreamUrl(o.url, o.channels, o.presence), {
        headers: { authorization: `Bearer ${o.token}`, accept: 'text/event-stream' },
        signal: ac.signal,
      });
    } catch {
      return finish(() => o.handlers.end(1006, ''));
    }
    const type = res.headers.get('content-type') ?? '';
    if (res.status !== 200 || !type.startsWith('text/event-stream') || !res.body) {
      const text = await res.text().catch(() => '');
      let body: unknown = null;
      try {
        body = JSON.parse(text);
      } catch {
        /* not a walcast answer (a proxy's page) */
      }
      return finish(() => o.handlers.refused(res.status, body, res.headers.get('retry-after')));
    }
    if (done) return;
    o.handlers.open();
    const parser = new SseParser(
      (m) => {
        if (done) return;
        o.handlers.activity();
        if (m.event === SSE_CLOSE_EVENT) {
          let why: { code?: unknown; reason?: unknown } = {};
          try {
            why = JSON.parse(m.data);
          } catch {
            /* treated as a broken stream */
          }
          const code = typeof why.code === 'number' ? why.code : 1006;
          return finish(() => o.handlers.end(code, typeof why.reason === 'string' ? why.reason : ''));
        }
        if (m.event !== 'message') return;
        let f: ServerFrame;
        try {
          f = JSON.parse(m.data) as ServerFrame;
        } catch {
          return;
        }
        o.handlers.frame(f);
      },
      () => !done && o.handlers.activity(),
    );
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done: eof } = await reader.read();
        if (eof || done) break;
        parser.push(value);
      }
    } catch {
      /* the connection broke, or we aborted it */
    }
    finish(() => o.handlers.end(1006, ''));
  })();
  return () => {
    done = true;
    ac.abort();
  };
}

/** An SSE endpoint from a gateway's WebSocket URL: ws(s)://host/v1/ws → http(s)://host/v1/sse. */
export function sseUrlOf(wsUrl: string, wsPath: string, ssePath: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol;
  if (u.pathname.endsWith(wsPath)) u.pathname = u.pathname.slice(0, -wsPath.length) + ssePath;
  else u.pathname = u.pathname.replace(/\/$/, '') + ssePath;
  // A token in the WebSocket URL stays out: the stream sends it in a header.
  u.searchParams.delete('token');
  return u.toString();
}
