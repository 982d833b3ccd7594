// One client WebSocket: its user, its subscriptions, and safe sends. After uWS ran the close
// handler the socket object must never be touched again, so every send goes through here.
import type { WebSocket } from '../http/uws.js';
import { CLOSE } from '../protocol.js';
import type { Subscription } from './subscription.js';

export interface SocketData {
  conn: Connection;
}

export class Connection {
  closed = false;
  readonly subs = new Map<string, Subscription>();
  private ws: WebSocket<SocketData> | null = null;
  private drainWaiters: (() => void)[] = [];

  constructor(
    readonly id: number,
    readonly user: string,
    private readonly maxBackpressure: number,
    private readonly onSlow: (conn: Connection) => void,
  ) {}

  attach(ws: WebSocket<SocketData>): void {
    this.ws = ws;
  }

  /** Sends frames in one corked batch. A frame uWS dropped would leave a gap, so the socket is closed instead (the client resumes by seq). */
  send(frames: string | readonly string[]): boolean {
    const ws = this.ws;
    if (this.closed || !ws) return false;
    let dropped = false;
    ws.cork(() => {
      if (typeof frames === 'string') dropped = ws.send(frames) === 2;
      else for (const f of frames) if (ws.send(f) === 2) { dropped = true; break; }
    });
    if (dropped && !this.closed) {
      this.onSlow(this);
      this.end(CLOSE.slow_consumer, 'slow_consumer');
      return false;
    }
    return !this.closed;
  }

  /** Room to send a catch-up page without nearing the backpressure limit. */
  hasRoom(): boolean {
    return !this.closed && !!this.ws && this.ws.getBufferedAmount() < this.maxBackpressure / 2;
  }

  /** Bytes that may still be queued before reaching half the backpressure limit. */
  room(): number {
    return this.closed || !this.ws ? 0 : Math.max(0, this.maxBackpressure / 2 - this.ws.getBufferedAmount());
  }

  waitDrain(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  onDrain(): void {
    if (this.ws && this.ws.getBufferedAmount() >= this.maxBackpressure / 2) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  joinTopic(topic: string): void {
    if (!this.closed) this.ws?.subscribe(topic);
  }

  leaveTopic(topic: string): void {
    if (!this.closed) this.ws?.unsubscribe(topic);
  }

  end(code: number, reason: string): void {
    if (this.closed || !this.ws) return;
    const ws = this.ws;
    ws.cork(() => ws.end(code, reason));
  }

  /** Called from uWS's close handler: from here on the socket is gone. */
  markClosed(): void {
    this.closed = true;
    this.ws = null;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
