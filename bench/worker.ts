// A load-generator process (forked by bench/lib/workers.ts; several run side by side so the clients
// are not one core's worth). It holds WebSocket subscribers (walcast protocol, or Socket.IO's
// engine.io protocol spoken over the same `ws` library so both systems' clients cost the same)
// and/or posts at a fixed open-loop rate. Timestamps are CLOCK_MONOTONIC (process.hrtime),
// which is the same clock in every process of the machine: the poster puts its send time in
// the message text, the receiver subtracts it from its own receive time. With `stampScheduled`
// the text carries the time the post was due (the open-loop schedule) and the time it was sent:
// latency from the due time does not hide a poster or server that fell behind (coordinated
// omission); the second histogram is from the actual send. With `check`, every socket's seqs are
// checked as they arrive (a gap, a repeat or a step back is counted), without keeping them.
// `client: 'lean'` holds the walcast subscribers on bench/lib/lean-ws.ts instead of `ws`, and
// reads message frames from the bytes (for check only): a fraction of the CPU per frame.
import WebSocket from 'ws';
import { clientFrame, PATHS, serverFrame, type Message, type ServerFrame } from '../src/protocol.js';
import { Hist } from './lib/hist.js';
import { request } from './lib/http-client.js';
import { LeanSocket } from './lib/lean-ws.js';
import { leanPost } from './lib/lean-http.js';

const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type WorkerCommand =
  | { op: 'connect'; mode: 'walcast' | 'socketio'; client?: 'ws' | 'lean'; token?: string; subs: { url: string; channels: string[] }[]; localAddress?: string; track?: boolean; check?: boolean; getMessage?: { apiUrl: string; token: string } }
  | { op: 'reset' }
  | { op: 'stats'; truth?: Record<string, Record<number, string>> }
  | { op: 'post'; url: string; token?: string; channels: string[]; rate: number; seconds: number; retry?: boolean; idPrefix?: string; stampScheduled?: boolean }
  | { op: 'recheck' }
  | { op: 'autocannon'; url: string; token: string; channels: string[]; connections: number; seconds: number; textBytes?: number }
  | { op: 'lean-post'; url: string; token: string; channels: string[]; connections: number; seconds: number; textBytes?: number }
  | { op: 'close' };

interface Sub {
  ws: { terminate(): void };
  channels: string[];
  /** track: channel -> seqs in arrival order, and the message id first seen per seq. */
  seqs: Map<string, number[]>;
  ids: Map<string, Map<number, string>>;
  closed: boolean;
  /** check: message frames since the last reset, and the last seq per channel (kept across resets). */
  count: number;
  last: Map<string, number>;
}

const subs: Sub[] = [];
let hist = new Hist();
let deliveries = 0;
let cpu0 = process.cpuUsage();
let t0 = performance.now();
let disconnects = 0;
let track = false;
let check = false;
/** From the actual send time, when the text carries it (stampScheduled). */
let histSent = new Hist();
let frameBytes = 0;
let firstAt = 0;
let lastAt = 0;
let seqGaps = 0;
let seqRepeats = 0;
let elu0 = performance.eventLoopUtilization();
let getMessage: { apiUrl: string; token: string } | undefined;
const ghosts: { channel: string; seq: number; at: number }[] = [];
let getChecks = 0;
let getErrors = 0;
/**
 * How every message frame starts (src/protocol.ts serverFrame.message): frames are told apart
 * by it without parsing, which matters at hundreds of thousands of frames a second.
 */
const MESSAGE_FRAME = (() => {
  const f = serverFrame.message({ id: '', channel: '', seq: 0, user: '', text: '', client_msg_id: null, created_at: '', reply_to: null, edited_at: null, deleted_at: null, reactions: {}, changed_seq: 0 } satisfies Message);
  return f.slice(0, f.indexOf(','));
})();

/** The message text carries "@<send time ms>@<index>"; find it without parsing the whole frame. */
function sentAt(frame: string): number {
  const i = frame.indexOf('"text":"@');
  if (i < 0) return NaN;
  const j = frame.indexOf('@', i + 9);
  return Number(frame.slice(i + 9, j));
}

/** "@<due>@<index>@<sent>" (stampScheduled): the third field, else NaN. */
function actualSentAt(frame: string): number {
  const i = frame.indexOf('"text":"@');
  if (i < 0) return NaN;
  const j = frame.indexOf('@', i + 9);
  const k = frame.indexOf('@', j + 1);
  const q = frame.indexOf('"', j + 1);
  return k > 0 && k < q ? Number(frame.slice(k + 1, q)) : NaN;
}

