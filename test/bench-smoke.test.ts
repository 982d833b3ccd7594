// Smoke of the benchmarks (issue 5): every suite scenario once, `--quick` (seconds, tiny load),
// against the real stack (embedded PostgreSQL, redis-server, separate role processes). Checks
// that the report, the SVG and the raw JSON are written and that their fields are sane; the
// numbers themselves mean nothing at this load. Quick runs use the cdc source only (one stack
// per scenario keeps this under a minute), plus the race for notify and direct-in-tx (the
// comparison sources' processes, bench/sources/serve.ts), which must ghost only for
// direct-in-tx. And the command line: every scenario is listed, each has its usage. The
// standalone scenarios of issue 17 (changes, presence) once each, quick, with their reports. And
// the fan-out ceiling (walcast start against a bare uWS publisher): its report's shape, the same
// frames from both, every frame to every socket in seq order. And the seeds' Scenario A, quick,
// once clean and once with faults injected at the clients (its loss check must catch them). And
// an interrupted run (SIGINT) stops every process it started.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { withDescendants } from '../harness/proc-stats.js';
import { until } from './helpers/walcast.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// Several stacks one after the other: more than the default file timeout on a busy machine.
t.setTimeout(600_000);
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
  for (const n of ['latency', 'race', 'faults', 'ingest', 'fanout', 'storm', 'fairness', 'single-node', 'scale', 'hot-isolation', 'changes', 'presence', 'ceiling', 'scenario-a'])
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
  const round2 = (system: string) => ingest.find((r) => r.system === system && r.round === 2);
  t.ok(round2('raw')?.rps > 0 && round2('start')?.rps > 0, 'ingest: a second round of raw and walcast start (--rounds)');
  t.match(readFileSync(path.join(out, 'all-report.md'), 'utf8'), /Median of 2: \d+ % of raw/, 'ingest: the rounds and their median in the report');
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

const KINDS = ['message', 'message_changed', 'reaction_added', 'reaction_removed', 'message_deleted'];

