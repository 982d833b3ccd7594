// What the `changes` benchmark's runner and its worker processes (bench/changes-worker.ts) share:
// the kinds of change, the commands, the results, and how a frame is named.
import type { ChangeFrame } from '../../src/protocol.js';
import type { HistData } from './hist.js';

export const KINDS = ['message', 'message_changed', 'reaction_added', 'reaction_removed', 'message_deleted'] as const;
export type Kind = (typeof KINDS)[number];

/** An operation the poster made: the frame it names, and when its request started (monotonic ms). */
export type Sent = [key: string, kind: Kind, at: number];

export type ChangesCommand =
  | { op: 'connect'; token: string; subs: { url: string; channels: string[] }[]; localAddress?: string }
  | { op: 'reset' }
  /** Posts (and reacts to) the messages the next `mix` changes: `n` for each kind of change. */
  | { op: 'prepare'; apiUrl: string; token: string; channels: string[]; n: number; textBytes: number }
  | { op: 'mix'; apiUrl: string; token: string; channels: string[]; rate: number; seconds: number; textBytes: number }
  | { op: 'stats'; sent: Sent[] }
  | { op: 'close' };

export interface MixResult {
  sent: Sent[];
  /** Frame name → when the API's answer arrived, wall clock (ms since the epoch, with fractions). */
  answeredAt: Record<string, number>;
  /** Per kind: answered ok, errors (with a sample), ticks with no message prepared for them (skipped). */
  ok: Record<Kind, number>;
  errors: Record<Kind, number>;
  errorSample: string[];
  skipped: Record<Kind, number>;
  /** POST start → response, per kind. */
  resp: Record<Kind, HistData>;
  /** How far the open-loop schedule fell behind at worst (the poster's own limit). */
  maxBehindMs: number;
  seconds: number;
}

export interface ChangesStats {
  latency: Record<Kind, HistData>;
  /** Deliveries expected (sent ops × the subscribers of their channel here) and matched. */
  expected: number;
  matched: number;
  /** Frames of the change log received (any kind, matched or not). */
  frames: number;
  /** Per subscription: a seq that was not last + 1 (a gap or a repeat), summed. */
  outOfOrder: number;
  errorFrames: number;
  disconnects: number;
  cpuMs: number;
  wallMs: number;
}

export const zero = (): Record<Kind, number> => Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;

/** The name of the frame an operation produces. */
export function keyOf(f: ChangeFrame): string | null {
  switch (f.type) {
    case 'message':
    case 'message_changed':
      return `${f.type}|${f.channel}|${f.message.seq}`;
    case 'message_deleted':
      return `${f.type}|${f.channel}|${f.target_seq}`;
    case 'reaction_added':
    case 'reaction_removed':
      return `${f.type}|${f.channel}|${f.target_seq}|${f.name}`;
    default:
      return null;
  }
}
