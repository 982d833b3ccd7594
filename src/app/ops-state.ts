// GET /ops/state.json (operators only, see ops.ts): what the ops page draws, as this process sees
// it. The replication slot is read from the database (as `walcast slot status` does), so any
// process with a database pool can show the slot's lag and retained WAL, also while no relay
// runs; the relay's own state, the gateway's sockets and the counters are this process's only.
// Counters are totals since start, with what the process merges into its /metrics (the relay
// thread's, a gateway instance's workers'); the page turns them into rates between two polls.
// A gateway instance with workers answers for the whole instance (instanceState).
import type { Bus } from '../bus/bus.js';
import { PUBLICATION, type RelayHandle } from '../cdc/relay.js';
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
  relay: RelayHandle | null;
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
  relay: { state: string; confirmed_lsn: string | null; heartbeat_lag_s: number } | null;
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
  /** A gateway instance with workers: each worker's process (null when it did not answer in time). */
  workers?: { index: number; pid: number | null; rss_bytes: number | null; connections: number | null }[];
}

/** At most one slot query per this interval, however many pages poll. */
const SLOT_CACHE_MS = 1000;

type Labels = Partial<Record<string, string | number>>;
type Sample = { name: string; values: { value: number; labels: Labels }[] };

/** The sum of a metric's samples (whose labels pass `keep`) over every registry merged here. */
function sum(samples: readonly Sample[], name: string, keep: (labels: Labels) => boolean = () => true): number {
  let n = 0;
  for (const m of samples) if (m.name === name) for (const v of m.values) if (keep(v.labels)) n += v.value;
  return n;
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
    const [checks, slotNow, samples] = await Promise.all([
      Promise.all(Object.entries(d.checks).map(async ([name, check]) => [name, await Promise.resolve(check()).catch(() => false)] as const)),
      readSlot(),
      Promise.all([m.registry.getMetricsAsJSON(), ...m.sources.map((source) => source().catch(() => []))]).then((parts) => parts.flat() as Sample[]),
    ]);
    const total = (name: string, keep?: (labels: Labels) => boolean) => sum(samples, name, keep);
    const g = d.gateway;
    return {
      now: Date.now(),
      role: d.role,
      pid: process.pid,
      uptime_s: Math.round((Date.now() - started) / 1000),
      rss_bytes: process.memoryUsage.rss(),
      bus: { kind: d.bus.kind, up: d.bus.isUp() },
      checks: Object.fromEntries(checks),
      relay: d.relay
        ? { state: d.relay.status, confirmed_lsn: 'confirmedLsn' in d.relay ? String(d.relay.confirmedLsn) : null, heartbeat_lag_s: total('walcast_relay_lag_seconds') }
        : null,
      slot: slotNow,
      gateway: g ? { connections: g.connections, max_connections: g.maxConnections, subscriptions: g.subscriptions, channels: g.channels } : null,
      counters: {
        messages_stored: total('walcast_messages_stored_total'),
        frames_delivered: total('walcast_ws_message_frames_total'),
        relay_transactions: total('walcast_relay_transactions_total'),
        relay_events: total('walcast_relay_events_total'),
        http_requests: total('walcast_http_requests_total'),
        http_client_errors: total('walcast_http_requests_total', status(400, 499)),
        http_server_errors: total('walcast_http_requests_total', status(500, 599)),
        rate_limited: total('walcast_rate_limited_total'),
        upgrades_refused: total('walcast_ws_upgrades_refused_total'),
        slow_consumers_closed: total('walcast_ws_slow_consumers_closed_total'),
      },
      problems: { total: d.problems.total, recent: d.problems.list() },
    };
  };
}

/**
 * A gateway instance with workers (supervisor.ts): the supervisor's own state (relay, slot,
 * readiness of every worker, counters merged from every worker's metrics) with the workers'
 * sockets summed and their recent problems merged, each marked with its worker. `channels` is
 * summed too: a channel with subscribers on two workers counts twice.
 */
export function instanceState(own: OpsState, workers: readonly { index: number; state: OpsState | null }[], keep = 50): OpsState {
  const answered = workers.filter((w): w is { index: number; state: OpsState } => w.state !== null);
  const gateways = answered.map((w) => w.state.gateway).filter((g): g is NonNullable<OpsState['gateway']> => g !== null);
  const add = (k: keyof NonNullable<OpsState['gateway']>) => gateways.reduce((n, g) => n + g[k], 0);
  const roles = new Set([...answered.flatMap((w) => w.state.role.split('+')), ...own.role.split('+')].filter(Boolean));
  const recent = [
    ...own.problems.recent,
    ...answered.flatMap((w) => w.state.problems.recent.map((p) => ({ ...p, fields: { ...p.fields, worker: String(w.index) } }))),
  ].sort((a, b) => a.t - b.t);
  return {
    ...own,
    role: [...roles].join('+'),
    rss_bytes: own.rss_bytes + answered.reduce((n, w) => n + w.state.rss_bytes, 0),
    gateway: gateways.length > 0 ? { connections: add('connections'), max_connections: add('max_connections'), subscriptions: add('subscriptions'), channels: add('channels') } : own.gateway,
    problems: { total: own.problems.total + answered.reduce((n, w) => n + w.state.problems.total, 0), recent: recent.slice(-keep) },
    workers: workers.map((w) => ({ index: w.index, pid: w.state?.pid ?? null, rss_bytes: w.state?.rss_bytes ?? null, connections: w.state?.gateway?.connections ?? null })),
  };
}
