// `npm run bench`: the benchmarks. With no scenario named, the standard suite (issue 5):
// walcast's CDC source against the comparison sources (direct publish after commit, publish
// inside the transaction, LISTEN/NOTIFY) for latency, ghosts, loss under faults and ingest, and
// its fan-out against a Socket.IO + Redis adapter peer. Everything runs on this machine, over
// loopback: one embedded PostgreSQL for the run, and per source a fresh stack (redis-server, api,
// relay, two gateways as separate processes; bench/lib/stack.ts), with clients in worker
// processes. The other scenarios stand alone and print their tables.
//
//   npm run bench                              the standard suite: latency race faults ingest fanout
//   npm run bench -- latency fanout            some scenarios
//   npm run bench -- --quick                   seconds, tiny load (the smoke test uses it)
//   npm run bench -- fanout --subscribers 5000 a scenario's own flags follow its name
//   npm run bench -- --help                    every scenario; `-- <name> --help`: its flags
//
// The suite writes <out>/<tag>-report.md, <tag>-latency.svg and <tag>-raw.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { liveChildren, stopChildren } from '../harness/children.js';
import type { Postgres } from '../harness/postgres.js';
import { sleep } from './lib/measure.js';
import { latencySvg } from './lib/render.js';
import { report, type Machine, type SuiteRun, type Versions } from './lib/report.js';
import { defaults, flagOf, parseValue, usage, type AnyScenario, type AnyValues, type Context, type OptionSpecs } from './lib/scenario.js';
import { BENCH_ENV, startDb } from './lib/stack.js';
import { SCENARIOS, SUITE, scenarioNamed } from './scenarios/index.js';
import { isSource, SOURCES, type Source } from './sources/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const COMMON = `Common flags (anywhere on the line):
  --quick          seconds and a tiny load: checks the machinery, the numbers mean nothing
  --sources a,b    sources the suite scenarios compare (default ${SOURCES.join(',')})
  --out DIR        where the suite's report goes (default bench/results)
  --tag NAME       file name prefix of the report (default the date, plus -quick)
  --help, -h       this help; after a scenario's name, that scenario's flags
