// The Scenario A report: what ran, the connect ramp, the steps and the hold, the loss check, CPU
// and memory of every process, the measured cost of a post per role and of a frame on the
// gateways, where the load generator's share of the machine limits the figures, and a paper
// model of the seeds' target (10k posts/s × 100k connections) in cores per role and machines.
import { table } from '../../harness/load/format.js';
import { Hist } from '../lib/hist.js';
import { fit } from '../lib/measure.js';
import type { ProcMem, ScenarioAResult, StepResult } from '../scenarios/scenario-a.js';

const f = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '-');
const int = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-');

/** The server roles whose cost the model prices, as groups of the CPU table. */
const ROLES = ['api', 'postgres backends', 'postgres walsender', 'postgres other', 'relay', 'redis', 'gateways'] as const;
type Role = (typeof ROLES)[number];

const roleCpu = (u: { groups: Record<string, number> }, role: Role) =>
  role === 'gateways' ? Object.entries(u.groups).filter(([g]) => g.startsWith('gateway-')).reduce((a, [, v]) => a + v, 0) : (u.groups[role] ?? 0);

export interface CostModel {
  /** The window the costs are taken from: the highest rate whose frames all arrived (the longest of equals). */
  reference: string;
  referenceBatch: number;
  /** Windows whose frames all arrived (idle included), for the straight-line fit. */
  points: { label: string; postsPerS: number }[];
  /** Per role: background (% of a core, idle), µs of CPU per post at the reference window, and the fit's slope. */
  roles: Record<Role, { idlePct: number; usPerPost: number; fitUsPerPost: number }>;
  /** µs of gateway CPU per frame delivered (the gateways' per-post cost over the fan-out). */
  usPerFrame: number;
  target: { postsPerS: number; connections: number; members: number };
  cores: Record<Role, number>;
  totalCores: number;
  gatewayKBPerConn: number;
  gatewayBaseMB: number;
}

/** CPU µs per post of a role in a window, its idle background taken off. */
const usPerPost = (r: ScenarioAResult, s: StepResult, role: Role) => (((roleCpu(s.usage, role) - roleCpu(r.idle, role)) / 100) * 1e6) / Math.max(1e-9, s.ok / s.usage.seconds);

export function costModel(r: ScenarioAResult, target = { postsPerS: 10_000, connections: 100_000, members: 10 }): CostModel {
  const windows = [...r.steps, ...(r.hold ? [r.hold] : [])].filter((s) => s.delivered >= s.expected && s.ok > 0);
  // Posts per second of the CPU window (posting plus the drain of its last frames).
  const pts = windows.map((s) => ({ s, x: s.ok / s.usage.seconds }));
  // Group commit makes a post cheaper as the rate (and the batch) grows: the costs of the
  // highest rate measured are the closest to the target's.
  const ref = windows.reduce<StepResult | null>((a, s) => (!a || s.rate > a.rate || (s.rate === a.rate && s.seconds > a.seconds) ? s : a), null);
  const roles = {} as CostModel['roles'];
  const cores = {} as CostModel['cores'];
  const scaleIdle = target.connections / Math.max(1, r.connect.connected);
  for (const role of ROLES) {
    const { b } = fit([[0, roleCpu(r.idle, role)], ...pts.map(({ s, x }): [number, number] => [x, roleCpu(s.usage, role)])]);
    const idlePct = roleCpu(r.idle, role);
    const at = ref ? Math.max(0, usPerPost(r, ref, role)) : NaN;
    roles[role] = { idlePct, usPerPost: at, fitUsPerPost: Math.max(0, (b / 100) * 1e6) };
    // The gateways' background grows with their sockets (timers, pings); the others' does not.
    const background = (role === 'gateways' ? idlePct * scaleIdle : idlePct) / 100;
    const perPost = role === 'gateways' ? ((at / r.setup.members) * target.members) / 1e6 : at / 1e6;
    cores[role] = background + perPost * target.postsPerS;
  }
  const gw = gatewayMemory(r);
  return {
    reference: ref ? (ref.kind === 'hold' ? `the hold at ${ref.rate}/s` : `the ${ref.rate}/s step`) : 'none',
    referenceBatch: ref?.metrics.batchSize ?? NaN,
    points: [{ label: 'idle', postsPerS: 0 }, ...pts.map(({ s, x }) => ({ label: s.kind === 'hold' ? `hold ${s.rate}/s` : `${s.rate}/s`, postsPerS: x }))],
    roles,
    usPerFrame: roles.gateways.usPerPost / r.setup.members,
    target,
    cores,
    totalCores: Object.values(cores).reduce((a, b) => a + b, 0),
    gatewayKBPerConn: gw.kbPerConnConnected,
    gatewayBaseMB: gw.baselineMB,
  };
}

