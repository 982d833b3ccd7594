// Minimal clients for tests: the HTTP API and the WebSocket protocol, as a user would speak them.
import WebSocket from 'ws';
import { routes } from '../../src/api/routes.js';
import { clientFrame, isChangeFrame } from '../../src/protocol.js';
import { until } from './walcast.js';

export interface ApiResult {
  status: number;
  body: any;
  headers: Headers;
}

export class Api {
  constructor(
    readonly base: string,
    readonly token: string | null,
  ) {}

  async post(method: string, body: unknown, opts: { raw?: string; headers?: Record<string, string> } = {}): Promise<ApiResult> {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const res = await fetch(`${this.base}/v1/${method}`, { method: 'POST', headers, body: opts.raw ?? JSON.stringify(body) });
    return { status: res.status, body: await res.json(), headers: res.headers };
  }

  async get(method: string, query: Record<string, string | number>): Promise<ApiResult> {
    const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const res = await fetch(`${this.base}/v1/${method}?${qs}`, { headers });
    return { status: res.status, body: await res.json(), headers: res.headers };
  }

  /** The happy path, asserting ok. */
  async call(method: string, body: Record<string, unknown>): Promise<any> {
    const r = routes[method]?.method === 'GET' ? await this.get(method, body as never) : await this.post(method, body);
    if (r.status !== 200 || r.body.ok !== true) throw new Error(`${method} failed: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

export interface Frame {
  type: string;
  channel?: string;
  seq?: number;
  code?: string;
  reason?: string;
  message?: any;
  since?: number;
  target_seq?: number;
  user?: string;
  name?: string;
}

export class WsClient {
  readonly frames: Frame[] = [];
  closed = false;
  closeCode: number | undefined;
  /** Wall-clock receive time (performance.now()) of each message frame, by "channel:seq". */
  readonly receivedAt = new Map<string, number>();
  private readonly listeners = new Set<(f: Frame) => void>();

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const f = JSON.parse(String(data)) as Frame;
      if (isChangeFrame(f)) this.receivedAt.set(`${f.channel}:${f.seq}`, performance.now());
      this.frames.push(f);
      for (const l of this.listeners) l(f);
    });
    socket.on('close', (code) => {
      this.closed = true;
      this.closeCode = code;
    });
  }

  static connect(url: string, token: string | null): Promise<WsClient> {
    const socket = new WebSocket(token === null ? url : `${url}?token=${encodeURIComponent(token)}`);
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new WsClient(socket)));
      socket.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
      socket.once('error', reject);
    });
  }

  onFrame(l: (f: Frame) => void): void {
    this.listeners.add(l);
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  messages(channel?: string): Frame[] {
    return this.frames.filter((f) => f.type === 'message' && (channel === undefined || f.channel === channel));
  }

  /** Frames of the change log (every frame that carries a seq: messages, edits, members...). */
  changes(channel?: string): Frame[] {
    return this.frames.filter((f) => isChangeFrame(f) && (channel === undefined || f.channel === channel));
  }

  /** The seqs of the change log received, in arrival order. */
  seqs(channel?: string): number[] {
    return this.changes(channel).map((f) => f.seq!);
  }

  /** The next frame matching `pred`, received after index `from` (default: from now on). */
  async next(pred: (f: Frame) => boolean, what = 'a frame', ms = 15_000, from = this.frames.length): Promise<Frame> {
    let found: Frame | undefined;
    const start = from;
    await until(() => (found = this.frames.slice(start).find(pred)) !== undefined || this.closed, what, ms);
    if (!found) throw new Error(`socket closed while waiting for ${what}`);
    return found;
  }

  /** Subscribe and wait for `subscribed` (or an error frame for that channel). */
  async subscribe(channel: string, since?: number): Promise<Frame> {
    const start = this.frames.length;
    this.send(clientFrame.subscribe(channel, since));
    let found: Frame | undefined;
    await until(
      () => (found = this.frames.slice(start).find((f) => f.channel === channel && (f.type === 'subscribed' || f.type === 'error'))) !== undefined,
      `subscribed to ${channel}`,
    );
    return found!;
  }

  async waitForSeq(channel: string, seq: number, ms = 15_000): Promise<void> {
    await until(() => this.seqs(channel).includes(seq) || this.closed, `seq ${seq} on ${channel}`, ms);
    if (!this.seqs(channel).includes(seq)) throw new Error(`socket closed before seq ${seq}`);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => {
      this.socket.once('close', () => r());
      this.socket.close();
    });
  }
}

/** Asserts that seqs are exactly from..to, in order: no gap, no duplicate. */
export function contiguous(seqs: number[], from: number, to: number): boolean {
  if (seqs.length !== to - from + 1) return false;
  return seqs.every((s, i) => s === from + i);
}
