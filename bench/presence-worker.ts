// The load generator of the `presence` benchmark (forked by bench/lib/workers.ts): WebSocket
// sockets of many distinct users (presence is per user), each subscribed to a channel with
// `presence: true`, from one loopback source address per process (the open-files limit is per
// process). Besides the passive many, one process also holds observers, which note every presence
// frame and keep the view a client would build from them, and churners, which join and leave
// (subscribe / unsubscribe on an open socket) on an open-loop schedule. Times are CLOCK_MONOTONIC.
import WebSocket from 'ws';
import { Tokens } from '../src/auth/tokens.js';
import { clientFrame, type ServerFrame } from '../src/protocol.js';
import { now, sleep } from './lib/http-client.js';
import type { ChurnResult, CountsResult, FrameCounts, PresenceCommand, ProbeResult, Role, View } from './lib/presence-ops.js';

interface Sock {
  user: string;
  role: Role;
  ws: WebSocket;
  /** Subscribed channels (confirmed). */
  subscribed: Set<string>;
  /** Waiting for `subscribed` / `unsubscribed` of a channel. */
  waiters: Map<string, () => void>;
  /** Presence frames this socket received. */
  presenceFrames: number;
  closed: boolean;
}

interface Observer {
  name: string;
  sock: Sock;
  /** Per channel: users present as per-user frames tell, the last count, and arrivals per user. */
  views: Map<string, { users: Set<string>; count: number | null; last: View['last']; joined: Map<string, number[]>; left: Map<string, number[]>; counts: [number, number][] }>;
}

let tokens: Tokens | null = null;
const socks = new Map<string, Sock>();
const observers: Observer[] = [];
const zeroCounts = (): FrameCounts => ({ presence_joined: 0, presence_left: 0, presence_count: 0, other: 0 });
let counts: Record<Role, FrameCounts> = { present: zeroCounts(), churner: zeroCounts(), observer: zeroCounts() };
let cpu0 = process.cpuUsage();
let t0 = performance.now();

const JOINED = '{"type":"presence_joined"';
const LEFT = '{"type":"presence_left"';
const COUNT = '{"type":"presence_count"';

function onFrame(s: Sock, raw: string, t: number, obs?: Observer): void {
  const c = counts[s.role];
  if (raw.startsWith('{"type":"presence_')) s.presenceFrames++;
  if (raw.startsWith(JOINED)) c.presence_joined++;
  else if (raw.startsWith(LEFT)) c.presence_left++;
  else if (raw.startsWith(COUNT)) c.presence_count++;
  else {
    c.other++;
    const f = JSON.parse(raw) as ServerFrame;
    if (f.type === 'subscribed') {
      s.subscribed.add(f.channel);
      s.waiters.get('+' + f.channel)?.();
    } else if (f.type === 'unsubscribed') {
      s.subscribed.delete(f.channel);
      s.waiters.get('-' + f.channel)?.();
    } else if (f.type === 'error') {
      s.waiters.get('!' + (f.channel ?? ''))?.();
      process.stderr.write(`[presence-worker] ${s.user}: ${raw}\n`);
    }
    return;
  }
  if (!obs) return;
  const f = JSON.parse(raw) as { type: string; channel: string; user?: string; count?: number };
  const v = obs.views.get(f.channel);
  if (!v) return;
  if (f.type === 'presence_count') {
    // A count replaces the per-user list (docs/protocol.md); it comes again when per-user frames resume.
    v.users.clear();
    v.count = f.count!;
    v.last = 'count';
    v.counts.push([t, f.count!]);
    return;
  }
  v.last = 'per-user';
  const list = f.type === 'presence_joined' ? v.joined : v.left;
  (list.get(f.user!) ?? list.set(f.user!, []).get(f.user!)!).push(t);
  if (f.type === 'presence_joined') v.users.add(f.user!);
  else v.users.delete(f.user!);
}

