// Issue 17: is an edit as fast as a post? On the multi-process stack (api, relay, two gateways,
// Redis; bench/lib/stack.ts), one poster drives chat.postMessage, chat.update, reactions.add,
// reactions.remove and chat.delete interleaved (each message through that life, one step per
// tick: bench/changes-worker.ts) at a few fixed rates, while subscribers on both gateways note
// every frame of the change log. Per kind and rate: POST start → frame at the subscriber
// (p50/p95/p99), POST start → response, and the relay's side: commit (the WAL timestamp the event
// carries) → the event's arrival at a listener on the bus, one Redis hop after the relay's
// publish. Also the relay's and gateways' own histograms (all kinds together), the CPU of every
// process, and whether every subscriber got every frame in seq order.
// Writes <report>/<tag>-changes.md and -raw.json (--report '' to only print).
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scrape, type Scrape } from '../../harness/load/metrics.js';
import { machine, table } from '../../harness/load/format.js';
import { cpuWindow } from '../../harness/proc-stats.js';
import { HARNESS_ADMIN_TOKEN } from '../../harness/topology.js';
import { PATHS } from '../../src/protocol.js';
import { KINDS, keyOf, type ChangesCommand, type ChangesStats, type Kind, type MixResult, type Sent } from '../lib/changes-ops.js';
import { busTap } from '../lib/bus-tap.js';
import { Hist, type HistData } from '../lib/hist.js';
import { plan, sleep } from '../lib/measure.js';
import { bound, windowHist, type WindowHist } from '../lib/prom-hist.js';
import { scenario, type Values } from '../lib/scenario.js';
import { createChannels, startStack } from '../lib/stack.js';
import { startWorkers, type Worker } from '../lib/workers.js';

const WORKER = fileURLToPath(new URL('../changes-worker.ts', import.meta.url));

const LABEL: Record<Kind, string> = {
  message: 'chat.postMessage',
  message_changed: 'chat.update',
  reaction_added: 'reactions.add',
  reaction_removed: 'reactions.remove',
  message_deleted: 'chat.delete',
};

export interface ChangesRow {
  rate: number;
  seconds: number;
  ok: Record<Kind, number>;
  errors: Record<Kind, number>;
  errorSample: string[];
  skipped: Record<Kind, number>;
  /** POST start → frame at each subscriber. */
  e2e: Record<Kind, HistData>;
  /** POST start → response. */
  resp: Record<Kind, HistData>;
  /** WAL commit timestamp → arrival at a bus listener (ms; the timestamp is truncated to the ms). */
  commitToBus: Record<Kind, HistData>;
  /** The API's answer at the poster → arrival at the bus listener (wall clock; 0 when the event came first). */
  answerToBus: Record<Kind, HistData>;
  /** The relay's walcast_relay_commit_to_publish_seconds and the gateways' commit_to_send, over the window (every kind). */
  relayCommitToPublish: WindowHist;
  gatewayCommitToSend: WindowHist;
  expected: number;
  delivered: number;
  frames: number;
  outOfOrder: number;
  errorFrames: number;
  disconnects: number;
  cpu: Record<string, number>;
  /** The client processes' own CPU (% of one core): the sum, and the busiest one. */
  clientCpu: number;
  clientCpuMax: number;
  posterMaxBehindMs: number;
  loadavg: number;
}

export interface ChangesResult {
  rows: ChangesRow[];
  /** Relay warnings that a change came without its message (it then reads the row back; never expected). */
  relayReadBacks: number;
  loadavgStart: number[];
  subscribers: number;
  files: string[];
}