/** The frame's top-level seq (the first "seq": of a message frame), read without parsing. */
function seqOf(frame: string): number {
  let i = frame.indexOf('"seq":') + 6;
  if (i < 6) return NaN;
  let v = 0;
  for (let c = frame.charCodeAt(i); c >= 48 && c <= 57; c = frame.charCodeAt(++i)) v = v * 10 + (c - 48);
  return v;
}

function channelOf(frame: string): string {
  const i = frame.indexOf('"channel":"') + 11;
  return frame.slice(i, frame.indexOf('"', i));
}

function checkSeq(sub: Sub, raw: string): void {
  checkSeqOf(sub, sub.channels.length === 1 ? sub.channels[0]! : channelOf(raw), seqOf(raw));
}

function checkSeqOf(sub: Sub, channel: string, seq: number): void {
  sub.count++;
  const last = sub.last.get(channel);
  if (last !== undefined) {
    if (seq <= last) seqRepeats++;
    else if (seq > last + 1) seqGaps += seq - last - 1;
  }
  if (last === undefined || seq > last) sub.last.set(channel, seq);
}

function onMessageFrame(sub: Sub, raw: string, t: number): void {
  const sent = sentAt(raw);
  if (!Number.isNaN(sent)) hist.add(t - sent);
  deliveries++;
  if (check) {
    const actual = actualSentAt(raw);
    if (!Number.isNaN(actual)) histSent.add(t - actual);
    frameBytes += raw.length;
    if (!firstAt) firstAt = t;
    lastAt = t;
    checkSeq(sub, raw);
  }
  if (!track && !getMessage) return;
  const m = extractMessage(raw);
  if (!m) return;
  if (track) {
    let list = sub.seqs.get(m.channel);
    if (!list) sub.seqs.set(m.channel, (list = []));
    list.push(m.seq);
    let ids = sub.ids.get(m.channel);
    if (!ids) sub.ids.set(m.channel, (ids = new Map()));
    if (!ids.has(m.seq)) ids.set(m.seq, m.id);
  }
  if (getMessage) {
    getChecks++;
    void request(`${getMessage.apiUrl}${PATHS.api}chat.getMessage?channel=${m.channel}&seq=${m.seq}`, 'GET', getMessage.token).then(
      (r) => {
        if (r.status === 404) ghosts.push({ channel: m.channel, seq: m.seq, at: t });
        else if (r.status !== 200) getErrors++;
      },
      () => getErrors++,
    );
  }
}

// The lean client's message frames, read from the bytes: the same figures as onMessageFrame.
const MESSAGE_PREFIX = Buffer.from(MESSAGE_FRAME);
const TEXT_MARK = Buffer.from('"text":"@');
const SEQ_MARK = Buffer.from('"seq":');
const CHANNEL_MARK = Buffer.from('"channel":"');
/** Where readNumber stopped. */
let at = 0;

/** A decimal number (digits, optionally a point and digits) at buf[p]; NaN if there is none. */
function readNumber(buf: Buffer, p: number): number {
  let c = buf[p]!;
  if (c < 48 || c > 57) return (at = p), NaN;
  let v = 0;
  for (; c >= 48 && c <= 57; c = buf[++p]!) v = v * 10 + (c - 48);
  if (c === 46) {
    let scale = 1;
    for (c = buf[++p]!; c >= 48 && c <= 57; c = buf[++p]!) v += (c - 48) * (scale /= 10);
  }
  at = p;
  return v;
}

function isMessageFrame(buf: Buffer, start: number, end: number): boolean {
  return end - start > MESSAGE_PREFIX.length && buf.compare(MESSAGE_PREFIX, 0, MESSAGE_PREFIX.length, start, start + MESSAGE_PREFIX.length) === 0;
}