export function gatewayMemory(r: ScenarioAResult) {
  const sum = (list: ProcMem[]) => list.filter((p) => p.group.startsWith('gateway-')).reduce((a, p) => a + p.rssMB, 0);
  const procs = r.memory.baseline.filter((p) => p.group.startsWith('gateway-')).length;
  const baselineMB = sum(r.memory.baseline);
  const n = Math.max(1, r.connect.connected);
  return {
    processes: procs,
    baselineMB,
    connectedMB: sum(r.memory.connected),
    endMB: sum(r.memory.end),
    kbPerConnConnected: ((sum(r.memory.connected) - baselineMB) * 1024) / n,
    kbPerConnEnd: ((sum(r.memory.end) - baselineMB) * 1024) / n,
    kbPerConnTotal: (sum(r.memory.end) * 1024) / n,
  };
}

const SIZES = [2, 4, 8, 16, 32, 64, 96];
const vcpus = (cores: number, util = 0.6) => SIZES.find((s) => s * util >= cores) ?? Math.ceil(cores / util);

function stepLabel(s: StepResult) {
  return s.kind === 'hold' ? `hold ${s.rate}/s` : `${s.rate}/s`;
}

export function renderReport(r: ScenarioAResult): string {
  const L: string[] = [];
  const o = r.options as Record<string, any>;
  const quick = r.connect.sockets < 10_000;
  const all = [...r.steps, ...(r.hold ? [r.hold] : [])];
  const passed = r.steps.filter((s) => s.pass);
  const best = passed.length ? passed.reduce((a, b) => (b.rate > a.rate ? b : a)) : null;
  const gw = gatewayMemory(r);
  const model = costModel(r);

  L.push(`# Scenario A: ${int(r.connect.sockets)} sockets on ${r.instances.length} gateway instances, ${int(r.setup.channels)} channels × ${r.setup.members} members`, '');
  if (quick) L.push(`**A small run (${int(r.connect.sockets)} sockets), not the seeds' size: the figures show the machinery and the per-post costs at this size, not what 100k sockets do.**`, '');
  L.push(
    `Run ${r.started} → ${r.finished} (${fmtS(r.wallS)}; estimated up front: ${fmtS(r.estimateS)}). ` +
      `${r.machine.cpus} × ${r.machine.cpu}, ${r.machine.memGiB} GiB, ${r.machine.kernel}, Node ${r.machine.node}, PostgreSQL ${r.versions.postgres}, Redis ${r.versions.redis}, walcast ${r.versions.commit}; open files ${r.machine.openFiles}. ` +
      `Load average (1 min) ${r.loadavg.map((l) => `${l.at} ${f(l.load[0]!, 2)}`).join(', ')}: above ${r.machine.cpus} the machine had more runnable work than cores.`,
    '',
  );

  L.push('## Verdict', '');
  const hq = r.hold ? Hist.from(r.hold.e2e).summary() : null;
  L.push(
    table(
      ['seeds target', 'this run'],
      [
        ['100,000 connections on 3 gateway instances', `${int(r.connect.connected)} of ${int(r.connect.sockets)} sockets subscribed on ${r.instances.length} instances (${r.instances.map((i) => `${i.name}: ${int(i.sockets)} over ${i.processes} processes`).join(', ')})`],
        ['10,000 posts/s (100,000 frames/s)', best ? `highest step passed: ${int(best.rate)} posts/s (${int(best.rate * r.setup.members)} frames/s); ${r.steps.find((s) => !s.pass) ? `failed at ${int(r.steps.find((s) => !s.pass)!.rate)}/s: ${r.steps.find((s) => !s.pass)!.why.join('; ')}` : 'every step passed'}` : `no step passed (${r.steps[0]?.why.join('; ') ?? 'no steps'})`],
        [`p99 < ${o.p99Ms} ms for ${fmtS(o.holdSeconds)}`, r.hold && hq ? `${r.hold.pass ? 'held' : 'NOT held'} at ${int(r.hold.rate)} posts/s for ${fmtS(r.hold.seconds)}: p50 ${f(hq.p50)} / p95 ${f(hq.p95)} / p99 ${f(hq.p99)} ms, worst window p99 ${f(Math.max(...(r.hold.windows ?? []).map((w) => Hist.from(w.e2e).q(0.99))))} ms` : 'no hold'],
        ['0 % message loss', r.loss.ok ? `0 lost, 0 duplicated, 0 out of order: ${int(r.loss.socketsOk)} of ${int(r.loss.sockets)} sockets got exactly the ${int(r.loss.frames)} frames stored for them; ${int(r.loss.acceptedPosts)} accepted posts all stored` : `**LOSS**: ${int(r.loss.missing)} missing, ${int(r.loss.extra)} extra, ${int(r.loss.notAbove)} duplicate or out of order, ${int(r.loss.gaps)} gaps, ${r.loss.disconnected} sockets disconnected, ${r.loss.acceptedNotStored} accepted posts not stored`],
        [
          'frames per server CPU-second',
          all
            .filter((s) => s.delivered > 0)
            .map((s) => `${stepLabel(s)} ${int(s.delivered / ((s.usage.server / 100) * s.usage.seconds))}`)
            .join(', ') + ' (frames delivered / CPU-seconds of api, relay, gateways, PostgreSQL and Redis)',
        ],
        ['memory per connection (issue 14: ≤ 3 KB)', `${f(gw.kbPerConnConnected, 2)} KB per connection on the gateways once connected, ${f(gw.kbPerConnEnd, 2)} KB at the end (RSS growth over ${gw.processes} processes / connections)`],
      ],
    ),
    '',
  );

  L.push('## What ran', '');
  L.push(
    `All on this machine, over loopback, as separate processes: embedded PostgreSQL (\`harness/postgres.ts\`), redis-server, one \`walcast api\`, one \`walcast relay\` (\`harness/topology.ts\`), and ${r.instances.length} gateway instances ` +
      (r.mode === 'workers'
        ? `each run as one \`walcast gateway\` with WALCAST_GATEWAY_WORKERS=${o.processesPerInstance} (worker processes sharing the instance's port)`
        : `each made of ${o.processesPerInstance} separate \`walcast gateway\` processes on their own ports, the instance's clients spread evenly over them (bench/scenario-a/instances.ts; the open-files cap of ${r.machine.openFiles} leaves ~19k sockets per process)`) +
      `. Channel c has members a<c>m0..a<c>m${r.setup.members - 1}, created through the API (member 0 creates the channel and invites the others); member k of channel c holds one socket on instance (c·${r.setup.members} + k) mod ${r.instances.length}, so every channel is on every instance. ` +
      `${r.connect.clientProcesses} client processes (bench/scenario-a/client.ts, \`ws\` sockets, frames read as bytes), each on its own source address (${o.sourceNet}.1, .2, ...) with explicit source ports from ${o.sourcePortFirst}; ` +
      `${o.posters} posting processes (bench/scenario-a/poster.ts, undici Pool, ${o.posterConnections} keep-alive connections each), open loop at the step's rate, each post by member 0 of its channel, channels round robin. ` +
      `Latency is POST start → message frame at each member's socket (CLOCK_MONOTONIC in both processes; the send time travels in the text).`,
    '',
  );
  L.push(
    `Settings this benchmark gives the roles: ${Object.entries(r.envGiven).map(([k, v]) => `${k}=${v}`).join(', ')}; and harness/topology.ts's: ${Object.entries(r.env).filter(([k]) => !(k in r.envGiven)).map(([k, v]) => `${k}=${v}`).join(', ')}. ` +
      `The post-rate and upgrade-rate limits are off (0): a few poster processes post for every member (the limits are per API process), and the ramp would only be paced. Everything else is walcast's default.`,
    '',
  );

  L.push('## Connecting', '');
  L.push(
    `${int(r.connect.connected)} of ${int(r.connect.sockets)} sockets upgraded and subscribed in ${f(r.connect.seconds)} s (${int(r.connect.perSecond)} sockets/s after ${f(r.connect.tokenSeconds)} s signing tokens), ${r.connect.failed} failed, ${r.connect.retries} retries, ${r.connect.portsSkipped} source ports skipped as taken` +
      (Object.keys(r.connect.errors).length ? `; errors on the way: ${Object.entries(r.connect.errors).map(([k, v]) => `${k} ×${v}`).join(', ')}` : '') +
      `. Per socket: TCP connect + upgrade p50 ${f(Hist.from(r.connect.upgrade).q(0.5))} / p99 ${f(Hist.from(r.connect.upgrade).q(0.99))} ms, subscribe → \`subscribed\` p50 ${f(Hist.from(r.connect.subscribe).q(0.5))} / p99 ${f(Hist.from(r.connect.subscribe).q(0.99))} ms (${o.connectConcurrency} upgrades in flight per client process). ` +
      `CPU over the ramp (% of a core): ${Object.entries(r.connect.usage.groups).map(([g, v]) => `${g} ${f(v, 0)}`).join(', ')}; machine ${f(r.connect.usage.machine, 0)} %, of which not ours ${f(r.connect.usage.others, 0)} %` +
      `. Kernel TCP memory (socket buffers, both ends, not in any RSS): ${r.memory.tcpKernelMB.baseline} MB before, ${r.memory.tcpKernelMB.connected} MB connected, ${r.memory.tcpKernelMB.end} MB at the end.`,
    '',
  );

  L.push('## Steps and hold: POST → frame', '');
  L.push(
    table(
      ['window', 'accepted posts/s', 'POST p50 / p99 ms', 'frames', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'commit→publish p99 ms (relay)', 'commit→send p99 ms (gateways)', 'group-commit batch', 'pass'],
      all.map((s) => {
        const q = Hist.from(s.e2e).summary();
        const p = Hist.from(s.resp).summary();
        return [
          stepLabel(s),
          f(s.achieved, 0),
          `${f(p.p50)} / ${f(p.p99)}`,
          `${int(s.delivered)}/${int(s.expected)}`,
          f(q.p50),
          f(q.p95),
          f(q.p99),
          f(q.max, 0),
          f(s.metrics.commitToPublish.p99),
          f(s.metrics.commitToSend.p99),
          f(s.metrics.batchSize, 1),
          s.pass ? 'yes' : `no: ${s.why.join('; ')}`,
        ];
      }),
    ),
    '',
  );
  L.push(`A step passes when every frame of its accepted posts arrived, p99 < ${o.p99Ms} ms, no post failed and ≥ 95 % of the offered rate was accepted. commit→publish and commit→send are the relay's and the gateways' own histograms (Prometheus buckets, interpolated): where they stay low while POST → frame grows, the time is spent before the commit (the write path) or after the gateway's send (the client side, on the same cores).`, '');
  if (r.hold?.windows?.length) {
    L.push(`### Hold at ${int(r.hold.rate)} posts/s (${r.holdChosen}), per ${o.windowSeconds} s window`, '');
    L.push(
      table(
        ['window', 'accepted posts', 'frames', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
        r.hold.windows.map((w) => {
          const q = Hist.from(w.e2e).summary();
          return [String(w.tag - 1000 + 1), int(w.ok), int(w.frames), f(q.p50), f(q.p95), f(q.p99), f(q.max, 0)];
        }),
      ),
      '',
    );
  }

  L.push('## Loss check (the whole run)', '');
  L.push(
    `Truth: the messages table after each socket's subscription point, and every post the API accepted (seq and id from its answer). ` +
      `${int(r.loss.sockets)} sockets checked: ${int(r.loss.socketsOk)} got exactly the stored messages of their channel, each once, in seq order, with the stored ids ` +
      `(missing ${int(r.loss.missing)}, extra ${int(r.loss.extra)}, duplicate or out of order ${int(r.loss.notAbove)}, gaps ${int(r.loss.gaps)}, wrong content ${r.loss.wrongContent}, disconnected ${r.loss.disconnected}, never subscribed ${r.loss.unsubscribed}). ` +
      `${int(r.loss.acceptedPosts)} accepted posts, ${r.loss.acceptedNotStored} not stored under the answered seq and id; ${int(r.loss.storedNotAccepted)} stored without a 200 answer (a failed or timed-out POST that committed: delivered, not counted as loss). ` +
      `${int(r.loss.frames)} message frames in all; other frames ${r.clientTotals.otherFrames}, error frames ${r.clientTotals.errorFrames}, sockets closed ${r.clientTotals.closed}.`,
    '',
  );
  if (r.loss.examples.length) L.push('Examples:', '', ...r.loss.examples.map((e) => `- ${e}`), '');

  L.push('## CPU by group (% of one core; the machine has ' + r.machine.cpus * 100 + ' %)', '');
  const groups = [...new Set([r.idle, ...all.map((s) => s.usage)].flatMap((u) => Object.keys(u.groups)))];
  L.push(
    table(
      ['window', 's', ...groups, 'server', 'load generators', 'machine (all processes)', 'not ours', 'frames per server CPU-second'],
      [
        ['idle', f(r.idle.seconds, 0), ...groups.map((g) => f(r.idle.groups[g] ?? 0)), f(r.idle.server), f(r.idle.load + r.idle.runner), f(r.idle.machine), f(r.idle.others), '-'],
        ...all.map((s) => [
          stepLabel(s),
          f(s.usage.seconds, 0),
          ...groups.map((g) => f(s.usage.groups[g] ?? 0)),
          f(s.usage.server),
          f(s.usage.load + s.usage.runner),
          f(s.usage.machine),
          f(s.usage.others),
          int(s.delivered / ((s.usage.server / 100) * s.usage.seconds)),
        ]),
      ],
    ),
    '',
  );
  L.push(
    'Each window runs from the first post to the last frame of the step. "load generators" is the client and posting processes plus this runner; "not ours" is CPU the machine spent on processes outside this run (other work on a shared machine). ' +
      'Frames per server CPU-second = frames delivered / CPU-seconds of every server process (api, relay, gateways, PostgreSQL, Redis) over the window.',
    '',
  );

  const shown = r.hold ?? best ?? r.steps[r.steps.length - 1];
  if (shown) {
    L.push(`### Every process during ${shown.kind === 'hold' ? 'the hold' : `the ${shown.rate}/s step`} (CPU % of a core, RSS at the end of the window)`, '');
    const rows: (string | number)[][] = [];
    const pgKinds = new Map<string, { n: number; cpu: number; rss: number }>();
    for (const p of shown.usage.procs) {
      if (p.group.startsWith('postgres')) {
        const k = pgKinds.get(p.group) ?? { n: 0, cpu: 0, rss: 0 };
        pgKinds.set(p.group, { n: k.n + 1, cpu: k.cpu + p.cpu, rss: k.rss + p.rssMB });
      } else rows.push([p.name, f(p.cpu), f(p.rssMB, 0)]);
    }
    for (const [g, k] of pgKinds) rows.push([`${g} (${k.n} processes)`, f(k.cpu), f(k.rss, 0)]);
    L.push(table(['process', 'CPU %', 'RSS MB'], rows), '');
    L.push("PostgreSQL's RSS counts its shared buffers in every process that touched them, so its sum overstates its memory.", '');
  }

  L.push('## Where the load generator limits the figures', '');
  for (const line of limits(r, best)) L.push(`- ${line}`);
  L.push('');

  L.push('## Memory (RSS, MB)', '');
  const names = [...new Set([...r.memory.baseline, ...r.memory.connected, ...r.memory.end].map((p) => p.name))].filter((n) => !/^postgres (backend|other) /.test(n));
  const mem = (list: ProcMem[], name: string) => list.find((p) => p.name === name)?.rssMB;
  const pgSum = (list: ProcMem[]) => list.filter((p) => p.group.startsWith('postgres')).reduce((a, p) => a + p.rssMB, 0);
  L.push(
    table(
      ['process', 'before connecting', 'connected', 'end'],
      [
        ...names.map((n) => [n, f(mem(r.memory.baseline, n) ?? NaN, 0), f(mem(r.memory.connected, n) ?? NaN, 0), f(mem(r.memory.end, n) ?? NaN, 0)]),
        ['PostgreSQL, all processes (shared buffers counted in each)', f(pgSum(r.memory.baseline), 0), f(pgSum(r.memory.connected), 0), f(pgSum(r.memory.end), 0)],
      ],
    ),
    '',
  );
  L.push(
    `Gateways: ${gw.processes} processes, ${f(gw.baselineMB, 0)} MB before any socket, ${f(gw.connectedMB, 0)} MB with ${int(r.connect.connected)} sockets subscribed, ${f(gw.endMB, 0)} MB at the end: ` +
      `**${f(gw.kbPerConnConnected, 2)} KB per connection** once connected (RSS growth / sockets), ${f(gw.kbPerConnEnd, 2)} KB at the end (rings holding recent frames, V8 heap not yet collected), ${f(gw.kbPerConnTotal, 2)} KB counting the whole processes. ` +
      `Kernel socket buffers are extra: ${r.memory.tcpKernelMB.connected - r.memory.tcpKernelMB.baseline} MB for both ends of every connection on this machine.`,
    '',
  );
  const h = r.memory.gatewayHeap;
  const perConn = (mb: number) => f((mb * 1024) / Math.max(1, r.connect.connected), 2);
  L.push(
    `Where it goes (the gateways' own /metrics, summed; growth from before connecting to connected / to the end, KB per connection): ` +
      `V8 heap in use ${perConn(h.connected.heapUsed - h.baseline.heapUsed)} / ${perConn(h.end.heapUsed - h.baseline.heapUsed)}, ` +
      `V8 heap allocated ${perConn(h.connected.heapTotal - h.baseline.heapTotal)} / ${perConn(h.end.heapTotal - h.baseline.heapTotal)}, ` +
      `external (Buffers) ${perConn(h.connected.external - h.baseline.external)} / ${perConn(h.end.external - h.baseline.external)}, ` +
      `the rest of the RSS (uWS's per-socket structures, malloc, code) ${perConn(gw.connectedMB - gw.baselineMB - (h.connected.heapTotal - h.baseline.heapTotal) - (h.connected.external - h.baseline.external))} / ${perConn(gw.endMB - gw.baselineMB - (h.end.heapTotal - h.baseline.heapTotal) - (h.end.external - h.baseline.external))}.`,
    '',
  );

  L.push('## What a post costs, per role', '');
  L.push(
    `CPU per accepted post, each role's idle background taken off, in every window whose frames all arrived. The model below uses ${model.reference} (the highest rate measured; group-commit batch ${f(model.referenceBatch, 1)} posts): ` +
      `group commit makes PostgreSQL's and the api's cost per post fall as the rate and the batch grow, so at 10,000 posts/s they would be lower. ` +
      `"fit" is the slope of a straight line through idle and all those windows, for comparison.`,
    '',
  );
  const measured = all.filter((s) => s.delivered >= s.expected && s.ok > 0);
  L.push(
    table(
      ['role', 'idle, % of a core', ...measured.map((s) => `${stepLabel(s)}: µs/post`), 'fit: µs/post', 'model: µs/post'],
      ROLES.map((role) => [
        role + (role === 'gateways' ? ` (model: ${f(model.usPerFrame, 1)} µs per frame)` : ''),
        f(model.roles[role].idlePct),
        ...measured.map((s) => f(Math.max(0, usPerPost(r, s, role)), 0)),
        f(model.roles[role].fitUsPerPost, 0),
        f(model.roles[role].usPerPost, 0),
      ]),
    ),
    '',
  );

  L.push(`## Paper model: ${int(model.target.postsPerS)} posts/s × ${int(model.target.connections)} connections (${model.target.members} members per channel, ${int(model.target.postsPerS * model.target.members)} frames/s)`, '');
  L.push(
    `Cores = background + measured cost × rate (the gateways' per-frame cost × ${int(model.target.postsPerS * model.target.members)} frames/s; their background scaled to ${int(model.target.connections)} sockets). ` +
      `Measured on ${r.machine.cpus} shared cores${quick ? ` with ${int(r.connect.connected)} sockets only` : ''}: a dedicated server core does at least as much, so these are upper estimates of the CPU, not of the latency.`,
    '',
  );
  const c = model.cores;
  const pgCores = c['postgres backends'] + c['postgres walsender'] + c['postgres other'];
  const gwPerInstance = c.gateways / 3;
  const gwMemGiB = ((model.target.connections / 3) * model.gatewayKBPerConn) / 2 ** 20 + model.gatewayBaseMB / r.instances.length / 1024;
  L.push(
    table(
      ['role', 'cores at the target', 'how it scales', 'placement'],
      [
        ['api', f(c.api, 2), 'per post; stateless, any number of processes', `${Math.max(1, Math.ceil(c.api / 0.7))} process(es) at ≤ 70 % of a core each`],
        ['PostgreSQL (backends + walsender + background)', f(pgCores, 2), 'per post (group commit: falls with batch size); one primary', `one machine of ${vcpus(pgCores)} vCPU (≤ 60 % busy), WAL on fast storage`],
        ['relay', f(c.relay, 2), 'per post; ONE process per slot (single event loop)', c.relay > 0.7 ? `**${f(c.relay, 2)} cores: above what one process gives; the relay is the ceiling**` : `one process (${f((c.relay / 1) * 100, 0)} % of a core) + a standby`],
        ['redis', f(c.redis, 2), 'per post × instances holding the channel; one thread', c.redis > 0.7 ? `**above one core: Redis Cluster (REDIS_CLUSTER_NODES)**` : `one redis-server (${f(c.redis * 100, 0)} % of a core)`],
        ['gateways', f(c.gateways, 2), `per frame (${f(model.usPerFrame, 1)} µs) + background per socket`, `3 instances × ${f(gwPerInstance, 2)} cores → ${vcpus(gwPerInstance)} vCPU each; ${f(gwMemGiB, 2)} GiB RSS each (${f(model.gatewayKBPerConn, 2)} KB × ${int(model.target.connections / 3)} sockets)`],
        ['all server roles', f(model.totalCores, 2), '', ''],
      ],
    ),
    '',
  );
  const small = c.api + c.relay + c.redis;
  L.push(
    `**What a user needs** (this model, ≤ 60 % CPU per machine): one PostgreSQL machine of ${vcpus(pgCores)} vCPU; 3 gateway machines of ${vcpus(gwPerInstance)} vCPU and ${Math.max(2, Math.ceil(gwMemGiB * 2))} GiB each ` +
      `(one instance each; its workers ≈ one per core); api, relay and Redis together ${f(small, 2)} cores: one machine of ${vcpus(small)} vCPU (two for failover). ` +
      `That is 5 machines (6 with a standby for the api, relay and Redis) and ${vcpus(pgCores) + 3 * vcpus(gwPerInstance) + vcpus(small)} vCPU in all for ${int(model.target.postsPerS)} posts/s to ${int(model.target.connections)} connections.` +
      (c.relay > 0.7 ? ' The relay is the exception: one process cannot give more than one core, so at this rate it must get cheaper per post before anything else matters.' : ''),
    '',
  );
  return L.join('\n');
}

function limits(r: ScenarioAResult, best: StepResult | null): string[] {
  const out: string[] = [];
  const cap = r.machine.cpus * 100;
  const failed = r.steps.find((s) => !s.pass);
  for (const s of [best, failed, r.hold].filter((x): x is StepResult => Boolean(x))) {
    const u = s.usage;
    const gen = u.load + u.runner;
    const used = u.machine;
    const label = s === r.hold ? `the hold (${s.rate}/s)` : s === failed ? `the first failing step (${s.rate}/s)` : `the highest passing step (${s.rate}/s)`;
    const saturated = used >= cap * 0.85;
    out.push(
      `At ${label} the machine was ${f(used, 0)} % busy of ${cap} %: servers ${f(u.server, 0)} %, load generators ${f(gen, 0)} % (clients ${f(u.groups.clients ?? 0, 0)}, posters ${f(u.groups.posters ?? 0, 0)}, runner ${f(u.runner, 0)}), other work ${f(u.others, 0)} %. ` +
        (saturated
          ? `The cores were saturated, and ${f((gen / Math.max(1, used)) * 100, 0)} % of what was used went to the load generator: that much CPU was taken from the servers, so this figure is limited by sharing 2 cores with the load generator (and ${f(u.others, 0)} % other work), not by walcast alone.`
          : `The cores were not saturated (${f(cap - used, 0)} % idle): here the limit is not the machine's CPU but a stage of the pipeline (see commit→publish, commit→send and the POST times above).`),
    );
  }
  if (failed) {
    const p = Hist.from(failed.resp).summary();
    const q = Hist.from(failed.e2e).summary();
    const stages: [string, number][] = [
      ['the write path (POST p99, api + PostgreSQL)', p.p99],
      ['the relay (commit → publish p99)', failed.metrics.commitToPublish.p99],
      ['the gateways (commit → send p99)', failed.metrics.commitToSend.p99],
    ];
    const [worst] = stages.filter(([, v]) => Number.isFinite(v)).sort((a, b) => b[1] - a[1]);
    if (worst) out.push(`The first failing step's p99 of ${f(q.p99, 0)} ms builds up mostly in ${worst[0]}: ${f(worst[1], 0)} ms (write path ${f(p.p99, 0)}, relay ${f(failed.metrics.commitToPublish.p99, 0)}, gateways ${f(failed.metrics.commitToSend.p99, 0)} ms).`);
  }
  const top = best ?? r.steps[0];
  if (top) {
    const perFrameClient = ((top.usage.groups.clients ?? 0) / 100) * top.usage.seconds * 1e6 / Math.max(1, top.delivered);
    const perPostPoster = ((top.usage.groups.posters ?? 0) / 100) * top.usage.seconds * 1e6 / Math.max(1, top.ok);
    out.push(
      `The load generator's own costs: ${f(perFrameClient, 1)} µs of client CPU per frame received and ${f(perPostPoster, 0)} µs of poster CPU per post (at ${top.rate}/s). ` +
        `At 10,000 posts/s (100,000 frames/s) that alone would be ${f((perFrameClient * 100_000) / 1e4, 0)} % + ${f((perPostPoster * 10_000) / 1e4, 0)} % of a core, on a machine of ${cap} %.`,
    );
  }
  return out;
}

function fmtS(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
