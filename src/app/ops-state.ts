// GET /ops/state.json (operators only, see ops.ts): what the ops page draws, as this process sees
// it. The replication slot is read from the database (as `walcast slot status` does), so any
// process with a database pool can show the slot's lag and retained WAL, also while no relay
// runs; the relay's own state, the gateway's sockets and the counters are this process's only.
// Counters are totals since start; the page turns them into rates between two polls.
import type { Bus } from '../bus/bus.js';
import { PUBLICATION, type Relay } from '../cdc/relay.js';
import { slotStatus, type SlotStatus } from '../cdc/slot.js';
import type { Pool } from '../db/pool.js';
import type { Gateway } from '../gateway/gateway.js';
import type { Metrics } from '../metrics.js';
import type { ReadinessCheck } from './ops.js';
import type { LoggedProblem, RecentProblems } from './recent-log.js';

export interface OpsStateDeps {
  role: string;
  bus: Bus;
  pool: Pool;
  slot: string;
  checks: Record<string, ReadinessCheck>;
  relay: Relay | null;
  gateway: Gateway | null;
  metrics: Metrics;
  problems: RecentProblems;
}

export interface OpsState {
  /** ms since the epoch, on this process's clock (rates are computed between two of these). */
  now: number;
  role: string;
  pid: number;
  uptime_s: number;
  rss_bytes: number;
  bus: { kind: string; up: boolean };
  checks: Record<string, boolean>;
  /** Null when this process runs no relay. */
  relay: { state: string; confirmed_lsn: string; heartbeat_lag_s: number } | null;
  /** Read from the database; `error` when it cannot be read. */
  slot: SlotStatus | { error: string };
  /** Null when this process runs no gateway. */
  gateway: { connections: number; max_connections: number; subscriptions: number; channels: number } | null;
  counters: {
    messages_stored: number;
    frames_delivered: number;
    relay_transactions: number;
    relay_events: number;
    http_requests: number;
    http_client_errors: number;
    http_server_errors: number;
    rate_limited: number;
    upgrades_refused: number;
    slow_consumers_closed: number;
  };
  problems: { total: number; recent: LoggedProblem[] };
}

/** At most one slot query per this interval, however many pages poll. */
const SLOT_CACHE_MS = 1000;

type Labels = Partial<Record<string, string | number>>;
type Summable = { get(): Promise<{ values: { value: number; labels: Labels }[] }> };

async function sum(metric: Summable, keep: (labels: Labels) => boolean = () => true): Promise<number> {
  const { values } = await metric.get();
  return values.reduce((n, v) => (keep(v.labels) ? n + v.value : n), 0);
}

export function opsState(d: OpsStateDeps): () => Promise<OpsState> {
  const started = Date.now();
  let slot: { at: number; value: Promise<SlotStatus | { error: string }> } | null = null;
  const readSlot = () => {
    if (!slot || Date.now() - slot.at >= SLOT_CACHE_MS) {
      slot = { at: Date.now(), value: slotStatus(d.pool, d.slot, PUBLICATION).catch((e: unknown) => ({ error: (e as Error).message ?? String(e) })) };
    }
    return slot.value;
  };
  return async () => {
    const m = d.metrics;
    const status = (min: number, max: number) => (l: Labels) => Number(l.status) >= min && Number(l.status) <= max;
    const [checks, slotNow, counters, heartbeatLag] = await Promise.all([
      Promise.all(Object.entries(d.checks).map(async ([name, check]) => [name, await Promise.resolve(check()).catch(() => false)] as const)),
      readSlot(),
      Promise.all([
        sum(m.messagesStored),
        sum(m.wsFramesOut),
        sum(m.relayTransactions),
        sum(m.relayEvents),
        sum(m.httpRequests),
        sum(m.httpRequests, status(400, 499)),
        sum(m.httpRequests, status(500, 599)),
        sum(m.rateLimited),
        sum(m.wsRefused),
        sum(m.wsSlowClosed),
      ]),
      sum(m.relayLagSeconds),
    ]);
    const [messagesStored, framesDelivered, relayTransactions, relayEvents, httpRequests, http4xx, http5xx, rateLimited, upgradesRefused, slowClosed] = counters;
    const g = d.gateway;
    return {
      now: Date.now(),
      role: d.role,
      pid: process.pid,
      uptime_s: Math.round((Date.now() - started) / 1000),
      rss_bytes: process.memoryUsage.rss(),
      bus: { kind: d.bus.kind, up: d.bus.isUp() },
      checks: Object.fromEntries(checks),
      relay: d.relay ? { state: d.relay.status, confirmed_lsn: d.relay.confirmedLsn, heartbeat_lag_s: heartbeatLag } : null,
      slot: slotNow,
      gateway: g ? { connections: g.connections, max_connections: g.maxConnections, subscriptions: g.subscriptions, channels: g.channels } : null,
      counters: {
        messages_stored: messagesStored!,
        frames_delivered: framesDelivered!,
        relay_transactions: relayTransactions!,
        relay_events: relayEvents!,
        http_requests: httpRequests!,
        http_client_errors: http4xx!,
        http_server_errors: http5xx!,
        rate_limited: rateLimited!,
        upgrades_refused: upgradesRefused!,
        slow_consumers_closed: slowClosed!,
      },
      problems: { total: d.problems.total, recent: d.problems.list() },
    };
  };
}