function onLeanMessage(sub: Sub, buf: Buffer, start: number, end: number, t: number): void {
  deliveries++;
  const i = buf.indexOf(TEXT_MARK, start);
  if (i >= 0 && i < end) {
    const due = readNumber(buf, i + TEXT_MARK.length);
    if (!Number.isNaN(due)) hist.add(t - due);
    if (buf[at] === 64) {
      readNumber(buf, at + 1); // the index
      if (buf[at] === 64) {
        const sent = readNumber(buf, at + 1);
        if (!Number.isNaN(sent)) histSent.add(t - sent);
      }
    }
  }
  frameBytes += end - start;
  if (!firstAt) firstAt = t;
  lastAt = t;
  const s = buf.indexOf(SEQ_MARK, start);
  const seq = s >= 0 && s < end ? readNumber(buf, s + SEQ_MARK.length) : NaN;
  let channel = sub.channels[0]!;
  if (sub.channels.length > 1) {
    const c = buf.indexOf(CHANNEL_MARK, start) + CHANNEL_MARK.length;
    channel = buf.toString('latin1', c, buf.indexOf(34, c));
  }
  checkSeqOf(sub, channel, seq);
}

function connectLean(url: string, token: string | undefined, channels: string[], localAddress?: string): Promise<Sub> {
  return new Promise((resolve, reject) => {
    const sub: Sub = { ws: { terminate: () => {} }, channels, seqs: new Map(), ids: new Map(), closed: false, count: 0, last: new Map() };
    const pending = new Set(channels);
    let settled = false;
    let subscribed = false;
    const timer = setTimeout(() => fail(new Error('subscribe timeout')), 30_000);
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sub.ws.terminate();
      reject(e);
    };
    LeanSocket.connect(
      `${url}?token=${encodeURIComponent(token ?? '')}`,
      localAddress,
      {
        text: (buf, start, end, t) => {
          if (isMessageFrame(buf, start, end)) return onLeanMessage(sub, buf, start, end, t);
          const raw = buf.toString('utf8', start, end);
          const f = JSON.parse(raw) as ServerFrame;
          if (f.type === 'subscribed') {
            sub.last.set(f.channel, f.since);
            pending.delete(f.channel);
            if (pending.size === 0 && !settled) {
              settled = subscribed = true;
              clearTimeout(timer);
              resolve(sub);
            }
          } else if (f.type === 'error') fail(new Error(`error frame ${raw}`));
        },
        close: () => {
          if (subscribed && !sub.closed) disconnects++;
          sub.closed = true;
          fail(new Error('closed'));
        },
      },
      now,
    ).then((ws) => {
      sub.ws = ws;
      if (settled) return ws.terminate();
      for (const c of channels) ws.send(clientFrame.subscribe(c));
    }, fail);
  });
}

function extractMessage(raw: string): { channel: string; seq: number; id: string } | null {
  try {
    if (raw.startsWith('42')) {
      const [, m] = JSON.parse(raw.slice(2)) as [string, any];
      return { channel: m.channel, seq: m.seq, id: m.id };
    }
    const f = JSON.parse(raw) as ServerFrame;
    return f.type === 'message' ? { channel: f.channel, seq: f.seq, id: f.message.id } : null;
  } catch {
    return null;
  }
}

function connectOne(mode: 'walcast' | 'socketio', url: string, token: string | undefined, channels: string[], localAddress?: string): Promise<Sub> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(mode === 'walcast' ? `${url}?token=${encodeURIComponent(token!)}` : url, { localAddress, perMessageDeflate: false });
    const sub: Sub = { ws, channels, seqs: new Map(), ids: new Map(), closed: false, count: 0, last: new Map() };
    const pending = new Set(channels);
    let settled = false;
    const timer = setTimeout(() => fail(new Error('subscribe timeout')), 30_000);
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(e);
    };
    const ok = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(sub);
    };
    ws.on('error', (e) => fail(e));
    ws.on('close', () => {
      if (settled && !sub.closed) disconnects++;
      sub.closed = true;
      fail(new Error('closed'));
    });
    if (mode === 'walcast') {
      ws.on('open', () => {
        for (const c of channels) ws.send(clientFrame.subscribe(c, track ? 0 : undefined));
      });
      ws.on('message', (d) => {
        const t = now();
        const raw = String(d);
        if (raw.startsWith(MESSAGE_FRAME)) return onMessageFrame(sub, raw, t);
        const f = JSON.parse(raw) as ServerFrame;
        if (f.type === 'subscribed') {
          // Delivery starts after `since`: the first frame must be since + 1.
          if (check) sub.last.set(f.channel, f.since);
          pending.delete(f.channel);
          if (pending.size === 0) ok();
        } else if (f.type === 'error') fail(new Error(`error frame ${raw}`));
      });
    } else {
      ws.on('message', (d) => {
        const t = now();
        const raw = String(d);
        if (raw.startsWith('42["message"')) return onMessageFrame(sub, raw, t);
        if (raw === '2') return ws.send('3'); // engine.io ping
        if (raw.startsWith('0')) return ws.send('40'); // engine.io open: connect the main namespace
        if (raw.startsWith('40')) {
          for (const c of channels) ws.send(`42${JSON.stringify(['subscribe', c])}`);
          return;
        }
        if (raw.startsWith('42["subscribed"')) {
          pending.delete(JSON.parse(raw.slice(2))[1]);
          if (pending.size === 0) ok();
        }
      });
    }
  });
}

