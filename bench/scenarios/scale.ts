// The seeds' Scenario C (horizontal scaling) as far as one machine goes: 1, 2, 4, 8 gateway
// processes, the same number of clients on each, a constant post rate, on one Redis and on a
// Redis Cluster (3 masters, 3 replicas). Per step: POST → frame latency (p50/p95/p99), and what
// a message costs the broker from its own counters (INFO stats, commandstats, CLUSTER INFO)
// minus the idle background (slot map refreshes, pings) measured just before.
// Two placements of the clients: `all` (every gateway holds every channel: h = G gateways hear
// each message) and `pinned` (each channel's clients on one gateway: h = 1); the number of
// deliveries is the same in both. The model: Redis output bytes per message = a + b·h.
// Writes <report>/<tag>-scale.md, .svg and -raw.json (--report '' to only print).
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuWindow } from '../../harness/proc-stats.js';
import { machine, table } from '../../harness/load/format.js';
import { startBusStack, statsDelta, type BusMode, type RedisStats } from '../lib/bus-stack.js';
import { Hist, type HistData } from '../lib/hist.js';
import { allStats, clientCpu, fit, sleep, waitDeliveries, type PostResult } from '../lib/measure.js';
import { scenario } from '../lib/scenario.js';
import { methodUrl } from '../lib/stack.js';
import { startWorkers } from '../lib/workers.js';

type Placement = 'all' | 'pinned';

export interface ScaleRow {
  mode: BusMode;
  placement: Placement;
  gateways: number;
  /** Gateways that hold (subscribe) each channel. */
  holding: number;
  clients: number;
  connectFailed: number;
  posted: number;
  expected: number;
  delivered: number;
  latency: HistData;
  cpu: Record<string, number>;
  /** Broker counters over the posting window, minus the idle rate. */
  perMessage: { bytesOut: number; bytesIn: number; commands: number; spublish: number; publishshard: number };
  idlePerS: { bytesOut: number; commands: number };
  /** Output bytes per message by node (cluster: where the load went). */
  nodesBytesOut: Record<string, number>;
  seconds: number;
}