t.test('changes, quick: every kind measured, report and raw JSON', async (t) => {
  const { stdout } = await bench(['changes', '--report', out, '--report-tag', 'smoke']);
  t.match(stdout, /# Change log latency/);
  const raw = JSON.parse(readFileSync(path.join(out, 'smoke-changes-raw.json'), 'utf8'));
  t.ok(raw.machine && raw.options.rates.length === 1, 'machine and options');
  t.equal(raw.rows.length, 1, 'one row per rate');
  const [row] = raw.rows;
  for (const k of KINDS) {
    t.ok(row.ok[k] > 0, `${k}: operations answered`);
    t.ok(row.e2e[k].n > 0 && row.e2e[k].min > 0 && row.e2e[k].max < 5000, `${k}: end-to-end histogram`);
    t.ok(row.resp[k].n > 0, `${k}: response histogram`);
    t.ok(row.commitToBus[k].n > 0 && row.answerToBus[k].n > 0, `${k}: commit → bus and response → bus histograms`);
  }
  t.equal(row.delivered, row.expected, `every frame matched (${row.delivered}/${row.expected})`);
  t.equal(row.outOfOrder, 0, 'in seq order at every subscriber');
  t.ok(row.relayCommitToPublish.count > 0 && row.gatewayCommitToSend.count > 0, 'server histograms over the window');
  t.ok(row.cpu.relay >= 0 && row.cpu.gateways >= 0 && 'clients' in row.cpu, 'CPU per process group');
  t.equal(raw.relayReadBacks, 0, 'no relay read-back');
  const md = readFileSync(path.join(out, 'smoke-changes.md'), 'utf8');
  for (const h of ['## POST start → frame at the subscriber, per kind', '## Edit against post', '## Per rate']) t.match(md, h);
  for (const m of ['chat.postMessage', 'chat.update', 'chat.delete', 'reactions.add', 'reactions.remove']) t.match(md, m);
});

t.test('presence, quick: below and above the threshold and back, report and raw JSON', async (t) => {
  const { stdout } = await bench(['presence', '--report', out, '--report-tag', 'smoke']);
  t.match(stdout, /# Presence on a big channel/);
  const raw = JSON.parse(readFileSync(path.join(out, 'smoke-presence-raw.json'), 'utf8'));
  t.equal(raw.members, raw.options.members, 'the channel has --members members');
  t.same(raw.steps.map((s: any) => s.present), [...raw.options.present, raw.options.backTo], 'a step per --present, then --back-to');
  t.same(raw.steps.map((s: any) => s.mode), ['per-user', 'count', 'per-user'], 'per-user frames, counts above --max-users, per-user again');
  for (const s of raw.steps) {
    t.equal(s.ramp.connectFailed, 0, `${s.present}: every present user connected`);
    t.ok(s.churn.result.joins > 0 && s.churn.result.leaves > 0 && s.control.result.joins > 0, `${s.present}: churn joined and left`);
    t.ok(s.churn.bus.changes > 0, `${s.present}: presence batches on the bus`);
    t.ok(s.churn.frames.present.presence_joined + s.churn.frames.present.presence_count > 0, `${s.present}: presence frames counted`);
    t.equal(s.probe.timeouts, 0, `${s.present}: every probe seen by both observers`);
    t.equal(s.probe.joinMs['obs-a'].length, raw.options.probes, `${s.present}: join latency per probe`);
    t.equal(s.viewsAfterChurn.observers.length, 2, `${s.present}: both observers' views checked`);
    t.equal(s.presenceApi.count, s.truth, `${s.present}: conversations.presence counts everyone`);
  }
  const md = readFileSync(path.join(out, 'smoke-presence.md'), 'utf8');
  for (const h of ['## Per join or leave (churn)', '## One join, then its leave, at idle', '## Idle: the heartbeat', '## The ramp', "## What the observers' frames say"]) t.match(md, h);
});

t.test('ceiling, quick: walcast start and the bare uWS publisher send the same frames, every one arrives', async (t) => {
  const { stdout } = await run(['ceiling', '--quick', '--report', out, '--report-tag', 'smoke']);
  t.match(stdout, /^# Fan-out ceiling: bare uWS publisher vs walcast start/m);
  const raw = JSON.parse(readFileSync(path.join(out, 'smoke-ceiling-raw.json'), 'utf8'));
  t.same(raw.systems.map((s: any) => s.system), ['uws', 'start']);
  t.match(raw.machine, /^machine: \d+ x /);
  for (const s of raw.systems) {
    t.equal(s.subscribers, 20, `${s.system}: every subscriber connected`);
    t.equal(s.steps.length, 2, `${s.system}: a step per rate`);
    t.equal(s.ceilings.length, 1, `${s.system}: a ceiling per round`);
    t.equal(s.limits.length, 1);
    for (const x of s.steps) {
      const at = `${s.system} ${x.rate}/s`;
      t.ok(x.posted > 0 && x.posted === x.sent, `${at}: every POST answered`);
      t.equal(x.expected, x.posted * s.subscribers, `${at}: expected frames`);
      t.equal(x.delivered, x.expected, `${at}: every frame delivered`);
      t.equal(x.complete, s.subscribers, `${at}: every socket got every frame`);
      t.equal(x.seqGaps + x.seqRepeats + x.disconnects, 0, `${at}: no gap, repeat or disconnect`);
      t.equal(x.latency.n, x.delivered, `${at}: a latency per frame, from the due time`);
      t.equal(x.latencyFromSend.n, x.delivered, `${at}: and from the send`);
      t.ok(x.latency.min > 0 && x.latencyFromSend.max <= x.latency.max + 1.01, `${at}: from the due time is never shorter`);
      t.ok(x.framesPerS > 0 && x.machineBusy >= 0 && x.machineBusy <= 100, `${at}: frames/s and the machine's busy share`);
      t.ok('clients' in x.cpu && 'poster' in x.cpu && x.clientElu.length === 2, `${at}: the load generator's CPU, per process`);
      if (s.system === 'start') t.ok(x.relayCommitToPublish?.n > 0 && x.gatewayCommitToSend?.n > 0, `${at}: the relay's commit → publish from /metrics`);
      else t.equal(x.relayCommitToPublish, null, `${at}: no relay`);
    }
  }
  const size = (i: number) => raw.systems[i].steps[0].frameBytes;
  t.ok(size(0) > 200 && Math.abs(size(0) - size(1)) <= 2, `the same message frame size from both (${size(0)} / ${size(1)} bytes)`);
  const md = readFileSync(path.join(out, 'smoke-ceiling.md'), 'utf8');
  for (const h of ['## Summary', '## bare uWS publisher', '## walcast start', '% of bare uWS', 'machine: ']) t.match(md, h);
});

t.test('scenario-a, quick: sockets on 3 gateway instances, steps, a hold, the loss check and the report', async (t) => {
  const { stdout, stderr } = await run(['scenario-a', '--quick', '--report', out, '--report-tag', 'sa']);
  t.match(stderr, /a full run takes about \d+/, 'the wall time is printed up front');
  const raw = JSON.parse(readFileSync(path.join(out, 'sa-scenario-a-raw.json'), 'utf8'));
  t.equal(raw.instances.length, 3, 'three gateway instances');
  t.equal(raw.connect.connected, raw.connect.sockets, `every socket subscribed (${raw.connect.connected}/${raw.connect.sockets})`);
  t.equal(raw.instances.reduce((a: number, i: any) => a + i.sockets, 0), raw.connect.sockets, 'sockets spread over the instances');
  t.ok(raw.steps.length >= 1, 'steps ran');
  for (const s of [...raw.steps, raw.hold]) {
    t.ok(s.ok > 0 && s.delivered === s.expected && s.expected === s.ok * raw.setup.members, `${s.kind} ${s.rate}/s: every frame (${s.delivered}/${s.expected})`);
    t.ok(s.e2e.n === s.delivered && s.e2e.min > 0 && s.e2e.max < 10_000, `${s.kind} ${s.rate}/s: a sane latency histogram`);
    t.ok(['api', 'relay', 'gateway-1', 'postgres backends', 'redis', 'clients', 'posters'].every((g) => g in s.usage.groups) && s.usage.server > 0, `${s.kind} ${s.rate}/s: CPU of every group`);
  }
  t.ok(raw.hold.windows.length >= 2, 'the hold is reported per window');
  t.equal(raw.loss.ok, true, 'the loss check passed');
  t.equal(raw.loss.sockets, raw.connect.sockets);
  t.equal(raw.loss.frames, [...raw.steps, raw.hold].reduce((a: number, s: any) => a + s.delivered, 0), 'the loss check saw every frame of the run');
  t.ok(raw.memory.connected.some((p: any) => p.group === 'gateway-1' && p.rssMB > 0), 'gateway memory');
  const md = readFileSync(path.join(out, 'sa-scenario-a.md'), 'utf8');
  for (const h of ['## Verdict', '## Steps and hold', '## Loss check', '## CPU by group', '## Where the load generator limits the figures', '## Memory', '## What a post costs', '## Paper model']) t.match(md, h);
  t.match(stdout, /# Scenario A/, 'the report is printed too');
});

t.test('scenario-a, quick, faults injected at the clients: the loss check catches a lost and a doubled frame, and the run fails', async (t) => {
  const e = await run(['scenario-a', '--quick', '--sockets', '60', '--channels', '6', '--rates', '30', '--hold-seconds', '0', '--inject-faults', '1']).then(
    () => null,
    (err: { code: number; stdout: string }) => err,
  );
  t.equal(e?.code, 1, 'exit 1');
  // Two client processes, each with one socket missing a frame and one getting a frame twice.
  t.match(e?.stdout, /\*\*LOSS\*\*: 2 missing, 2 extra, 2 duplicate or out of order, 2 gaps, 0 sockets disconnected, 0 accepted posts not stored/);
  t.match(e?.stdout, /60 sockets checked: 56 got exactly the stored messages/);
});

t.test('an interrupted run leaves no process behind', async (t) => {
  const bench = spawn(process.execPath, ['--import=tsx', 'bench/run.ts', 'ingest', '--quick', '--only', 'start', '--out', out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  bench.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => bench.once('exit', (code) => r(code)));
  const cmdline = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      return '';
    }
  };
  const descendants = () => withDescendants(bench.pid!).filter((p) => p !== bench.pid);
  // Interrupted while walcast start serves the load: PostgreSQL, walcast, the client worker run.
  await until(() => descendants().some((p) => /bin\/walcast(-dev)?\.js start/.test(cmdline(p))), 'walcast start running under the bench', 120_000);
  const before = descendants();
  t.ok(before.length >= 3, `${before.length} processes under the run`);
  bench.kill('SIGINT');
  t.equal(await exited, 130, 'the run exits 130', { stderr: err.slice(-2000) });
  t.match(err, /SIGINT: stopping \d+ child process/);
  const alive = (p: number) => {
    try {
      process.kill(p, 0);
      return cmdline(p) !== '';
    } catch {
      return false;
    }
  };
  // The database goes a moment after the run (its watcher polls every 2 s).
  await until(() => !before.some(alive), 'every process of the run gone', 60_000).catch(() => {});
  t.same(before.filter(alive).map(cmdline), [], 'none left');
});
