// The fan-out ceiling of one process (issue 14, "one process keeps up too"): one channel, many
// subscribers, posts stepped up, the same load generator against
//  - uws: a bare uWebSockets.js publisher (bench/sources/uws-publisher.ts): a POST publishes a
//    frame of walcast's `message` shape to the topic, then is answered; no storage, no auth;
//  - start: `walcast start`, one process (embedded PostgreSQL, in-process bus, api, relay and
//    gateway);
//  - split (optional): api, relay and gateway(s) as processes, redis-server, the run's PostgreSQL.
// Every system gets its own subscriber processes (bench/worker.ts, walcast protocol, the same
// code for all; each process on its own loopback source address) and one poster process posts
// to all of them, open loop, one HTTP POST per message. The text of a post carries the time it
// was due by the schedule and the time it was sent: latency is from the due time (a poster or
// server that falls behind is charged for it: no coordinated omission), and also reported from
// the send. Steps are interleaved: at each rate every system runs once, in an order rotated from
// step to step, so the shared machine's background load falls on all of them alike.
// Per step and system: POST → frame latency at the subscribers (p50/p95/p99/max), frames/s
// delivered, whether every subscriber got every frame (per socket, and seqs checked online: no
// gap, no repeat), server CPU and the load generator's CPU (from /proc; per client process
// also its event-loop utilisation), the whole machine's busy share, and walcast's
// commit → publish (relay) and commit → send (gateway) p99 from /metrics over the step.
// The ceiling of a system: its highest step with p99 < --p99-ms and every frame delivered.
// Writes <report>/<tag>-ceiling.md and -raw.json (--report '' to only print).
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuWindow, withDescendants, type PidGroups } from '../../harness/proc-stats.js';
import { track, waitUntilUp } from '../../harness/process.js';
import { apiCaller } from '../../harness/load/api.js';
import { machine, table } from '../../harness/load/format.js';
import { scrape, type Scrape } from '../../harness/load/metrics.js';
import { newChannelId } from '../../src/chat/ids.js';
import { freePort } from '../../src/db/embedded.js';
import { PATHS } from '../../src/protocol.js';
import { Hist, type HistData } from '../lib/hist.js';
import { allStats, plan, sleep, type PostResult, type StatsResult } from '../lib/measure.js';
import { scenario, type Context, type OptionSpecs, type Values } from '../lib/scenario.js';
import { BENCH_ENV, createChannels, methodUrl, startStack } from '../lib/stack.js';
import { startStandalone } from '../lib/standalone.js';
import { startWorkers, type Worker } from '../lib/workers.js';

const PUBLISHER = fileURLToPath(new URL('../sources/uws-publisher.ts', import.meta.url));
const SYSTEMS = { uws: 'bare uWS publisher', start: 'walcast start', split: 'split roles' } as const;
type SystemName = keyof typeof SYSTEMS;
const ADMIN = 'ceiling-bench-admin-token-0123456789';
/** Open files per process are capped at 20,000 here; leave room for the process's own. */
const MAX_SOCKETS_PER_WORKER = 19_000;
/** A client process this busy (event loop or CPU) is taken as the limit of the step. */
const SATURATED = 0.9;

export interface CeilingStep {
  system: SystemName;
  round: number;
  rate: number;
  /** POSTs sent, answered 200, failed; the achieved rate; how late the poster got. */
  sent: number;
  posted: number;
  postErrors: number;
  postsPerS: number;
  posterBehindMs: number;
  postResponse: HistData;
  expected: number;
  delivered: number;
  framesPerS: number;
  /** Sockets that got every frame of the step; fewest and most frames one socket got. */
  complete: number;
  subscribers: number;
  minPerSocket: number;
  maxPerSocket: number;
  seqGaps: number;
  seqRepeats: number;
  disconnects: number;
  frameBytes: number;
  /** From the due time (the schedule) and from the actual send. */
  latency: HistData;
  latencyFromSend: HistData;
  /** % of one core over the step (posting and drain), per server group, the clients and the poster. */
  cpu: Record<string, number>;
  /** Per subscriber process: CPU % of a core and event-loop utilisation. */
  clientCpu: number[];
  clientElu: number[];
  /** The whole machine's busy share over the step, % of all cores. */
  machineBusy: number;
  /** Upper bounds of the histogram buckets holding p50 / p99 over the step, ms (null: not walcast). */
  relayCommitToPublish: { n: number; p50: number; p99: number } | null;
  gatewayCommitToSend: { n: number; p50: number; p99: number } | null;
  /** Seconds the CPU window lasted (posting and drain). */
  windowS: number;
  loadavg: number;
  clientSaturated: boolean;
  ok: boolean;
}