export const scale = scenario({
  name: 'scale',
  summary: 'seeds Scenario C: 1,2,4,8 gateways, same clients per gateway, constant rate; latency and Redis bytes/commands per message, one Redis vs Redis Cluster',
  suite: false,
  options: {
    gateways: { type: 'numbers', default: [1, 2, 4, 8], quick: [1, 2], description: 'gateway processes, one step each' },
    clientsPerGateway: { type: 'number', default: 250, quick: 8, description: 'WebSocket clients on each gateway (one channel each)' },
    totalClients: { type: 'number', default: 0, description: 'if set, this many clients in all, split over the gateways (constant total load) instead of --clients-per-gateway' },
    channels: { type: 'number', default: 40, quick: 4, description: 'channels posted to, round robin' },
    rate: { type: 'number', default: 300, quick: 20, description: 'posts per second (constant in every step)' },
    seconds: { type: 'number', default: 6, quick: 1, description: 'measured seconds of posting per step' },
    idleSeconds: { type: 'number', default: 3, quick: 1, description: 'seconds of idle background measured before each step' },
    modes: { type: 'string', default: 'redis,cluster', description: 'buses to compare: redis, cluster' },
    placements: { type: 'string', default: 'all,pinned', description: 'client placements: all (every gateway holds every channel), pinned (one gateway per channel)' },
    workers: { type: 'number', default: 2, quick: 1, description: 'client processes (plus one poster)' },
    report: { type: 'string', default: 'bench/results', quick: '', description: "directory for <tag>-scale.md/.svg/-raw.json ('' : print only)" },
    reportTag: { type: 'string', default: new Date().toISOString().slice(0, 10), description: 'file name prefix of the report' },
  },
  async run(o, ctx): Promise<{ rows: ScaleRow[]; loadavg: number[][]; files: string[] }> {
    const db = await ctx.db();
    const rows: ScaleRow[] = [];
    const loadavg: number[][] = [os.loadavg()];
    const maxG = Math.max(...o.gateways);
    for (const mode of o.modes.split(',') as BusMode[]) {
      ctx.log(`scale: ${mode}, starting api, relay and ${maxG} gateways`);
      const stack = await startBusStack(db, mode, maxG);
      try {
        const channels = await stack.channels(`scale-${mode}`, o.channels);
        const url = methodUrl(stack.api.url, 'chat.postMessage');
        const [poster] = await startWorkers(1);
        try {
          await poster!.send({ op: 'post', url, token: stack.token, channels, rate: 50, seconds: ctx.quick ? 0.3 : 1 }); // warm-up
          for (const G of o.gateways) {
            for (const placement of o.placements.split(',') as Placement[]) {
              // Clients: G x clientsPerGateway sockets of one channel each; `pinned` gives each
              // channel one gateway, `all` spreads every channel over every gateway.
              const subs: { url: string; channels: string[] }[] = [];
              const perGateway = o.totalClients > 0 ? Math.round(o.totalClients / G) : o.clientsPerGateway;
              for (let g = 0; g < G; g++) {
                const mine = placement === 'all' ? channels : channels.filter((_, c) => c % G === g);
                for (let k = 0; k < perGateway; k++) subs.push({ url: stack.wsUrl(g), channels: [mine[k % mine.length]!] });
              }
              const holders = new Map<string, Set<string>>();
              for (const s of subs) (holders.get(s.channels[0]!) ?? holders.set(s.channels[0]!, new Set()).get(s.channels[0]!)!).add(s.url);
              const holding = Math.max(...[...holders.values()].map((h) => h.size));
              const workers = await startWorkers(o.workers);
              try {
                const share = workers.map((_, i) => subs.filter((_, j) => j % workers.length === i));
                const conn = await Promise.all(workers.map((w, i) => w.send<{ connected: number; failed: number }>({ op: 'connect', mode: 'walcast', token: stack.token, subs: share[i]!, localAddress: `127.0.0.${2 + i}` })));
                const perChannel = new Map<string, number>();
                for (const s of subs) perChannel.set(s.channels[0]!, (perChannel.get(s.channels[0]!) ?? 0) + 1);
                await sleep(ctx.quick ? 200 : 1000);
                const s0 = await stack.stats();
                const t0 = performance.now();
                await sleep(o.idleSeconds * 1000);
                const s1 = await stack.stats();
                const idleS = (performance.now() - t0) / 1000;
                await Promise.all(workers.map((w) => w.send({ op: 'reset' })));
                const cpu = cpuWindow({ ...stack.cpuGroups(db), clients: () => [...workers.flatMap((w) => w.pid()), ...poster!.pid()] });
                const t1 = performance.now();
                const p = await poster!.send<PostResult>({ op: 'post', url, token: stack.token, channels, rate: o.rate, seconds: o.seconds });
                const expected = Object.entries(p.posted).reduce((a, [ch, n]) => a + n * (perChannel.get(ch) ?? 0), 0);
                await waitDeliveries(workers, expected, 10_000);
                const used = cpu();
                const s2 = await stack.stats();
                const postS = (performance.now() - t1) / 1000;
                const st = await allStats(workers);
                // The background again after the window: its rate is the mean of both (gossip is bursty).
                const t2 = performance.now();
                await sleep(o.idleSeconds * 1000);
                const s3 = await stack.stats();
                const idle2S = (performance.now() - t2) / 1000;
                const h = new Hist();
                for (const x of st) h.merge(x.hist);
                const idle = statsDelta(s0, s1);
                const idle2 = statsDelta(s2, s3);
                const busy = statsDelta(s1, s2);
                const idleRate = (k: 'netOut' | 'netIn' | 'commands' | 'spublish' | 'publishshardSent') => (idle[k] + idle2[k]) / (idleS + idle2S);
                const net = (k: 'netOut' | 'netIn' | 'commands' | 'spublish' | 'publishshardSent') => Math.max(0, busy[k] - idleRate(k) * postS) / Math.max(1, p.ok);
                const row: ScaleRow = {
                  mode,
                  placement,
                  gateways: G,
                  holding,
                  clients: conn.reduce((a, c) => a + c.connected, 0),
                  connectFailed: conn.reduce((a, c) => a + c.failed, 0),
                  posted: p.ok,
                  expected,
                  delivered: st.reduce((a, x) => a + x.deliveries, 0),
                  latency: h.data(),
                  cpu: { ...used, clientsOwn: clientCpu(st) },
                  perMessage: { bytesOut: net('netOut'), bytesIn: net('netIn'), commands: net('commands'), spublish: net('spublish'), publishshard: net('publishshardSent') },
                  idlePerS: { bytesOut: idleRate('netOut'), commands: idleRate('commands') },
                  nodesBytesOut: Object.fromEntries(busy.nodes.map((n) => [`${n.port} (${n.role})`, Math.round(n.netOut / Math.max(1, p.ok))])),
                  seconds: postS,
                };
                rows.push(row);
                loadavg.push(os.loadavg());
                const q = h.summary();
                ctx.log(
                  `  ${mode} ${placement} G=${G} h=${holding}: ${row.delivered}/${expected} delivered, p50 ${q.p50.toFixed(1)} p95 ${q.p95.toFixed(1)} p99 ${q.p99.toFixed(1)} ms, ` +
                    `redis ${row.perMessage.bytesOut.toFixed(0)} B out/msg, ${row.perMessage.commands.toFixed(2)} cmd/msg, load ${os.loadavg()[0]!.toFixed(2)}`,
                );
              } finally {
                await Promise.all(workers.map((w) => w.close()));
              }
              await sleep(ctx.quick ? 100 : 500);
            }
          }
        } finally {
          await poster!.close();
        }
      } finally {
        await stack.close();
      }
    }
    const files: string[] = [];
    if (o.report) {
      const dir = path.resolve(o.report);
      mkdirSync(dir, { recursive: true });
      const base = path.join(dir, `${o.reportTag}-scale`);
      writeFileSync(`${base}-raw.json`, JSON.stringify({ machine: machine(), loadavg, options: o, rows }, null, 1) + '\n');
      writeFileSync(`${base}.svg`, scaleSvg(rows));
      writeFileSync(`${base}.md`, scaleReport(rows, o, loadavg, path.basename(`${base}.svg`)));
      files.push(`${base}.md`, `${base}.svg`, `${base}-raw.json`);
    }
    return { rows, loadavg, files };
  },
  print: (r, o) => scaleReport(r.rows, o, r.loadavg, null) + (r.files.length ? `\nwritten: ${r.files.join(', ')}\n` : ''),
  ok: (r) => r.rows.every((x) => x.delivered >= x.expected),
});

