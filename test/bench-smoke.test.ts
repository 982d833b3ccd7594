// Smoke of the benchmarks (issue 5): every suite scenario once, `--quick` (seconds, tiny load),
// against the real stack (embedded PostgreSQL, redis-server, separate role processes). Checks
// that the report, the SVG and the raw JSON are written and that their fields are sane; the
// numbers themselves mean nothing at this load. Quick runs use the cdc source only (one stack
// per scenario keeps this under a minute), plus the race for notify and direct-in-tx (the
// comparison sources' processes, bench/sources/serve.ts), which must ghost only for
// direct-in-tx. And the command line: every scenario is listed, each has its usage.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const out = mkdtempSync(path.join(os.tmpdir(), 'walcast-bench-smoke-'));
t.teardown(() => rmSync(out, { recursive: true, force: true }));

const run = (args: string[]) => promisify(execFile)(process.execPath, ['--import=tsx', 'bench/run.ts', ...args], { cwd: ROOT, timeout: 150_000, maxBuffer: 1 << 24 });
const bench = (args: string[]) => run(['--quick', '--out', out, ...args]);

t.test('the command line: every scenario listed, each with its usage', async (t) => {
  const [list, storm, bad] = await Promise.all([
    run(['--help']).then((r) => r.stdout),
    run(['storm', '--help']).then((r) => r.stdout),
    run(['latency', '--no-such-flag', '1']).then(() => null, (e: { code: number; stderr: string }) => e),
  ]);
  for (const n of ['latency', 'race', 'faults', 'ingest', 'fanout', 'storm', 'fairness', 'single-node'])
    t.match(list, new RegExp(`^  [* ] ${n} +\\S`, 'm'), `${n} listed with its summary`);
  t.match(storm, /npm run bench -- storm/);
  for (const flag of ['--clients N', '--channels N', '--workers N', '--posts-per-s N']) t.match(storm, flag, `storm ${flag}`);
  t.equal(bad?.code, 2, 'an unknown flag exits 2');
  t.match(bad?.stderr, /latency has no flag --no-such-flag/);
});

t.test('every scenario, quick, cdc', async (t) => {
  await bench(['--sources', 'cdc', '--tag', 'all']);
  const files = readdirSync(out);
  t.ok(files.includes('all-report.md'), 'report written');
  t.ok(files.includes('all-latency.svg'), 'latency chart written');
  const raw = JSON.parse(readFileSync(path.join(out, 'all-raw.json'), 'utf8'));
  t.equal(raw.quick, true);
  t.ok(raw.machine.cpus >= 1 && raw.versions.postgres, 'machine and versions');

  const [lat] = raw.latency;
  t.equal(lat.source, 'cdc');
  t.ok(lat.posted > 0 && lat.delivered === lat.expected, `latency: every frame delivered (${lat.delivered}/${lat.expected})`);
  t.ok(lat.e2e.n === lat.delivered && lat.e2e.min > 0 && lat.e2e.max < 5000, 'latency: sane end-to-end histogram');
  t.ok(lat.cpu.api >= 0 && lat.cpu.postgres >= 0 && 'clients' in lat.cpu, 'latency: server and client CPU');

  const [race] = raw.race;
  t.ok(race.getChecks > 0, 'race: getMessage on every frame');
  t.equal(race.ghosts, 0, `race: cdc has no ghost (${race.ghosts} of ${race.getChecks}; found by a read ${race.commitDelayMs + 500} ms later: ${race.ghostsCommittedLater})`);

  t.equal(raw.faults.length, 3, 'faults: broker, relay, api');
  for (const f of raw.faults) {
    t.ok(f.stored > 0 && f.expected > 0, `faults ${f.fault}: messages stored`);
    t.equal(f.lost + f.wrong, 0, `faults ${f.fault}: cdc loses nothing`);
  }

  const ingest = raw.ingest.rows as any[];
  const row = (system: string, workload: string, flush = 'default') => ingest.find((r) => r.system === system && r.workload === workload && r.flush === flush);
  const rawRow = row('raw', 'spread');
  t.ok(rawRow?.rps > 0 && rawRow.latency.n > 0 && rawRow.cpu.postgres > 0 && rawRow.cpu['load generator'] > 0, 'ingest: the raw pgbench baseline, with its latency and CPU');
  t.ok(row('raw', 'spread', 'slow')?.rps > 0, 'ingest: raw with slow flushes');
  for (const [workload, flush] of [['spread', 'default'], ['hot', 'default'], ['one at a time', 'default'], ['hot', 'slow']]) {
    const r = row('start', workload!, flush);
    t.ok(r?.rps > 0 && r.latency.n === r.total && r.cpu.walcast > 0 && r.cpu.postgres > 0 && 'load generator' in r.cpu, `ingest walcast start ${workload} (${flush} flush): throughput and CPU`);
    t.ok(r?.batches?.transactions > 0 && r.batches.posts >= r.total, `ingest walcast start ${workload}: batch sizes from /metrics`);
    t.equal(r?.non2xx + r?.errors, 0, `ingest walcast start ${workload}: every post stored`);
  }
  t.equal(row('start', 'one at a time')?.batches?.mean, 1, 'ingest: one post at a time goes alone');
  t.ok(row('start', 'spread')?.pipeline, 'ingest: the relay pipeline depth sampled');

  t.same(raw.fanout.map((r: any) => r.system), ['walcast', 'socket.io'], 'fan-out: walcast and the Socket.IO peer');
  for (const r of raw.fanout) {
    t.ok(r.subscribers > 0 && r.steps.length > 0, `fan-out ${r.system}: ${r.subscribers} subscribers`);
    t.ok(r.steps[0].delivered > 0 && r.steps[0].cpu.clients >= 0, `fan-out ${r.system}: deliveries and client CPU`);
  }

  const md = readFileSync(path.join(out, 'all-report.md'), 'utf8');
  for (const h of ['## Machine and versions', '## 1. Latency', '## 2. Race', '## 3. Loss under faults', '## 4. Ingest', '## 5. Fan-out', '## Targets']) t.match(md, h);
  t.match(md, /walcast over \d+ channels ≥ 60 % of raw/, 'ingest targets in the report');
  t.match(readFileSync(path.join(out, 'all-latency.svg'), 'utf8'), /^<svg[\s\S]*<polyline[\s\S]*<\/svg>$/);
});

t.test('race, quick: direct-in-tx ghosts, notify does not', async (t) => {
  await bench(['race', '--sources', 'notify,direct-in-tx', '--tag', 'race']);
  const raw = JSON.parse(readFileSync(path.join(out, 'race-raw.json'), 'utf8'));
  const by = Object.fromEntries(raw.race.map((r: any) => [r.source, r]));
  t.equal(by.notify.ghosts, 0, 'notify publishes after the commit');
  t.ok(by.notify.frames > 0, 'notify delivers');
  t.ok(by['direct-in-tx'].ghosts > 0, `direct-in-tx: ${by['direct-in-tx'].ghosts} ghosts of ${by['direct-in-tx'].getChecks}`);
});
