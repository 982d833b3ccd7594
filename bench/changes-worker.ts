// The load generator of the `changes` benchmark (forked by bench/lib/workers.ts): subscribers that
// note when each frame of the change log arrives, and a poster that drives every kind of change
// through the HTTP API, interleaved, at a fixed open-loop rate.
//
// The poster drives the five kinds in a fixed rotation (equal shares, interleaved). Each change
// acts on a message of its own, posted (and, to be un-reacted, reacted to) before the measured
// window by `prepare`, so no change waits for another and none races its own post. Every
// operation is named by the frame it must produce (`<type>|<channel>|<target seq>[|<reaction>]`),
// with its send time; a subscriber names every frame it receives the same way, so latency is
// (arrival − send) per kind, on CLOCK_MONOTONIC, which every process of the machine shares.
import WebSocket from 'ws';
import { clientFrame, type ServerFrame } from '../src/protocol.js';
import { KINDS, keyOf, zero, type ChangesCommand, type ChangesStats, type Kind, type MixResult, type Sent } from './lib/changes-ops.js';
import { Hist, type HistData } from './lib/hist.js';
import { now, request, sleep } from './lib/http-client.js';

const METHOD: Record<Kind, string> = {
  message: 'chat.postMessage',
  message_changed: 'chat.update',
  reaction_added: 'reactions.add',
  reaction_removed: 'reactions.remove',
  message_deleted: 'chat.delete',
};
const REACTION = 'eyes';

// ------------------------------------------------------------------------------- subscribers

interface Sub {
  ws: WebSocket;
  channels: string[];
  /** Frame name → arrival (first one). */
  arrivals: Map<string, number>;
  last: Map<string, number>;
  closed: boolean;
}

const subs: Sub[] = [];
let frames = 0;
let outOfOrder = 0;
let errorFrames = 0;
let disconnects = 0;
let cpu0 = process.cpuUsage();
let t0 = performance.now();

