// A raw Server-Sent Events client for tests, as a user without the SDK would write one: a GET
// with node:http (so a test can stop reading, like a slow browser tab), the event stream parsed
// by the standard's rules (src/sdk/sse.ts), the frames, the event id after each, and the `close`
// event that ends a stream. A refused request resolves with its status and JSON body instead.
import http from 'node:http';
import { SseParser } from '../../src/sdk/sse.js';
import { SSE_CLOSE_EVENT, isChangeFrame } from '../../src/protocol.js';
import { until } from './walcast.js';
import type { Frame } from './clients.js';

export interface SseOpen {
  channels: string[];
  /** `since` values as given (a number, or `<channel>:<seq>`). */
  since?: (number | string)[];
  token?: string | null;
  /** Send the token as ?token= (as a browser's EventSource must) instead of the Authorization header. */
  tokenInQuery?: boolean;
  lastEventId?: string;
  presence?: boolean;
  headers?: Record<string, string>;
  /** Anything else for the query string, raw. */
  extraQuery?: string;
}

export interface Refusal {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

export class SseClient {
  readonly frames: Frame[] = [];
  /** The stream's last event id right after each frame (what a browser's EventSource would resend). */
  readonly idAfter: string[] = [];
  /** Wall-clock receive time (performance.now()) of each change frame, by "channel:seq". */
  readonly receivedAt = new Map<string, number>();
  comments = 0;
  /** The `close` event, if the stream ended with one. */
  closeEvent: { code: number; reason: string } | undefined;
  /** The `retry` field last seen. */
  retryMs: number | undefined;
  /** The response ended or broke. */
  ended = false;
  private readonly parser: SseParser;

  private constructor(
    readonly status: number,
    readonly headers: http.IncomingHttpHeaders,
    readonly res: http.IncomingMessage,
  ) {
    this.parser = new SseParser(
      (m) => {
        if (m.event === SSE_CLOSE_EVENT) {
          this.closeEvent = JSON.parse(m.data);
          return;
        }
        const f = JSON.parse(m.data) as Frame;
        if (isChangeFrame(f as { type: string })) this.receivedAt.set(`${f.channel}:${f.seq}`, performance.now());
        this.frames.push(f);
        this.idAfter.push(m.lastEventId);
      },
      () => this.comments++,
    );
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      this.parser.push(chunk);
      this.retryMs = this.parser.retryMs;
    });
    const done = () => (this.ended = true);
    res.on('end', done);
    res.on('close', done);
    res.on('error', done);
  }

  /** Opens a stream; resolves with the client (200) or the refusal (anything else, body parsed as JSON). */
  static open(base: string, o: SseOpen): Promise<SseClient | Refusal> {
    const qs = new URLSearchParams();
    for (const c of o.channels) qs.append('channel', c);
    for (const s of o.since ?? []) qs.append('since', String(s));
    if (o.presence) qs.set('presence', '1');
    if (o.token && o.tokenInQuery) qs.set('token', o.token);
    const headers: Record<string, string> = { accept: 'text/event-stream', ...o.headers };
    if (o.token && !o.tokenInQuery) headers.authorization = `Bearer ${o.token}`;
    if (o.lastEventId !== undefined) headers['last-event-id'] = o.lastEventId;
    const url = new URL(`/v1/sse?${qs}${o.extraQuery ? `&${o.extraQuery}` : ''}`, base);
    return new Promise((resolve, reject) => {
      const req = http.get(url, { headers, agent: false }, (res) => {
        if (res.statusCode === 200) return resolve(new SseClient(200, res.headers, res));
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            /* left as text */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      });
      req.on('error', reject);
    });
  }

  /** Opens a stream that must be accepted. */
  static async connect(base: string, o: SseOpen): Promise<SseClient> {
    const r = await SseClient.open(base, o);
    if (!(r instanceof SseClient)) throw new Error(`stream refused: ${r.status} ${JSON.stringify(r.body)}`);
    return r;
  }

  /** The stream's last event id (what Last-Event-ID would carry on a reconnect). */
  get lastEventId(): string {
    return this.parser.lastEventId;
  }

  changes(channel?: string): Frame[] {
    return this.frames.filter((f) => isChangeFrame(f as { type: string }) && (channel === undefined || f.channel === channel));
  }

  seqs(channel?: string): number[] {
    return this.changes(channel).map((f) => f.seq!);
  }

  async next(pred: (f: Frame) => boolean, what = 'a frame', ms = 15_000, from = this.frames.length): Promise<Frame> {
    let found: Frame | undefined;
    await until(() => (found = this.frames.slice(from).find(pred)) !== undefined || this.ended, what, ms);
    if (!found) throw new Error(`stream ended while waiting for ${what}`);
    return found;
  }

  async waitForSeq(channel: string, seq: number, ms = 15_000): Promise<void> {
    await until(() => this.seqs(channel).includes(seq) || this.ended, `seq ${seq} on ${channel}`, ms);
    if (!this.seqs(channel).includes(seq)) throw new Error(`stream ended before seq ${seq}`);
  }

  /** Waits for the response to end; returns its `close` event. */
  async whenEnded(ms = 20_000): Promise<{ code: number; reason: string } | undefined> {
    await until(() => this.ended, 'the stream to end', ms);
    return this.closeEvent;
  }

  /** Stops reading (the kernel buffers fill, then the server's). */
  pause(): void {
    this.res.socket?.pause();
    this.res.pause();
  }

  resume(): void {
    this.res.socket?.resume();
    this.res.resume();
  }

  /** Drops the connection, as a client going away does. */
  abort(): void {
    this.res.destroy();
    this.ended = true;
  }
}
