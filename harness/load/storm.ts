// A reconnect storm: N SDK clients on gateway A (separate process, Redis bus, real PostgreSQL),
// spread over C channels while messages keep flowing; gateway A is killed with SIGKILL and every
// client returns at once to gateway B. Measures the time until every client has resumed (has
// delivered a message posted after the kill), the database queries gateway B made for it (and
// the most it had in flight at once, from pg_stat_activity), B's peak memory, and checks that
// every client delivered every message of its channel exactly once, in order.
//
// Clients run in `workers` child processes (harness/load/storm-clients.ts; the open-files limit
// is per process), each from its own loopback source address (127.0.0.2, .3, ...) so that more
// than ~28k sockets fit. test/storm.test.ts runs it small; `npm run bench -- storm` big.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { adopt } from '../children.js';
import pg from 'pg';
import { Tokens } from '../../src/auth/tokens.js';
import { PATHS } from '../../src/protocol.js';
import { rssBytes } from '../proc-stats.js';
import { startTopology, type Topology } from '../topology.js';
import { apiCaller } from './api.js';
import { table } from './format.js';
import { metric, scrape } from './metrics.js';
import type { FromStormClients, ToStormClients } from './storm-clients.js';

const CLIENTS = fileURLToPath(new URL('./storm-clients.ts', import.meta.url));

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
  /** ms after the kill until every client had an open connection again */
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

type Ev<E extends FromStormClients['ev']> = Extract<FromStormClients, { ev: E }>;

function waitFor<E extends FromStormClients['ev']>(child: ChildProcess, ev: E): Promise<Ev<E>> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: FromStormClients) => {
      if (m?.ev === ev) {
        child.off('message', onMsg);
        resolve(m as Ev<E>);
      }
    };
    child.on('message', onMsg);
    child.once('exit', (code) => reject(new Error(`storm client process exited ${code} while waiting for ${ev}`)));
  });
}

const rssMiB = (pid: number | undefined) => (pid ? rssBytes(pid) / 2 ** 20 : 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runStorm(o: StormOptions): Promise<StormResult> {
  const log = o.log ?? (() => {});
  const topo: Topology = await startTopology({ relays: 1, gateways: 2, env: { WALCAST_LOG_LEVEL: 'error', ...o.env } });
  const workers: ChildProcess[] = [];
  const db = new pg.Client({ connectionString: topo.databaseUrl });
  try {
    await db.connect();
    const tokens = new Tokens(topo.secret);
    const call = apiCaller(topo.api.url, await tokens.sign('poster', 3600));
    const channels: string[] = [];
    for (let c = 0; c < o.channels; c++) channels.push((await call('conversations.create', { name: `storm-${c}` })).channel.id);
    const specs = Array.from({ length: o.clients }, (_, i) => ({ user: `u${i}`, channel: channels[i % o.channels]! }));
    for (const ch of channels) {
      const users = specs.filter((s) => s.channel === ch).map((s) => s.user);
      for (let i = 0; i < users.length; i += 1000) await call('conversations.invite', { channel: ch, users: users.slice(i, i + 1000) });
    }
    const [A, B] = topo.gateways as [Topology['gateways'][0], Topology['gateways'][0]];
    const urlOf = (g: { port: number }) => `ws://127.0.0.1:${g.port}${PATHS.ws}`;
    const tell = (w: ChildProcess, m: ToStormClients) => w.send(m);

    log(`starting ${o.workers} client processes for ${o.clients} clients on gateway A`);
    for (let w = 0; w < o.workers; w++) {
      const child = adopt(fork(CLIENTS, [], { execArgv: ['--import=tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
      workers.push(child);
      await waitFor(child, 'up');
    }
    const subscribed = workers.map((w) => waitFor(w, 'subscribed'));
    workers.forEach((w, i) =>
      tell(w, { cmd: 'start', secret: topo.secret, urls: [urlOf(A)], localAddress: `127.0.0.${2 + i}`, clients: specs.filter((_, j) => j % o.workers === i) }),
    );
    const t0 = Date.now();
    await Promise.all(subscribed);
    log(`${o.clients} clients subscribed on A in ${Date.now() - t0} ms`);

    // Keep messages flowing on every channel, before, during and after the storm.
    let posting = true;
    const poster = (async () => {
      let i = 0;
      while (posting) {
        await call('chat.postMessage', { channel: channels[i++ % channels.length], text: `m${i}` });
        await sleep(1000 / o.postsPerS);
      }
    })();
    await sleep(1500);

    const before = await scrape(B.url);
    const rssBefore = rssMiB(B.child.pid);
    let peakActive = 0;
    let rssPeak = rssBefore;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const r = await db.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'walcast-gateway' AND state = 'active'`);
        peakActive = Math.max(peakActive, r.rows[0].n);
        rssPeak = Math.max(rssPeak, rssMiB(B.child.pid));
        await sleep(5);
      }
    })();

    log('killing gateway A (SIGKILL)');
    const resumed = workers.map((w) => waitFor(w, 'resumed'));
    const opened = workers.map((w) => waitFor(w, 'open'));
    const killedAt = Date.now();
    await A.kill('SIGKILL');
    workers.forEach((w) => tell(w, { cmd: 'urls', urls: [urlOf(B)] }));
    // The first message of each channel committed after the kill: a client has resumed once it delivered it.
    const markers: Record<string, number> = {};
    for (const ch of channels) markers[ch] = (await call('chat.postMessage', { channel: ch, text: 'marker' })).message.seq;
    workers.forEach((w) => tell(w, { cmd: 'marker', seqs: markers }));
    const resumedAt = Math.max(...(await Promise.all(resumed)).map((m) => m.at));
    const openAt = Math.max(...(await Promise.all(opened)).map((m) => m.at));
    log(`all ${o.clients} clients resumed ${resumedAt - killedAt} ms after the kill`);
    await sleep(1000);
    posting = false;
    await poster;
    sampling = false;
    await sampler;
    const after = await scrape(B.url);

    const finals: Record<string, number> = {};
    const r = await db.query(`SELECT id, last_seq FROM channels WHERE id = ANY($1)`, [channels]);
    for (const row of r.rows) finals[row.id] = Number(row.last_seq);
    const reports = workers.map((w) => waitFor(w, 'report'));
    workers.forEach((w) => tell(w, { cmd: 'final', seqs: finals }));
    const reps = await Promise.all(reports);
    const sum = (k: 'lost' | 'outOfOrder' | 'dup' | 'gaps' | 'reconnects' | 'messages') => reps.reduce((a, x) => a + x[k], 0);

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
