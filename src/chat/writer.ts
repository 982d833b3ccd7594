// Group commit for chat.postMessage. Posts wait in per-channel queues; a lane (one database
// connection) takes the waiting posts of channels that no other lane is writing, up to
// `batchMax`, and stores them in ONE transaction: one WAL flush for the whole batch instead of
// one per post. There is no timer: a lone post goes at once, and batches grow only because posts
// arrive while earlier transactions are committing.
//
// The contract holds unchanged:
//  - seq: the transaction locks its channels' rows (in id order, so batches never deadlock),
//    and gives each channel's accepted posts consecutive seqs after `last_seq`, in arrival
//    order. A channel is in at most one lane's transaction at a time (and another API process
//    waits on the row lock), so commit order is seq order and there are no gaps.
//  - durability: a post is answered only after its batch committed.
//  - per-post outcomes: a non-member, an unknown channel or a retry of an earlier client_msg_id
//    (answered with the first message) never fails its batch-mates and never takes a seq; two
//    copies of one client_msg_id in the queue become one row, both callers get it.
//  - an unexpected failure of a batch is retried post by post, so only the post that causes it
//    fails.
import type { Pool, PoolClient } from 'pg';
import { WalcastError, isUnavailable } from '../errors.js';
import { newMessageId } from './ids.js';
import { MESSAGE_COLUMNS, toMessage, type Message, type MessageRow } from './model.js';

export interface PostInput {
  channel: string;
  user: string;
  /** Text PostgreSQL stores as it is: no NUL, no unpaired surrogates (the API's schema refuses both). A stored post's answer is built from it. */
  text: string;
  clientMsgId: string | null;
  /** The seq of the message this one replies to. */
  replyTo?: number | null;
}

export interface PostResult {
  message: Message;
  /** False when this was a retry answered with the message stored the first time. */
  created: boolean;
}

/**
 * The write path's one extension point. walcast itself sets none; the benchmarks wire in the
 * designs walcast replaces (publish before or after COMMIT, a slow commit) through it.
 */
export interface WriteHooks {
  /** Inside the transaction, after the rows are written, before COMMIT; a throw rolls the batch back. */
  beforeCommit?(stored: readonly Message[]): Promise<void>;
  /** After COMMIT, before the callers are answered. */
  afterCommit?(stored: readonly Message[]): Promise<void>;
}

/** Where the writer reports what it does (wired to /metrics). */
export interface WriterObserver {
  batch(size: number, seconds: number): void;
  queued(depth: number): void;
  /** The database lost a statement prepared by name between two transactions (code 26000 or 42P05): from now on it is sent unnamed. */
  unnamedStatements?(code: string): void;
}

export interface WriterOptions {
  /** Transactions in flight at once (database connections the writer uses). */
  lanes: number;
  /** Posts per transaction at most. */
  batchMax: number;
  hooks?: WriteHooks;
  observer?: WriterObserver;
}

interface Waiter {
  resolve(r: PostResult): void;
  reject(e: unknown): void;
}

interface Pending {
  input: PostInput;
  id: string;
  waiters: Waiter[];
  /** Set after its batch failed for an unexpected reason: it is retried in a batch of its own. */
  alone: boolean;
}

// One call per batch (drizzle/0003_post_batch.sql, 0007_post_batch_lean.sql): it locks the batch's
// channel rows in id order, then judges and stores every post with a snapshot taken after the
// locks. A stored post comes back as its id, seq and created_at (the rest is the input); a retry
// as the whole message stored the first time.
/** Prepared once per connection; the name changes with the call (a migration that changes it renames it). */
export const BATCH_STATEMENT = 'walcast_post_batch2_v1';
const BATCH_SQL = `SELECT ord, outcome, ${MESSAGE_COLUMNS} FROM walcast_post_batch2($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::bigint[])`;

/** A stored post is known by the id chosen for it (`ord` is null); the other outcomes by `ord`. */
type StoredRow = { ord: null; outcome: 'stored'; id: string; seq: number | string; created_at: Date | string };
type BatchRow =
  | StoredRow
  | (MessageRow & { ord: number; outcome: 'retry' })
  | { ord: number; outcome: 'not_member' | 'no_channel' | 'no_parent' };

