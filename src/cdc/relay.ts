// The CDC relay: tails the WAL through one logical replication slot (pgoutput) and publishes
// every committed transaction to the bus, then acknowledges it. Only committed rows ever
// become events, which removes the commit/publish race by construction.
//
// pg-logical-replication 2.5.0, read before relying on it:
//  - acknowledge.auto acknowledges before an async handler finished: off.
//  - its keepalive timer acknowledges the last *received* LSN even with auto off: timeoutSeconds 0.
//  - flow control on: handlers run one at a time, awaited, with the socket paused meanwhile (and
//    the server's keepalives unread: a stall past wal_sender_timeout ends the stream, so we send
//    our status on a timer too).
//  - a handler that throws is reported and the queue goes on with the next message, so a failed
//    publish must stop the stream before any later commit can be acknowledged (see fail()).
// A transaction is published only once other sessions can see it: the walsender may send a
// commit before the committing backend has left the running set (visibility.ts), and a frame
// published then would be a ghost.
// Publishes are pipelined: a transaction's events go to the bus as soon as its Commit is read,
// without waiting for the previous publish (the bus keeps their order), and an LSN is
// acknowledged only once every publish up to it has succeeded. The handler awaits only when
// PIPELINE_DEPTH publishes are in flight, which pauses the socket: backpressure, bounded memory.
//  - acknowledge(lsn) reports lsn + 1 as flushed. Reporting a commit's end LSN + 1 would let a
//    restart skip a transaction whose commit record starts exactly at that end LSN, so we pass
//    lsn - 1 and the server sees the commit's end LSN, as PostgreSQL's own subscribers report.
//  - it never reconnects: the loop below rebuilds it and resumes from the slot's confirmed
//    position (START_REPLICATION at 0/0), with backoff. Delivery is at-least-once; gateways
//    drop duplicates by seq.
// A slot streams to one walsender at a time, so a second relay's START_REPLICATION fails with
// "replication slot ... is active": that is the standby loop of relay failover.
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import type { Bus } from '../bus/bus.js';
import { backoff } from '../util/backoff.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { formatLsn, parseLsn, type Lsn } from './lsn.js';
import { createSlot, dropSlot, isLost, readSlot, slotStatus } from './slot.js';
import { MESSAGE_COLUMNS, toChangeFrame, toMessage, type EventRow, type MessageRow } from '../chat/model.js';
import { HEARTBEAT_PREFIX, TransactionAssembler, type ChangeEvent } from './transactions.js';
import { VisibilityGate } from './visibility.js';

export const PUBLICATION = 'walcast';

/** Publishes in flight before the relay stops reading the WAL. */
const PIPELINE_DEPTH = 64;
/** How often the relay reports its confirmed position without being asked. */
const STATUS_INTERVAL_MS = 10_000;

export interface RelayOptions {
  databaseUrl: string;
  slot: string;
  heartbeatMs: number;
  /** Create the slot as a PostgreSQL 17+ failover slot. */
  slotFailover?: boolean;
  /** How often the slot's lag and retained WAL are read into /metrics. */
  statsMs?: number;
  /** Backoff between stream attempts. */
  minRetryMs?: number;
  maxRetryMs?: number;
}

export type RelayState = 'idle' | 'connecting' | 'streaming' | 'standby' | 'stopped';

/** What a process holds of its relay, on its own thread (Relay) or in a worker thread (RelayThread). */
export interface RelayHandle {
  readonly status: RelayState;
  isStreaming(): boolean;
  start(): void;
  /** Finish and acknowledge what was read, then end the stream. */
  stop(): Promise<void>;
}

export class Relay implements RelayHandle {
  private state: RelayState = 'idle';
  private service: LogicalReplicationService | null = null;
  private assembler = new TransactionAssembler();
  private lastAcked: Lsn = 0n;
  private failed: Error | null = null;
  /** Commits read but not yet acknowledged, in LSN order: their publish, and whether it is done. */
  private pipeline: { lsn: Lsn; done: boolean; published: Promise<void> }[] = [];
  private statusTimer: NodeJS.Timeout | null = null;
  /** Holds each transaction back until other sessions can see it (visibility.ts). */
  private gate: VisibilityGate | null = null;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private readonly stateListeners: ((s: RelayState) => void)[] = [];