async function connect(c: Extract<WorkerCommand, { op: 'connect' }>): Promise<{ connected: number; failed: number; ms: number }> {
  track = Boolean(c.track);
  check = Boolean(c.check);
  if (c.client === 'lean' && (c.mode !== 'walcast' || !check || track || c.getMessage)) throw new Error('the lean client: walcast mode with check only');
  getMessage = c.getMessage;
  const start = performance.now();
  let failed = 0;
  let next = 0;
  const one = async () => {
    while (next < c.subs.length) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        try {
          const s = c.subs[i]!;
          subs.push(await (c.client === 'lean' ? connectLean(s.url, c.token, s.channels, c.localAddress) : connectOne(c.mode, s.url, c.token, s.channels, c.localAddress)));
          break;
        } catch {
          if (attempt >= 5) {
            failed++;
            break;
          }
          await sleep(100 * 2 ** attempt);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(100, c.subs.length) }, one));
  return { connected: subs.length, failed, ms: Math.round(performance.now() - start) };
}

async function post(c: Extract<WorkerCommand, { op: 'post' }>) {
  const resp = new Hist();
  const total = Math.max(1, Math.round(c.rate * c.seconds));
  let ok = 0;
  let errors = 0;
  let attempts = 0;
  let maxBehind = 0;
  const posted: Record<string, number> = {};
  const inflight = new Set<Promise<void>>();
  const start = now();
  const send = async (i: number) => {
    const channel = c.channels[i % c.channels.length]!;
    const t = now();
    const text = c.stampScheduled ? `@${(start + (i * 1000) / c.rate).toFixed(3)}@${i}@${t.toFixed(3)}` : `@${t.toFixed(3)}@${i}`;
    const body = JSON.stringify({ channel, text, ...(c.idPrefix ? { client_msg_id: `${c.idPrefix}-${i}` } : {}) });
    for (;;) {
      attempts++;
      try {
        const r = await request(c.url, 'POST', c.token, body);
        if (r.status === 200) {
          ok++;
          resp.add(now() - t);
          posted[channel] = (posted[channel] ?? 0) + 1;
          return;
        }
        if (!c.retry) throw new Error(`status ${r.status}`);
      } catch {
        if (!c.retry) {
          errors++;
          return;
        }
      }
      errors++;
      await sleep(100);
    }
  };
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / c.rate;
    // Never before its time: a timer can fire early against hrtime (libuv caches the loop's time
    // per turn, and delays are whole ms), and a post sent early, answered within a millisecond,
    // would show a latency from its due time of zero or less. So sleep again while any of the
    // wait is left (at the cost of up to a millisecond late, which the due-time latency shows).
    for (let wait = due - now(); wait > 0; wait = due - now()) await sleep(Math.max(1, wait));
    maxBehind = Math.max(maxBehind, now() - due);
    const p = send(i).finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
  return { sent: total, ok, errors, attempts, resp: resp.data(), maxBehindMs: Math.round(maxBehind), seconds: (now() - start) / 1000, posted, startedAt: start };
}

