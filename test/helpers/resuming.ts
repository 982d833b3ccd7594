// A test client that does what docs/protocol.md asks of a client after a loss: reconnect (to any
// gateway) and resubscribe with the last seq it received. It records every message frame it
// ever got, so duplicates and gaps across reconnects are visible.
import WebSocket from 'ws';
import { clientFrame, isChangeFrame } from '../../src/protocol.js';

export class ResumingClient {
  /** Every seq of the change log received (messages, edits, members...), in arrival order, duplicates included. */
  readonly seqs: number[] = [];
  readonly arrivals: number[] = [];
  reconnects = 0;
  /** Close code of every connection that ended. */
  readonly closes: number[] = [];
  private last: number;
  private ws: WebSocket | null = null;
  private stopped = false;
  private attempt = 0;

  constructor(
    readonly name: string,
    private readonly urls: string[],
    private readonly token: string,
    private readonly channel: string,
    since = 0,
  ) {
    this.last = since;
  }

  start(): Promise<void> {
    return this.connect(true);
  }

  /** Longest time between two consecutive frames, in ms. */
  longestStall(): number {
    let worst = 0;
    for (let i = 1; i < this.arrivals.length; i++) worst = Math.max(worst, this.arrivals[i]! - this.arrivals[i - 1]!);
    return worst;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.ws?.close();
  }

  private connect(first = false): Promise<void> {
    const url = this.urls[this.attempt++ % this.urls.length]!;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url}?token=${this.token}`);
      this.ws = ws;
      let subscribed = false;
      // What a failed first connection reports: how far it got, and when. ws keeps socket errors
      // after the handshake to itself, so a reset then shows only as 1006.
      const t0 = performance.now();
      const at = () => `${Math.round(performance.now() - t0)} ms`;
      let why = '';
      ws.on('upgrade', () => void (why += `101 after ${at()}; `));
      ws.on('open', () => ws.send(clientFrame.subscribe(this.channel, this.last)));
      ws.on('message', (data) => {
        const f = JSON.parse(String(data));
        if (f.type === 'subscribed') {
          subscribed = true;
          resolve();
        } else if (isChangeFrame(f)) {
          this.seqs.push(f.seq);
          this.arrivals.push(performance.now());
          this.last = Math.max(this.last, f.seq);
        } else if (f.type === 'error') {
          why += `error frame ${f.code}; `;
          // e.g. `unavailable` while the bus is down: try again shortly.
          setTimeout(() => ws.readyState === ws.OPEN && ws.send(clientFrame.subscribe(this.channel, this.last)), 200);
        }
      });
      const retry = () => {
        if (this.stopped) return;
        if (first && !subscribed) return reject(new Error(`${this.name}: could not subscribe via ${url} (${why})`));
        this.reconnects++;
        setTimeout(() => void this.connect().catch(() => {}), 100);
      };
      ws.on('close', (code, reason) => {
        why += `closed ${code} ${String(reason)} after ${at()}`;
        this.closes.push(code);
        if (this.ws === ws) retry();
      });
      ws.on('error', (e) => void (why += `${e.message}; `));
    });
  }
}

/**
 * Starts every client at once; if any could not subscribe, fails naming all of them (one socket
 * refused and a whole gateway process gone look different only when every failure is listed),
 * followed by `context()`: the state of the servers at that moment.
 */
export async function startAll(clients: readonly ResumingClient[], context?: () => string | Promise<string>): Promise<void> {
  const results = await Promise.allSettled(clients.map((c) => c.start()));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length === 0) return;
  const lines = failed.map((f) => `  ${(f.reason as Error).message}`).join('\n');
  const more = context ? `\n${await Promise.resolve().then(context).catch((e: unknown) => `(context unavailable: ${String(e)})`)}` : '';
  throw new Error(`${failed.length} of ${clients.length} clients could not subscribe:\n${lines}${more}`);
}
