// The seeds' Scenario A: "10k TPS, 3 Gateway instances, 100k total connections; P99 latency
// < 100 ms; 0 % message loss during the 10-minute test". Split roles as local processes
// (harness/topology.ts: embedded PostgreSQL, redis-server, api, relay; gateway instances from
// bench/scenario-a/instances.ts), 10,000 channels × 10 members, one socket per member (each post
// fans out to 10 sockets) spread round robin over the instances, client processes each on its own
// loopback source address with explicit source ports, posting processes with keep-alive HTTP.
// Then: posts stepped up (POST → frame p50/p95/p99 per step), the highest rate with p99 under the
// bound held (default 10 minutes), and a loss check over the whole run: every accepted post
// reached every member's socket exactly once, in seq order. CPU and RSS of every process,
// gateway memory per connection, deliveries per server CPU-second, and a paper model of 10k
// posts/s × 100k connections from the measured per-post and per-frame costs.
// Every size is a flag; --quick is a few hundred sockets for seconds. Writes
// <report>/<tag>-scenario-a.md and -raw.json (bench/scenario-a/report.ts renders them).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { rssBytes } from '../../harness/proc-stats.js';
import { HARNESS_ADMIN_TOKEN, startTopology, type Topology } from '../../harness/topology.js';
import { Tokens } from '../../src/auth/tokens.js';
import { PATHS } from '../../src/protocol.js';
import { Hist, type HistData } from '../lib/hist.js';
import { scenario } from '../lib/scenario.js';
import { Worker } from '../lib/workers.js';
import { judge, pairHash, type AcceptedTruth, type LossResult, type SocketRecords } from '../scenario-a/check.js';
import type { ClientCommand, ClientConnectResult, ClientSocketSpec, ClientStats } from '../scenario-a/client.js';
import { portFor, resolveMode, startGatewayInstances, type GatewayInstance, type InstanceMode } from '../scenario-a/instances.js';
import { delta, histWindow, mergeSums, postgresProcs, scrape, snapshot, tcpKernelMB, usage, type MetricSums, type Proc, type WindowUsage } from '../scenario-a/observe.js';
import type { PosterCommand, PosterRun } from '../scenario-a/poster.js';
import { renderReport } from '../scenario-a/report.js';