function stats(truth?: Record<string, Record<number, string>>) {
  const cpu = process.cpuUsage(cpu0);
  const perSub = track
    ? subs.map((s) => {
        const out: Record<string, { received: number; distinct: number; outOfOrder: number; wrong: number; seqs: number[] }> = {};
        for (const ch of s.channels) {
          const list = s.seqs.get(ch) ?? [];
          let outOfOrder = 0;
          for (let k = 1; k < list.length; k++) if (list[k]! <= list[k - 1]!) outOfOrder++;
          let wrong = 0;
          const t = truth?.[ch];
          if (t) for (const [seq, id] of s.ids.get(ch) ?? []) if (t[seq] !== undefined && t[seq] !== id) wrong++;
          out[ch] = { received: list.length, distinct: new Set(list).size, outOfOrder, wrong, seqs: [...new Set(list)].sort((a, b) => a - b) };
        }
        return out;
      })
    : [];
  return {
    hist: hist.data(),
    deliveries,
    open: subs.filter((s) => !s.closed).length,
    disconnects,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - t0,
    perSub,
    ghosts,
    getChecks,
    getErrors,
    // check: what the ceiling bench reads (bench/scenarios/ceiling.ts)
    histSent: histSent.data(),
    frameBytes,
    firstAt,
    lastAt,
    seqGaps,
    seqRepeats,
    perSubCounts: check ? subs.map((s) => s.count) : [],
    elu: performance.eventLoopUtilization(elu0).utilization,
  };
}

process.on('message', async (c: WorkerCommand & { id: number }) => {
  const reply = (r: unknown) => process.send!({ id: c.id, result: r });
  try {
    switch (c.op) {
      case 'connect':
        return reply(await connect(c));
      case 'reset':
        hist = new Hist();
        deliveries = 0;
        ghosts.length = 0;
        getChecks = 0;
        getErrors = 0;
        for (const s of subs) (s.seqs.clear(), s.ids.clear(), (s.count = 0));
        histSent = new Hist();
        frameBytes = firstAt = lastAt = seqGaps = seqRepeats = 0;
        elu0 = performance.eventLoopUtilization();
        cpu0 = process.cpuUsage();
        t0 = performance.now();
        return reply({});
      case 'stats':
        return reply(stats(c.truth));
      case 'post':
        return reply(await post(c));
      case 'recheck': {
        // Ghosts fetched again later: did the row commit after all, or never?
        let committedLater = 0;
        for (const g of ghosts) {
          const r = await request(`${getMessage!.apiUrl}${PATHS.api}chat.getMessage?channel=${g.channel}&seq=${g.seq}`, 'GET', getMessage!.token).catch(() => ({ status: 0 }));
          if (r.status === 200) committedLater++;
        }
        return reply({ ghosts: ghosts.length, committedLater });
      }
      case 'autocannon': {
        // Closed loop: each connection sends its next post when the last one was answered. The
        // response times go into a Hist (autocannon's own summary has no p95); the rate is the
        // 2xx count over the measured time.
        const { default: autocannon } = await import('autocannon');
        const text = 'x'.repeat(c.textBytes ?? 100);
        let n = 0;
        const ok = new Hist();
        let other = 0;
        const instance = autocannon({
          url: c.url,
          method: 'POST',
          headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' },
          connections: c.connections,
          duration: c.seconds,
          requests: [{ setupRequest: (req: any) => ({ ...req, body: JSON.stringify({ channel: c.channels[n++ % c.channels.length], text }) }) }],
        });
        (instance as unknown as NodeJS.EventEmitter).on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
          if (status >= 200 && status < 300) ok.add(ms);
          else other++;
        });
        const r = await instance;
        const cpu = process.cpuUsage(cpu0);
        return reply({
          rps: ok.n / r.duration,
          total: ok.n,
          seconds: r.duration,
          latency: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: r.latency.average },
          hist: ok.data(),
          non2xx: Math.max(r.non2xx, other),
          errors: r.errors,
          timeouts: r.timeouts,
          cpuMs: (cpu.user + cpu.system) / 1000,
          wallMs: performance.now() - t0,
        });
      }
      case 'lean-post': {
        // The same closed loop as 'autocannon', from bench/lib/lean-http.ts (cheaper per request).
        const r = await leanPost({ url: c.url, token: c.token, channels: c.channels, connections: c.connections, seconds: c.seconds, textBytes: c.textBytes ?? 100 });
        const s = r.hist.summary();
        const cpu = process.cpuUsage(cpu0);
        return reply({
          rps: r.ok / r.seconds,
          total: r.ok,
          seconds: r.seconds,
          latency: { p50: s.p50, p90: s.p90, p99: s.p99, max: s.max, mean: s.mean },
          hist: r.hist.data(),
          non2xx: r.other,
          errors: r.errors,
          timeouts: 0,
          cpuMs: (cpu.user + cpu.system) / 1000,
          wallMs: performance.now() - t0,
        });
      }
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
