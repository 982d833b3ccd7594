// The report's parts: markdown tables and an SVG percentile chart drawn by hand (bench/lib/report.ts
// puts them together).
import { Hist } from './hist.js';
import { table } from '../../harness/load/format.js';
import type { FanoutRun } from '../scenarios/fanout.js';
import { FAULTS, type FaultRow } from '../scenarios/faults.js';
import type { LatencyRow } from '../scenarios/latency.js';
import type { RaceRow } from '../scenarios/race.js';

export const f = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');
const cpuText = (c: Record<string, number>) =>
  Object.entries(c)
    .filter(([, v]) => v >= 0.5)
    .map(([k, v]) => `${k} ${v.toFixed(0)}%`)
    .join(', ');

export function latencyTable(rows: LatencyRow[]): string {
  return table(
    ['source', 'msg/s', 'delivered', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'POST p50', 'POST p99', 'server CPU (% of a core)', 'clients CPU'],
    rows.map((r) => {
      const e = Hist.from(r.e2e).summary();
      const p = Hist.from(r.post).summary();
      const { clients, ...server } = r.cpu;
      return [r.source, r.rate, `${r.delivered}/${r.expected}`, f(e.p50), f(e.p95), f(e.p99), f(e.max, 1), f(p.p50), f(p.p99), cpuText(server), `${f(clients ?? 0, 0)}%`];
    }),
  );
}

export function cdcOverDirect(rows: LatencyRow[]): { rate: number; cdc: number; direct: number; diff: number; ratio: number; cdcP99: number; directP99: number }[] {
  const out = [];
  for (const r of rows.filter((x) => x.source === 'cdc')) {
    const d = rows.find((x) => x.source === 'direct' && x.rate === r.rate);
    if (!d) continue;
    const c = Hist.from(r.e2e).summary();
    const e = Hist.from(d.e2e).summary();
    out.push({ rate: r.rate, cdc: c.p50, direct: e.p50, diff: c.p50 - e.p50, ratio: c.p50 / e.p50, cdcP99: c.p99, directP99: e.p99 });
  }
  return out;
}

export function raceTable(rows: RaceRow[]): string {
  return table(
    ['source', 'commit delay ms', 'posted', 'frames', 'getMessage on frame', 'ghosts (404)', 'ghost rate', 'ghost rows committed later', 'e2e p50 ms'],
    rows.map((r) => [r.source, r.commitDelayMs, r.posted, r.frames, r.getChecks, r.ghosts, `${f((r.ghosts / Math.max(1, r.getChecks)) * 100, 1)}%`, r.ghostsCommittedLater, f(Hist.from(r.e2e).q(0.5), 1)]),
  );
}

export function faultTable(rows: FaultRow[]): string {
  return table(
    ['source', 'fault', 'stored', 'POST attempts', 'expected deliveries', 'lost', 'duplicated', 'wrong row', 'out of order', 'not on the bus', 'caught up after ms'],
    rows.map((r) => [r.source, r.fault, r.stored, r.postAttempts, r.expected, r.lost, r.duplicated, r.wrong, r.outOfOrder, r.busLost, r.catchUpMs < 0 ? 'never (8 s)' : r.catchUpMs]),
  );
}

export const faultLegend = Object.entries(FAULTS)
  .map(([k, v]) => `- \`${k}\`: ${v}`)
  .join('\n');

export function fanoutTable(run: FanoutRun): string {
  return table(
    ['msg/s', 'deliveries/s', 'delivered', 'p50 ms', 'p99 ms', 'max ms', 'sustained', 'server CPU (% of a core)', 'deliveries per server CPU-second', 'clients CPU'],
    run.steps.map((s) => {
      const h = Hist.from(s.latency).summary();
      const { clients, ...server } = s.cpu;
      return [s.rate, s.deliveriesPerS, `${s.delivered}/${s.expected}`, f(h.p50), f(h.p99), f(h.max, 1), s.sustained ? 'yes' : 'no', cpuText(server), Math.round(perServerCpu(s)), `${f(clients ?? 0, 0)}%`];
    }),
  );
}

/** Deliveries per second of server CPU (every server-side process: gateways, api, relay, Redis, PostgreSQL). */
export function perServerCpu(s: { deliveriesPerS: number; cpu: Record<string, number> }): number {
  const server = Object.entries(s.cpu).reduce((a, [k, v]) => (k === 'clients' ? a : a + v), 0);
  return server > 0 ? s.deliveriesPerS / (server / 100) : NaN;
}