  constructor(
    private readonly opts: RelayOptions,
    private readonly pool: Pool,
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  get status(): RelayState {
    return this.state;
  }

  isStreaming(): boolean {
    return this.state === 'streaming';
  }

  /** Called on every state change (the relay thread reports them to its process). */
  onStateChange(listener: (s: RelayState) => void): void {
    this.stateListeners.push(listener);
  }

  /** The last LSN this relay reported as confirmed (for tests and diagnostics). */
  get confirmedLsn(): string {
    return formatLsn(this.lastAcked);
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
    if (this.opts.heartbeatMs > 0) {
      this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.opts.heartbeatMs);
      this.heartbeatTimer.unref();
    }
    this.statsTimer = setInterval(() => void this.slotStats(), this.opts.statsMs ?? 5000);
    this.statsTimer.unref();
    // Our position on a timer as well: while the socket is paused for backpressure the server's
    // keepalive requests go unread, and it would end the stream after wal_sender_timeout.
    this.statusTimer = setInterval(() => this.isStreaming() && this.sendStatus(this.lastAcked), STATUS_INTERVAL_MS);
    this.statusTimer.unref();
    void this.slotStats();
  }

  /** Finish the transaction in hand (publish, acknowledge), then end the stream. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.statsTimer) clearInterval(this.statsTimer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.wake?.();
    // Publish and acknowledge what was read before the stream ends: acks after stop() are lost.
    await Promise.allSettled(this.pipeline.map((e) => e.published));
    await this.service?.stop().catch(() => {});
    await this.loop;
    this.setState('stopped');
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopping) {
      const startedAt = Date.now();
      try {
        // While the bus is down every publish would fail: wait for it rather than churn streams.
        while (!this.bus.isUp() && !this.stopping) await this.sleep(200);
        if (this.stopping) break;
        await this.prepareSlot();
        await this.stream();
        if (!this.stopping) this.log.warn('replication stream ended; restarting');
      } catch (e) {
        if (this.stopping) break;
        const busy = /is active for PID/i.test(String((e as Error)?.message));
        this.setState(busy ? 'standby' : 'connecting');
        if (busy) this.log.debug('slot is streaming elsewhere; standing by', { slot: this.opts.slot });
        else this.log.warn('replication stream failed; retrying', { err: e as Error, ...hintFor(e) });
      } finally {
        this.service?.removeAllListeners();
        await this.service?.stop().catch(() => {});
        this.service = null;
      }
      if (this.stopping) break;
      this.metrics.relayRestarts.inc();
      if (Date.now() - startedAt > 10_000) attempt = 0;
      await this.sleep(backoff(attempt++, { minMs: this.opts.minRetryMs ?? 200, baseMs: this.opts.minRetryMs ?? 200, maxMs: this.opts.maxRetryMs ?? 3000 }));
    }
  }

  /** Makes sure the slot exists and can stream; recreates an invalidated one and asks for a resync. */
  private async prepareSlot(): Promise<void> {
    const slot = this.opts.slot;
    let info = await readSlot(this.pool, slot);
    if (info && isLost(info)) {
      this.metrics.relaySlotLost.inc();
      this.metrics.slotLost.set(1);
      this.log.error('REPLICATION SLOT LOST: PostgreSQL invalidated it (max_slot_wal_keep_size exceeded). Recreating it; gateways will re-sync every channel from the database.', { slot });
      await dropSlot(this.pool, slot);
      info = undefined;
    }
    if (!info) {
      // createSlot also writes a resync request into the WAL (see slot.ts).
      if (await createSlot(this.pool, slot, { failover: this.opts.slotFailover })) this.log.info('created replication slot', { slot });
      info = await readSlot(this.pool, slot);
    }
    this.lastAcked = info?.confirmed_flush_lsn ? parseLsn(info.confirmed_flush_lsn) : 0n;
  }

