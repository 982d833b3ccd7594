// What the hubs, subscriptions and commands need of a client, whatever carries its frames: a
// WebSocket (connection.ts) or a Server-Sent Events stream (sse.ts). Catch-up, live delivery,
// membership ends and token lifetime are written once against this; only the bytes on the wire
// and the way backpressure is measured differ.
import type { Entry } from './ring.js';
import type { SmallMap } from '../util/small-map.js';
import type { Subscription } from './subscription.js';
import type { LifetimeSubject } from './token-lifetime.js';

export interface Peer extends LifetimeSubject {
  readonly transport: 'ws' | 'sse';
  readonly id: number;
  /** The authenticated user ('' on a WebSocket opened without a token, until its `auth` frame). */
  user: string;
  /** The client's address (per-address limits). */
  readonly address: string;
  /** The token's `iat` (seconds), for revocations. */
  iat: number | undefined;
  readonly closed: boolean;
  readonly subs: SmallMap<string, Subscription>;
  /** Frames without a seq (subscribed, unsubscribed, error, presence, token_expiring...), in one batch. */
  send(frames: string | readonly string[]): boolean;
  /** Catch-up frames of a channel's change log, in seq order. */
  sendLog(channel: string, entries: readonly Entry[]): boolean;
  /** Whether `bytes` more may be queued now without passing the backpressure limit. */
  hasRoomFor(bytes: number): boolean;
  /** Bytes that may still be queued without passing the backpressure limit. */
  room(): number;
  /** What a subscription keeps free for live traffic when it joins it. */
  readonly headroom: number;
  /** Resolves once `bytes` more fit, or the peer closed. */
  waitRoomFor(bytes: number): Promise<void>;
  /** Live frames of a topic (a channel's change log, its presence) reach the peer from now on. */
  joinTopic(topic: string): void;
  leaveTopic(topic: string): void;
  /** Ends the connection with a close code and reason (a WebSocket close; an SSE stream's last event). */
  end(code: number, reason: string): void;
  /** One of its subscriptions ended (an SSE stream with none left ends itself). */
  subscriptionEnded(): void;
}