export const changes = scenario({
  name: 'changes',
  summary: 'issue 17: POST → frame latency of posts, edits, deletes and reactions, interleaved, at fixed rates; relay commit → publish per kind',
  suite: false,
  options: {
    rates: { type: 'numbers', default: [50, 200, 500], quick: [25], description: 'operations per second, all kinds together (a fifth of each)' },
    seconds: { type: 'number', default: 6, quick: 1, description: 'measured seconds per rate' },
    channels: { type: 'number', default: 4, quick: 2, description: 'channels, posted to round robin' },
    subsPerChannel: { type: 'number', default: 4, quick: 2, description: 'subscribers per channel, alternating between the two gateways' },
    workers: { type: 'number', default: 2, quick: 1, description: 'subscriber processes (plus one poster process)' },
    textBytes: { type: 'number', default: 100, description: 'message text size, posts and edits (over ~2000 the text is stored out of line: TOAST)' },
    report: { type: 'string', default: 'bench/results', quick: '', description: "directory for <tag>-changes.md/-raw.json ('' : print only)" },
    reportTag: { type: 'string', default: new Date().toISOString().slice(0, 10), description: 'file name prefix of the report' },
  },
  async run(o, ctx): Promise<ChangesResult> {
    const db = await ctx.db();
    const loadavgStart = os.loadavg();
    const stack = await startStack(db, 'cdc', { env: { WALCAST_ADMIN_TOKEN: HARNESS_ADMIN_TOKEN } });
    const workers: Worker<ChangesCommand>[] = [];
    let tap: Awaited<ReturnType<typeof busTap>> | null = null;
    try {
      const channels = await createChannels(stack, 'changes', o.channels);
      workers.push(...(await startWorkers<ChangesCommand>(o.workers + 1, WORKER)));
      const subscribers = workers.slice(1);
      const poster = workers[0]!;
      const plans = plan(stack.wsUrls(), channels, o.subsPerChannel, subscribers.length);
      const conn = await Promise.all(subscribers.map((w, i) => w.send<{ connected: number; failed: number }>({ op: 'connect', token: stack.token, subs: plans[i]! })));
      const failed = conn.reduce((a, c) => a + c.failed, 0);
      if (failed) throw new Error(`changes: ${failed} subscribers could not connect`);

      // The relay's side per kind: commit timestamp → arrival on the bus.
      tap = await busTap(stack.redis.url, channels);
      let commitToBus = Object.fromEntries(KINDS.map((k) => [k, new Hist()])) as Record<Kind, Hist>;
      /** Arrival on the bus (wall clock) of each frame, by name: against the API's answer. */
      let onBus = new Map<string, number>();
      tap.onEvent((e, at) => {
        if (e.kind !== 'change') return;
        const key = keyOf(e.frame);
        if (key !== null) onBus.set(key, at);
        if (e.committedAt === undefined) return;
        const h = commitToBus[e.frame.type as Kind];
        h?.add(at - e.committedAt);
      });

      const apiUrl = `${stack.api.url}${PATHS.api}`;
      // The messages a window changes are posted before it (unmeasured), a fifth of its operations per kind.
      const mix = async (rate: number, seconds: number, started?: () => Promise<void>) => {
        await poster.send({ op: 'prepare', apiUrl, token: stack.token, channels, n: Math.ceil((rate * seconds) / KINDS.length) + 1, textBytes: o.textBytes });
        await sleep(ctx.quick ? 200 : 1000);
        await Promise.all(subscribers.map((w) => w.send({ op: 'reset' })));
        commitToBus = Object.fromEntries(KINDS.map((k) => [k, new Hist()])) as Record<Kind, Hist>;
        onBus = new Map();
        await started?.();
        return poster.send<MixResult>({ op: 'mix', apiUrl, token: stack.token, channels, rate, seconds, textBytes: o.textBytes });
      };
      // Warm-up (JIT, pools).
      const warm = await mix(Math.min(100, o.rates[0] ?? 100), ctx.quick ? 0.5 : 2);
      if (Object.values(warm.errors).some((n) => n > 0)) throw new Error(`changes: warm-up failed: ${warm.errorSample.join('; ')}`);
      await sleep(500);

      const scrapeAll = () => Promise.all([...stack.relays, ...stack.gateways].map((p) => scrape(p.url)));
      const rows: ChangesRow[] = [];
      for (const rate of o.rates) {
        let before: Scrape[] = [];
        let cpu = () => ({}) as Record<string, number>;
        const m = await mix(rate, o.seconds, async () => {
          before = await scrapeAll();
          cpu = cpuWindow({ ...stack.cpuGroups(db), clients: () => workers.flatMap((w) => w.pid()) });
        });
        const st = await waitAll(subscribers, m.sent, 10_000);
        const used = cpu();
        const after: Scrape[] = await scrapeAll();
        const e2e = Object.fromEntries(KINDS.map((k) => [k, new Hist()])) as Record<Kind, Hist>;
        for (const s of st) for (const k of KINDS) e2e[k].merge(s.latency[k]);
        const clientCpus = st.map((s) => (s.cpuMs / s.wallMs) * 100);
        const answerToBus = Object.fromEntries(KINDS.map((k) => [k, new Hist()])) as Record<Kind, Hist>;
        for (const [key, kind] of m.sent) {
          const a = m.answeredAt[key];
          const b = onBus.get(key);
          // Negative when the event reached the bus before the answer reached the poster: counted as 0.
          if (a !== undefined && b !== undefined) answerToBus[kind].add(Math.max(0, b - a));
        }
        const row: ChangesRow = {
          rate,
          seconds: m.seconds,
          ok: m.ok,
          errors: m.errors,
          errorSample: m.errorSample,
          skipped: m.skipped,
          e2e: Object.fromEntries(KINDS.map((k) => [k, e2e[k].data()])) as Record<Kind, HistData>,
          resp: m.resp,
          commitToBus: Object.fromEntries(KINDS.map((k) => [k, commitToBus[k].data()])) as Record<Kind, HistData>,
          answerToBus: Object.fromEntries(KINDS.map((k) => [k, answerToBus[k].data()])) as Record<Kind, HistData>,
          relayCommitToPublish: windowHist(before.slice(0, stack.relays.length), after.slice(0, stack.relays.length), 'walcast_relay_commit_to_publish_seconds'),
          gatewayCommitToSend: windowHist(before.slice(stack.relays.length), after.slice(stack.relays.length), 'walcast_gateway_commit_to_send_seconds'),
          expected: st.reduce((a, s) => a + s.expected, 0),
          delivered: st.reduce((a, s) => a + s.matched, 0),
          frames: st.reduce((a, s) => a + s.frames, 0),
          outOfOrder: st.reduce((a, s) => a + s.outOfOrder, 0),
          errorFrames: st.reduce((a, s) => a + s.errorFrames, 0),
          disconnects: st.reduce((a, s) => a + s.disconnects, 0),
          cpu: used,
          clientCpu: round1(clientCpus.reduce((a, x) => a + x, 0)),
          clientCpuMax: round1(Math.max(0, ...clientCpus)),
          posterMaxBehindMs: Math.round(m.maxBehindMs),
          loadavg: round2(os.loadavg()[0]!),
        };
        rows.push(row);
        const q = (k: Kind) => Hist.from(row.e2e[k]).summary();
        ctx.log(
          `  ${rate}/s: ${KINDS.map((k) => `${LABEL[k]} p50 ${f(q(k).p50)} p99 ${f(q(k).p99)}`).join(', ')} ms; delivered ${row.delivered}/${row.expected}, load ${row.loadavg}`,
        );
        await sleep(ctx.quick ? 100 : 500);
      }
      const result: ChangesResult = {
        rows,
        relayReadBacks: stack.relays.reduce((a, r) => a + (r.output().match(/reading it back/g)?.length ?? 0), 0),
        loadavgStart: loadavgStart.map(round2),
        subscribers: conn.reduce((a, c) => a + c.connected, 0),
        files: [],
      };
      if (o.report) {
        const dir = path.resolve(o.report);
        mkdirSync(dir, { recursive: true });
        const base = path.join(dir, `${o.reportTag}-changes`);
        writeFileSync(`${base}-raw.json`, JSON.stringify({ machine: machine(), options: o, ...result, files: undefined }, null, 1) + '\n');
        writeFileSync(`${base}.md`, changesReport(result, o));
        result.files.push(`${base}.md`, `${base}-raw.json`);
      }
      return result;
    } finally {
      await tap?.close();
      await Promise.all(workers.map((w) => w.close()));
      await stack.close();
    }
  },
  print: (r, o) => changesReport(r, o) + (r.files.length ? `\nwritten: ${r.files.join(', ')}\n` : ''),
  ok: (r) => r.relayReadBacks === 0 && r.rows.every((x) => x.delivered === x.expected && x.outOfOrder === 0),
});