/** A connection whose prepared batch statement no longer fits the function (a migration changed it without renaming the statement). */
const STALE_PLAN = '0A000';
/**
 * A prepared statement missing (26000) or already there (42P05) on a connection that prepared it
 * (or not) in an earlier transaction: a pooler in transaction mode (PgBouncer before 1.21, or
 * without `max_prepared_statements`) runs each transaction on whichever server connection is free.
 * Nothing of the batch ran.
 */
const POOLED_STATEMENT = new Set(['26000', '42P05']);

/** The batch did not run and goes again as it is. */
class RunAgain extends Error {}

export class MessageWriter {
  /** Waiting posts per channel, in arrival order. */
  private readonly queues = new Map<string, Pending[]>();
  /** Channels with waiting posts that no lane is writing, in the order they became ready. */
  private readonly ready = new Set<string>();
  /** Channels in a transaction right now. */
  private readonly busy = new Set<string>();
  private depth = 0;
  /** Sizes of the batches in flight, one per busy lane. */
  private readonly inFlight: number[] = [];
  private pumping = false;
  private closed = false;
  /**
   * Connections kept by lanes between batches: the next batch is sent at once, without a trip
   * through the pool (whose hand-over waits for a later tick, after the answers of the batch
   * just committed). Each has an 'error' listener while it waits.
   */
  private readonly held: PoolClient[] = [];
  private drained: (() => void) | null = null;
  /** Whether the batch statement is prepared by name, once per connection; off for good behind a pooler that cannot keep it. */
  private named = true;

  constructor(
    private readonly pool: Pool,
    private readonly o: WriterOptions,
  ) {}

  /** Stores a message (or finds the one a retry refers to); resolves once its batch committed. */
  post(input: PostInput): Promise<PostResult> {
    if (this.closed) return Promise.reject(new WalcastError('unavailable', 'shutting down; retry', { retryAfterMs: 1000 }));
    return new Promise((resolve, reject) => {
      let q = this.queues.get(input.channel);
      if (!q) this.queues.set(input.channel, (q = []));
      const twin = input.clientMsgId === null ? undefined : q.find((p) => p.input.user === input.user && p.input.clientMsgId === input.clientMsgId);
      if (twin) twin.waiters.push({ resolve, reject });
      else {
        q.push({ input, id: newMessageId(), waiters: [{ resolve, reject }], alone: false });
        this.setDepth(this.depth + 1);
      }
      if (!this.busy.has(input.channel)) this.ready.add(input.channel);
      this.schedule();
    });
  }

  /** Posts waiting for a lane. */
  get queueDepth(): number {
    return this.depth;
  }

  /** Stops taking posts and waits for the batches in flight (and the queue) to finish. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.inFlight.length > 0 || this.depth > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.returnHeld();
  }

  /** The lanes' kept connections go back to the pool. */
  private returnHeld(): void {
    for (const c of this.held.splice(0)) this.unhold(c).release();
  }

  private setDepth(n: number): void {
    this.depth = n;
    this.o.observer?.queued(n);
  }