function connectOne(url: string, token: string, channels: string[], localAddress?: string): Promise<Sub> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?token=${encodeURIComponent(token)}`, { localAddress, perMessageDeflate: false });
    const sub: Sub = { ws, channels, arrivals: new Map(), last: new Map(), closed: false };
    const pending = new Set(channels);
    const timer = setTimeout(() => (ws.terminate(), reject(new Error('subscribe timeout'))), 30_000);
    ws.on('error', (e) => (clearTimeout(timer), reject(e)));
    ws.on('close', () => {
      if (!sub.closed && pending.size === 0) disconnects++;
      sub.closed = true;
    });
    ws.on('open', () => {
      for (const c of channels) ws.send(clientFrame.subscribe(c));
    });
    ws.on('message', (d) => {
      const t = now();
      const f = JSON.parse(String(d)) as ServerFrame;
      if (f.type === 'subscribed') {
        // Live from here: the cursor starts at the channel's seq when subscribed.
        sub.last.set(f.channel, f.since);
        pending.delete(f.channel);
        if (pending.size === 0) (clearTimeout(timer), resolve(sub));
        return;
      }
      if (f.type === 'error') {
        errorFrames++;
        return;
      }
      if (!('seq' in f)) return;
      frames++;
      const last = sub.last.get(f.channel);
      if (last !== undefined && f.seq !== last + 1) outOfOrder++;
      sub.last.set(f.channel, f.seq);
      const key = keyOf(f);
      if (key !== null && !sub.arrivals.has(key)) sub.arrivals.set(key, t);
    });
  });
}

async function connect(c: Extract<ChangesCommand, { op: 'connect' }>): Promise<{ connected: number; failed: number }> {
  let failed = 0;
  await Promise.all(
    c.subs.map(async (s) => {
      try {
        subs.push(await connectOne(s.url, c.token, s.channels, c.localAddress));
      } catch {
        failed++;
      }
    }),
  );
  return { connected: subs.length, failed };
}

function stats(sent: Sent[]): ChangesStats {
  const h = Object.fromEntries(KINDS.map((k) => [k, new Hist()])) as Record<Kind, Hist>;
  let expected = 0;
  let matched = 0;
  for (const [key, kind, at] of sent) {
    const channel = key.split('|')[1]!;
    for (const s of subs) {
      if (!s.channels.includes(channel)) continue;
      expected++;
      const t = s.arrivals.get(key);
      if (t === undefined) continue;
      matched++;
      h[kind].add(t - at);
    }
  }
  const cpu = process.cpuUsage(cpu0);
  return {
    latency: Object.fromEntries(KINDS.map((k) => [k, h[k].data()])) as Record<Kind, HistData>,
    expected,
    matched,
    frames,
    outOfOrder,
    errorFrames,
    disconnects,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - t0,
  };
}

// ------------------------------------------------------------------------------- the poster

interface Target {
  channel: string;
  seq: number;
}

/** Messages waiting to be changed, per kind of change (filled by `prepare`, before the measured window). */
const targets: Record<Kind, Target[]> = Object.fromEntries(KINDS.map((k) => [k, []])) as unknown as Record<Kind, Target[]>;
let tick = 0;
let posted = 0;

function text(bytes: number, i: number, t: number): string {
  const head = `@${t.toFixed(3)}@${i} `;
  return head + 'x'.repeat(Math.max(0, bytes - head.length));
}

async function call(apiUrl: string, token: string, method: string, body: Record<string, unknown>): Promise<Target> {
  const res = await request(`${apiUrl}${method}`, 'POST', token, JSON.stringify(body));
  const json = JSON.parse(res.body) as { ok: boolean; message?: Target };
  if (res.status !== 200 || !json.ok || !json.message) throw new Error(`${method} ${res.status} ${res.body.slice(0, 200)}`);
  return { channel: json.message.channel, seq: json.message.seq };
}

/**
 * Messages for the next window, unmeasured: `n` to edit, `n` to react to, `n` already reacted to
 * (to un-react) and `n` to delete, so that the window's changes depend on nothing in it.
 */
async function prepare(c: Extract<ChangesCommand, { op: 'prepare' }>): Promise<void> {
  const jobs: (() => Promise<void>)[] = [];
  for (const kind of ['message_changed', 'reaction_added', 'reaction_removed', 'message_deleted'] as const) {
    for (let i = 0; i < c.n; i++) {
      const channel = c.channels[posted++ % c.channels.length]!;
      jobs.push(async () => {
        const m = await call(c.apiUrl, c.token, METHOD.message, { channel, text: text(c.textBytes, posted, now()) });
        if (kind === 'reaction_removed') await call(c.apiUrl, c.token, METHOD.reaction_added, { ...m, name: REACTION });
        targets[kind].push(m);
      });
    }
  }
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < jobs.length) await jobs[next++]!();
  }));
  for (const k of KINDS) targets[k].sort((a, b) => a.seq - b.seq);
}

async function mix(c: Extract<ChangesCommand, { op: 'mix' }>): Promise<MixResult> {
  const r: MixResult = { sent: [], answeredAt: {}, ok: zero(), errors: zero(), errorSample: [], skipped: zero(), resp: {} as Record<Kind, HistData>, maxBehindMs: 0, seconds: 0 };
  const resp = Object.fromEntries(KINDS.map((k) => [k, new Hist()])) as Record<Kind, Hist>;
  const total = Math.max(1, Math.round(c.rate * c.seconds));
  const inflight = new Set<Promise<void>>();
  const start = now();
  /** One operation; a post is named by the seq it got, known only from its answer (its send time is still t). */
  const run = async (kind: Kind, body: Record<string, unknown>, key: string | null) => {
    const t = now();
    if (key) r.sent.push([key, kind, t]);
    try {
      const m = await call(c.apiUrl, c.token, METHOD[kind], body);
      resp[kind].add(now() - t);
      r.ok[kind]++;
      if (!key) r.sent.push([`message|${m.channel}|${m.seq}`, kind, t]);
      r.answeredAt[key ?? `message|${m.channel}|${m.seq}`] = performance.timeOrigin + performance.now();
    } catch (e) {
      r.errors[kind]++;
      if (key) removeSent(r.sent, key);
      if (r.errorSample.length < 5) r.errorSample.push(String((e as Error).message ?? e));
    }
  };
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / c.rate;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    r.maxBehindMs = Math.max(r.maxBehindMs, now() - due);
    const kind = KINDS[tick++ % KINDS.length]!;
    let p: Promise<void>;
    if (kind === 'message') {
      const channel = c.channels[posted++ % c.channels.length]!;
      p = run(kind, { channel, text: text(c.textBytes, posted, now()) }, null);
    } else {
      const target = targets[kind].shift();
      if (!target) {
        r.skipped[kind]++;
        continue;
      }
      const { channel, seq } = target;
      if (kind === 'message_changed') p = run(kind, { channel, seq, text: text(c.textBytes, i, now()) }, `${kind}|${channel}|${seq}`);
      else if (kind === 'message_deleted') p = run(kind, { channel, seq }, `${kind}|${channel}|${seq}`);
      else p = run(kind, { channel, seq, name: REACTION }, `${kind}|${channel}|${seq}|${REACTION}`);
    }
    const q = p.finally(() => inflight.delete(q));
    inflight.add(q);
  }
  await Promise.all(inflight);
  r.seconds = (now() - start) / 1000;
  r.resp = Object.fromEntries(KINDS.map((k) => [k, resp[k].data()])) as Record<Kind, HistData>;
  return r;
}

/** A failed operation produced no frame: it is not expected at the subscribers. */
function removeSent(sent: Sent[], key: string): void {
  for (let i = sent.length - 1; i >= 0; i--) {
    if (sent[i]![0] === key) {
      sent.splice(i, 1);
      return;
    }
  }
}

process.on('message', async (c: ChangesCommand & { id: number }) => {
  const reply = (result: unknown) => process.send!({ id: c.id, result });
  try {
    switch (c.op) {
      case 'connect':
        return reply(await connect(c));
      case 'reset':
        for (const s of subs) s.arrivals.clear();
        frames = outOfOrder = errorFrames = 0;
        cpu0 = process.cpuUsage();
        t0 = performance.now();
        return reply({});
      case 'prepare':
        return reply(await prepare(c));
      case 'mix':
        return reply(await mix(c));
      case 'stats':
        return reply(stats(c.sent));
      case 'close':
        for (const s of subs) (s.closed = true), s.ws.terminate();
        reply({});
        return setTimeout(() => process.exit(0), 50);
    }
  } catch (e) {
    process.send!({ id: c.id, error: String((e as Error)?.stack ?? e) });
  }
});
process.send!({ ready: true });