export type ChangesSettings = Values<typeof changes.options>;

/** Polls the subscribers until every expected frame arrived (or `ms` passed). */
async function waitAll(workers: Worker<ChangesCommand>[], sent: Sent[], ms: number): Promise<ChangesStats[]> {
  const end = Date.now() + ms;
  for (;;) {
    const st = await Promise.all(workers.map((w) => w.send<ChangesStats>({ op: 'stats', sent })));
    if (st.every((s) => s.matched >= s.expected) || Date.now() > end) return st;
    await sleep(100);
  }
}

const round1 = (v: number) => Math.round(v * 10) / 10;
const round2 = (v: number) => Math.round(v * 100) / 100;
const f = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '-');

/** Where the limit was in a window: the load generator (poster behind schedule, a client process near a full core) or not. */
function limitNote(r: ChangesRow): string {
  const notes: string[] = [];
  if (r.posterMaxBehindMs > 50) notes.push(`poster fell ${r.posterMaxBehindMs} ms behind its schedule: the load generator (or a busy machine) was a limit`);
  if (r.clientCpuMax > 85) notes.push(`a client process used ${r.clientCpuMax}% of a core (load generator limit)`);
  if (r.delivered < r.expected) notes.push(`${r.expected - r.delivered} deliveries missing`);
  const errs = Object.values(r.errors).reduce((a, x) => a + x, 0);
  if (errs) notes.push(`${errs} requests failed`);
  return notes.length ? notes.join('; ') : 'load generator on schedule';
}