A scenario's flags follow its name (-- fanout --subscribers 5000); given before any name, a flag
applies to every named scenario (all of the suite when none is named) that has it.`;

function help(): string {
  const w = Math.max(...SCENARIOS.map((s) => s.name.length));
  return [
    'npm run bench [-- [scenario ...] [--quick] [flags]]',
    '',
    `With no scenario: the standard suite (${SUITE.map((s) => s.name).join(' ')}), every source, written to`,
    'bench/results/<tag>-report.md, <tag>-latency.svg and <tag>-raw.json. Named suite scenarios run first',
    '(one PostgreSQL for all of them, one report), then the standalone ones, which print their tables.',
    '',
    'Scenarios (* the standard suite):',
    ...SCENARIOS.map((s) => `  ${s.suite ? '*' : ' '} ${s.name.padEnd(w)}  ${s.summary}`),
    '',
    COMMON,
  ].join('\n');
}

interface Args {
  help: boolean;
  quick: boolean;
  out: string;
  tag: string;
  sources: Source[];
  scenarios: AnyScenario[];
  /** Per scenario, the flags given for it. */
  overrides: Map<AnyScenario, AnyValues>;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { help: false, quick: false, out: path.join(ROOT, 'bench/results'), tag: '', sources: [...SOURCES], scenarios: [], overrides: new Map() };
  /** Scenario flags given before any scenario name: [flag, raw value]. */
  const early: [string, string | undefined][] = [];
  let current: AnyScenario | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = () => (eq > 0 ? arg.slice(eq + 1) : argv[++i]);
    const needed = (v: string | undefined) => {
      if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--help' || flag === '-h') a.help = true;
    else if (flag === '--quick') a.quick = true;
    else if (flag === '--out') a.out = path.resolve(needed(value()));
    else if (flag === '--tag') a.tag = needed(value());
    else if (flag === '--sources') {
      const list = needed(value()).split(',');
      for (const s of list) if (!isSource(s)) throw new Error(`unknown source ${s}; sources: ${SOURCES.join(', ')}`);
      a.sources = list as Source[];
    } else if (!flag.startsWith('-')) {
      const s = scenarioNamed(flag);
      if (!s) throw new Error(`unknown scenario ${flag}; scenarios: ${SCENARIOS.map((x) => x.name).join(' ')}`);
      if (!a.scenarios.includes(s)) a.scenarios.push(s);
      current = s;
    } else if (current) {
      const key = keyOf(current, flag);
      if (!key) throw new Error(`${current.name} has no flag ${flag}; see npm run bench -- ${current.name} --help`);
      (a.overrides.get(current) ?? a.overrides.set(current, {}).get(current)!)[key] = parseValue(current, key, value());
    } else early.push([flag, value()]);
  }
  if (a.help) return a;
  if (a.scenarios.length === 0) a.scenarios = [...SUITE];
  for (const [flag, raw] of early) {
    const takers = a.scenarios.filter((s) => keyOf(s, flag));
    if (!takers.length) throw new Error(`unknown flag ${flag} (for ${a.scenarios.map((s) => s.name).join(', ')}); see npm run bench -- --help`);
    for (const s of takers) {
      const key = keyOf(s, flag)!;
      const o = a.overrides.get(s) ?? a.overrides.set(s, {}).get(s)!;
      if (!(key in o)) o[key] = parseValue(s, key, raw);
    }
  }
  return a;
}

function keyOf(s: AnyScenario, flag: string): string | undefined {
  return Object.keys(s.options as OptionSpecs).find((k) => flagOf(k) === flag);
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

async function versions(dbUrl: string): Promise<Versions> {
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

function thisMachine(): Machine {
  return {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? '?',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    loadavgAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100),
    openFilesLimit: Number(sh('sh', ['-c', 'ulimit -n'])),
  };
}

const log = (...x: unknown[]) => console.error('[bench]', ...x);

async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n(npm run bench -- --help lists the scenarios and flags)\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write((args.scenarios.length ? args.scenarios.map((s) => usage(s, COMMON)).join('\n\n') : help()) + '\n');
    return 0;
  }
  const values = (s: AnyScenario): AnyValues => ({ ...defaults(s, args.quick), ...args.overrides.get(s) });
  const suite = args.scenarios.filter((s) => s.suite);
  const standalone = args.scenarios.filter((s) => !s.suite);
  const started = new Date();
  const machine = thisMachine();
  log(`${args.quick ? 'quick ' : ''}run of ${args.scenarios.map((s) => s.name).join(', ')} on ${machine.cpus} x ${machine.cpu}`);

  let db: Promise<Postgres> | null = null;
  const ctx: Context = { quick: args.quick, sources: args.sources, db: () => (db ??= startDb()), log };
  let removal: Promise<void> | null = null;
  removeDb = () => (removal ??= db ? db.then((d) => d.remove()).catch((e: unknown) => log('could not remove the database:', (e as Error)?.message)) : Promise.resolve());
  let code = 0;
  try {
    if (suite.length) {
      const run: SuiteRun = {
        tag: args.tag || started.toISOString().slice(0, 10) + (args.quick ? '-quick' : ''),
        started: started.toISOString(),
        finished: '',
        quick: args.quick,
        machine,
        versions: await versions((await ctx.db()).url),
        settings: { quick: args.quick, sources: args.sources },
        benchEnv: BENCH_ENV,
        timings: {},
        loadAfter: {},
        results: {},
      };
      for (const s of suite) {
        const t0 = performance.now();
        const o = values(s);
        (run.settings as Record<string, unknown>)[s.name] = o;
        (run.results as Record<string, unknown>)[s.name] = await s.run(o, ctx);
        run.timings[s.name] = Math.round((performance.now() - t0) / 1000);
        run.loadAfter[s.name] = Math.round(os.loadavg()[0]! * 100) / 100;
      }
      run.finished = new Date().toISOString();
      mkdirSync(args.out, { recursive: true });
      const files = { md: path.join(args.out, `${run.tag}-report.md`), svg: path.join(args.out, `${run.tag}-latency.svg`), json: path.join(args.out, `${run.tag}-raw.json`) };
      const { results, ...rest } = run;
      writeFileSync(files.json, JSON.stringify({ ...rest, ...results }, null, 1) + '\n');
      if (results.latency) writeFileSync(files.svg, latencySvg(results.latency, `walcast: POST start → frame at the client, by source (${run.tag})`));
      writeFileSync(files.md, report(run, files));
      console.log(files.md);
    }
    for (const s of standalone) {
      const o = values(s);
      log(`${s.name}: ${Object.entries(o).map(([k, v]) => `${flagOf(k)} ${Array.isArray(v) ? v.join(',') : v}`).join(' ')}`);
      const r = await s.run(o, ctx);
      if (s.print) process.stdout.write(s.print(r, o) + '\n');
      if (s.ok && !s.ok(r)) {
        log(`${s.name}: FAILED`);
        code = 1;
      }
    }
  } finally {
    await removeDb();
  }
  return code;
}

// Interrupted (Ctrl-C, SIGTERM from a timeout): stop every process the run started, then the
// run's PostgreSQL, and exit 130; a second signal exits at once. Without this the walcast
// processes, Redis and the client workers outlived an interrupted run.
let interrupted = false;
let removeDb: () => Promise<void> = async () => {};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${sig}: stopping ${liveChildren()} child process(es) and the database (again to exit at once)`);
    void stopChildren('SIGTERM', 10_000)
      .then(() => Promise.race([removeDb(), sleep(20_000)]))
      .finally(() => process.exit(130));
  });
}
// While it stops, the run's own database clients lose their server: expected, not a crash.
process.on('uncaughtException', (e) => {
  if (interrupted) return;
  process.stderr.write(`${e?.stack ?? String(e)}\n`);
  process.exit(1);
});

// Once interrupted, the signal's path exits (after its cleanup), whatever the run does meanwhile.
main(process.argv.slice(2)).then(
  (code) => interrupted || process.exit(code),
  (e: unknown) => {
    if (interrupted) return;
    process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
