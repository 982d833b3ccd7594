// Issue 17: what presence costs on a big channel. A channel with --members members (10 000), of
// whom N hold a socket subscribed with `presence: true` (distinct users, spread over client
// processes with their own loopback addresses and over two gateways; bench/presence-worker.ts),
// on the multi-process stack (api, relay, two gateways, Redis; bench/lib/stack.ts). N rises
// through --present (crossing WALCAST_PRESENCE_MAX_USERS, above which per-user frames give way to
// presence_count) and then falls back to --back-to. At each N:
//  - ramp: the CPU, bus events and frames the mass join (or leave) took, per user;
//  - idle: the heartbeat's cost (every gateway says it is up every WALCAST_PRESENCE_HEARTBEAT_MS
//    on the control topic, and sends a channel's whole set every 12th beat): CPU, SPUBLISH and
//    bytes per second;
//  - probes: one user joining and leaving at idle, the time until an observer on the same
//    gateway and one on the other gateway shows it;
//  - churn: joins and leaves at a fixed rate (subscribe / unsubscribe on open sockets): server
//    CPU, SPUBLISH, bus events and frames per event, and the join → observer latency; the same
//    churn on a channel nobody else holds gives the part that does not depend on N;
//  - correctness: what the observers' frames say is present against who is, and
//    conversations.presence.
// Writes <report>/<tag>-presence.md and -raw.json (--report '' to only print).
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { apiCaller } from '../../harness/load/api.js';
import { machine, table } from '../../harness/load/format.js';
import { cpuWindow } from '../../harness/proc-stats.js';
import { HARNESS_ADMIN_TOKEN } from '../../harness/topology.js';
import { PATHS } from '../../src/protocol.js';
import { busTap } from '../lib/bus-tap.js';
import { Hist, type HistData } from '../lib/hist.js';
import { sleep } from '../lib/measure.js';
import type { ChurnResult, CountsResult, FrameCounts, PresenceCommand, ProbeResult, Role, View } from '../lib/presence-ops.js';
import { scenario, type Values } from '../lib/scenario.js';
import { startStack } from '../lib/stack.js';
import { startWorkers, type Worker } from '../lib/workers.js';

const WORKER = fileURLToPath(new URL('../presence-worker.ts', import.meta.url));
const OBSERVERS = ['obs-a', 'obs-b'] as const;

/** Presence traffic on the bus, as a listener on the channel's topic sees it. */
export interface BusCounts {
  events: number;
  /** Batches of joins/leaves, the users they carried, and their bytes. */
  changes: number;
  changeBytes: number;
  joined: number;
  left: number;
  /** Whole sets (heartbeats, answers to queries), and the users they carried. */
  sets: number;
  setUsers: number;
  queries: number;
  bytes: number;
}

/** What a window cost. */
export interface Window {
  seconds: number;
  cpu: Record<string, number>;
  /** Redis: SPUBLISH calls and bytes in / out over the window. */
  spublish: number;
  redisIn: number;
  redisOut: number;
  bus: BusCounts;
  /** Presence frames the clients received, by role of the receiving socket. */
  frames: Record<Role, FrameCounts>;
  /** The client processes' own CPU, % of a core: sum and busiest. */
  clientCpu: number;
  clientCpuMax: number;
}

export interface ViewCheck {
  truth: number;
  mode: 'per-user' | 'count';
  /** Per observer: per-user view size, users missing from it and users wrongly in it, the last count. */
  observers: { name: string; users: number; missing: number; extra: number; count: number | null; last: View['last']; ok: boolean }[];
}

export interface PresenceStep {
  present: number;
  /** Users present in all (the N, and the two observers). */
  truth: number;
  mode: 'per-user' | 'count';
  ramp: Window & { users: number; settleMs: number; connectFailed: number };
  idle: Window;
  probe: ProbeResult;
  churn: Window & { result: ChurnResult; join: HistData; leave: HistData };
  control: Window & { result: ChurnResult };
  presenceApi: { count: number; ms: number };
  viewsAfterRamp: ViewCheck;
  viewsAfterChurn: ViewCheck;
  loadavg: number;
}

export interface PresenceResult {
  steps: PresenceStep[];
  loadavgStart: number[];
  members: number;
  files: string[];
}

