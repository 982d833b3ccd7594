// The loss check of Scenario A in constant memory per socket. Each socket keeps, for its one
// channel: the seq it was subscribed at, how many message frames it got, the first and last
// seq, how often a seq was not exactly the previous one + 1 (a gap) or not above it (a duplicate
// or a reordering), and an order-free sum of a hash of (seq, message id). The truth is the
// database (every message stored in the channel after the subscription) and the posters' record
// of every post the API accepted. A socket passed when it got exactly the stored messages, each
// once, in seq order, with the stored ids; the run passed when every socket did and every
// accepted post is stored under the seq and id the API answered with.

/** FNV-1a of the id's bytes, mixed with the seq; sums of these are compared (order-free). */
export function pairHash(seq: number, id: string): number {
  let h = 0x811c9dc5 ^ Math.imul(seq >>> 0, 0x9e3779b1) ^ Math.floor(seq / 2 ** 32);
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The same from bytes of a buffer (the id as it sits in a frame, ASCII). */
export function pairHashBytes(seq: number, buf: Buffer, start: number, end: number): number {
  let h = 0x811c9dc5 ^ Math.imul(seq >>> 0, 0x9e3779b1) ^ Math.floor(seq / 2 ** 32);
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

export const addHash = (sum: number, h: number) => (sum + h) >>> 0;

/** What one socket saw of its channel (columns, one entry per socket, for IPC). */
export interface SocketRecords {
  channel: number[];
  /** The seq of the `subscribed` frame (-1: never subscribed). */
  s0: number[];
  count: number[];
  first: number[];
  last: number[];
  gaps: number[];
  notAbove: number[];
  hash: number[];
  /** The close code if the socket closed (0: still open). */
  closed: number[];
}

/** What the database holds for a channel after seq s0. */
export interface StoredTruth {
  count: number;
  last: number;
  hash: number;
}

/** What the posters were told by the API for a channel: every accepted post's seq and hash. */
export interface AcceptedTruth {
  seqs: number[];
  hash: number;
}

export interface LossResult {
  sockets: number;
  socketsOk: number;
  /** Stored messages a socket never got (summed over sockets). */
  missing: number;
  /** Frames beyond what was stored, or repeated (duplicates). */
  extra: number;
  /** Frames not above the previous seq (duplicates or out of order). */
  notAbove: number;
  /** Seq steps other than +1 (a gap or a jump back). */
  gaps: number;
  /** Sockets whose (seq, id) set differs from the stored one although the counts match. */
  wrongContent: number;
  /** Sockets that closed during the run (they miss what came after). */
  disconnected: number;
  /** Sockets that never got their `subscribed` frame. */
  unsubscribed: number;
  acceptedPosts: number;
  /** Accepted posts whose seq is not stored in the channel, or stored with another id. */
  acceptedNotStored: number;
  /** Stored messages the API did not answer 200 for (timeouts, errors): delivered, not counted as loss. */
  storedNotAccepted: number;
  /** Frames the sockets got in all. */
  frames: number;
  ok: boolean;
  /** A few examples of failures, for the report. */
  examples: string[];
}

/**
 * Judges every socket against the stored truth of its channel, and the accepted posts against
 * the stored rows. `storedSeqHash(channel, seqs)` gives the hash sum of the stored (seq, id) pairs
 * for those seqs and how many of them exist.
 */
export function judge(
  records: SocketRecords[],
  stored: (channel: number, s0: number) => StoredTruth,
  accepted: Map<number, AcceptedTruth>,
  storedAt: (channel: number, seqs: number[]) => { found: number; hash: number },
  storedTotal: number,
): LossResult {
  const r: LossResult = {
    sockets: 0,
    socketsOk: 0,
    missing: 0,
    extra: 0,
    notAbove: 0,
    gaps: 0,
    wrongContent: 0,
    disconnected: 0,
    unsubscribed: 0,
    acceptedPosts: 0,
    acceptedNotStored: 0,
    storedNotAccepted: 0,
    frames: 0,
    ok: false,
    examples: [],
  };
  const example = (s: string) => r.examples.length < 10 && r.examples.push(s);
  for (const rec of records) {
    for (let i = 0; i < rec.channel.length; i++) {
      r.sockets++;
      const ch = rec.channel[i]!;
      const s0 = rec.s0[i]!;
      r.frames += rec.count[i]!;
      if (s0 < 0) {
        r.unsubscribed++;
        example(`channel #${ch}: a socket never subscribed`);
        continue;
      }
      const t = stored(ch, s0);
      let ok = true;
      if (rec.closed[i]) {
        r.disconnected++;
        ok = false;
        example(`channel #${ch}: a socket closed with ${rec.closed[i]}`);
      }
      const got = rec.count[i]!;
      if (got < t.count) (r.missing += t.count - got), (ok = false);
      if (got > t.count) (r.extra += got - t.count), (ok = false);
      r.notAbove += rec.notAbove[i]!;
      r.gaps += rec.gaps[i]!;
      if (rec.notAbove[i] || rec.gaps[i]) ok = false;
      if (got > 0 && (rec.first[i] !== s0 + 1 || rec.last[i] !== t.last)) ok = false;
      if (got === t.count && rec.hash[i] !== t.hash) {
        r.wrongContent++;
        ok = false;
      }
      if (ok) r.socketsOk++;
      else example(`channel #${ch}: subscribed at ${s0}, stored ${t.count} (last ${t.last}), got ${got} (${rec.first[i]}..${rec.last[i]}), gaps ${rec.gaps[i]}, not above ${rec.notAbove[i]}`);
    }
  }
  for (const [ch, a] of accepted) {
    r.acceptedPosts += a.seqs.length;
    const at = storedAt(ch, a.seqs);
    if (at.found !== a.seqs.length || at.hash !== a.hash) {
      const lost = Math.max(1, a.seqs.length - at.found);
      r.acceptedNotStored += lost;
      example(`channel #${ch}: ${a.seqs.length} accepted posts, ${at.found} stored under their seqs${at.hash !== a.hash ? ', ids differ' : ''}`);
    }
  }
  r.storedNotAccepted = Math.max(0, storedTotal - r.acceptedPosts);
  r.ok = r.sockets > 0 && r.socketsOk === r.sockets && r.acceptedNotStored === 0;
  return r;
}