export interface CeilingSystem {
  system: SystemName;
  label: string;
  subscribers: number;
  connectFailed: number;
  connectMs: number;
  idleCpu: Record<string, number>;
  steps: CeilingStep[];
  /** Per round: the highest passing step (0: none passed). */
  ceilings: number[];
  /** Per round: what stopped it (see limit()). */
  limits: string[];
}

export interface CeilingResult {
  machine: string;
  cores: number;
  loadavgAtStart: number[];
  loadavgAtEnd: number[];
  systems: CeilingSystem[];
  files: string[];
}

const OPTIONS = {
  subscribers: { type: 'number', default: 1000, quick: 20, description: 'subscribers of the one channel, per system' },
  workers: { type: 'number', default: 4, quick: 2, description: 'subscriber processes per system, each on its own loopback source address (127.0.0.2, ...)' },
  rates: { type: 'numbers', default: [100, 200, 400, 600, 800, 1000, 1200], quick: [20, 50], description: 'posts per second, one step each' },
  stepSeconds: { type: 'number', default: 5, quick: 1, description: 'seconds of posting per step' },
  warmupSeconds: { type: 'number', default: 3, quick: 0.5, description: 'seconds of posting at the first rate before measuring, per system' },
  drainSeconds: { type: 'number', default: 10, quick: 5, description: 'after the last POST is answered, wait this long for the frames (longer while they still arrive)' },
  settleSeconds: { type: 'number', default: 1, quick: 0.2, description: 'pause after each step' },
  systems: { type: 'string', default: 'uws,start', description: 'systems to compare: uws, start, split' },
  client: { type: 'string', default: 'lean', description: 'subscriber client: lean (bench/lib/lean-ws.ts, frames read from the bytes) or ws (the ws library, as the other scenarios)' },
  splitGateways: { type: 'number', default: 1, description: 'gateway processes of the split system' },
  p99Ms: { type: 'number', default: 100, description: 'a step passes with p99 below this (and every frame delivered)' },
  maxFailures: { type: 'number', default: 2, description: 'per round, a system stops climbing after this many failed steps' },
  rounds: { type: 'number', default: 1, description: 'times to climb the whole ladder (the ceiling is reported per round, and its median)' },
  report: { type: 'string', default: 'bench/results', quick: '', description: "directory for <tag>-ceiling.md/-raw.json ('' : print only)" },
  reportTag: { type: 'string', default: new Date().toISOString().slice(0, 10), description: 'file name prefix of the report' },
} as const satisfies OptionSpecs;

type Options = Values<typeof OPTIONS>;

