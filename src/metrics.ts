// Prometheus metrics, one registry per process, served at /metrics.
import client from 'prom-client';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Another thread's or process's samples (its registry's getMetricsAsJSON()), merged into /metrics. */
export type MetricsSource = () => Promise<client.MetricObjectWithValues<client.MetricValue<string>>[]>;

/**
 * `defaults: false` leaves out Node's process metrics: a worker thread shares its process with
 * the main thread, which reports them.
 */
export function createMetrics(o: { defaults?: boolean } = {}) {
  const registry = new client.Registry();
  // prom-client's own names already start with process_ or nodejs_: walcast_process_cpu_seconds_total.
  if (o.defaults !== false) client.collectDefaultMetrics({ register: registry, prefix: 'walcast_' });
  const r = [registry];
  const sources: MetricsSource[] = [];
  return {
    registry,
    /** Merged into what render() serves: the relay thread's, or a gateway instance's workers'. */
    sources,
    /**
     * The Prometheus text of this registry and every source: counters and histograms summed,
     * gauges summed (connections, channels) unless declared otherwise. A source that does not
     * answer is left out, never fatal.
     */
    async render(): Promise<string> {
      if (sources.length === 0) return registry.metrics();
      const parts = await Promise.all([registry.getMetricsAsJSON(), ...sources.map((s) => s().catch(() => []))]);
      // prom-client omits e.g. process_start_time when aggregating; ours comes first, keep it.
      const kept = parts.map((p) => p.map((m) => (m.aggregator === 'omit' ? { ...m, aggregator: 'first' as const } : m)));
      return client.AggregatorRegistry.aggregate(kept).metrics();
    },
    contentType: registry.contentType,
    httpRequests: new client.Counter({ name: 'walcast_http_requests_total', help: 'HTTP API requests', labelNames: ['method', 'status'] as const, registers: r }),
    messagesStored: new client.Counter({ name: 'walcast_messages_stored_total', help: 'Messages stored by chat.postMessage (retries excluded)', registers: r }),
    writeBatchSize: new client.Histogram({ name: 'walcast_write_batch_size', help: 'Posts per group-commit transaction', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], registers: r }),
    writeBatchSeconds: new client.Histogram({ name: 'walcast_write_batch_seconds', help: 'Duration of a group-commit transaction, BEGIN to COMMIT', buckets: LATENCY_BUCKETS, registers: r }),
    writeQueueDepth: new client.Gauge({ name: 'walcast_write_queue_depth', help: 'Posts waiting for a write lane', registers: r }),
    relayState: new client.Gauge({ name: 'walcast_relay_streaming', help: '1 while this relay streams the replication slot', registers: r }),
    relayEvents: new client.Counter({ name: 'walcast_relay_events_total', help: 'Events published to the bus by the relay', labelNames: ['kind'] as const, registers: r }),
    relayPipelineDepth: new client.Gauge({ name: 'walcast_relay_pipeline_depth', help: 'Committed transactions read from the WAL whose publish (or an earlier one) has not finished yet', registers: r }),
    relayTransactions: new client.Counter({ name: 'walcast_relay_transactions_total', help: 'Committed transactions relayed', registers: r }),
    relayAcks: new client.Counter({ name: 'walcast_relay_acknowledgements_total', help: 'Standby status updates sent with a new confirmed LSN', registers: r }),
    relayRestarts: new client.Counter({ name: 'walcast_relay_stream_restarts_total', help: 'Times the replication stream ended and was restarted', registers: r }),
    relayLagSeconds: new client.Gauge({ name: 'walcast_relay_lag_seconds', help: 'Age of the last heartbeat when it came out of the WAL', registers: r }),
    slotRetainedBytes: new client.Gauge({ name: 'walcast_slot_retained_wal_bytes', help: 'WAL the slot keeps from being removed (current WAL - restart_lsn)', registers: r }),
    slotLagBytes: new client.Gauge({ name: 'walcast_slot_lag_bytes', help: 'WAL written but not yet acknowledged by the relay (current WAL - confirmed_flush_lsn)', registers: r }),
    slotLagSeconds: new client.Gauge({ name: 'walcast_slot_lag_seconds', help: 'Replication lag of the slot in seconds (flush_lag while active, time inactive otherwise)', registers: r }),
    slotActive: new client.Gauge({ name: 'walcast_slot_active', help: '1 while some walsender streams the slot (this relay or another)', registers: r }),
    slotSafeWalBytes: new client.Gauge({ name: 'walcast_slot_safe_wal_size_bytes', help: 'WAL that may still be written before the slot is invalidated (-1: unlimited)', registers: r }),
    slotLost: new client.Gauge({ name: 'walcast_slot_lost', help: '1 while the slot is invalidated (wal_status lost) or missing', registers: r }),
    relaySlotLost: new client.Counter({ name: 'walcast_relay_slot_lost_total', help: 'Times the replication slot was found invalidated or missing and recreated', registers: r }),
    commitToPublish: new client.Histogram({ name: 'walcast_relay_commit_to_publish_seconds', help: 'From COMMIT (WAL timestamp) to the bus accepting the event', buckets: LATENCY_BUCKETS, registers: r }),
    commitToSend: new client.Histogram({ name: 'walcast_gateway_commit_to_send_seconds', help: 'From COMMIT (WAL timestamp) to the live frame handed to the sockets', buckets: LATENCY_BUCKETS, registers: r }),
    wsConnections: new client.Gauge({ name: 'walcast_ws_connections', help: 'Open WebSocket connections', registers: r }),
    wsRefused: new client.Counter({ name: 'walcast_ws_upgrades_refused_total', help: 'WebSocket upgrades refused', labelNames: ['reason'] as const, registers: r }),
    wsFramesOut: new client.Counter({ name: 'walcast_ws_message_frames_total', help: 'message frames delivered', labelNames: ['path'] as const, registers: r }),
    wsSlowClosed: new client.Counter({ name: 'walcast_ws_slow_consumers_closed_total', help: 'Sockets closed for exceeding the backpressure limit', registers: r }),
    hubs: new client.Gauge({ name: 'walcast_gateway_channels', help: 'Channels this gateway serves', registers: r }),
    gapFills: new client.Counter({ name: 'walcast_gateway_gap_fills_total', help: 'Database reads to fill a gap in the live stream', registers: r }),
    catchupReads: new client.Counter({ name: 'walcast_gateway_catchup_reads_total', help: 'Database pages read for catch-up', registers: r }),
    duplicatesDropped: new client.Counter({ name: 'walcast_gateway_duplicates_dropped_total', help: 'Live events dropped because their seq was already delivered', registers: r }),
    resyncs: new client.Counter({ name: 'walcast_gateway_resyncs_total', help: 'Channel re-syncs from the database (bus regained, resync events)', registers: r }),
    rateLimited: new client.Counter({ name: 'walcast_rate_limited_total', help: 'Requests refused by a rate limit', labelNames: ['scope'] as const, registers: r }),
    catchupCoalesced: new client.Counter({ name: 'walcast_gateway_catchup_coalesced_total', help: 'Catch-up pages served by joining a read already in flight (no extra query)', registers: r }),
    membershipBatches: new client.Counter({ name: 'walcast_gateway_membership_queries_total', help: 'Membership queries at subscribe (one per channel per batch)', registers: r }),
    gatewayDbInFlight: new client.Gauge({ name: 'walcast_gateway_db_reads_in_flight', help: 'Gateway database reads in flight (bounded by WALCAST_GATEWAY_DB_CONCURRENCY)', registers: r }),
    gatewayDbInFlightMax: new client.Gauge({ name: 'walcast_gateway_db_reads_in_flight_max', help: 'Highest number of gateway database reads in flight at once since start', registers: r, aggregator: 'max' }),
    gatewayDbWaiting: new client.Gauge({ name: 'walcast_gateway_db_reads_waiting', help: 'Gateway database reads queued for a slot', registers: r }),
    wsDrained: new client.Counter({ name: 'walcast_ws_drained_total', help: 'Sockets closed by a graceful drain (1012 with a retry hint)', registers: r }),
    fanoutDeferred: new client.Counter({ name: 'walcast_gateway_fanout_deferred_total', help: 'Turns in which a channel used its fan-out budget and yielded to other channels', registers: r }),
    busShardPublishes: new client.Counter({ name: 'walcast_bus_shard_publishes_total', help: 'SPUBLISH commands accepted (Redis Cluster bus), by the master owning the slot at send time', labelNames: ['shard'] as const, registers: r }),
    busShardEvents: new client.Counter({ name: 'walcast_bus_shard_events_total', help: 'Events published (Redis Cluster bus; one SPUBLISH carries a transaction\'s events for one channel), by shard', labelNames: ['shard'] as const, registers: r }),
    busShardPublishErrors: new client.Counter({ name: 'walcast_bus_shard_publish_errors_total', help: 'SPUBLISH commands rejected (Redis Cluster bus; the relay restarts its stream), by shard', labelNames: ['shard'] as const, registers: r }),
    busShardSubscribes: new client.Counter({ name: 'walcast_bus_shard_subscribes_total', help: 'SSUBSCRIBEs confirmed by a master (Redis Cluster bus; first subscriptions and re-subscriptions), by shard', labelNames: ['shard'] as const, registers: r }),
    busShardSubscribeErrors: new client.Counter({ name: 'walcast_bus_shard_subscribe_errors_total', help: 'SSUBSCRIBEs that failed (Redis Cluster bus; retried with backoff), by shard', labelNames: ['shard'] as const, registers: r }),
    busShardLapses: new client.Counter({ name: 'walcast_bus_shard_subscriptions_lapsed_total', help: 'Subscriptions that may have lapsed (connection lost, failover, slot moved; Redis Cluster bus): each is re-subscribed, then its channel re-synced', labelNames: ['shard'] as const, registers: r }),
    workers: new client.Gauge({ name: 'walcast_gateway_workers', help: 'Gateway worker processes of this instance that are up (WALCAST_GATEWAY_WORKERS)', registers: r }),
    workerRestarts: new client.Counter({ name: 'walcast_gateway_worker_restarts_total', help: 'Gateway worker processes that exited unexpectedly and were replaced', registers: r }),
    fanoutShed: new client.Counter({ name: 'walcast_gateway_fanout_shed_total', help: 'Live events not queued because a channel queue was full (re-read from the database later)', registers: r }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