  private async stream(): Promise<void> {
    this.setState('connecting');
    this.failed = null;
    this.assembler = new TransactionAssembler();
    this.gate?.close(new Error('replication stream restarted'));
    this.gate = new VisibilityGate(async () => (await this.pool.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s')).rows[0]!.s);
    this.pipeline = [];
    this.metrics.relayPipelineDepth.set(0);
    const service = new LogicalReplicationService(
      // Bounded connect, and TCP keepalive so a dead database host is noticed without waiting for the OS default.
      { connectionString: this.opts.databaseUrl, application_name: 'walcast-relay', connectionTimeoutMillis: 10_000, keepAlive: true },
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
    );
    this.service = service;
    service.on('start', () => {
      // stop() may have run while we were connecting: it could not reach this stream then.
      if (this.stopping) return void service.stop().catch(() => {});
      this.setState('streaming');
      this.log.info('streaming', { slot: this.opts.slot, from: formatLsn(this.lastAcked) });
    });
    service.on('data', (_lsn: string, msg: Pgoutput.Message) => this.onData(msg));
    service.on('heartbeat', (_lsn: string, _ts: number, shouldRespond: boolean) => {
      // The server asks for a reply: report what we have really published, never what we merely received.
      if (shouldRespond) this.sendStatus(this.lastAcked);
    });
    service.on('error', (e: Error) => this.fail(e));
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [PUBLICATION], messages: true });
    if (this.stopping) return;
    await service.subscribe(plugin, this.opts.slot, '0/00000000');
    if (this.failed) throw this.failed;
  }

  /** One decoded WAL message. Returns a promise (the library then waits) only to apply backpressure. */
  private onData(msg: Pgoutput.Message): Promise<void> | void {
    if (this.failed || this.stopping) return;
    const d = this.assembler.push(msg);
    switch (d.kind) {
      case 'commit': {
        const lsn = parseLsn(d.endLsn);
        if (d.events.length === 0) return this.enqueue(lsn, null);
        const gate = this.gate!;
        return this.enqueue(lsn, async () => {
          await gate.visible(d.xid);
          if (d.unresolved > 0) await this.readBack(d.events);
          await this.bus.publish(d.events);
          this.metrics.relayTransactions.inc();
          if (d.committedAt) this.metrics.commitToPublish.observe(Math.max(0, Date.now() - d.committedAt) / 1000);
          for (const ev of d.events) this.metrics.relayEvents.inc({ kind: ev.frame.type });
        });
      }
      case 'resync':
        this.log.warn('slot was (re)created: asking every gateway to re-sync from the database', { epoch: d.epoch });
        return this.enqueue(parseLsn(d.lsn), () => this.bus.publish([{ kind: 'resync', epoch: d.epoch }]));
      case 'heartbeat':
        this.metrics.relayLagSeconds.set(Math.max(0, Date.now() - d.sentAt) / 1000);
        // Only whole transactions reach us (proto 1): once everything read before the heartbeat
        // is published, moving past it keeps the slot from pinning WAL while walcast is idle.
        return this.enqueue(parseLsn(d.lsn), null);
    }
  }

  /**
   * Completes change events whose message PostgreSQL sent without an unchanged out-of-line
   * value (a table without REPLICA IDENTITY FULL, which walcast's migrations set): read the
   * message back. Never on the normal path; logged so that it is noticed.
   */
  private async readBack(events: ChangeEvent[]): Promise<void> {
    for (const e of events) {
      const pending = (e as ChangeEvent & { pending?: EventRow }).pending;
      if (!pending) continue;
      this.log.warn('a change arrived without its message; reading it back (is REPLICA IDENTITY FULL set on messages?)', { channel: e.channel, seq: e.seq });
      const { rows } = await this.pool.query<MessageRow>(`SELECT ${MESSAGE_COLUMNS} FROM messages WHERE channel_id = $1 AND seq = $2`, [
        pending.channel_id,
        pending.target_seq,
      ]);
      const target = rows[0] ? toMessage(rows[0]) : undefined;
      e.frame = toChangeFrame(pending, target);
      if (target) e.target = target;
      delete (e as { pending?: EventRow }).pending;
    }
  }