export const presence = scenario({
  name: 'presence',
  summary: 'issue 17: presence on a 10k-member channel: cost per join/leave (CPU, bus events, frames), join latency, heartbeat at idle, above WALCAST_PRESENCE_MAX_USERS',
  suite: false,
  options: {
    members: { type: 'number', default: 10_000, quick: 200, description: 'members of the channel' },
    present: { type: 'numbers', default: [500, 4000], quick: [20, 60], description: 'users holding a presence subscription, one step each, rising' },
    backTo: { type: 'number', default: 400, quick: 15, description: 'a last step back down to this many (random ones leave; 0: none); at most half of --max-users brings per-user frames back' },
    maxUsers: { type: 'number', default: 1000, quick: 40, description: 'WALCAST_PRESENCE_MAX_USERS' },
    heartbeatMs: { type: 'number', default: 5000, quick: 500, description: 'WALCAST_PRESENCE_HEARTBEAT_MS' },
    idleSeconds: { type: 'number', default: 10, quick: 1.2, description: 'idle window per step (heartbeat cost)' },
    churnRate: { type: 'number', default: 20, quick: 10, description: 'joins + leaves per second in the churn windows' },
    churnSeconds: { type: 'number', default: 5, quick: 1, description: 'seconds of churn per window' },
    churners: { type: 'number', default: 40, quick: 6, description: 'users that join and leave (members, half on each gateway)' },
    probes: { type: 'number', default: 10, quick: 3, description: 'sequential join + leave probes per step' },
    workers: { type: 'number', default: 2, quick: 1, description: 'client processes for the present users, each from its own loopback address' },
    report: { type: 'string', default: 'bench/results', quick: '', description: "directory for <tag>-presence.md/-raw.json ('' : print only)" },
    reportTag: { type: 'string', default: new Date().toISOString().slice(0, 10), description: 'file name prefix of the report' },
  },
  async run(o, ctx): Promise<PresenceResult> {
    const maxPresent = Math.max(...o.present, o.backTo);
    if (o.members < maxPresent + o.churners + 1 + OBSERVERS.length) throw new Error(`presence: --members must hold --present, the churners, a probe and ${OBSERVERS.length} observers`);
    const db = await ctx.db();
    const loadavgStart = os.loadavg();
    const stack = await startStack(db, 'cdc', {
      env: {
        WALCAST_ADMIN_TOKEN: HARNESS_ADMIN_TOKEN,
        WALCAST_PRESENCE_MAX_USERS: String(o.maxUsers),
        WALCAST_PRESENCE_HEARTBEAT_MS: String(o.heartbeatMs),
      },
    });
    const redis = new Redis(stack.redis.url, { lazyConnect: true });
    const workers: Worker<PresenceCommand>[] = [];
    let tap: Awaited<ReturnType<typeof busTap>> | null = null;
    try {
      await redis.connect();
      const call = apiCaller(stack.api.url, stack.token);
      const big = (await call('conversations.create', { name: 'presence-big' })).channel.id as string;
      const ctl = (await call('conversations.create', { name: 'presence-control' })).channel.id as string;
      const presentUsers = Array.from({ length: maxPresent }, (_, i) => `p${i}`);
      const churners = Array.from({ length: o.churners }, (_, i) => `c${i}`);
      const probeUser = 'probe';
      const fillers = Array.from({ length: o.members - maxPresent - o.churners - 1 - OBSERVERS.length - 1 }, (_, i) => `m${i}`);
      const everyone = [...presentUsers, ...churners, probeUser, ...OBSERVERS, ...fillers];
      ctx.log(`presence: inviting ${everyone.length} users (the creator makes ${everyone.length + 1} members)`);
      for (let i = 0; i < everyone.length; i += 1000) await call('conversations.invite', { channel: big, users: everyone.slice(i, i + 1000) });
      await call('conversations.invite', { channel: ctl, users: [...churners, probeUser, ...OBSERVERS] });

      const urls = stack.wsUrls();
      workers.push(...(await startWorkers<PresenceCommand>(o.workers + 1, WORKER)));
      const [control, ...holders] = workers as [Worker<PresenceCommand>, ...Worker<PresenceCommand>[]];
      await Promise.all(workers.map((w) => w.send({ op: 'init', secret: stack.secret })));
      for (const [i, name] of OBSERVERS.entries()) await control.send({ op: 'observe', name, user: name, url: urls[i % urls.length]!, channels: [big, ctl] });
      const cc = await control.send<{ failed: number; errors: string[] }>({
        op: 'connect',
        role: 'churner',
        users: [...churners.map((user, i) => ({ user, url: urls[i % urls.length]! })), { user: probeUser, url: urls[0]! }],
        channel: big,
        subscribe: false,
      });
      if (cc.failed) throw new Error(`presence: churners could not connect: ${cc.errors.join('; ')}`);

      // Presence events on the bus, per channel.
      tap = await busTap(stack.redis.url, [big, ctl]);
      const zeroBus = (): BusCounts => ({ events: 0, changes: 0, changeBytes: 0, joined: 0, left: 0, sets: 0, setUsers: 0, queries: 0, bytes: 0 });
      const bus: Record<string, BusCounts> = { [big]: zeroBus(), [ctl]: zeroBus() };
      tap.onEvent((e) => {
        if (e.kind !== 'presence') return;
        const b = bus[e.channel];
        if (!b) return;
        const bytes = JSON.stringify(e).length;
        b.events++;
        b.bytes += bytes;
        if (e.query) b.queries++;
        if (e.users) (b.sets++, (b.setUsers += e.users.length));
        if (e.joined || e.left) (b.changes++, (b.changeBytes += bytes), (b.joined += e.joined?.length ?? 0), (b.left += e.left?.length ?? 0));
      });

      const redisStats = async () => {
        const [stats, cmds] = await Promise.all([redis.info('stats'), redis.info('commandstats')]);
        const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
        return { spublish: Number(/^cmdstat_spublish:calls=(\d+)/m.exec(cmds)?.[1] ?? 0), in: field('total_net_input_bytes'), out: field('total_net_output_bytes') };
      };
      /** Runs `fn`, and what the window cost on `channel`. */
      const measure = async <T>(channel: string, fn: () => Promise<T>): Promise<Window & { value: T }> => {
        await Promise.all(workers.map((w) => w.send({ op: 'reset' })));
        const b0 = { ...bus[channel]! };
        const r0 = await redisStats();
        const cpu = cpuWindow({ ...stack.cpuGroups(db), clients: () => workers.flatMap((w) => w.pid()) });
        const t0 = performance.now();
        const value = await fn();
        const seconds = (performance.now() - t0) / 1000;
        const used = cpu();
        const r1 = await redisStats();
        const counts = await Promise.all(workers.map((w) => w.send<CountsResult>({ op: 'counts' })));
        const b1 = bus[channel]!;
        const frames = { present: zeroFrames(), churner: zeroFrames(), observer: zeroFrames() };
        for (const c of counts) for (const role of Object.keys(frames) as Role[]) for (const k of Object.keys(frames[role]) as (keyof FrameCounts)[]) frames[role][k] += c.byRole[role][k];
        const clientCpus = counts.map((c) => (c.cpuMs / c.wallMs) * 100);
        return {
          value,
          seconds,
          cpu: used,
          spublish: r1.spublish - r0.spublish,
          redisIn: r1.in - r0.in,
          redisOut: r1.out - r0.out,
          bus: Object.fromEntries(Object.entries(b1).map(([k, v]) => [k, v - b0[k as keyof BusCounts]])) as unknown as BusCounts,
          frames,
          clientCpu: round1(clientCpus.reduce((a, x) => a + x, 0)),
          clientCpuMax: round1(Math.max(0, ...clientCpus)),
        };
      };
      const connected = new Set<string>();
      const views = async (channel: string, truth: Set<string>): Promise<ViewCheck> => {
        const vs = await control.send<View[]>({ op: 'views', channel });
        // Counts above the threshold; per-user frames at half of it or fewer; between the two,
        // whichever came last (counts stay until the channel falls to half).
        const expect = truth.size > o.maxUsers ? 'count' : truth.size <= Math.floor(o.maxUsers / 2) ? 'per-user' : null;
        return {
          truth: truth.size,
          mode: vs.some((v) => v.last === 'count') ? 'count' : 'per-user',
          observers: vs.map((v) => {
            const mine = new Set(v.users);
            const missing = [...truth].filter((u) => !mine.has(u)).length;
            const extra = v.users.filter((u) => !truth.has(u)).length;
            const counting = v.last === 'count';
            const ok = (counting ? v.count === truth.size && v.users.length === 0 : missing === 0 && extra === 0) && (expect === null || (expect === 'count') === counting);
            return { name: v.name, users: v.users.length, missing, extra, count: v.count, last: v.last, ok };
          }),
        };
      };
      const truthSet = () => new Set([...connected, ...OBSERVERS]);

      const steps: PresenceStep[] = [];
      const targets = [...o.present, ...(o.backTo > 0 && o.backTo < (o.present.at(-1) ?? 0) ? [o.backTo] : [])];
      let rng = 17;
      const random = () => ((rng = (rng * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      for (const target of targets) {
        ctx.log(`presence: ${connected.size} → ${target} present`);
        // Ramp: connect the next users (user i on gateway i % 2, process i % workers), or close random ones.
        let connectFailed = 0;
        const users = Math.abs(target - connected.size);
        const ramp = await measure(big, async () => {
          if (target > connected.size) {
            const add = presentUsers.filter((u) => !connected.has(u)).slice(0, target - connected.size);
            const shares = holders.map((_, w) => add.filter((_, i) => i % holders.length === w));
            const res = await Promise.all(
              holders.map((w, k) =>
                w.send<{ connected: number; failed: number }>({
                  op: 'connect',
                  role: 'present',
                  users: shares[k]!.map((user) => ({ user, url: urls[Number(user.slice(1)) % urls.length]! })),
                  channel: big,
                  subscribe: true,
                  localAddress: `127.0.0.${2 + k}`,
                }),
              ),
            );
            connectFailed = res.reduce((a, r) => a + r.failed, 0);
            for (const u of add) connected.add(u);
          } else {
            const pool = [...connected];
            const gone: string[] = [];
            while (gone.length < connected.size - target) gone.push(...pool.splice(Math.floor(random() * pool.length), 1));
            await Promise.all(holders.map((w) => w.send({ op: 'disconnect', users: gone })));
            for (const u of gone) connected.delete(u);
          }
          // Settled once the observers show everyone, or once their presence frames stopped for
          // a second (then what they show is final, and checked below), or after 30 s.
          const t = performance.now();
          const want = truthSet();
          let frames = -1;
          let quietSince = performance.now();
          for (const end = Date.now() + 30_000; Date.now() < end; await sleep(100)) {
            if ((await views(big, want)).observers.every((v) => v.ok)) return performance.now() - t;
            const c = await control.send<CountsResult>({ op: 'counts' });
            const n = c.byRole.observer.presence_joined + c.byRole.observer.presence_left + c.byRole.observer.presence_count;
            if (n !== frames) (frames = n), (quietSince = performance.now());
            else if (performance.now() - quietSince > 1000) return quietSince - t;
          }
          return performance.now() - t;
        });
        const truth = truthSet();
        const viewsAfterRamp = await views(big, truth);
        const idle = await measure(big, () => sleep(o.idleSeconds * 1000));
        const probe = await control.send<ProbeResult>({ op: 'probe', channel: big, user: probeUser, n: o.probes, timeoutMs: 5000 });
        const churn = await measure(big, () => control.send<ChurnResult>({ op: 'churn', channel: big, users: churners, rate: o.churnRate, seconds: o.churnSeconds }));
        const controlChurn = await measure(ctl, () => control.send<ChurnResult>({ op: 'churn', channel: ctl, users: churners, rate: o.churnRate, seconds: o.churnSeconds }));
        await sleep(300);
        const viewsAfterChurn = await views(big, truth);
        const t = performance.now();
        const api = await fetch(`${stack.api.url}${PATHS.api}conversations.presence?channel=${big}`, { headers: { authorization: `Bearer ${stack.token}` } }).then((r) => r.json() as Promise<{ count: number }>);
        const apiMs = performance.now() - t;
        const hist = (xs: Record<string, number[]>) => {
          const h = new Hist();
          for (const v of Object.values(xs)) for (const x of v) h.add(x);
          return h.data();
        };
        const { value: settleMs, ...rampW } = ramp;
        const { value: churnR, ...churnW } = churn;
        const { value: ctlR, ...ctlW } = controlChurn;
        const { value: _idle, ...idleW } = idle;
        const step: PresenceStep = {
          present: connected.size,
          truth: truth.size,
          mode: viewsAfterChurn.mode,
          ramp: { ...rampW, users, settleMs: Math.round(settleMs), connectFailed },
          idle: idleW,
          probe,
          churn: { ...churnW, result: churnR, join: hist(churnR.joinMs), leave: hist(churnR.leaveMs) },
          control: { ...ctlW, result: ctlR },
          presenceApi: { count: api.count, ms: Math.round(apiMs) },
          viewsAfterRamp,
          viewsAfterChurn,
          loadavg: round2(os.loadavg()[0]!),
        };
        steps.push(step);
        ctx.log(`  ${summaryLine(step, o.heartbeatMs)}`);
      }
      const result: PresenceResult = { steps, loadavgStart: loadavgStart.map(round2), members: everyone.length + 1, files: [] };
      if (o.report) {
        const dir = path.resolve(o.report);
        mkdirSync(dir, { recursive: true });
        const base = path.join(dir, `${o.reportTag}-presence`);
        writeFileSync(`${base}-raw.json`, JSON.stringify({ machine: machine(), options: o, ...result, files: undefined }, null, 1) + '\n');
        writeFileSync(`${base}.md`, presenceReport(result, o));
        result.files.push(`${base}.md`, `${base}-raw.json`);
      }
      return result;
    } finally {
      await tap?.close();
      redis.disconnect();
      await Promise.all(workers.map((w) => w.close()));
      await stack.close();
    }
  },
  print: (r, o) => presenceReport(r, o) + (r.files.length ? `\nwritten: ${r.files.join(', ')}\n` : ''),
  ok: (r) => r.steps.every((s) => s.ramp.connectFailed === 0 && s.churn.result.errors.length === 0),
});

export type PresenceSettings = Values<typeof presence.options>;

const zeroFrames = (): FrameCounts => ({ presence_joined: 0, presence_left: 0, presence_count: 0, other: 0 });
const round1 = (v: number) => Math.round(v * 10) / 10;
const round2 = (v: number) => Math.round(v * 100) / 100;
const f = (v: number, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '-');
const presenceFrames = (c: FrameCounts) => c.presence_joined + c.presence_left + c.presence_count;
/** CPU ms a process group used over a window. */
const cpuMs = (w: Window, group: string) => ((w.cpu[group] ?? 0) / 100) * w.seconds * 1000;
const events = (w: { result: ChurnResult }) => Math.max(1, w.result.joins + w.result.leaves);

/** Gateway CPU per churn event, µs, net of the idle rate. */
function gatewayUsPerEvent(w: Window & { result: ChurnResult }, idle: Window): number {
  return ((cpuMs(w, 'gateways') - cpuMs(idle, 'gateways') * (w.seconds / idle.seconds)) * 1000) / events(w);
}

/** SPUBLISH per churn event, net of the idle rate (heartbeats of every channel). */
function spublishPerEvent(w: Window & { result: ChurnResult }, idle: Window): number {
  return (w.spublish - idle.spublish * (w.seconds / idle.seconds)) / events(w);
}

const allFrames = (w: Window) => presenceFrames(w.frames.present) + presenceFrames(w.frames.observer) + presenceFrames(w.frames.churner);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};

function summaryLine(s: PresenceStep, heartbeatMs: number): string {
  const j = Hist.from(s.churn.join).summary();
  return (
    `${s.present} present (${s.mode}): ramp ${s.ramp.users} users, settled ${s.ramp.settleMs} ms; idle gateways ${s.idle.cpu.gateways}% cpu, ${f((s.idle.redisIn / s.idle.seconds) * (heartbeatMs / 1000), 0)} B in per beat; ` +
    `churn ${events(s.churn)} events: gateways ${f(gatewayUsPerEvent(s.churn, s.idle), 0)} µs/event (control ${f(gatewayUsPerEvent(s.control, s.idle), 0)}), ` +
    `${f(s.churn.bus.changes / events(s.churn), 2)} bus batches/event, ${f(allFrames(s.churn) / events(s.churn), 0)} presence frames/event, join → observer p50 ${f(j.p50)} p99 ${f(j.p99)} ms; ` +
    `views ${s.viewsAfterChurn.observers.every((v) => v.ok) ? 'right' : 'WRONG'}; api count ${s.presenceApi.count}/${s.truth}; load ${s.loadavg}`
  );
}

function viewText(v: ViewCheck): string {
  return v.observers
    .map((x) => (x.ok ? `${x.name} right (${x.last === 'count' ? `count ${x.count}` : `${x.users} listed`})` : `${x.name} WRONG (${x.last === 'count' ? `count ${x.count}, ` : ''}${x.users} listed: ${x.missing} missing, ${x.extra} not present)`))
    .join('; ');
}

export function presenceReport(r: PresenceResult, o: { workers: number; churners: number; maxUsers: number; heartbeatMs: number; churnRate: number; churnSeconds: number }): string {
  const out: string[] = [];
  out.push('# Presence on a big channel: cost per join and leave, heartbeat, counts above the threshold (issue 17)', '');
  out.push(machine(), '');
  out.push(
    `Load average (1/5/15 min) at the start ${r.loadavgStart.map((v) => v.toFixed(2)).join(' / ')}; after each step: ${r.steps.map((s) => s.loadavg.toFixed(2)).join(', ')}. ` +
      'The machine may be shared with other work: CPU figures and latencies are pessimistic and noisy.',
    '',
  );
  out.push(
    `A channel of ${r.members} members; the present users each hold one socket subscribed with \`presence: true\`, half on each of two gateways, from ${o.workers} client processes ` +
      `(plus one holding ${o.churners} churners, a probe and two observers, one per gateway). One api, one relay, Redis, PostgreSQL and every client on this machine. ` +
      `WALCAST_PRESENCE_MAX_USERS=${o.maxUsers}, WALCAST_PRESENCE_HEARTBEAT_MS=${o.heartbeatMs}. Churn: ${o.churnRate} joins + leaves per second for ${o.churnSeconds} s ` +
      '(subscribe and unsubscribe on open sockets, the joiner asking for presence too); the control churn is the same on a channel nobody else holds.',
    '',
  );
  out.push('## Per join or leave (churn)', '');
  out.push(
    table(
      [
        'present',
        'presence frames',
        'events',
        'gateways CPU µs / event (net of idle)',
        'same churn, channel nobody holds',
        'difference per present user, µs',
        'bus batches / event',
        'users / batch',
        'bus bytes / event',
        'SPUBLISH / event (net of idle)',
        'presence frames / event (every socket)',
        'snapshot frames / join (probe)',
        'join → observer p50 / p95 / p99 ms',
        'leave → observer p50 / p99 ms',
        'server CPU % of a core',
        'clients CPU % (busiest)',
      ],
      r.steps.map((s) => {
        const j = Hist.from(s.churn.join).summary();
        const l = Hist.from(s.churn.leave).summary();
        const e = events(s.churn);
        const { clients: _c, ...server } = s.churn.cpu;
        const b = s.churn.bus;
        return [
          s.present,
          s.mode,
          e,
          f(gatewayUsPerEvent(s.churn, s.idle), 0),
          f(gatewayUsPerEvent(s.control, s.idle), 0),
          f((gatewayUsPerEvent(s.churn, s.idle) - gatewayUsPerEvent(s.control, s.idle)) / s.truth, 2),
          f(b.changes / e, 2),
          f(b.changes ? (b.joined + b.left) / b.changes : 0, 2),
          f(b.changeBytes / e, 0),
          f(spublishPerEvent(s.churn, s.idle), 2),
          f(allFrames(s.churn) / e, 1),
          f(median(s.probe.snapshotFrames), 0),
          s.mode === 'per-user' ? `${f(j.p50)} / ${f(j.p95)} / ${f(j.p99)}` : 'counts (see probes)',
          s.mode === 'per-user' ? `${f(l.p50)} / ${f(l.p99)}` : '-',
          Object.entries(server).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', '),
          `${s.churn.clientCpu} (${s.churn.clientCpuMax})`,
        ];
      }),
    ),
    '',
  );
  out.push(
    'Gateway CPU is from /proc in 10 ms ticks, over the window, minus the idle rate measured just before; with few events per window its resolution is coarse. ' +
      '"Bus batches" are the presence events a gateway published for joins and leaves (one per gateway per event-loop turn with changes); heartbeats are counted under Idle. ' +
      'Every presence subscriber gets one frame per event (a per-user frame, or above the threshold a presence_count, at most one per turn): frames per event grow with the present users in both modes.',
    '',
  );
  out.push(
    r.steps
      .map((s) => {
        const windows = [s.ramp, s.idle, s.churn, s.control];
        const busiest = Math.max(...windows.map((w) => w.clientCpuMax));
        const behind = Math.max(s.churn.result.maxBehindMs, s.control.result.maxBehindMs);
        const limited = busiest > 85 || behind > 50;
        return `- ${s.present} present: busiest client process ${busiest.toFixed(0)} % of a core, churn at most ${behind.toFixed(0)} ms behind its schedule: ${limited ? 'the load generator (or a busy machine) was a limit' : 'the load generator was not the limit'}.`;
      })
      .join('\n'),
    '',
  );
  out.push('## One join, then its leave, at idle (probe on the first gateway)', '');
  out.push(
    table(
      ['present', 'presence frames', 'subscribe → subscribed p50 ms', ...OBSERVERS.flatMap((n, i) => [`join → ${n} (${i === 0 ? 'same' : 'other'} gateway) p50 / max ms`, `leave → ${n} p50 / max ms`]), 'timeouts'],
      r.steps.map((s) => {
        const q = (xs: number[] | undefined) => {
          const h = new Hist();
          for (const x of xs ?? []) h.add(x);
          const m = h.summary();
          return `${f(m.p50, 2)} / ${f(m.max, 1)}`;
        };
        const sub = new Hist();
        for (const x of s.probe.subscribedMs) sub.add(x);
        return [s.present, s.probe.mode, f(sub.q(0.5), 2), ...OBSERVERS.flatMap((n) => [q(s.probe.joinMs[n]), q(s.probe.leaveMs[n])]), s.probe.timeouts];
      }),
    ),
    '',
  );
  out.push('## Idle: the heartbeat', '');
  out.push(
    table(
      ['present', 'gateways CPU %', 'redis CPU %', 'SPUBLISH / s', 'Redis bytes in / s', 'bus bytes per heartbeat (both gateways)', 'users per set', 'presence frames / s'],
      r.steps.map((s) => {
        const w = s.idle;
        const beats = Math.max(1, (w.seconds * 1000) / o.heartbeatMs);
        const frames = allFrames(w);
        return [s.present, f(w.cpu.gateways ?? 0), f(w.cpu.redis ?? 0), f(w.spublish / w.seconds, 2), f(w.redisIn / w.seconds, 0), f(w.bus.bytes / beats, 0), f(w.bus.sets ? w.bus.setUsers / w.bus.sets : 0, 0), f(frames / w.seconds, 1)];
      }),
    ),
    '',
  );
  out.push('## The ramp (mass join or leave), per user', '');
  out.push('Connecting includes the WebSocket upgrade, the token check and the membership query, so the CPU per user here is more than presence; the window runs until the observers show the new state (or their frames stop for 1 s).', '');
  out.push(
    table(
      ['step', 'users', 'presence frames after', 'settled ms', 'gateways CPU ms / user', 'bus batches', 'users / batch', 'presence frames / user (to everyone)', 'connect failures'],
      r.steps.map((s, i) => {
        const prev = i === 0 ? 0 : r.steps[i - 1]!.present;
        const fr = allFrames(s.ramp);
        const b = s.ramp.bus;
        return [`${prev} → ${s.present}`, s.ramp.users, s.mode, s.ramp.settleMs, f(cpuMs(s.ramp, 'gateways') / Math.max(1, s.ramp.users), 2), b.changes, f(b.changes ? (b.joined + b.left) / b.changes : 0, 1), f(fr / Math.max(1, s.ramp.users), 1), s.ramp.connectFailed];
      }),
    ),
    '',
  );
  out.push('## What the observers\' frames say is present, against who is', '');
  out.push(
    table(
      ['present', 'presence frames', 'after the ramp', 'after the churn', 'conversations.presence count / truth (ms; the api waits 300 ms for the gateways)'],
      r.steps.map((s) => [s.present, s.mode, viewText(s.viewsAfterRamp), viewText(s.viewsAfterChurn), `${s.presenceApi.count} / ${s.truth} (${s.presenceApi.ms})`]),
    ),
    '',
  );
  return out.join('\n');
}