const f = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '-');

export function scaleReport(rows: ScaleRow[], o: { rate: number; seconds: number; clientsPerGateway: number; totalClients?: number; channels: number }, loadavg: number[][], svg: string | null): string {
  const out: string[] = [];
  out.push(`# Scale-out: gateways 1..${Math.max(...rows.map((r) => r.gateways))}, one Redis vs Redis Cluster`, '');
  out.push(machine(), '');
  out.push(`Load average (1/5/15 min) at the start ${loadavg[0]!.map((v) => v.toFixed(2)).join(' / ')}, after each step: ${loadavg.slice(1).map((l) => l[0]!.toFixed(2)).join(', ')}. The machine was shared with other work: latencies are pessimistic and noisy.`, '');
  out.push(
    `${o.totalClients ? `${o.totalClients} clients in all, split over the gateways` : `${o.clientsPerGateway} clients per gateway`} (one channel each), ${o.channels} channels, ${o.rate} posts/s for ${o.seconds} s per step; api, relay, every gateway, PostgreSQL, Redis and the client processes all on this machine (2 cores): ` +
      (o.totalClients
        ? `constant total load (the same clients and deliveries at every gateway count), so what changes is only how many gateway processes share them and, with placement all, how many of them process each message (h).`
        : `with a fixed number of clients per gateway the total work grows with the gateway count while the machine does not, so latency here measures the machine's saturation as much as the design; the CPU per delivery column is the scaling signal (flat = linear).`),
    '',
  );
  if (svg) out.push(`![latency and Redis bytes per message](${svg})`, '');
  out.push('## Latency (POST start → frame at the client)', '');
  out.push(
    table(
      ['bus', 'placement', 'gateways', 'h', 'clients', 'delivered', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'gateways CPU µs / delivery', 'Redis CPU µs / msg', 'server CPU % of a core'],
      rows.map((r) => {
        const q = Hist.from(r.latency).summary();
        const { clients: _c, clientsOwn: _o, ...server } = r.cpu;
        // % of a core over the window → µs of CPU per delivery (gateways) / per message (Redis).
        const perDelivery = ((server.gateways ?? 0) / 100) * r.seconds * 1e6 / Math.max(1, r.delivered);
        const redisPerMsg = ((server.redis ?? 0) / 100) * r.seconds * 1e6 / Math.max(1, r.posted);
        return [r.mode, r.placement, r.gateways, r.holding, r.clients, `${r.delivered}/${r.expected}`, f(q.p50), f(q.p95), f(q.p99), f(q.max, 0), f(perDelivery, 1), f(redisPerMsg, 0), Object.entries(server).filter(([, v]) => v >= 1).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')];
      }),
    ),
    '',
  );
  out.push('## What a message costs the broker (counters over the window minus the idle background)', '');
  out.push(
    table(
      ['bus', 'placement', 'gateways', 'h (gateways holding the channel)', 'bytes out / msg', 'bytes in / msg', 'commands / msg', 'SPUBLISH / msg', 'cluster-bus publishshard / msg', 'idle bytes out/s'],
      rows.map((r) => [r.mode, r.placement, r.gateways, r.holding, f(r.perMessage.bytesOut, 0), f(r.perMessage.bytesIn, 0), f(r.perMessage.commands, 2), f(r.perMessage.spublish, 2), f(r.perMessage.publishshard, 2), f(r.idlePerS.bytesOut, 0)]),
    ),
    '',
  );
  const cl = rows.filter((r) => r.mode === 'cluster');
  if (cl.length) {
    out.push('Cluster: output bytes per message by node (the shards share the load; replicas only get the cluster-bus copy):', '');
    for (const r of cl) out.push(`- ${r.placement}, G=${r.gateways}: ${Object.entries(r.nodesBytesOut).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    out.push('');
  }
  out.push('## Model', '');
  for (const mode of [...new Set(rows.map((r) => r.mode))]) {
    const pts = rows.filter((r) => r.mode === mode).map((r): [number, number] => [r.holding, r.perMessage.bytesOut]);
    const { a, b } = fit(pts);
    const pinned = rows.filter((r) => r.mode === mode && r.placement === 'pinned').map((r) => r.perMessage.bytesOut);
    out.push(
      `- ${mode}: bytes out per message ≈ ${f(a, 0)} + ${f(b, 0)} · h (least squares over ${pts.length} steps; h = gateways holding the channel). ` +
        (pinned.length ? `With h = 1 (pinned) it stays ${f(Math.min(...pinned), 0)}–${f(Math.max(...pinned), 0)} B whatever the gateway count.` : ''),
    );
  }
  const ref = rows.filter((r) => r.mode === 'cluster').length ? 'cluster' : rows[0]?.mode;
  const { a, b } = fit(rows.filter((r) => r.mode === ref).map((r): [number, number] => [r.holding, r.perMessage.bytesOut]));
  out.push(
    '',
    `Redis sends each message once to each gateway that holds the channel (SSUBSCRIBE: a gateway hears only its clients' channels), so its output is rate × (a + b·h), ` +
      `independent of the number of clients and of gateways that do not hold the channel. Extrapolated to the seeds' Scenario C (16 servers × 10k clients, 1000 msg/s) with the ${ref} fit:`,
    '',
    `- every server holds every channel (h = 16, the worst case): ${f((1000 * (a + 16 * b)) / 1e6, 2)} MB/s out of Redis, 1000 × 16 = 16 000 deliveries/s to gateways;`,
    `- channels pinned to 2 servers each (h = 2, e.g. sticky routing by channel): ${f((1000 * (a + 2 * b)) / 1e6, 2)} MB/s;`,
    `- a Redis Cluster splits that over its masters by slot (3 masters: about a third each for evenly spread channels); one Redis ≈ 650k delivered msgs/s (Centrifugo's figure) is ~40× the worst case above, so Scenario C's broker load is far from needing a cluster; what grows with 10k clients per server is the gateways' own fan-out (10k sockets each), which is linear in clients per gateway and independent of the gateway count.`,
    '',
  );
  return out.join('\n');
}

/** Two panels: latency p50/p99 vs gateways, Redis bytes out per message vs gateways; one line per bus and placement. */
export function scaleSvg(rows: ScaleRow[]): string {
  const W = 460;
  const H = 320;
  const pad = { l: 56, r: 16, t: 36, b: 48 };
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 40}" viewBox="0 0 ${2 * W} ${H + 40}" font-family="sans-serif" font-size="11">`, '<rect width="100%" height="100%" fill="white"/>'];
  const gs = [...new Set(rows.map((r) => r.gateways))].sort((a, b) => a - b);
  const colors: Record<string, string> = { 'redis all': '#1f77b4', 'redis pinned': '#aec7e8', 'cluster all': '#d62728', 'cluster pinned': '#ff9896' };
  const panel = (ox: number, title: string, yLabel: string, series: { name: string; color: string; dash?: string; pts: [number, number][] }[]) => {
    const pw = W - pad.l - pad.r;
    const ph = H - pad.t - pad.b;
    const ys = series.flatMap((s) => s.pts.map((p) => p[1])).filter(Number.isFinite);
    const yMax = Math.max(1, ...ys) * 1.15;
    const X = (g: number) => ox + pad.l + (gs.length > 1 ? (gs.indexOf(g) / (gs.length - 1)) * pw : pw / 2);
    const Y = (v: number) => pad.t + ph - (v / yMax) * ph;
    parts.push(`<text x="${ox + W / 2}" y="18" text-anchor="middle" font-size="13">${title}</text>`);
    parts.push(`<rect x="${ox + pad.l}" y="${pad.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
    for (let i = 0; i <= 4; i++) {
      const v = (yMax / 4) * i;
      parts.push(`<line x1="${ox + pad.l}" x2="${ox + pad.l + pw}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/><text x="${ox + pad.l - 4}" y="${Y(v) + 3}" text-anchor="end">${v >= 10 ? v.toFixed(0) : v.toFixed(1)}</text>`);
    }
    for (const g of gs) parts.push(`<text x="${X(g)}" y="${pad.t + ph + 14}" text-anchor="middle">${g}</text>`);
    parts.push(`<text x="${ox + pad.l + pw / 2}" y="${H - 12}" text-anchor="middle">gateways</text>`);
    parts.push(`<text transform="translate(${ox + 14},${pad.t + ph / 2}) rotate(-90)" text-anchor="middle">${yLabel}</text>`);
    series.forEach((s, i) => {
      if (!s.pts.length) return;
      parts.push(`<polyline points="${s.pts.map(([g, v]) => `${X(g).toFixed(1)},${Y(v).toFixed(1)}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
      for (const [g, v] of s.pts) parts.push(`<circle cx="${X(g).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
      parts.push(`<line x1="${ox + pad.l + 8}" x2="${ox + pad.l + 28}" y1="${pad.t + 12 + i * 14}" y2="${pad.t + 12 + i * 14}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/><text x="${ox + pad.l + 32}" y="${pad.t + 16 + i * 14}">${s.name}</text>`);
    });
  };
  const lat: { name: string; color: string; dash?: string; pts: [number, number][] }[] = [];
  for (const [name, color] of Object.entries(colors)) {
    const [mode, placement] = name.split(' ');
    const rs = rows.filter((r) => r.mode === mode && r.placement === placement).sort((a, b) => a.gateways - b.gateways);
    if (!rs.length) continue;
    for (const [q, dash] of [[0.5, ''], [0.99, '5 3']] as const) lat.push({ name: `${name} p${Math.round(q * 100)}`, color, dash, pts: rs.map((r) => [r.gateways, Hist.from(r.latency).q(q)]) });
  }
  panel(0, 'POST → frame latency p50 and p99, ms', 'ms', lat);
  const bytes = Object.entries(colors).map(([name, color]) => {
    const [mode, placement] = name.split(' ');
    const rs = rows.filter((r) => r.mode === mode && r.placement === placement).sort((a, b) => a.gateways - b.gateways);
    return { name: `${name} (h = ${placement === 'all' ? 'G' : '1'})`, color, pts: rs.map((r): [number, number] => [r.gateways, r.perMessage.bytesOut]) };
  });
  panel(W, 'Redis output bytes per message', 'bytes / message', bytes);
  parts.push('</svg>');
  return parts.join('\n');
}