async function open(user: string, role: Role, url: string, localAddress?: string, obs?: () => Observer | undefined): Promise<Sock> {
  const token = await tokens!.sign(user, 3600);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?token=${encodeURIComponent(token)}`, { localAddress, perMessageDeflate: false });
    const s: Sock = { user, role, ws, subscribed: new Set(), waiters: new Map(), presenceFrames: 0, closed: false };
    const timer = setTimeout(() => (ws.terminate(), reject(new Error('open timeout'))), 30_000);
    ws.on('open', () => (clearTimeout(timer), resolve(s)));
    ws.on('error', (e) => (clearTimeout(timer), reject(e)));
    ws.on('close', () => (s.closed = true));
    ws.on('message', (d) => onFrame(s, String(d), now(), obs?.()));
  });
}

/** Sends a frame and waits for the answer named `key` ('+ch' subscribed, '-ch' unsubscribed; an error frame for ch fails it). */
function ask(s: Sock, frame: string, key: string, ms = 30_000): Promise<void> {
  const failKey = '!' + key.slice(1);
  return new Promise((resolve, reject) => {
    const done = (e?: Error) => {
      clearTimeout(timer);
      s.waiters.delete(key);
      s.waiters.delete(failKey);
      if (e) reject(e);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`${s.user}: no answer to ${frame}`)), ms);
    s.waiters.set(key, () => done());
    s.waiters.set(failKey, () => done(new Error(`${s.user}: error frame for ${frame}`)));
    s.ws.send(frame);
  });
}

const subscribe = (s: Sock, channel: string) => ask(s, clientFrame.subscribe(channel, undefined, { presence: true }), '+' + channel);
const unsubscribe = (s: Sock, channel: string) => ask(s, clientFrame.unsubscribe(channel), '-' + channel);

async function connect(c: Extract<PresenceCommand, { op: 'connect' }>): Promise<{ connected: number; failed: number; ms: number; errors: string[] }> {
  const start = performance.now();
  let failed = 0;
  let next = 0;
  let connected = 0;
  const errors: string[] = [];
  const one = async () => {
    while (next < c.users.length) {
      const { user, url } = c.users[next++]!;
      for (let attempt = 0; ; attempt++) {
        try {
          const s = await open(user, c.role, url, c.localAddress);
          socks.set(user, s);
          if (c.subscribe) await subscribe(s, c.channel);
          connected++;
          break;
        } catch (e) {
          if (attempt >= 4) {
            failed++;
            if (errors.length < 3) errors.push(String((e as Error).message));
            break;
          }
          await sleep(100 * 2 ** attempt);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(100, c.users.length) }, one));
  return { connected, failed, ms: Math.round(performance.now() - start), errors };
}

/** Arrival at an observer of the first frame for `user` of that kind at or after `at`. */
function arrival(o: Observer, channel: string, user: string, kind: 'joined' | 'left', at: number): number | undefined {
  const v = o.views.get(channel);
  return v?.[kind].get(user)?.find((t) => t >= at);
}

async function churn(c: Extract<PresenceCommand, { op: 'churn' }>): Promise<ChurnResult> {
  const r: ChurnResult = { joins: 0, leaves: 0, joinMs: {}, leaveMs: {}, unmatched: 0, subscribedMs: [], maxBehindMs: 0, errors: [] };
  const events: { user: string; kind: 'joined' | 'left'; at: number }[] = [];
  const total = Math.round(c.rate * c.seconds);
  const busy = new Set<string>();
  const inflight = new Set<Promise<void>>();
  const start = now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / c.rate;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    r.maxBehindMs = Math.max(r.maxBehindMs, now() - due);
    const s = socks.get(c.users[i % c.users.length]!)!;
    if (busy.has(s.user)) continue; // its previous toggle is still unanswered
    busy.add(s.user);
    const at = now();
    const joining = !s.subscribed.has(c.channel);
    events.push({ user: s.user, kind: joining ? 'joined' : 'left', at });
    const p = (joining ? subscribe(s, c.channel).then(() => void r.subscribedMs.push(now() - at)) : unsubscribe(s, c.channel))
      .then(() => void (joining ? r.joins++ : r.leaves++))
      .catch((e: unknown) => void (r.errors.length < 5 && r.errors.push(String((e as Error).message))))
      .finally(() => (busy.delete(s.user), inflight.delete(p)));
    inflight.add(p);
  }
  await Promise.all(inflight);
  // Leave as found: nobody of the churners subscribed.
  for (const u of c.users) {
    const s = socks.get(u)!;
    if (!s.subscribed.has(c.channel)) continue;
    const at = now();
    events.push({ user: u, kind: 'left', at });
    await unsubscribe(s, c.channel).then(() => void r.leaves++);
  }
  await sleep(500);
  for (const o of observers) {
    const jm: number[] = (r.joinMs[o.name] = []);
    const lm: number[] = (r.leaveMs[o.name] = []);
    for (const e of events) {
      const t = arrival(o, c.channel, e.user, e.kind, e.at);
      if (t === undefined) r.unmatched++;
      else (e.kind === 'joined' ? jm : lm).push(t - e.at);
    }
  }
  return r;
}

async function probe(c: Extract<PresenceCommand, { op: 'probe' }>): Promise<ProbeResult> {
  const s = socks.get(c.user)!;
  const r: ProbeResult = { joinMs: {}, leaveMs: {}, subscribedMs: [], snapshotFrames: [], timeouts: 0, mode: 'per-user' };
  for (const o of observers) (r.joinMs[o.name] = []), (r.leaveMs[o.name] = []);
  const views = observers.map((o) => o.views.get(c.channel)!);
  for (let i = 0; i < c.n; i++) {
    for (const joining of [true, false]) {
      // At idle nothing else changes: what the probe got while subscribed is its snapshot.
      if (joining) s.presenceFrames = 0;
      else r.snapshotFrames.push(s.presenceFrames);
      const before = views.map((v) => v.count);
      const at = now();
      await (joining ? subscribe(s, c.channel).then(() => void r.subscribedMs.push(now() - at)) : unsubscribe(s, c.channel));
      // Each observer shows it by a per-user frame for this user, or by a count one higher (lower).
      const shown = (k: number): number | undefined => {
        const o = observers[k]!;
        const t = arrival(o, c.channel, c.user, joining ? 'joined' : 'left', at);
        if (t !== undefined) return t;
        const want = before[k] === null ? null : before[k]! + (joining ? 1 : -1);
        const hit = views[k]!.counts.find(([ct, n]) => ct >= at && n === want);
        if (hit) r.mode = 'count';
        return hit?.[0];
      };
      const end = now() + c.timeoutMs;
      let seen: (number | undefined)[] = [];
      while (now() < end) {
        seen = observers.map((_, k) => shown(k));
        if (seen.every((t) => t !== undefined)) break;
        await sleep(2);
      }
      seen.forEach((t, k) => {
        if (t === undefined) r.timeouts++;
        else (joining ? r.joinMs : r.leaveMs)[observers[k]!.name]!.push(t - at);
      });
      await sleep(50);
    }
  }
  return r;
}

process.on('message', async (c: PresenceCommand & { id: number }) => {
  const reply = (result: unknown) => process.send!({ id: c.id, result });
  try {
    switch (c.op) {
      case 'init':
        tokens = new Tokens(c.secret);
        return reply({});
      case 'connect':
        return reply(await connect(c));
      case 'disconnect':
        for (const u of c.users) {
          const s = socks.get(u);
          if (!s) continue;
          s.closed = true;
          s.ws.close();
          socks.delete(u);
        }
        return reply({});
      case 'observe': {
        let o: Observer | undefined;
        const s = await open(c.user, 'observer', c.url, undefined, () => o);
        o = { name: c.name, sock: s, views: new Map(c.channels.map((ch) => [ch, { users: new Set(), count: null, last: null, joined: new Map(), left: new Map(), counts: [] }])) };
        observers.push(o);
        for (const ch of c.channels) await subscribe(s, ch);
        return reply({});
      }
      case 'reset':
        counts = { present: zeroCounts(), churner: zeroCounts(), observer: zeroCounts() };
        for (const o of observers) for (const v of o.views.values()) (v.joined.clear(), v.left.clear(), (v.counts = []));
        cpu0 = process.cpuUsage();
        t0 = performance.now();
        return reply({});
      case 'counts': {
        const cpu = process.cpuUsage(cpu0);
        const r: CountsResult = { byRole: counts, open: [...socks.values()].filter((s) => !s.closed).length, cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0 };
        return reply(r);
      }
      case 'churn':
        return reply(await churn(c));
      case 'probe':
        return reply(await probe(c));
      case 'views':
        return reply(
          observers.map((o): View => {
            const v = o.views.get(c.channel)!;
            return { name: o.name, users: [...v.users], count: v.count, last: v.last };
          }),
        );
      case 'close':
        for (const s of socks.values()) (s.closed = true), s.ws.terminate();
        for (const o of observers) o.sock.ws.terminate();
        reply({});
        return setTimeout(() => process.exit(0), 50);
    }
  } catch (e) {
    process.send!({ id: c.id, error: String((e as Error)?.stack ?? e) });
  }
});
process.send!({ ready: true });