  // Posts enqueued in the same synchronous run share the first batch.
  private schedule(): void {
    if (this.pumping) return;
    this.pumping = true;
    queueMicrotask(() => {
      this.pumping = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight.length < this.o.lanes && this.ready.size > 0 && this.worthALane()) {
      const batch = this.take();
      if (batch.length === 0) break;
      this.inFlight.push(batch.length);
      void this.run(batch);
    }
  }

  /** A batch is done (committed, failed or requeued): its lane and channels are free, the next batch goes. */
  private release(batch: Pending[]): void {
    this.inFlight.splice(this.inFlight.indexOf(batch.length), 1);
    for (const c of new Set(batch.map((p) => p.input.channel))) {
      this.busy.delete(c);
      if (this.queues.get(c)?.length) this.ready.add(c);
    }
    if (this.ready.size > 0) this.pump();
    if (this.inFlight.length === 0 && this.depth === 0) {
      // Idle: a lone post takes a connection from the pool.
      this.returnHeld();
      this.drained?.();
    }
  }

  /**
   * Whether the ready posts should open another lane now. The first always does (a lone post goes
   * at once). Another opens only for at least as many posts as the smallest batch committing:
   * under load a lane that comes free would otherwise take the one or two posts that arrived
   * meanwhile, and every transaction costs PostgreSQL about as much as ten posts in one (see
   * docs/sequencing.md). Posts left waiting go with the next lane that finishes.
   */
  private worthALane(): boolean {
    if (this.inFlight.length === 0) return true;
    const want = Math.min(...this.inFlight, this.o.batchMax);
    let n = 0;
    for (const c of this.ready) {
      n += this.queues.get(c)?.length ?? 0;
      if (n >= want) return true;
    }
    return false;
  }

  /** The next batch: whole channel queues in ready order, up to batchMax posts. */
  private take(): Pending[] {
    const batch: Pending[] = [];
    for (const channel of this.ready) {
      const q = this.queues.get(channel)!;
      // A post whose batch failed goes in a batch of its own.
      if (q[0]!.alone) {
        if (batch.length > 0) continue;
        this.claim(channel, q, 1, batch);
        break;
      }
      let n = 0;
      while (n < q.length && !q[n]!.alone && batch.length + n < this.o.batchMax) n++;
      if (n === 0) break;
      this.claim(channel, q, n, batch);
      if (batch.length >= this.o.batchMax) break;
    }
    this.setDepth(this.depth - batch.length);
    return batch;
  }

  private claim(channel: string, q: Pending[], n: number, into: Pending[]): void {
    into.push(...q.splice(0, n));
    if (q.length === 0) this.queues.delete(channel);
    this.ready.delete(channel);
    this.busy.add(channel);
  }

  private async run(batch: Pending[]): Promise<void> {
    const started = performance.now();
    let results: Map<Pending, PostResult | WalcastError>;
    const progress = { committing: false };
    try {
      results = await this.transaction(batch, progress);
    } catch (e) {
      if (e instanceof RunAgain) {
        this.requeue(batch);
        return this.release(batch);
      }
      // Rolled back for a reason other than the database going away: something in this batch
      // breaks it. Retry each post alone, so only that one fails. (Never once COMMIT was sent:
      // the outcome is unknown then, and the callers retry with their client_msg_id.)
      if (batch.length > 1 && !progress.committing && !isUnavailable(e)) {
        for (const p of batch) p.alone = true;
        this.requeue(batch);
        return this.release(batch);
      }
      this.release(batch);
      for (const p of batch) for (const w of p.waiters) w.reject(e);
      return;
    }
    try {
      // The next batch is sent before these answers are written: the database is not left idle
      // while the HTTP responses go out.
      this.release(batch);
      this.o.observer?.batch(batch.length, (performance.now() - started) / 1000);
    } finally {
      for (const p of batch) {
        const r = results.get(p)!;
        for (const w of p.waiters) (r instanceof WalcastError ? w.reject(r) : w.resolve(r));
      }
    }
  }

  /**
   * Back to the front of their channel queues, in their order. A copy of one of them that arrived
   * meanwhile (a client's retry) joins it, as it would have in the queue.
   */
  private requeue(batch: Pending[]): void {
    let added = 0;
    for (let i = batch.length - 1; i >= 0; i--) {
      const p = batch[i]!;
      let q = this.queues.get(p.input.channel);
      if (!q) this.queues.set(p.input.channel, (q = []));
      const twin = p.input.clientMsgId === null ? -1 : q.findIndex((o) => o.input.user === p.input.user && o.input.clientMsgId === p.input.clientMsgId);
      if (twin >= 0) {
        p.waiters.push(...q[twin]!.waiters);
        q.splice(twin, 1);
        added--;
      }
      q.unshift(p);
      added++;
    }
    this.setDepth(this.depth + added);
  }

  /**
   * Stores a batch. Without hooks it is one autocommit call: one round trip, one WAL flush. The
   * benchmarks' hooks need a transaction around it (BEGIN, call, hook, COMMIT).
   */
  private async transaction(batch: Pending[], progress: { committing: boolean }): Promise<Map<Pending, PostResult | WalcastError>> {
    const hooks = this.o.hooks;
    const explicit = Boolean(hooks?.beforeCommit);
    // No await when a lane's connection is at hand: the batch is on the wire before this returns.
    const client = this.held.length > 0 ? this.unhold(this.held.pop()!) : await this.pool.connect();
    let ok = false;
    let stale = false;
    const named = this.named;
    try {
      // In autocommit an error means the call rolled back (a lost connection is `unavailable`).
      if (explicit) await client.query('BEGIN');
      const { rows } = await client
        .query<BatchRow>(named ? { name: BATCH_STATEMENT, text: BATCH_SQL, values: columns(batch) } : { text: BATCH_SQL, values: columns(batch) })
        .catch((e: unknown) => {
          throw (named && this.statementLost(e)) || e;
        });
      // Stored for good once the autocommit call returned: whatever fails now is never retried post by post.
      if (!explicit) progress.committing = true;
      if (rows.length !== batch.length) throw new Error(`batch answered ${rows.length} outcomes for ${batch.length} posts`);
      const out = new Map<Pending, PostResult | WalcastError>();
      const stored: Message[] = [];
      const byId = new Map(batch.map((p) => [p.id, p]));
      for (const r of rows) {
        const p = r.ord === null ? byId.get(r.id) : batch[r.ord];
        if (!p) throw new Error(`batch answered for a post it was not given (${r.outcome})`);
        if (r.ord === null) {
          const message = toMessage(storedRow(p, r));
          out.set(p, { message, created: true });
          stored.push(message);
        } else if (r.outcome === 'retry') out.set(p, { message: toMessage(r), created: false });
        else out.set(p, new WalcastError(r.outcome === 'no_channel' ? 'channel_not_found' : r.outcome === 'not_member' ? 'not_in_channel' : 'parent_not_found'));
      }
      if (explicit) {
        if (stored.length > 0) await hooks!.beforeCommit!(stored);
        progress.committing = true;
        await client.query('COMMIT');
      }
      ok = true;
      // Stored for good whatever the hook does: its failure is its own business.
      if (stored.length > 0) await hooks?.afterCommit?.(stored)?.catch(() => {});
      return out;
    } catch (e) {
      // A connection that lost a named statement is fine for unnamed ones, and is kept: closing it
      // before its ReadyForQuery made PgBouncer close its server connection too (seen 4 in 200).
      stale = (e as { code?: string }).code === STALE_PLAN;
      throw e;
    } finally {
      // A connection whose ROLLBACK failed, or whose prepared statement is stale, is discarded
      // rather than returned to the pool.
      const broken = stale || (!ok && explicit && (await client.query('ROLLBACK').then(() => false, () => true)));
      if (ok && !this.closed) this.hold(client);
      else client.release(broken);
    }
  }

  /** A named statement's call failed because the connection did not have it as prepared: from now on it goes unnamed. */
  private statementLost(e: unknown): RunAgain | null {
    const code = (e as { code?: string }).code ?? '';
    if (!POOLED_STATEMENT.has(code)) return null;
    if (this.named) this.o.observer?.unnamedStatements?.(code);
    this.named = false;
    return new RunAgain(code, { cause: e });
  }

  /** Keeps a lane's connection for the next batch; one that fails while kept is discarded. */
  private hold(client: PoolClient): void {
    let failed = false;
    const onError = () => {
      if (failed) return;
      failed = true;
      const i = this.held.indexOf(client);
      if (i >= 0) this.held.splice(i, 1);
      client.release(true);
    };
    (client as PoolClient & { heldOnError?: () => void }).heldOnError = onError;
    client.on('error', onError);
    this.held.push(client);
  }

  private unhold(client: PoolClient): PoolClient {
    const c = client as PoolClient & { heldOnError?: () => void };
    if (c.heldOnError) client.off('error', c.heldOnError);
    c.heldOnError = undefined;
    return client;
  }
}

/** The row a stored post became: what the API sent, and what the database chose (seq, created_at). */
function storedRow(p: Pending, r: StoredRow): MessageRow {
  return {
    id: p.id,
    channel_id: p.input.channel,
    seq: r.seq,
    user_id: p.input.user,
    text: p.input.text,
    client_msg_id: p.input.clientMsgId,
    created_at: r.created_at,
    reply_to: p.input.replyTo ?? null,
    edited_at: null,
    deleted_at: null,
    reactions: {},
    changed_seq: r.seq,
  };
}

/** The batch as the parallel arrays walcast_post_batch2 takes, in arrival order. */
function columns(batch: Pending[]): [string[], string[], string[], (string | null)[], string[], (number | null)[]] {
  const cols: [string[], string[], string[], (string | null)[], string[], (number | null)[]] = [[], [], [], [], [], []];
  for (const p of batch) {
    cols[0].push(p.input.channel);
    cols[1].push(p.input.user);
    cols[2].push(p.input.text);
    cols[3].push(p.input.clientMsgId);
    cols[4].push(p.id);
    cols[5].push(p.input.replyTo ?? null);
  }
  return cols;
}