export const ceiling = scenario({
  name: 'ceiling',
  summary: 'one channel, many subscribers, posts stepped up: walcast start against a bare uWS publisher (and split roles); the highest rate each holds',
  suite: false,
  options: OPTIONS,
  async run(o, ctx): Promise<CeilingResult> {
    const names = o.systems.split(',').map((s) => s.trim()) as SystemName[];
    for (const n of names) if (!(n in SYSTEMS)) throw new Error(`ceiling --systems: unknown ${n}; one of ${Object.keys(SYSTEMS).join(', ')}`);
    if (o.workers < 1 || o.subscribers < 1) throw new Error('ceiling: --workers and --subscribers must be at least 1');
    if (o.subscribers / o.workers > MAX_SOCKETS_PER_WORKER) throw new Error(`ceiling: at most ${MAX_SOCKETS_PER_WORKER} sockets per client process (open files are capped at 20,000): use more --workers`);
    if (o.client !== 'lean' && o.client !== 'ws') throw new Error(`ceiling --client: lean or ws, not ${o.client}`);
    if (o.workers > 250) throw new Error('ceiling: at most 250 client processes (source addresses 127.0.0.2 to 127.0.0.251)');
    const loadavgAtStart = os.loadavg();
    const running: Running[] = [];
    const [poster] = await startWorkers(1);
    try {
      for (const name of names) {
        ctx.log(`ceiling: starting ${SYSTEMS[name]}, ${o.subscribers} subscribers over ${o.workers} processes`);
        const sys = await startSystem(name, o, ctx);
        running.push(sys);
        sys.workers = await startWorkers(o.workers);
        const plans = plan(sys.wsUrls, [sys.channel], o.subscribers, sys.workers.length);
        const conn = await Promise.all(
          sys.workers.map((w, i) =>
            w.send<{ connected: number; failed: number; ms: number }>({ op: 'connect', mode: 'walcast', client: o.client as 'lean' | 'ws', token: sys.token, subs: plans[i]!, localAddress: `127.0.0.${2 + i}`, check: true }),
          ),
        );
        sys.result.subscribers = conn.reduce((a, c) => a + c.connected, 0);
        sys.result.connectFailed = conn.reduce((a, c) => a + c.failed, 0);
        sys.result.connectMs = Math.max(...conn.map((c) => c.ms));
        ctx.log(`  ${sys.result.subscribers} connected in ${sys.result.connectMs} ms (${sys.result.connectFailed} failed)`);
      }
      // What the systems cost doing nothing (heartbeats, checkpoints), all of them up at once as in the steps.
      const idle = cpuWindow(Object.fromEntries(running.flatMap((s) => Object.entries(s.groups).map(([g, f]) => [`${s.name} ${g}`, f]))));
      await sleep(ctx.quick ? 500 : 3000);
      const idleCpu = idle();
      for (const s of running) s.result.idleCpu = Object.fromEntries(Object.entries(idleCpu).filter(([k]) => k.startsWith(s.name + ' ')).map(([k, v]) => [k.slice(s.name.length + 1), v]));

      for (const s of running) {
        ctx.log(`ceiling: ${s.name} warm-up, ${o.rates[0]} posts/s for ${o.warmupSeconds} s`);
        await step(s, poster!, o, 0, o.rates[0]!, o.warmupSeconds);
      }
      for (let round = 1; round <= o.rounds; round++) {
        const failures = new Map<SystemName, number>();
        for (const [k, rate] of o.rates.entries()) {
          const active = running.filter((s) => (failures.get(s.name) ?? 0) < o.maxFailures);
          if (!active.length) break;
          const shift = (k + round - 1) % active.length;
          for (const s of [...active.slice(shift), ...active.slice(0, shift)]) {
            const r = await step(s, poster!, o, round, rate, o.stepSeconds);
            s.result.steps.push(r);
            if (!r.ok) failures.set(s.name, (failures.get(s.name) ?? 0) + 1);
            const q = Hist.from(r.latency).summary();
            ctx.log(
              `  round ${round} ${s.name} ${rate}/s: ${r.framesPerS} frames/s, ${r.delivered}/${r.expected}, p50 ${q.p50.toFixed(1)} p99 ${q.p99.toFixed(1)} max ${q.max.toFixed(0)} ms, ` +
                `server ${serverCpu(r).toFixed(0)}% clients ${(r.cpu.clients ?? 0).toFixed(0)}% (elu max ${Math.max(...r.clientElu).toFixed(2)}) box ${r.machineBusy.toFixed(0)}%` +
                `${r.relayCommitToPublish ? `, relay c→p p99 ≤ ${r.relayCommitToPublish.p99} ms` : ''}, load ${r.loadavg.toFixed(2)} ${r.ok ? 'ok' : 'FAIL'}`,
            );
            await sleep(o.settleSeconds * 1000);
          }
        }
        for (const s of running) {
          const mine = s.result.steps.filter((x) => x.round === round);
          const c = Math.max(0, ...mine.filter((x) => x.ok).map((x) => x.rate));
          s.result.ceilings.push(c);
          s.result.limits.push(limit(mine, c));
        }
      }
    } finally {
      await Promise.all([poster!, ...running.flatMap((s) => s.workers)].map((w) => w.close()));
      for (const s of running) await s.close().catch((e) => ctx.log(`closing ${s.name}: ${(e as Error).message}`));
    }
    const result: CeilingResult = { machine: machine(), cores: os.cpus().length, loadavgAtStart, loadavgAtEnd: os.loadavg(), systems: running.map((s) => s.result), files: [] };
    if (o.report) {
      const dir = path.resolve(o.report);
      mkdirSync(dir, { recursive: true });
      const base = path.join(dir, `${o.reportTag}-ceiling`);
      writeFileSync(`${base}-raw.json`, JSON.stringify({ ...result, options: o }, null, 1) + '\n');
      writeFileSync(`${base}.md`, ceilingReport(result, o));
      result.files.push(`${base}.md`, `${base}-raw.json`);
    }
    return result;
  },
  print: (r, o) => ceilingReport(r, o) + (r.files.length ? `\nwritten: ${r.files.join(', ')}\n` : ''),
  // Numbers are not judged here; a system that could not hold its subscribers or ran no step is.
  ok: (r) => r.systems.every((s) => s.connectFailed === 0 && s.subscribers > 0 && s.steps.length > 0),
});

