// A reconnect storm: N SDK clients on gateway A (separate process, Redis bus, real PostgreSQL),
// spread over C channels while messages keep flowing; gateway A is killed with SIGKILL and every
// client returns at once to gateway B. Measures the time until every client has resumed (has
// delivered a message posted after the kill), the database queries gateway B made for it (and
// the most it had in flight at once, from pg_stat_activity), B's peak memory, and checks that
// every client delivered every message of its channel exactly once, in order.
//
//   node --import=tsx bench/storm.ts [clients=20000] [channels=10] [workers=4] [posts_per_s=50]
//
// Clients run in `workers` child processes (the open-files limit is per process), each from its
// own loopback source address (127.0.0.2, .3, ...) so that more than ~28k sockets fit. The
// clients find gateways like behind a load balancer: a list the parent updates when A dies.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import WebSocket from 'ws';
import { startTopology, type Topology } from '../scripts/topology.js';
import { Tokens } from '../src/auth/tokens.js';
import { createNodeClient, type ChannelSubscription, type WalcastClient, type WebSocketConstructor } from '../src/sdk/node.js';
import { machine, table } from './report.js';

const SELF = fileURLToPath(import.meta.url);

export interface StormOptions {
  clients: number;
  channels: number;
  workers: number;
  postsPerS: number;
  env?: Record<string, string>;
  log?: (line: string) => void;
}

export interface StormResult {
  clients: number;
  channels: number;
  workers: number;
  resumeMs: number;
  /** ms after the kill until half / all of the clients had an open connection again */
  reconnectedAllMs: number;
  gatewayQueries: { membership: number; catchup: number; coalesced: number; gapFills: number; hubs: number; total: number };
  peakDbActive: number;
  peakInFlight: number;
  upgradesRefused: number;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  lost: number;
  outOfOrder: number;
  duplicatesDropped: number;
  gapsRepaired: number;
  reconnects: number;
  messages: number;
  ok: boolean;
}

// ---------------------------------------------------------------- worker side
type ToWorker =
  | { cmd: 'start'; secret: string; urls: string[]; localAddress: string; clients: { user: string; channel: string }[] }
  | { cmd: 'urls'; urls: string[] }
  | { cmd: 'marker'; seqs: Record<string, number> }
  | { cmd: 'final'; seqs: Record<string, number> };

async function worker(): Promise<void> {
  let urls: string[] = [];
  let next = 0;
  const clients: { c: WalcastClient; sub: ChannelSubscription; channel: string; got: number; bad: number }[] = [];
  let markerTimer: NodeJS.Timeout | null = null;
  process.on('message', async (m: ToWorker) => {
    if (m.cmd === 'urls') urls = m.urls;
    if (m.cmd === 'start') {
      urls = m.urls;
      const tokens = new Tokens(m.secret);
      const localAddress = m.localAddress;
      class LocalWS extends WebSocket {
        constructor(url: string) {
          super(url, { localAddress });
        }
      }
      for (const spec of m.clients) {
        const token = await tokens.sign(spec.user, 3600);
        const c = createNodeClient({
          url: () => urls[next++ % urls.length]!,
          token,
          WebSocket: LocalWS as unknown as WebSocketConstructor,
          heartbeatMs: 0,
        });
        const entry = { c, sub: null as unknown as ChannelSubscription, channel: spec.channel, got: 0, bad: 0 };
        let prev: number | undefined;
        entry.sub = c.subscribe(spec.channel, {
          since: 0,
          onMessage: (msg) => {
            if (prev !== undefined && msg.seq !== prev + 1) entry.bad++;
            prev = msg.seq;
            entry.got++;
          },
        });
        clients.push(entry);
        if (clients.length % 500 === 0) await new Promise((r) => setTimeout(r, 20)); // connect steadily, not all in one tick
      }
      await Promise.all(clients.map((e) => e.sub.ready));
      process.send!({ ev: 'subscribed', n: clients.length });
    }
    if (m.cmd === 'marker') {
      markerTimer = setInterval(() => {
        if (clients.every((e) => (e.sub.lastSeq ?? 0) >= m.seqs[e.channel]!)) {
          clearInterval(markerTimer!);
          process.send!({ ev: 'resumed', at: Date.now() });
        }
      }, 5);
      let reportedOpen = false;
      const openTimer = setInterval(() => {
        if (!reportedOpen && clients.every((e) => e.c.state === 'open')) {
          reportedOpen = true;
          clearInterval(openTimer);
          process.send!({ ev: 'open', at: Date.now() });
        }
      }, 5);
    }
    if (m.cmd === 'final') {
      const end = Date.now() + 60_000;
      while (Date.now() < end && !clients.every((e) => (e.sub.lastSeq ?? 0) >= m.seqs[e.channel]!)) await new Promise((r) => setTimeout(r, 50));
      let lost = 0;
      let outOfOrder = 0;
      let dup = 0;
      let gaps = 0;
      let reconnects = 0;
      let messages = 0;
      for (const e of clients) {
        lost += Math.max(0, m.seqs[e.channel]! - e.got); // each client subscribed with since 0: it must have got 1..final
        outOfOrder += e.bad;
        dup += e.sub.duplicatesDropped;
        gaps += e.sub.gapsRepaired;
        reconnects += e.c.reconnects;
        messages += e.got;
        e.c.close();
      }
      process.send!({ ev: 'report', lost, outOfOrder, dup, gaps, reconnects, messages });
    }
  });
  process.send!({ ev: 'up' });
}