  /**
   * Starts `publish` (or, without one, just marks the LSN) behind everything read before it;
   * acknowledges as far as every earlier publish has succeeded. Waits only when the pipeline
   * is full.
   */
  private enqueue(lsn: Lsn, publish: (() => Promise<void>) | null): Promise<void> | void {
    if (!publish && this.pipeline.length === 0) return this.acknowledge(lsn);
    const entry = { lsn, done: publish === null, published: Promise.resolve() };
    if (publish) {
      const pipeline = this.pipeline; // a restarted stream has a new one: late results of this one are ignored
      entry.published = publish().then(
        () => {
          entry.done = true;
          if (this.pipeline === pipeline) this.advance();
        },
        (e: unknown) => {
          if (this.pipeline === pipeline) this.fail(e as Error);
        },
      );
    }
    this.pipeline.push(entry);
    this.metrics.relayPipelineDepth.set(this.pipeline.length);
    if (this.pipeline.length >= PIPELINE_DEPTH) return this.pipeline[0]!.published;
  }

  /** Acknowledges the longest published prefix of the pipeline. */
  private advance(): void {
    if (this.failed) return;
    let acked: Lsn | null = null;
    while (this.pipeline[0]?.done) acked = this.pipeline.shift()!.lsn;
    this.metrics.relayPipelineDepth.set(this.pipeline.length);
    if (acked !== null) this.acknowledge(acked);
  }

  private acknowledge(lsn: Lsn): void {
    if (lsn <= this.lastAcked) return;
    this.lastAcked = lsn;
    this.sendStatus(lsn);
    this.metrics.relayAcks.inc();
  }

  private sendStatus(lsn: Lsn): void {
    if (lsn <= 0n || !this.service) return;
    void this.service.acknowledge(formatLsn(lsn - 1n)).catch(() => {});
  }

  /** Stop the stream at once: nothing after a failed publish may be acknowledged. */
  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    this.log.warn('relay stream failing', { err: e });
    void this.service?.stop().catch(() => {});
  }

  private async heartbeat(): Promise<void> {
    if (!this.isStreaming()) return;
    try {
      await this.pool.query(
        `SELECT pg_logical_emit_message(false, $1, (extract(epoch from clock_timestamp()) * 1000)::bigint::text)`,
        [HEARTBEAT_PREFIX],
      );
    } catch (e) {
      this.log.debug('heartbeat failed', { err: e as Error });
    }
  }

  /** Slot lag and retained WAL into /metrics, from every relay (a standby reports too). */
  private async slotStats(): Promise<void> {
    try {
      const s = await slotStatus(this.pool, this.opts.slot, PUBLICATION);
      const m = this.metrics;
      m.slotLost.set(!s.exists || s.wal_status === 'lost' ? 1 : 0);
      m.slotActive.set(s.active ? 1 : 0);
      m.slotRetainedBytes.set(s.retained_wal_bytes ?? 0);
      m.slotLagBytes.set(s.lag_bytes ?? 0);
      m.slotLagSeconds.set(s.lag_seconds ?? 0);
      m.slotSafeWalBytes.set(s.safe_wal_size ?? -1);
    } catch (e) {
      this.log.debug('reading slot status failed', { err: e as Error });
    }
  }

  private setState(s: RelayState): void {
    if (s === this.state) return;
    this.state = s;
    this.metrics.relayState.set(s === 'streaming' ? 1 : 0);
    for (const l of this.stateListeners) l(s);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

/** What to do about a failure whose message alone does not say it. */
function hintFor(e: unknown): { hint?: string } {
  if (/unsupported startup parameter: replication/i.test(String((e as Error)?.message)))
    return { hint: "the relay's DATABASE_URL leads to a connection pooler that does not pass replication connections (PgBouncer before 1.23): point the relay at PostgreSQL itself (docs/dba.md, \"Connection poolers\")" };
  return {};
}