const CLIENT = fileURLToPath(new URL('../scenario-a/client.ts', import.meta.url));
const POSTER = fileURLToPath(new URL('../scenario-a/poster.ts', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Sockets per process at most: open files are capped at 20,000 per process here. */
const PER_PROCESS_MAX = 19_000;
/** The tag of the hold's first window (steps are tagged 1, 2, ...). */
export const HOLD_TAG = 1000;

/** Settings the roles run with besides harness/topology.ts's, all stated in the report. */
export const SCENARIO_A_ENV: Record<string, string> = {
  WALCAST_LOG_LEVEL: 'warn',
  // The load is 10k members posting in 10k channels: the per-user and per-channel post limits
  // (200/s and 2000/s by default) would not bite, but one poster process posts for thousands of
  // users, and the limits are per API process; set to 0 (off) so that the bench measures the path.
  WALCAST_POST_RATE_USER: '0',
  WALCAST_POST_RATE_CHANNEL: '0',
  // 100k sockets connect in a ramp of a minute or so; the default 2000 upgrades/s per gateway
  // process would only pace it, so it is off.
  WALCAST_WS_UPGRADE_RATE: '0',
  // 0: the open-files limit minus 512 per gateway process.
  WALCAST_WS_MAX_CONNECTIONS: '0',
};

export interface StepResult {
  kind: 'step' | 'hold';
  tag: number;
  /** Offered posts/s. */
  rate: number;
  seconds: number;
  sent: number;
  ok: number;
  errors: number;
  errorKinds: Record<string, number>;
  /** Accepted posts per second of posting. */
  achieved: number;
  maxBehindMs: number;
  /** POST → response (accepted posts). */
  resp: HistData;
  /** POST start → message frame at the socket. */
  e2e: HistData;
  expected: number;
  delivered: number;
  drainMs: number;
  usage: WindowUsage;
  metrics: StepMetrics;
  posterCpuMs: number;
  pass: boolean;
  why: string[];
  windows?: { tag: number; ok: number; frames: number; e2e: HistData }[];
}

export interface StepMetrics {
  /** Posts per group-commit transaction, and its duration (s), means. */
  batchSize: number;
  batchSeconds: number;
  commitToPublish: { n: number; mean: number; p50: number; p99: number };
  commitToSend: { n: number; mean: number; p50: number; p99: number };
  gapFills: number;
  resyncs: number;
  slowClosed: number;
  shed: number;
  fanoutDeferred: number;
}

export interface ProcMem {
  group: string;
  name: string;
  rssMB: number;
}

export interface HeapMB {
  heapUsed: number;
  heapTotal: number;
  external: number;
}

export interface ScenarioAResult {
  options: Record<string, unknown>;
  machine: { cpus: number; cpu: string; memGiB: number; kernel: string; node: string; openFiles: string };
  versions: { postgres: string; redis: string; commit: string };
  started: string;
  finished: string;
  estimateS: number;
  wallS: number;
  loadavg: { at: string; load: number[] }[];
  /** Every role's environment (secrets and addresses hidden), and what this benchmark set itself. */
  env: Record<string, string>;
  envGiven: Record<string, string>;
  mode: InstanceMode;
  instances: { name: string; ports: number[]; processes: number; sockets: number }[];
  setup: { channels: number; members: number; seconds: number };
  connect: {
    sockets: number;
    connected: number;
    failed: number;
    seconds: number;
    perSecond: number;
    retries: number;
    portsSkipped: number;
    errors: Record<string, number>;
    clientProcesses: number;
    tokenSeconds: number;
    /** Per socket: TCP connect + upgrade, and subscribe → subscribed (ms). */
    upgrade: HistData;
    subscribe: HistData;
    /** CPU over the ramp (token signing included). */
    usage: WindowUsage;
  };
  memory: {
    baseline: ProcMem[];
    connected: ProcMem[];
    end: ProcMem[];
    tcpKernelMB: { baseline: number; connected: number; end: number };
    /** The gateways' own view (their /metrics, summed): V8 heap used and allocated, and external (Buffers), MB. */
    gatewayHeap: { baseline: HeapMB; connected: HeapMB; end: HeapMB };
  };
  idle: WindowUsage;
  steps: StepResult[];
  hold: StepResult | null;
  holdChosen: string;
  loss: LossResult;
  clientTotals: { otherFrames: number; errorFrames: number; closed: number };
  files: string[];
}

export const scenarioA = scenario({
  name: 'scenario-a',
  summary: "seeds' Scenario A: 100k sockets on 3 gateway instances, 10k channels × 10 members, posts stepped to 10k/s, the best rate held 10 min, loss check; CPU/RSS per process, paper model",
  suite: false,
  options: {
    sockets: { type: 'number', default: 100_000, quick: 300, description: 'WebSocket connections in all (channels × members)' },
    channels: { type: 'number', default: 10_000, quick: 30, description: 'channels; each has sockets/channels members, one socket each' },
    instances: { type: 'number', default: 3, description: 'gateway instances' },
    processesPerInstance: { type: 'number', default: 2, quick: 1, description: 'processes per gateway instance (open files cap ~19k sockets per process)' },
    gatewayMode: { type: 'string', default: 'auto', description: 'workers (WALCAST_GATEWAY_WORKERS, one port per instance), processes (separate processes and ports, paired by the driver), auto (workers if this walcast has it)' },
    clientProcesses: { type: 'number', default: 0, quick: 2, description: 'client processes, each on its own loopback address (0: one per 12,500 sockets)' },
    posters: { type: 'number', default: 4, quick: 1, description: 'posting processes' },
    posterConnections: { type: 'number', default: 32, quick: 4, description: 'keep-alive HTTP connections per posting process' },
    rates: { type: 'numbers', default: [500, 1000, 2000, 4000, 7000, 10_000], quick: [20, 60], description: 'posts/s of the steps, in order' },
    stepSeconds: { type: 'number', default: 30, quick: 2, description: 'seconds of posting per step (0: no steps)' },
    stopAfterFail: { type: 'number', default: 1, description: '1: no higher step after one that failed (p99, loss of pace or errors); 0: every step' },
    holdRate: { type: 'number', default: 0, description: 'posts/s of the hold (0: the highest step that passed)' },
    holdSeconds: { type: 'number', default: 600, quick: 3, description: 'seconds the hold rate is held (0: no hold)' },
    windowSeconds: { type: 'number', default: 60, quick: 1, description: 'the hold is reported per window of this many seconds' },
    p99Ms: { type: 'number', default: 100, description: 'a step passes with p99 POST → frame below this (ms)' },
    idleSeconds: { type: 'number', default: 10, quick: 1, description: 'idle window measured after connecting (the background CPU)' },
    drainSeconds: { type: 'number', default: 60, quick: 15, description: 'how long a step waits for its last frames' },
    connectConcurrency: { type: 'number', default: 64, quick: 16, description: 'upgrades in flight per client process' },
    sourcePortFirst: { type: 'number', default: 10_000, description: 'first explicit source port (below the ephemeral range 32768+)' },
    sourceNet: { type: 'string', default: '127.0.10', description: 'client processes connect from <net>.1, <net>.2, ...' },
    roleEnv: { type: 'string', default: '', description: 'extra settings for every role, K=V,K=V (e.g. WALCAST_WRITE_CONCURRENCY=8)' },
    report: { type: 'string', default: 'bench/results', quick: '', description: "directory for <tag>-scenario-a.md and -raw.json ('' : print only)" },
    reportTag: { type: 'string', default: new Date().toISOString().slice(0, 10), description: 'file name prefix of the report' },
    injectFaults: { type: 'number', default: 0, description: '1: in each client process one socket drops a message and one sees a message twice (proves the loss check catches them; the run must fail)' },
    render: { type: 'string', default: '', description: 'run nothing: render the report of an earlier run from its -raw.json (written next to it)' },
  },
  async run(o, ctx): Promise<ScenarioAResult> {
    if (o.render) {
      const r = JSON.parse(readFileSync(o.render, 'utf8')) as ScenarioAResult;
      const md = o.render.replace(/-raw\.json$/, '.md');
      if (md !== o.render) writeFileSync(md, renderReport(r));
      return { ...r, files: md !== o.render ? [md] : [] };
    }
    const started = new Date();
    const t0 = performance.now();
    const members = Math.floor(o.sockets / o.channels);
    if (members < 1 || members * o.channels !== o.sockets) throw new Error(`--sockets (${o.sockets}) must be a multiple of --channels (${o.channels})`);
    const mode = resolveMode(o.gatewayMode);
    const gwProcesses = o.instances * o.processesPerInstance;
    if (Math.ceil(o.sockets / gwProcesses) > PER_PROCESS_MAX) throw new Error(`${o.sockets} sockets over ${gwProcesses} gateway processes is more than ${PER_PROCESS_MAX} each: raise --processes-per-instance`);
    const nClients = o.clientProcesses || Math.max(1, Math.ceil(o.sockets / 12_500));
    if (Math.ceil(o.sockets / nClients) > PER_PROCESS_MAX) throw new Error(`more than ${PER_PROCESS_MAX} sockets per client process: raise --client-processes`);
    if (o.sourcePortFirst + Math.ceil(o.sockets / nClients) * 1.2 > 65_000) throw new Error('not enough source ports above --source-port-first for that many sockets per client process');
    const roleEnv = { ...SCENARIO_A_ENV, ...parseEnv(o.roleEnv) };

    const estimate = estimateSeconds(o, nClients);
    ctx.log(
      `scenario-a: ${o.sockets} sockets, ${o.channels} channels × ${members}, ${o.instances} gateway instances × ${o.processesPerInstance} processes (${mode}), ${nClients} client processes, ${o.posters} posters; ` +
        `a full run takes about ${fmtDuration(estimate.total)} if every step passes (${Object.entries(estimate.parts).map(([k, v]) => `${k} ~${fmtDuration(v)}`).join(', ')})`,
    );

    const loadavg: ScenarioAResult['loadavg'] = [{ at: 'start', load: os.loadavg() }];
    const topo: Topology = await startTopology({ relays: 1, gateways: 0, env: roleEnv, parallel: true });
    let instances: GatewayInstance[] = [];
    const clients: Worker<ClientCommand>[] = [];
    const posters: Worker<PosterCommand>[] = [];
    try {
      instances = await startGatewayInstances(topo.env, o.instances, o.processesPerInstance, mode);
      const versions = await serverVersions(topo);
      const procs = (): Proc[] => [
        ...topo.api.pids().map((pid) => ({ group: 'api', name: 'api', pid, side: 'server' as const })),
        ...topo.relays.flatMap((r) => r.pids().map((pid) => ({ group: 'relay', name: r.name, pid, side: 'server' as const }))),
        ...instances.flatMap((g) => g.processes().map((p) => ({ group: g.name, name: p.name, pid: p.pid, side: 'server' as const }))),
        ...postgresProcs(topo.postgres?.pids() ?? []),
        ...topo.redis.pids().map((pid) => ({ group: 'redis', name: 'redis-server', pid, side: 'server' as const })),
        ...clients.flatMap((c, i) => c.pid().map((pid) => ({ group: 'clients', name: `client ${i + 1}`, pid, side: 'load' as const }))),
        ...posters.flatMap((c, i) => c.pid().map((pid) => ({ group: 'posters', name: `poster ${i + 1}`, pid, side: 'load' as const }))),
        { group: 'bench runner', name: 'bench runner', pid: process.pid, side: 'runner' as const },
      ];
      const memOf = (): ProcMem[] => procs().map((p) => ({ group: p.group, name: p.name, rssMB: Math.round(rssBytes(p.pid) / 2 ** 20) }));
      const metricUrls = { api: [topo.api.url], relay: topo.relays.map((r) => r.url), gateways: instances.flatMap((g) => g.ports.map((p) => `http://127.0.0.1:${p}`)) };
      const scrapeAll = async () => {
        const [api, relay, gateways] = await Promise.all(
          [metricUrls.api, metricUrls.relay, metricUrls.gateways].map(async (urls) => mergeSums(await Promise.all(urls.map((u) => scrape(u, HARNESS_ADMIN_TOKEN))))),
        );
        return { api: api!, relay: relay!, gateways: gateways! };
      };
      const gatewayHeap = async (): Promise<HeapMB> => {
        const m = mergeSums(await Promise.all(metricUrls.gateways.map((u) => scrape(u, HARNESS_ADMIN_TOKEN))));
        const mb = (k: string) => Math.round(((m.get(k) ?? 0) / 2 ** 20) * 10) / 10;
        return { heapUsed: mb('walcast_nodejs_heap_size_used_bytes'), heapTotal: mb('walcast_nodejs_heap_size_total_bytes'), external: mb('walcast_nodejs_external_memory_bytes') };
      };

      // ---- channels and members, through the API (member 0 creates, invites the others)
      const tSetup = performance.now();
      const user = (c: number, m: number) => `a${c}m${m}`;
      const signer = new Tokens(topo.secret);
      const channelIds = await createChannels(topo.api.url, signer, o.channels, members, user);
      const setupS = (performance.now() - tSetup) / 1000;
      ctx.log(`scenario-a: ${o.channels} channels × ${members} members in ${setupS.toFixed(1)} s`);

      // ---- load generators
      const ttl = Math.min(86_000, Math.ceil(estimate.total * 3) + 3600);
      clients.push(...(await Promise.all(Array.from({ length: nClients }, () => Worker.start<ClientCommand>(CLIENT)))));
      posters.push(...(await Promise.all(Array.from({ length: o.posters }, () => Worker.start<PosterCommand>(POSTER)))));
      const share: ClientSocketSpec[][] = clients.map(() => []);
      const perInstance = instances.map(() => 0);
      for (let j = 0; j < o.sockets; j++) {
        const ch = Math.floor(j / members);
        const g = j % o.instances; // a channel's members spread over every instance
        share[j % nClients]!.push({ ch, channel: channelIds[ch]!, user: user(ch, j % members), host: '127.0.0.1', port: portFor(instances[g]!, perInstance[g]!++) });
      }
      const perClient = Math.max(...share.map((s) => s.length));
      await Promise.all(
        clients.map((c, i) =>
          c.send({ op: 'init', secret: topo.secret, tokenTtlS: ttl, localAddress: `${o.sourceNet}.${i + 1}`, portFirst: o.sourcePortFirst, portLast: Math.min(65_000, o.sourcePortFirst + perClient * 2), sockets: share[i]!, injectFaults: o.injectFaults > 0 }),
        ),
      );
      await Promise.all(
        posters.map((p, i) =>
          p.send({
            op: 'init',
            apiUrl: topo.api.url,
            secret: topo.secret,
            tokenTtlS: ttl,
            connections: o.posterConnections,
            channels: channelIds.map((id, ch) => ({ ch, id, user: user(ch, 0) })).filter((_, ch) => ch % o.posters === i),
          }),
        ),
      );

      // ---- connect
      await sleep(500);
      const memBaseline = memOf();
      const tcpBaseline = tcpKernelMB();
      const heapBaseline = await gatewayHeap();
      ctx.log(`scenario-a: connecting ${o.sockets} sockets from ${nClients} processes`);
      const tConn = performance.now();
      const c0 = snapshot(procs());
      const progress = setInterval(() => {
        void Promise.all(clients.map((c) => c.send<ClientStats>({ op: 'stats' }))).then((s) => ctx.log(`  ${s.reduce((a, x) => a + x.open, 0)} sockets open, ${Math.round((performance.now() - tConn) / 1000)} s`));
      }, 15_000);
      let conn: ClientConnectResult[];
      try {
        conn = await Promise.all(clients.map((c) => c.send<ClientConnectResult>({ op: 'connect', concurrency: o.connectConcurrency })));
      } finally {
        clearInterval(progress);
      }
      const connUsage = usage(c0, snapshot(procs()), procs(), false);
      const connS = Math.max(...conn.map((c) => c.ms)) / 1000;
      const tokenS = Math.max(...conn.map((c) => c.tokenMs)) / 1000;
      const connected = conn.reduce((a, c) => a + c.connected, 0);
      const connErrors: Record<string, number> = {};
      for (const c of conn) for (const [k, v] of Object.entries(c.errors)) connErrors[k] = (connErrors[k] ?? 0) + v;
      ctx.log(
        `scenario-a: ${connected}/${o.sockets} sockets subscribed in ${connS.toFixed(1)} s (${Math.round(connected / Math.max(0.001, connS - tokenS))}/s after ${tokenS.toFixed(1)} s signing tokens); ` +
          `server ${connUsage.server} %, load generators ${connUsage.load} %, machine ${connUsage.machine} % of a core`,
      );
      await sleep(o.idleSeconds > 2 ? 3000 : 500);
      const memConnected = memOf();
      const tcpConnected = tcpKernelMB();
      const heapConnected = await gatewayHeap();

      // ---- idle background
      const i0 = snapshot(procs());
      await sleep(o.idleSeconds * 1000);
      const idle = usage(i0, snapshot(procs()), procs());
      loadavg.push({ at: 'idle', load: os.loadavg() });
      ctx.log(`scenario-a: idle: server ${idle.server} %, load generators ${idle.load} %, machine ${idle.machine} % of a core`);

      const stepAt = async (kind: 'step' | 'hold', tag: number, rate: number, seconds: number): Promise<StepResult> => {
        const m0 = await scrapeAll();
        const s0 = snapshot(procs());
        const runs = await Promise.all(posters.map((p) => p.send<PosterRun>({ op: 'run', rate: rate / posters.length, seconds, tag, ...(kind === 'hold' ? { windowSeconds: o.windowSeconds } : {}) })));
        const tPosted = performance.now();
        const ok = runs.reduce((a, r) => a + r.ok, 0);
        const okByTag: Record<number, number> = {};
        for (const r of runs) for (const [t, n] of Object.entries(r.okByTag)) okByTag[Number(t)] = (okByTag[Number(t)] ?? 0) + n;
        const tags = Object.keys(okByTag).map(Number);
        // Every accepted post goes to each connected member of its channel.
        const expected = Math.round(ok * members * (connected / o.sockets));
        let stats = await allStats(clients);
        const framesOf = (s: ClientStats[]) => s.reduce((a, x) => a + tags.reduce((b, t) => b + (x.tags[t]?.frames ?? 0), 0), 0);
        let delivered = framesOf(stats);
        let lastChange = performance.now();
        while (delivered < expected && performance.now() - tPosted < o.drainSeconds * 1000) {
          await sleep(200);
          stats = await allStats(clients);
          const d = framesOf(stats);
          if (d !== delivered) lastChange = performance.now();
          delivered = d;
          // Nothing more for a while although some are missing: a disconnected socket, or loss.
          if (performance.now() - lastChange > Math.max(10_000, (o.drainSeconds * 1000) / 3)) break;
        }
        const drainMs = Math.round(performance.now() - tPosted);
        const u = usage(s0, snapshot(procs()), procs());
        const m1 = await scrapeAll();
        const e2e = new Hist();
        for (const s of stats) for (const t of tags) if (s.tags[t]) e2e.merge(s.tags[t].hist);
        const resp = new Hist();
        for (const r of runs) resp.merge(r.resp);
        const sent = runs.reduce((a, r) => a + r.sent, 0);
        const errors = runs.reduce((a, r) => a + r.errors, 0);
        const errorKinds: Record<string, number> = {};
        for (const r of runs) for (const [k, v] of Object.entries(r.errorKinds)) errorKinds[k] = (errorKinds[k] ?? 0) + v;
        const postingS = Math.max(...runs.map((r) => r.seconds));
        const q = e2e.summary();
        const why: string[] = [];
        if (delivered < expected) why.push(`${expected - delivered} of ${expected} frames missing after ${(drainMs / 1000).toFixed(0)} s`);
        if (!(q.p99 < o.p99Ms)) why.push(`p99 ${q.p99.toFixed(0)} ms ≥ ${o.p99Ms} ms`);
        if (errors) why.push(`${errors} posts failed`);
        if (ok / postingS < rate * 0.95) why.push(`posts accepted at ${(ok / postingS).toFixed(0)}/s of ${rate}/s offered`);
        const step: StepResult = {
          kind,
          tag,
          rate,
          seconds,
          sent,
          ok,
          errors,
          errorKinds,
          achieved: ok / postingS,
          maxBehindMs: Math.max(...runs.map((r) => r.maxBehindMs)),
          resp: resp.data(),
          e2e: e2e.data(),
          expected,
          delivered,
          drainMs,
          usage: u,
          metrics: stepMetrics(m0, m1),
          posterCpuMs: runs.reduce((a, r) => a + r.cpuMs, 0),
          pass: why.length === 0,
          why,
        };
        if (kind === 'hold') {
          step.windows = tags.sort((a, b) => a - b).map((t) => {
            const h = new Hist();
            let frames = 0;
            for (const s of stats) if (s.tags[t]) (h.merge(s.tags[t].hist), (frames += s.tags[t].frames));
            return { tag: t, ok: okByTag[t] ?? 0, frames, e2e: h.data() };
          });
        }
        return step;
      };

      // ---- steps
      const steps: StepResult[] = [];
      for (const [k, rate] of (o.stepSeconds > 0 ? o.rates : []).entries()) {
        ctx.log(`scenario-a: step ${k + 1}/${o.rates.length}: ${rate} posts/s for ${o.stepSeconds} s`);
        const s = await stepAt('step', k + 1, rate, o.stepSeconds);
        steps.push(s);
        loadavg.push({ at: `${rate}/s`, load: os.loadavg() });
        const q = Hist.from(s.e2e).summary();
        ctx.log(
          `  ${s.ok} accepted (${s.achieved.toFixed(0)}/s), ${s.delivered}/${s.expected} frames, p50 ${q.p50.toFixed(1)} p95 ${q.p95.toFixed(1)} p99 ${q.p99.toFixed(1)} ms; ` +
            `server ${s.usage.server} %, load generators ${s.usage.load} %, machine ${s.usage.machine} %: ${s.pass ? 'pass' : `FAIL (${s.why.join('; ')})`}`,
        );
        if (!s.pass && o.stopAfterFail) break;
      }

      // ---- hold
      const passed = steps.filter((s) => s.pass);
      const holdRate = o.holdRate || (passed.length ? Math.max(...passed.map((s) => s.rate)) : Math.min(...o.rates));
      if (!(holdRate > 0) && o.holdSeconds > 0) throw new Error('no hold rate: give --hold-rate or --rates');
      const holdChosen = o.holdRate ? 'given (--hold-rate)' : passed.length ? 'the highest step that passed' : 'no step passed: the lowest step rate';
      let hold: StepResult | null = null;
      if (o.holdSeconds > 0) {
        ctx.log(`scenario-a: hold ${holdRate} posts/s for ${o.holdSeconds} s (${holdChosen})`);
        let shown = HOLD_TAG - 1;
        const watch = setInterval(() => {
          void allStats(clients).then((st) => {
            // The last window that is over (the current one is still filling).
            const tags = [...new Set(st.flatMap((s) => Object.keys(s.tags).map(Number)))].filter((t) => t >= HOLD_TAG).sort((a, b) => a - b);
            const t = tags[tags.length - 2];
            if (t === undefined || t <= shown) return;
            shown = t;
            const h = new Hist();
            for (const s of st) if (s.tags[t]) h.merge(s.tags[t].hist);
            const q = h.summary();
            ctx.log(`  hold window ${t - HOLD_TAG + 1}: ${q.n} frames, p50 ${q.p50.toFixed(1)} p95 ${q.p95.toFixed(1)} p99 ${q.p99.toFixed(1)} ms, load ${os.loadavg()[0]!.toFixed(2)}`);
          });
        }, o.windowSeconds * 1000);
        try {
          hold = await stepAt('hold', HOLD_TAG, holdRate, o.holdSeconds);
        } finally {
          clearInterval(watch);
        }
        loadavg.push({ at: 'hold', load: os.loadavg() });
        const q = Hist.from(hold.e2e).summary();
        ctx.log(`  hold: ${hold.ok} accepted, ${hold.delivered}/${hold.expected} frames, p50 ${q.p50.toFixed(1)} p95 ${q.p95.toFixed(1)} p99 ${q.p99.toFixed(1)} ms: ${hold.pass ? 'pass' : `FAIL (${hold.why.join('; ')})`}`);
      }

      // ---- loss check over the whole run
      await sleep(1000);
      const memEnd = memOf();
      const tcpEnd = tcpKernelMB();
      const heapEnd = await gatewayHeap();
      ctx.log('scenario-a: loss check');
      const records = await Promise.all(clients.map((c) => c.send<SocketRecords>({ op: 'records' })));
      const accepted = new Map<number, AcceptedTruth>();
      for (const p of posters) for (const [ch, a] of Object.entries(await p.send<Record<number, AcceptedTruth>>({ op: 'accepted' }))) accepted.set(Number(ch), a);
      const truth = await storedTruth(topo.databaseUrl, channelIds);
      const s0ByChannel = new Map<number, number>();
      for (const r of records) r.channel.forEach((ch, i) => r.s0[i]! >= 0 && s0ByChannel.set(ch, Math.min(s0ByChannel.get(ch) ?? Infinity, r.s0[i]!)));
      let storedTotal = 0;
      for (const [ch, s0] of s0ByChannel) storedTotal += truth.after(ch, s0).count;
      const loss = judge(records, truth.after, accepted, truth.at, storedTotal);
      const final = await allStats(clients);
      ctx.log(`scenario-a: ${loss.ok ? 'no loss' : 'LOSS'}: ${loss.socketsOk}/${loss.sockets} sockets got exactly the stored messages in order; ${loss.acceptedPosts} accepted posts, ${loss.acceptedNotStored} not stored`);

      const result: ScenarioAResult = {
        options: { ...o },
        machine: {
          cpus: os.cpus().length,
          cpu: os.cpus()[0]?.model ?? '?',
          memGiB: Math.round(os.totalmem() / 2 ** 30),
          kernel: `${os.type()} ${os.release()}`,
          node: process.version,
          openFiles: openFilesLimit(),
        },
        versions,
        started: started.toISOString(),
        finished: new Date().toISOString(),
        estimateS: estimate.total,
        wallS: Math.round((performance.now() - t0) / 1000),
        loadavg,
        env: { ...topo.env, DATABASE_URL: '(embedded)', REDIS_URL: '(local redis-server)', WALCAST_SECRET: '(random)', WALCAST_ADMIN_TOKEN: '(set)' },
        envGiven: roleEnv,
        mode,
        instances: instances.map((g, i) => ({ name: g.name, ports: g.ports, processes: g.processes().length, sockets: perInstance[i]! })),
        setup: { channels: o.channels, members, seconds: setupS },
        connect: {
          sockets: o.sockets,
          connected,
          failed: conn.reduce((a, c) => a + c.failed, 0),
          seconds: connS,
          perSecond: connected / Math.max(0.001, connS - tokenS),
          retries: conn.reduce((a, c) => a + c.retries, 0),
          portsSkipped: conn.reduce((a, c) => a + c.portsSkipped, 0),
          errors: connErrors,
          clientProcesses: nClients,
          tokenSeconds: tokenS,
          upgrade: conn.reduce((h, c) => h.merge(c.upgrade), new Hist()).data(),
          subscribe: conn.reduce((h, c) => h.merge(c.subscribe), new Hist()).data(),
          usage: connUsage,
        },
        memory: {
          baseline: memBaseline,
          connected: memConnected,
          end: memEnd,
          tcpKernelMB: { baseline: tcpBaseline, connected: tcpConnected, end: tcpEnd },
          gatewayHeap: { baseline: heapBaseline, connected: heapConnected, end: heapEnd },
        },
        idle,
        steps,
        hold,
        holdChosen,
        loss,
        clientTotals: { otherFrames: final.reduce((a, s) => a + s.otherFrames, 0), errorFrames: final.reduce((a, s) => a + s.errorFrames, 0), closed: final.reduce((a, s) => a + s.closed, 0) },
        files: [],
      };
      if (o.report) {
        const dir = path.resolve(o.report);
        mkdirSync(dir, { recursive: true });
        const base = path.join(dir, `${o.reportTag}-scenario-a`);
        result.files = [`${base}.md`, `${base}-raw.json`];
        writeFileSync(`${base}-raw.json`, JSON.stringify(result, null, 1) + '\n');
        writeFileSync(`${base}.md`, renderReport(result));
      }
      return result;
    } finally {
      await Promise.all([...clients, ...posters].map((w) => w.close()));
      await Promise.all(instances.map((g) => g.close()));
      await topo.close();
    }
  },
  print: (r) => renderReport(r) + (r.files.length ? `\nwritten: ${r.files.join(', ')}\n` : ''),
  ok: (r) => r.loss.ok,
});

function parseEnv(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`--role-env: expected K=V, not ${kv}`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

const allStats = (clients: Worker<ClientCommand>[]) => Promise.all(clients.map((c) => c.send<ClientStats>({ op: 'stats' })));

export function fmtDuration(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** Wall time of a run in which every step passes (the upper bound with the default stop-after-fail). */
export function estimateSeconds(o: { sockets: number; channels: number; rates: number[]; stepSeconds: number; holdSeconds: number; idleSeconds: number }, clients: number) {
  const posts = o.rates.reduce((a, r) => a + r * o.stepSeconds, 0) + Math.max(0, ...o.rates) * o.holdSeconds;
  const parts = {
    // measured here: ~150 channels/s set up (create + invite), ~450 sockets/s ramp on 2 busy cores
    // (~2 ms of gateway CPU and ~0.6 ms of PostgreSQL per socket): ~800/s assumed on idle ones
    'start and set-up': 15 + o.channels / 150,
    connect: (o.sockets / clients) * 0.0001 + o.sockets / 800,
    steps: o.idleSeconds + 4 + (o.stepSeconds > 0 ? o.rates.length * (o.stepSeconds + 3) : 0),
    hold: o.holdSeconds + (o.holdSeconds ? 3 : 0),
    'loss check': 5 + posts / 100_000,
  };
  return { total: Object.values(parts).reduce((a, b) => a + b, 0), parts };
}

async function createChannels(apiBase: string, signer: Tokens, channels: number, members: number, user: (c: number, m: number) => string): Promise<string[]> {
  const ids: string[] = new Array(channels);
  const call = async (token: string, method: string, body: unknown) => {
    for (let attempt = 0; ; attempt++) {
      const r = await fetch(`${apiBase}${PATHS.api}${method}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const json = (await r.json()) as any;
      if (json?.ok) return json;
      if (attempt >= 5 || r.status < 500) throw new Error(`${method}: ${r.status} ${JSON.stringify(json)}`);
      await sleep(200 * 2 ** attempt);
    }
  };
  let next = 0;
  const lane = async () => {
    while (next < channels) {
      const c = next++;
      const token = await signer.sign(user(c, 0), 3600);
      ids[c] = (await call(token, 'conversations.create', { name: `scenario-a-${c}` })).channel.id;
      if (members > 1) await call(token, 'conversations.invite', { channel: ids[c], users: Array.from({ length: members - 1 }, (_, m) => user(c, m + 1)) });
    }
  };
  await Promise.all(Array.from({ length: Math.min(32, channels) }, lane));
  return ids;
}

/** The stored messages of every channel: per channel, the hash of each seq's (seq, id). */
async function storedTruth(url: string, channelIds: string[]) {
  const bySeq = new Map<number, { hash: Uint32Array; present: Uint8Array; max: number }>();
  const index = new Map(channelIds.map((id, i) => [id, i]));
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (let i = 0; i < channelIds.length; i += 500) {
      const chunk = channelIds.slice(i, i + 500);
      const { rows } = await c.query<{ channel_id: string; seq: string; id: string }>('SELECT channel_id, seq, id::text AS id FROM messages WHERE channel_id = ANY($1) ORDER BY channel_id, seq', [chunk]);
      const grouped = new Map<number, { seq: number; id: string }[]>();
      for (const r of rows) {
        const ch = index.get(r.channel_id)!;
        (grouped.get(ch) ?? grouped.set(ch, []).get(ch)!).push({ seq: Number(r.seq), id: r.id });
      }
      for (const [ch, list] of grouped) {
        const max = list[list.length - 1]!.seq;
        const t = { hash: new Uint32Array(max + 1), present: new Uint8Array(max + 1), max };
        for (const m of list) (t.hash[m.seq] = pairHash(m.seq, m.id)), (t.present[m.seq] = 1);
        bySeq.set(ch, t);
      }
    }
  } finally {
    await c.end();
  }
  const memo = new Map<string, { count: number; last: number; hash: number }>();
  return {
    /** Messages stored after s0 (every member of a channel asks the same). */
    after: (ch: number, s0: number) => {
      const key = `${ch}:${s0}`;
      const known = memo.get(key);
      if (known) return known;
      const t = bySeq.get(ch);
      let count = 0;
      let hash = 0;
      let last = s0;
      if (t) for (let s = s0 + 1; s <= t.max; s++) if (t.present[s]) (count++, (hash = (hash + t.hash[s]!) >>> 0), (last = s));
      const out = { count, last, hash };
      memo.set(key, out);
      return out;
    },
    /** Of these seqs, how many are stored, and their hash sum. */
    at: (ch: number, seqs: number[]) => {
      const t = bySeq.get(ch);
      let found = 0;
      let hash = 0;
      if (t) for (const s of seqs) if (s <= t.max && t.present[s]) (found++, (hash = (hash + t.hash[s]!) >>> 0));
      return { found, hash };
    },
  };
}

function openFilesLimit(): string {
  try {
    const [soft, hard] = execFileSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).trim().split('\n');
    return `${soft} (hard ${hard}) per process`;
  } catch {
    return '?';
  }
}

async function serverVersions(topo: Topology): Promise<ScenarioAResult['versions']> {
  const sh = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
    } catch {
      return '?';
    }
  };
  const c = new pg.Client({ connectionString: topo.databaseUrl });
  await c.connect();
  const pgv = (await c.query('SHOW server_version')).rows[0].server_version as string;
  await c.end();
  return { postgres: pgv, redis: /v=(\S+)/.exec(sh('redis-server', ['--version']))?.[1] ?? '?', commit: sh('git', ['rev-parse', '--short', 'HEAD']) + (sh('git', ['status', '--porcelain']).length > 0 ? ' (with local changes)' : '') };
}

function stepMetrics(a: { api: MetricSums; relay: MetricSums; gateways: MetricSums }, b: { api: MetricSums; relay: MetricSums; gateways: MetricSums }): StepMetrics {
  const batches = delta(a.api, b.api, 'walcast_write_batch_size_count');
  const ms = (x: { n: number; mean: number; p50: number; p99: number }) => ({ n: x.n, mean: x.mean * 1000, p50: x.p50 * 1000, p99: x.p99 * 1000 });
  return {
    batchSize: batches > 0 ? delta(a.api, b.api, 'walcast_write_batch_size_sum') / batches : NaN,
    batchSeconds: batches > 0 ? delta(a.api, b.api, 'walcast_write_batch_seconds_sum') / batches : NaN,
    commitToPublish: ms(histWindow(a.relay, b.relay, 'walcast_relay_commit_to_publish_seconds')),
    commitToSend: ms(histWindow(a.gateways, b.gateways, 'walcast_gateway_commit_to_send_seconds')),
    gapFills: delta(a.gateways, b.gateways, 'walcast_gateway_gap_fills_total'),
    resyncs: delta(a.gateways, b.gateways, 'walcast_gateway_resyncs_total'),
    slowClosed: delta(a.gateways, b.gateways, 'walcast_ws_slow_consumers_closed_total'),
    shed: delta(a.gateways, b.gateways, 'walcast_gateway_fanout_shed_total'),
    fanoutDeferred: delta(a.gateways, b.gateways, 'walcast_gateway_fanout_deferred_total'),
  };
}