// ---------------------------------------------------------------- parent side
function waitFor(child: ChildProcess, ev: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: any) => {
      if (m?.ev === ev) {
        child.off('message', onMsg);
        resolve(m);
      }
    };
    child.on('message', onMsg);
    child.once('exit', (code) => reject(new Error(`storm worker exited ${code} while waiting for ${ev}`)));
  });
}

async function metricsOf(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(url + '/metrics')).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    const key = line.slice(0, i);
    out[key] = (out[key] ?? 0) + Number(line.slice(i + 1));
  }
  return out;
}
const metric = (m: Record<string, number>, name: string) =>
  Object.entries(m).filter(([k]) => k === name || k.startsWith(name + '{')).reduce((a, [, v]) => a + v, 0);

function rssMiB(pid: number): number {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return kb / 1024;
  } catch {
    return 0;
  }
}

export async function runStorm(o: StormOptions): Promise<StormResult> {
  const log = o.log ?? (() => {});
  const topo: Topology = await startTopology({ relays: 1, gateways: 2, env: { WALCAST_LOG_LEVEL: 'error', ...o.env } });
  const workers: ChildProcess[] = [];
  const db = new pg.Client({ connectionString: topo.databaseUrl });
  try {
    await db.connect();
    const tokens = new Tokens(topo.secret);
    const posterToken = await tokens.sign('poster', 3600);
    const headers = { authorization: `Bearer ${posterToken}`, 'content-type': 'application/json' };
    const call = async (method: string, body: unknown) => {
      const r = await fetch(`${topo.api.url}/v1/${method}`, { method: 'POST', headers, body: JSON.stringify(body) });
      const j = (await r.json()) as any;
      if (!j.ok) throw new Error(`${method}: ${r.status} ${JSON.stringify(j)}`);
      return j;
    };
    const channels: string[] = [];
    for (let c = 0; c < o.channels; c++) channels.push((await call('conversations.create', { name: `storm-${c}` })).channel.id);
    const specs = Array.from({ length: o.clients }, (_, i) => ({ user: `u${i}`, channel: channels[i % o.channels]! }));
    for (const ch of channels) {
      const users = specs.filter((s) => s.channel === ch).map((s) => s.user);
      for (let i = 0; i < users.length; i += 1000) await call('conversations.invite', { channel: ch, users: users.slice(i, i + 1000) });
    }
    const [A, B] = topo.gateways as [Topology['gateways'][0], Topology['gateways'][0]];
    const urlOf = (g: { port: number }) => `ws://127.0.0.1:${g.port}/v1/ws`;

    log(`starting ${o.workers} client processes for ${o.clients} clients on gateway A`);
    for (let w = 0; w < o.workers; w++) {
      const child = fork(SELF, ['worker'], { execArgv: ['--import=tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      workers.push(child);
      await waitFor(child, 'up');
    }
    const subscribed = workers.map((w) => waitFor(w, 'subscribed'));
    workers.forEach((w, i) =>
      w.send({
        cmd: 'start',
        secret: topo.secret,
        urls: [urlOf(A)],
        localAddress: `127.0.0.${2 + i}`,
        clients: specs.filter((_, j) => j % o.workers === i),
      } satisfies ToWorker),
    );
    const t0 = Date.now();
    await Promise.all(subscribed);
    log(`${o.clients} clients subscribed on A in ${Date.now() - t0} ms`);

    // Keep messages flowing on every channel, before, during and after the storm.
    let posting = true;
    let posted = 0;
    const poster = (async () => {
      let i = 0;
      while (posting) {
        await call('chat.postMessage', { channel: channels[i++ % channels.length], text: `m${i}` });
        posted++;
        await new Promise((r) => setTimeout(r, 1000 / o.postsPerS));
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));

    const before = await metricsOf(B.url);
    const rssBefore = rssMiB(B.child.pid!);
    let peakActive = 0;
    let rssPeak = rssBefore;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const r = await db.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'walcast-gateway' AND state = 'active'`);
        peakActive = Math.max(peakActive, r.rows[0].n);
        rssPeak = Math.max(rssPeak, rssMiB(B.child.pid!));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();

    log('killing gateway A (SIGKILL)');
    const resumed = workers.map((w) => waitFor(w, 'resumed'));
    const opened = workers.map((w) => waitFor(w, 'open'));
    const killedAt = Date.now();
    await A.kill('SIGKILL');
    workers.forEach((w) => w.send({ cmd: 'urls', urls: [urlOf(B)] } satisfies ToWorker));
    // The first message of each channel committed after the kill: a client has resumed once it delivered it.
    const markers: Record<string, number> = {};
    for (const ch of channels) markers[ch] = (await call('chat.postMessage', { channel: ch, text: 'marker' })).message.seq;
    workers.forEach((w) => w.send({ cmd: 'marker', seqs: markers } satisfies ToWorker));
    const resumedAt = Math.max(...(await Promise.all(resumed)).map((m) => m.at as number));
    const openAt = Math.max(...(await Promise.all(opened)).map((m) => m.at as number));
    log(`all ${o.clients} clients resumed ${resumedAt - killedAt} ms after the kill`);
    await new Promise((r) => setTimeout(r, 1000));
    posting = false;
    await poster;
    sampling = false;
    await sampler;
    const after = await metricsOf(B.url);

    const finals: Record<string, number> = {};
    const r = await db.query(`SELECT id, last_seq FROM channels WHERE id = ANY($1)`, [channels]);
    for (const row of r.rows) finals[row.id] = Number(row.last_seq);
    const reports = workers.map((w) => waitFor(w, 'report'));
    workers.forEach((w) => w.send({ cmd: 'final', seqs: finals } satisfies ToWorker));
    const reps = await Promise.all(reports);
    const sum = (k: string) => reps.reduce((a, x) => a + (x[k] as number), 0);

    const d = (name: string) => metric(after, name) - metric(before, name);
    const q = {
      membership: d('walcast_gateway_membership_queries_total'),
      catchup: d('walcast_gateway_catchup_reads_total'),
      coalesced: d('walcast_gateway_catchup_coalesced_total'),
      gapFills: d('walcast_gateway_gap_fills_total'),
      hubs: metric(after, 'walcast_gateway_channels'),
      total: 0,
    };
    q.total = q.membership + q.catchup + q.gapFills + q.hubs;
    const result: StormResult = {
      clients: o.clients,
      channels: o.channels,
      workers: o.workers,
      resumeMs: resumedAt - killedAt,
      reconnectedAllMs: openAt - killedAt,
      gatewayQueries: q,
      peakDbActive: peakActive,
      peakInFlight: metric(after, 'walcast_gateway_db_reads_in_flight_max'),
      upgradesRefused: d('walcast_ws_upgrades_refused_total'),
      rssBeforeMiB: Math.round(rssBefore),
      rssPeakMiB: Math.round(rssPeak),
      lost: sum('lost'),
      outOfOrder: sum('outOfOrder'),
      duplicatesDropped: sum('dup'),
      gapsRepaired: sum('gaps'),
      reconnects: sum('reconnects'),
      messages: sum('messages'),
      ok: false,
    };
    result.ok = result.lost === 0 && result.outOfOrder === 0;
    void posted;
    return result;
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    await db.end().catch(() => {});
    await topo.close();
  }
}

export function formatStorm(r: StormResult): string {
  return table(
    ['storm', 'value'],
    [
      ['clients (SDK, over client processes)', `${r.clients} (${r.workers})`],
      ['channels', r.channels],
      ['kill → every client reconnected', `${r.reconnectedAllMs} ms`],
      ['kill → every client resumed (delivered a post-kill message)', `${r.resumeMs} ms`],
      ['upgrades refused with a retry hint (token bucket)', r.upgradesRefused],
      ['gateway B queries: membership batches', r.gatewayQueries.membership],
      ['gateway B queries: catch-up pages (+ joined in flight)', `${r.gatewayQueries.catchup} (+${r.gatewayQueries.coalesced})`],
      ['gateway B queries: gap fills + hub inits', `${r.gatewayQueries.gapFills} + ${r.gatewayQueries.hubs}`],
      ['peak gateway queries in flight (pg_stat_activity / semaphore)', `${r.peakDbActive} / ${r.peakInFlight}`],
      ['gateway B RSS before → peak', `${r.rssBeforeMiB} → ${r.rssPeakMiB} MiB`],
      ['messages delivered in total', r.messages],
      ['lost / out of order', `${r.lost} / ${r.outOfOrder}`],
      ['duplicates dropped by the SDK / gaps repaired', `${r.duplicatesDropped} / ${r.gapsRepaired}`],
    ],
  );
}

if (process.argv[2] === 'worker') {
  await worker();
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [clients = 20000, channels = 10, workers = 4, postsPerS = 50] = process.argv.slice(2).map(Number);
  const r = await runStorm({ clients, channels, workers, postsPerS, log: (l) => process.stderr.write(l + '\n') });
  process.stdout.write(machine() + '\n\n' + formatStorm(r) + '\n');
  process.exit(r.ok ? 0 : 1);
}