interface Running {
  name: SystemName;
  wsUrls: string[];
  postUrl: string;
  token: string;
  channel: string;
  groups: PidGroups;
  /** /metrics of the relay and of the gateway(s), summed (walcast only). */
  metrics?: () => Promise<{ relay: Scrape; gateway: Scrape }>;
  close(): Promise<void>;
  workers: Worker[];
  /** Disconnects the subscriber processes counted so far (their counter is not reset). */
  disconnects: number;
  result: CeilingSystem;
}

async function startSystem(name: SystemName, o: Options, ctx: Context): Promise<Running> {
  const result: CeilingSystem = { system: name, label: SYSTEMS[name], subscribers: 0, connectFailed: 0, connectMs: 0, idleCpu: {}, steps: [], ceilings: [], limits: [] };
  const base = { name, workers: [] as Worker[], disconnects: 0, result };
  if (name === 'uws') {
    const port = await freePort();
    // The user walcast start names in its frames ("demo"): the frames are the same size.
    const child = spawn(process.execPath, ['--import=tsx', PUBLISHER], { env: { ...process.env, PORT: String(port), BARE_USER: 'demo' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = track('uws-publisher', port, child);
    await waitUntilUp(proc, `http://127.0.0.1:${port}${PATHS.healthz}`);
    return {
      ...base,
      wsUrls: [`ws://127.0.0.1:${port}${PATHS.ws}`],
      postUrl: methodUrl(`http://127.0.0.1:${port}`, 'chat.postMessage'),
      token: 'unused',
      channel: newChannelId(),
      groups: { server: () => proc.pids() },
      close: async () => void (await proc.kill('SIGTERM')),
    };
  }
  if (name === 'start') {
    const s = await startStandalone({ ...BENCH_ENV });
    const channel = (await apiCaller(s.base, s.token)('conversations.create', { name: 'ceiling' })).channel.id as string;
    return {
      ...base,
      wsUrls: [`${s.base.replace('http', 'ws')}${PATHS.ws}`],
      postUrl: methodUrl(s.base, 'chat.postMessage'),
      token: s.token,
      channel,
      groups: {
        'walcast start': () => s.pids(),
        postgres: () => s.pids().flatMap((p) => withDescendants(p).slice(1)),
      },
      metrics: async () => {
        const m = await scrape(s.base, s.adminToken);
        return { relay: m, gateway: m };
      },
      close: s.stop,
    };
  }
  const db = await ctx.db();
  const stack = await startStack(db, 'cdc', { gateways: o.splitGateways, env: { WALCAST_ADMIN_TOKEN: ADMIN } });
  const [channel] = await createChannels(stack, 'ceiling', 1);
  return {
    ...base,
    wsUrls: stack.wsUrls(),
    postUrl: methodUrl(stack.api.url, 'chat.postMessage'),
    token: stack.token,
    channel: channel!,
    groups: stack.cpuGroups(db),
    metrics: async () => {
      const [relay, ...gateways] = await Promise.all([scrape(stack.relays[0]!.url, ADMIN), ...stack.gateways.map((g) => scrape(g.url, ADMIN))]);
      const gateway: Scrape = {};
      for (const g of gateways) for (const [k, v] of Object.entries(g)) gateway[k] = (gateway[k] ?? 0) + v;
      return { relay: relay!, gateway };
    },
    close: stack.close,
  };
}

/** One step: reset the subscribers' counters, post at `rate` for `seconds`, wait for the frames, read everything. */
async function step(s: Running, poster: Worker, o: Options, round: number, rate: number, seconds: number): Promise<CeilingStep> {
  await Promise.all(s.workers.map((w) => w.send({ op: 'reset' })));
  const m0 = await s.metrics?.().catch(() => undefined);
  const cpu = cpuWindow({ ...s.groups, clients: () => s.workers.flatMap((w) => w.pid()), poster: () => poster.pid() });
  const w0 = performance.now();
  const box = machineWindow();
  const p = await poster.send<PostResult>({ op: 'post', url: s.postUrl, token: s.token, channels: [s.channel], rate, seconds, stampScheduled: true });
  const expected = p.ok * s.result.subscribers;
  await drain(s.workers, expected, o.drainSeconds * 1000);
  const used = cpu();
  const windowS = (performance.now() - w0) / 1000;
  const machineBusy = box();
  const m1 = await s.metrics?.().catch(() => undefined);
  const st = await allStats(s.workers);
  const latency = new Hist();
  const fromSend = new Hist();
  for (const x of st) (latency.merge(x.hist), fromSend.merge(x.histSent));
  const delivered = st.reduce((a, x) => a + x.deliveries, 0);
  const counts = st.flatMap((x) => x.perSubCounts);
  const disconnects = st.reduce((a, x) => a + x.disconnects, 0);
  const newDisconnects = disconnects - s.disconnects;
  s.disconnects = disconnects;
  const lastAt = Math.max(0, ...st.map((x) => x.lastAt));
  const seqGaps = st.reduce((a, x) => a + x.seqGaps, 0);
  const seqRepeats = st.reduce((a, x) => a + x.seqRepeats, 0);
  const complete = counts.filter((c) => c === p.ok).length;
  const clientCpu = st.map((x) => Math.round((x.cpuMs / x.wallMs) * 1000) / 10);
  const clientElu = st.map((x) => Math.round(x.elu * 100) / 100);
  const p99 = latency.q(0.99);
  const clientSaturated = clientElu.some((e) => e >= SATURATED) || clientCpu.some((c) => c >= SATURATED * 100) || (used.poster ?? 0) >= SATURATED * 100;
  return {
    system: s.name,
    round,
    rate,
    sent: p.sent,
    posted: p.ok,
    postErrors: p.errors,
    postsPerS: Math.round(p.ok / p.seconds),
    posterBehindMs: p.maxBehindMs,
    postResponse: p.resp,
    expected,
    delivered,
    framesPerS: lastAt > p.startedAt ? Math.round((delivered / (lastAt - p.startedAt)) * 1000) : 0,
    complete,
    subscribers: s.result.subscribers,
    minPerSocket: counts.length ? Math.min(...counts) : 0,
    maxPerSocket: counts.length ? Math.max(...counts) : 0,
    seqGaps,
    seqRepeats,
    disconnects: newDisconnects,
    frameBytes: delivered ? Math.round(st.reduce((a, x) => a + x.frameBytes, 0) / delivered) : 0,
    latency: latency.data(),
    latencyFromSend: fromSend.data(),
    cpu: used,
    clientCpu,
    clientElu,
    machineBusy,
    relayCommitToPublish: m0 && m1 ? histogramDelta(m0.relay, m1.relay, 'walcast_relay_commit_to_publish_seconds') : null,
    gatewayCommitToSend: m0 && m1 ? histogramDelta(m0.gateway, m1.gateway, 'walcast_gateway_commit_to_send_seconds') : null,
    windowS,
    loadavg: os.loadavg()[0]!,
    clientSaturated,
    ok:
      p.errors === 0 &&
      p.ok === p.sent &&
      delivered === expected &&
      complete === s.result.subscribers &&
      seqGaps + seqRepeats + newDisconnects === 0 &&
      p99 < o.p99Ms,
  };
}

/** Until every expected frame arrived; past `graceMs`, until they stop arriving (1 s without one; 30 s at most more). */
async function drain(workers: Worker[], expected: number, graceMs: number): Promise<void> {
  const start = Date.now();
  let seen = -1;
  let changed = start;
  for (;;) {
    const n = (await allStats(workers)).reduce((a, x) => a + x.deliveries, 0);
    if (n >= expected) return;
    const t = Date.now();
    if (n !== seen) (seen = n), (changed = t);
    if (t - start > graceMs && (t - changed > 1000 || t - start > graceMs + 30_000)) return;
    await sleep(100);
  }
}

/** The whole machine's busy share (all cores, every process) over a window, from /proc/stat. */
function machineWindow(): () => number {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + (f[4] ?? 0); // idle + iowait
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  return () => {
    const b = read();
    const total = b.total - a.total;
    return total > 0 ? Math.round((1 - (b.idle - a.idle) / total) * 1000) / 10 : 0;
  };
}

/** The upper bounds (ms) of the buckets holding p50 and p99 of a Prometheus histogram's increase between two scrapes. */
export function histogramDelta(a: Scrape, b: Scrape, name: string): { n: number; p50: number; p99: number } | null {
  const re = new RegExp(`^${name}_bucket\\{(?:.*,)?le="([^"]+)"`);
  const buckets = new Map<number, number>();
  for (const [k, v] of Object.entries(b)) {
    const m = re.exec(k);
    if (!m) continue;
    const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
    buckets.set(le, (buckets.get(le) ?? 0) + v - (a[k] ?? 0));
  }
  if (!buckets.size) return null;
  const sorted = [...buckets].sort((x, y) => x[0] - y[0]);
  const n = sorted.at(-1)![1];
  const at = (q: number) => (n ? sorted.find(([, c]) => c >= q * n)![0] * 1000 : NaN);
  return { n, p50: at(0.5), p99: at(0.99) };
}

const cores = () => os.cpus().length;
/** This system's server, clients and poster, % of one core. */
const oursCpu = (r: CeilingStep) => Object.values(r.cpu).reduce((a, v) => a + v, 0);
/** CPU µs per delivered frame: a cost that other load on the machine changes far less than latency. */
const perFrameUs = (pct: number, r: CeilingStep) => (r.delivered ? ((pct / 100) * r.windowS * 1e6) / r.delivered : NaN);
const serverCpu = (r: CeilingStep) => Object.entries(r.cpu).filter(([k]) => k !== 'clients' && k !== 'poster').reduce((a, [, v]) => a + v, 0);

/**
 * What stopped a system in a round: the first failed step above its ceiling, and whether the
 * load generator (a client process or the poster saturated) or the machine (≥ 90 % of all cores
 * busy) was at its limit there.
 */
function limit(steps: CeilingStep[], ceilingRate: number): string {
  const wall = steps.find((x) => !x.ok && x.rate > ceilingRate);
  if (!wall) return steps.length ? `not reached: passed every step it ran (up to ${Math.max(...steps.map((x) => x.rate))}/s)` : 'no step ran';
  const why: string[] = [];
  const q = Hist.from(wall.latency).summary();
  if (wall.delivered < wall.expected || wall.complete < wall.subscribers) why.push(`${wall.delivered}/${wall.expected} frames`);
  if (wall.seqGaps || wall.seqRepeats) why.push(`${wall.seqGaps} gaps, ${wall.seqRepeats} repeats`);
  if (wall.disconnects) why.push(`${wall.disconnects} disconnects`);
  if (wall.postErrors) why.push(`${wall.postErrors} POST errors`);
  why.push(`p99 ${fmt(q.p99)} ms`);
  const bound = wall.clientSaturated
    ? 'the load generator was saturated there (a client process or the poster ≥ 90 % busy): the limit may be the clients, not the server'
    : wall.machineBusy >= SATURATED * 100
      ? `the machine was full there (${fmt(wall.machineBusy, 0)} % of all cores busy; this system's server and clients ${fmt(oursCpu(wall) / cores(), 0)} % of all cores, the rest other work)`
      : 'the clients and the machine had room: the server was the limit';
  return `failed at ${wall.rate}/s (${why.join(', ')}); ${bound}`;
}

const fmt = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '-');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

export function ceilingReport(r: CeilingResult, o: Options): string {
  const out: string[] = [];
  const labels = r.systems.map((s) => s.label).join(' vs ');
  out.push(`# Fan-out ceiling: ${labels}`, '');
  out.push(r.machine, '');
  const loads = r.systems.flatMap((s) => s.steps.map((x) => x.loadavg));
  out.push(
    `Load average (1/5/15 min) at the start ${r.loadavgAtStart.map((v) => v.toFixed(2)).join(' / ')}, at the end ${r.loadavgAtEnd.map((v) => v.toFixed(2)).join(' / ')}; ` +
      `1-min load after the steps ${loads.length ? `${fmt(Math.min(...loads), 2)}–${fmt(Math.max(...loads), 2)}` : '-'} on ${r.cores} cores. The machine is shared with other work: figures are noisy.`,
    '',
  );
  out.push(
    `${o.subscribers} subscribers of one channel per system, over ${o.workers} client processes per system (bench/worker.ts with the ${o.client === 'lean' ? 'lean client (bench/lib/lean-ws.ts: frames parsed in place, stamps and seq read from the bytes)' : '`ws` client'}, the same code for every system; each process on its own loopback source address), ` +
      `one poster process for all (open loop, one HTTP POST per message, keep-alive). Posts stepped ${o.rates.join(', ')}/s, ${o.stepSeconds} s each, after ${o.warmupSeconds} s of warm-up per system; ` +
      `steps interleaved (at each rate every system once, order rotated), ${o.rounds} round${o.rounds === 1 ? '' : 's'}. Servers, PostgreSQL and every client process share the machine's ${r.cores} cores.`,
    '',
    `Latency is POST → message frame at each subscriber, measured from the time the post was **due** by the schedule (a late poster or a server that answers slowly is charged: no coordinated omission); ` +
      `"p99 from send" is the same from the moment the POST was actually sent. A step **passes** when p99 < ${o.p99Ms} ms, every POST was answered 200, and every subscriber got every frame once in seq order (seqs checked on every socket: no gap, no repeat, no disconnect). ` +
      `The **ceiling** is the highest passing step. CPU is % of one core over the step (posting and drain), from /proc; "box" is the whole machine's busy share of all cores (every process, ours or not), with this system's server, clients and poster in brackets (same unit). ` +
      `A step is marked **clients saturated** when a client process's event loop or CPU, or the poster's CPU, was ≥ ${SATURATED * 100} % busy: then the load generator, not the server, may be what failed.`,
    '',
  );
  const sizes = r.systems.map((s) => `${s.label} ${fmt(median(s.steps.filter((x) => x.frameBytes).map((x) => x.frameBytes)), 0)} B`);
  out.push(`Message frame size (mean, as received): ${sizes.join(', ')}.`, '');
  out.push(`Idle CPU before the steps (% of a core, every system up): ${r.systems.map((s) => `${s.label}: ${Object.entries(s.idleCpu).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`).join('; ')}.`, '');

  out.push('## Summary', '');
  const bare = r.systems.find((s) => s.system === 'uws');
  out.push(
    table(
      ['system', 'subscribers', `ceiling per round (posts/s)`, 'median', 'frames/s at the ceiling', '% of bare uWS', 'server CPU µs / frame (median of steps)', 'clients CPU µs / frame', 'what stopped it (per round)'],
      r.systems.map((s) => {
        const cost = (f: (x: CeilingStep) => number) => fmt(median(s.steps.filter((x) => x.delivered > 0).map(f)), 2);
        const m = median(s.ceilings);
        const atCeiling = s.steps.filter((x) => x.ok && x.rate === m).map((x) => x.framesPerS);
        const pct = bare && s !== bare && median(bare.ceilings) > 0 ? `${fmt((m / median(bare.ceilings)) * 100, 0)} %` : s === bare ? '100 %' : '-';
        return [s.label, `${s.subscribers}${s.connectFailed ? ` (${s.connectFailed} failed)` : ''}`, s.ceilings.join(', ') || '-', fmt(m, 0), atCeiling.length ? fmt(median(atCeiling), 0) : '-', pct, cost((x) => perFrameUs(serverCpu(x), x)), cost((x) => perFrameUs(x.cpu.clients ?? 0, x)), s.limits.map((l, i) => `${s.ceilings.length > 1 ? `round ${i + 1}: ` : ''}${l}`).join('; ')];
      }),
    ),
    '',
  );
  const top = Math.max(...o.rates);
  for (const s of r.systems) {
    const notReached = s.ceilings.some((c) => c === top);
    if (notReached) out.push(`- ${s.label} passed the top step (${top}/s) in some round: its ceiling is above what this run offered; the % above is a lower bound for it.`);
  }
  out.push('');

  for (const s of r.systems) {
    out.push(`## ${s.label}`, '');
    out.push(`${s.subscribers} subscribers connected in ${s.connectMs} ms${s.connectFailed ? `, ${s.connectFailed} failed` : ''}.`, '');
    out.push(
      table(
        [
          'round', 'posts/s', 'achieved', 'frames/s', 'delivered', 'sockets complete', 'gaps / repeats / disc.', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'p99 from send', 'POST p99 ms', 'poster late ms',
          'server CPU %', 'clients CPU % (max ELU)', 'poster CPU %', 'server µs / frame', 'clients µs / frame', 'box % (this system)', 'relay c→p p99 ≤ ms', 'gateway c→s p99 ≤ ms', 'load', 'pass',
        ],
        s.steps.map((x) => {
          const q = Hist.from(x.latency).summary();
          const qs = Hist.from(x.latencyFromSend).summary();
          const servers = Object.entries(x.cpu).filter(([k]) => k !== 'clients' && k !== 'poster');
          return [
            x.round,
            x.rate,
            x.postsPerS,
            x.framesPerS,
            `${x.delivered}/${x.expected}`,
            `${x.complete}/${x.subscribers}`,
            `${x.seqGaps} / ${x.seqRepeats} / ${x.disconnects}`,
            fmt(q.p50),
            fmt(q.p95),
            fmt(q.p99),
            fmt(q.max, 0),
            fmt(qs.p99),
            fmt(Hist.from(x.postResponse).q(0.99)),
            x.posterBehindMs,
            servers.length > 1 ? `${fmt(serverCpu(x), 0)} (${servers.map(([k, v]) => `${k} ${fmt(v, 0)}`).join(', ')})` : fmt(serverCpu(x), 0),
            `${fmt(x.cpu.clients ?? 0, 0)} (${fmt(Math.max(...x.clientElu), 2)})${x.clientSaturated ? ' **sat.**' : ''}`,
            fmt(x.cpu.poster ?? 0, 0),
            fmt(perFrameUs(serverCpu(x), x), 2),
            fmt(perFrameUs(x.cpu.clients ?? 0, x), 2),
            `${fmt(x.machineBusy, 0)} (${fmt(oursCpu(x) / r.cores, 0)})`,
            x.relayCommitToPublish ? fmt(x.relayCommitToPublish.p99, 1) : '-',
            x.gatewayCommitToSend ? fmt(x.gatewayCommitToSend.p99, 1) : '-',
            fmt(x.loadavg, 2),
            x.ok ? 'yes' : 'no',
          ];
        }),
      ),
      '',
    );
  }
  out.push(
    '## Reading it',
    '',
    '- The bare publisher stores nothing, verifies no token and has no bus: a POST is parsed, one frame of walcast\'s `message` shape built and published to the uWS topic, then answered. ' +
      'walcast start, for each POST, verifies a JWT, writes the row through PostgreSQL (group commit), decodes it from the WAL in its relay, passes it over the in-process bus to its gateway and publishes the same frame to the same kind of uWS topic. ' +
      'The difference between the two ceilings is what all of that costs on the event loop(s) the fan-out shares.',
    '- CPU per frame (the process CPU of the system\'s server side, PostgreSQL included, over the step, divided by the frames delivered) is what fan-out costs each system; other work on the machine changes it much less than it changes latency, so it is the steadier comparison when the machine is busy. It includes the kernel\'s work for the loopback sockets that is charged to the sending process.',
    '- relay c→p: walcast_relay_commit_to_publish_seconds (COMMIT in the WAL → the bus accepted the event); gateway c→s: walcast_gateway_commit_to_send_seconds (COMMIT → frame handed to the sockets); both the upper bound of the histogram bucket holding p99 of the step\'s observations (buckets 0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500 ms, ...).',
    `- With ${r.cores} cores for servers, PostgreSQL and the load generator together, a high step can fail because the clients could not read frames fast enough: see the "clients CPU (max ELU)" and "box" columns and the per-round verdicts above.`,
    '',
  );
  return out.join('\n');
}
