// What the `presence` benchmark's runner and its worker processes (bench/presence-worker.ts)
// share: the commands and what they answer.

/** Who a socket is: one of the many present users, a churner (joins and leaves), or an observer (notes what presence it sees). */
export type Role = 'present' | 'churner' | 'observer';

export type PresenceCommand =
  | { op: 'init'; secret: string }
  /** Opens a socket per user; with `subscribe`, subscribes it to `channel` with presence and waits for `subscribed`. */
  | { op: 'connect'; role: Role; users: { user: string; url: string }[]; channel: string; subscribe: boolean; localAddress?: string }
  /** Closes these users' sockets (they leave at once). */
  | { op: 'disconnect'; users: string[] }
  /** An observer: a socket of `user` subscribed with presence to each of `channels`, noting every presence frame. */
  | { op: 'observe'; name: string; user: string; url: string; channels: string[] }
  | { op: 'reset' }
  | { op: 'counts' }
  /** Open-loop joins and leaves: each tick toggles the next churner (subscribe with presence, or unsubscribe). Ends with every churner unsubscribed. */
  | { op: 'churn'; channel: string; users: string[]; rate: number; seconds: number }
  /** `n` sequential joins then leaves of `user` (connected, unsubscribed), each waited for at every observer of `channel`. */
  | { op: 'probe'; channel: string; user: string; n: number; timeoutMs: number }
  /** What each observer believes is present in `channel`. */
  | { op: 'views'; channel: string }
  | { op: 'close' };

export interface FrameCounts {
  presence_joined: number;
  presence_left: number;
  presence_count: number;
  other: number;
}

export interface CountsResult {
  /** Presence frames received, by the role of the socket that got them. */
  byRole: Record<Role, FrameCounts>;
  open: number;
  cpuMs: number;
  wallMs: number;
}

export interface ChurnResult {
  joins: number;
  leaves: number;
  /** Per observer: event (join/leave) → its frame at the observer, ms; per-user frames only. */
  joinMs: Record<string, number[]>;
  leaveMs: Record<string, number[]>;
  /** Events no observer frame was found for (count mode: all of them). */
  unmatched: number;
  /** subscribe sent → subscribed, at the churner. */
  subscribedMs: number[];
  maxBehindMs: number;
  errors: string[];
}

export interface ProbeResult {
  /** Per observer, per probe: ms from the join (leave) to the frame that shows it. */
  joinMs: Record<string, number[]>;
  leaveMs: Record<string, number[]>;
  subscribedMs: number[];
  /** Presence frames the probe itself got per join, at idle: the snapshot a new presence subscriber receives. */
  snapshotFrames: number[];
  timeouts: number;
  /** Whether the observers saw per-user frames or counts. */
  mode: 'per-user' | 'count';
}

export interface View {
  name: string;
  /** From presence_joined / presence_left. */
  users: string[];
  /** The last presence_count, if any came. */
  count: number | null;
  /** Which came last: per-user frames or a count. */
  last: 'per-user' | 'count' | null;
}