// --- SVG -------------------------------------------------------------------------------------

const COLORS: Record<string, string> = { cdc: '#1f77b4', direct: '#2ca02c', 'direct-in-tx': '#d62728', notify: '#ff7f0e', walcast: '#1f77b4', 'socket.io': '#9467bd' };
const QS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** Latency by percentile (x: 1/(1-q) on a log scale), one panel per rate, one line per source. */
export function latencySvg(rows: LatencyRow[], title: string): string {
  const rates = [...new Set(rows.map((r) => r.rate))];
  const W = 420;
  const H = 300;
  const pad = { l: 52, r: 12, t: 34, b: 44 };
  const cols = Math.min(2, rates.length);
  const rowsN = Math.ceil(rates.length / cols);
  const width = cols * W;
  const height = rowsN * H + 60;
  const xq = (q: number) => Math.log10(1 / Math.max(1 - q, 0.0005)); // q = 1 (max) drawn at 99.95
  const xMax = xq(1);
  const all = rows.flatMap((r) => [Hist.from(r.e2e).q(0.001), Hist.from(r.e2e).max]).filter((v) => v > 0 && Number.isFinite(v));
  const yMin = Math.pow(10, Math.floor(Math.log10(Math.max(0.1, Math.min(...all)))));
  const yMax = Math.pow(10, Math.ceil(Math.log10(Math.max(...all, 1))));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="100%" height="100%" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  rates.forEach((rate, i) => {
    const ox = (i % cols) * W;
    const oy = 24 + Math.floor(i / cols) * H;
    const pw = W - pad.l - pad.r;
    const ph = H - pad.t - pad.b;
    const X = (q: number) => ox + pad.l + (xq(q) / xMax) * pw;
    const Y = (v: number) => oy + pad.t + ph - ((Math.log10(Math.max(v, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * ph;
    parts.push(`<text x="${ox + pad.l + pw / 2}" y="${oy + 20}" text-anchor="middle" font-size="12">${rate} msg/s</text>`);
    parts.push(`<rect x="${ox + pad.l}" y="${oy + pad.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
    for (let d = yMin; d <= yMax * 1.0001; d *= 10) {
      for (const m of [1, 2, 5]) {
        const v = d * m;
        if (v > yMax) break;
        parts.push(`<line x1="${ox + pad.l}" x2="${ox + pad.l + pw}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/>`);
        parts.push(`<text x="${ox + pad.l - 4}" y="${Y(v) + 3}" text-anchor="end">${v >= 1 ? v : v.toFixed(1)}</text>`);
      }
    }
    for (const [q, label] of [[0, '0'], [0.5, '50'], [0.9, '90'], [0.99, '99'], [0.999, '99.9'], [1, 'max']] as const) {
      parts.push(`<line x1="${X(q)}" x2="${X(q)}" y1="${oy + pad.t}" y2="${oy + pad.t + ph}" stroke="#eee"/>`);
      parts.push(`<text x="${X(q)}" y="${oy + pad.t + ph + 14}" text-anchor="middle">${label}</text>`);
    }
    parts.push(`<text x="${ox + pad.l + pw / 2}" y="${oy + H - 12}" text-anchor="middle">percentile</text>`);
    parts.push(`<text transform="translate(${ox + 12},${oy + pad.t + ph / 2}) rotate(-90)" text-anchor="middle">POST start → frame, ms (log)</text>`);
    for (const r of rows.filter((x) => x.rate === rate)) {
      const h = Hist.from(r.e2e);
      if (!h.n) continue;
      const pts = QS.map((q) => `${X(q).toFixed(1)},${Y(q === 0 ? h.min : h.q(q)).toFixed(1)}`).join(' ');
      parts.push(`<polyline points="${pts}" fill="none" stroke="${COLORS[r.source] ?? '#000'}" stroke-width="2"/>`);
    }
  });
  const sources = [...new Set(rows.map((r) => r.source))];
  sources.forEach((s, i) => {
    const x = 20 + i * 130;
    const y = height - 16;
    parts.push(`<line x1="${x}" x2="${x + 24}" y1="${y - 4}" y2="${y - 4}" stroke="${COLORS[s] ?? '#000'}" stroke-width="3"/>`);
    parts.push(`<text x="${x + 30}" y="${y}">${esc(s)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