export function changesReport(r: ChangesResult, o: { seconds: number; channels: number; subsPerChannel: number; textBytes: number }): string {
  const out: string[] = [];
  out.push('# Change log latency: edits, deletes and reactions against posts (issue 17)', '');
  out.push(machine(), '');
  out.push(
    `Load average (1/5/15 min) at the start ${r.loadavgStart.map((v) => v.toFixed(2)).join(' / ')}; after each rate: ${r.rows.map((x) => x.loadavg.toFixed(2)).join(', ')}. ` +
      'The machine may be shared with other work: latencies are pessimistic and noisy.',
    '',
  );
  out.push(
    `One api, one relay, two gateways, Redis, PostgreSQL (embedded, fsync on) and the client processes on this machine. ${o.channels} channels, ` +
      `${o.subsPerChannel} subscribers each (${r.subscribers} in all, alternating gateways), ${o.textBytes}-byte texts, ${o.seconds} s per rate. ` +
      'One poster process drives the five kinds interleaved in equal shares, open loop; each change acts on a message of its own, posted (and reacted to, for the un-reactions) ' +
      'before the window, so no change waits for another. Posts go through the group-commit writer; every other change is one `walcast_change_message` transaction.',
    '',
  );
  out.push('## POST start → frame at the subscriber, per kind', '');
  const rows: (string | number)[][] = [];
  for (const x of r.rows) {
    for (const k of KINDS) {
      const e = Hist.from(x.e2e[k]).summary();
      const p = Hist.from(x.resp[k]).summary();
      const b = Hist.from(x.commitToBus[k]).summary();
      const a = Hist.from(x.answerToBus[k]).summary();
      rows.push([`${x.rate}/s`, LABEL[k], x.ok[k], e.n, f(e.p50, 2), f(e.p95, 2), f(e.p99, 2), f(e.max, 1), `${f(p.p50, 2)} / ${f(p.p99, 2)}`, `${f(b.p50, 2)} / ${f(b.p95, 2)} / ${f(b.p99, 2)}`, `${f(a.p50, 2)} / ${f(a.p99, 2)}`]);
    }
  }
  out.push(
    table(['ops/s (all kinds)', 'kind', 'ok', 'deliveries', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'POST → response p50 / p99 ms', 'commit → bus p50 / p95 / p99 ms', 'response → bus p50 / p99 ms'], rows),
    '',
  );
  out.push(
    '"commit → bus" is the relay\'s side: from the commit timestamp PostgreSQL wrote in the WAL (carried by the event, truncated to the ms, so these read up to 1 ms high) ' +
      'to the event\'s arrival at a listener subscribed to the channel\'s Redis topic, i.e. the relay\'s commit → publish plus one Redis hop. ' +
      'PostgreSQL takes that timestamp before the commit\'s WAL flush, so a commit that waits for its flush counts the wait here. ' +
      '"response → bus" needs no timestamp from PostgreSQL: from the API\'s answer reaching the poster to the event on the bus (0 when the event came first).',
    '',
  );
  out.push('## Edit against post', '');
  out.push(
    table(
      ['ops/s', 'p50 ratio update / post', 'p99 ratio update / post', 'p50 ratio delete / post', 'p50 ratio reactions.add / post', 'commit → bus p50: post / update ms'],
      r.rows.map((x) => {
        const q = (k: Kind) => Hist.from(x.e2e[k]).summary();
        const b = (k: Kind) => Hist.from(x.commitToBus[k]).q(0.5);
        return [`${x.rate}/s`, f(q('message_changed').p50 / q('message').p50, 2), f(q('message_changed').p99 / q('message').p99, 2), f(q('message_deleted').p50 / q('message').p50, 2), f(q('reaction_added').p50 / q('message').p50, 2), `${f(b('message'), 2)} / ${f(b('message_changed'), 2)}`];
      }),
    ),
    '',
  );
  out.push('## Per rate: delivery, server histograms (every kind), CPU', '');
  out.push(
    table(
      ['ops/s', 'delivered', 'out of order', 'relay commit → publish p50 / p99', 'gateway commit → send p50 / p99', 'server CPU % of a core', 'clients CPU % (busiest)', 'limit'],
      r.rows.map((x) => {
        const { clients: _c, ...server } = x.cpu;
        return [
          `${x.rate}/s`,
          `${x.delivered}/${x.expected}`,
          x.outOfOrder,
          `${bound(x.relayCommitToPublish.p50)} / ${bound(x.relayCommitToPublish.p99)} ms`,
          `${bound(x.gatewayCommitToSend.p50)} / ${bound(x.gatewayCommitToSend.p99)} ms`,
          Object.entries(server).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', '),
          `${x.clientCpu} (${x.clientCpuMax})`,
          limitNote(x),
        ];
      }),
    ),
    '',
  );
  out.push(`Relay read-backs (a change whose message was missing from the WAL record): ${r.relayReadBacks}. Changes skipped for want of a prepared message (should be 0): ${r.rows.map((x) => Object.values(x.skipped).reduce((a, n) => a + n, 0)).join(', ')}.`, '');
  const samples = r.rows.flatMap((x) => x.errorSample);
  if (samples.length) out.push(`Failed requests, e.g.: ${samples.slice(0, 3).join('; ')}`, '');
  return out.join('\n');
}
