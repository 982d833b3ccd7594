// A Scenario A client process (forked by the scenario through bench/lib/workers.ts, IPC like
// bench/worker.ts): holds its share of the sockets (`ws`), each one member of one channel, from
// its own loopback source address with explicit source ports (binding to port 0 on a source
// address makes the kernel scan the port space for each connect, which stalled a ramp near 54k
// sockets). Frames are read as bytes: message frames by their prefix and a few indexOf, without
// parsing the JSON (at 100k frames/s the client shares the cores with the servers). Per message
// frame: POST start → frame latency into the histogram of the frame's tag (the step it was
// posted in; the send time and tag travel in the message text), and the socket's loss record
// (bench/scenario-a/check.ts). Timestamps are CLOCK_MONOTONIC (process.hrtime), the same clock
// in every process of the machine.
import WebSocket from 'ws';
import { Tokens } from '../../src/auth/tokens.js';
import { clientFrame, PATHS, serverFrame, type Message, type ServerFrame } from '../../src/protocol.js';
import { Hist, type HistData } from '../lib/hist.js';
import { addHash, pairHashBytes, type SocketRecords } from './check.js';

export interface ClientSocketSpec {
  /** Channel index (0-based) and id, the member's user id, and the gateway it connects to. */
  ch: number;
  channel: string;
  user: string;
  host: string;
  port: number;
}

export type ClientCommand =
  | { op: 'init'; secret: string; tokenTtlS: number; localAddress: string; portFirst: number; portLast: number; sockets: ClientSocketSpec[]; injectFaults?: boolean }
  | { op: 'connect'; concurrency: number }
  | { op: 'stats' }
  | { op: 'records' }
  | { op: 'close' };

export interface ClientConnectResult {
  connected: number;
  failed: number;
  ms: number;
  tokenMs: number;
  retries: number;
  portsSkipped: number;
  errors: Record<string, number>;
  /** Per socket that made it: TCP connect + upgrade (101), then subscribe → `subscribed`, ms. */
  upgrade: HistData;
  subscribe: HistData;
}

export interface ClientStats {
  tags: Record<number, { hist: HistData; frames: number }>;
  frames: number;
  open: number;
  closed: number;
  otherFrames: number;
  errorFrames: number;
  cpuMs: number;
  wallMs: number;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Message frames are recognised by their first bytes (src/protocol.ts serverFrame.message).
const MESSAGE_PREFIX = (() => {
  const f = serverFrame.message({ id: '', channel: '', seq: 0, user: '', text: '', client_msg_id: null, created_at: '', reply_to: null, edited_at: null, deleted_at: null, reactions: {}, changed_seq: 0 } satisfies Message);
  return Buffer.from(f.slice(0, f.indexOf(',')), 'latin1');
})();
const SEQ = Buffer.from('"seq":');
const ID = Buffer.from('"message":{"id":"');
const TEXT = Buffer.from('"text":"@');

let specs: ClientSocketSpec[] = [];
let tokens: string[] = [];
let secret = '';
let ttl = 3600;
let localAddress = '127.0.0.1';
let nextPort = 0;
let portLast = 0;
let portsSkipped = 0;
const sockets: (WebSocket | null)[] = [];
let s0: Int32Array;
let count: Int32Array;
let first: Int32Array;
let last: Int32Array;
let gaps: Int32Array;
let notAbove: Int32Array;
let hash: Uint32Array;
let closedCode: Int32Array;
const tags = new Map<number, { hist: Hist; frames: number }>();
let frames = 0;
let otherFrames = 0;
let errorFrames = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
/** Waiting for a socket's `subscribed` frame. */
const subscribedWaiters = new Map<number, (ok: boolean, why?: string) => void>();
const upgradeHist = new Hist();
let inject = false;
const injected = { dropped: false, doubled: false };
const subscribeHist = new Hist();

function readInt(buf: Buffer, at: number, end: number): number {
  let v = 0;
  for (let i = at; i < end; i++) {
    const c = buf[i]!;
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
  }
  return v;
}

function record(i: number, seq: number, h: number): void {
  const prev = last[i]!;
  if (count[i] === 0) first[i] = seq;
  else if (seq <= prev) notAbove[i] = notAbove[i]! + 1;
  else if (seq !== prev + 1) gaps[i] = gaps[i]! + 1;
  if (count[i] === 0 || seq > prev) last[i] = seq;
  count[i] = count[i]! + 1;
  hash[i] = addHash(hash[i]!, h);
}

function onText(i: number, buf: Buffer, start: number, end: number): void {
  const t = now();
  if (end - start > MESSAGE_PREFIX.length && buf.compare(MESSAGE_PREFIX, 0, MESSAGE_PREFIX.length, start, start + MESSAGE_PREFIX.length) === 0) {
    frames++;
    const at = buf.indexOf(SEQ, start);
    const seq = readInt(buf, at + SEQ.length, end);
    const idAt = buf.indexOf(ID, start) + ID.length;
    const idEnd = buf.indexOf(34, idAt); // the closing quote
    const textAt = buf.indexOf(TEXT, start);
    if (textAt >= 0) {
      // "@<send time ms>@<tag>@<index>"
      const a = textAt + TEXT.length;
      const b = buf.indexOf(64, a); // '@'
      const sent = Number(buf.toString('latin1', a, b));
      const tag = readInt(buf, b + 1, end);
      let h = tags.get(tag);
      if (!h) tags.set(tag, (h = { hist: new Hist(), frames: 0 }));
      h.hist.add(t - sent);
      h.frames++;
    }
    const h = pairHashBytes(seq, buf, idAt, idEnd);
    // --inject-faults: socket 0 loses its 3rd message, socket 1 sees its 5th twice (the loss
    // check must catch both).
    if (inject && i === 0 && count[i] === 2 && !injected.dropped) return void (injected.dropped = true);
    if (inject && i === 1 && count[i] === 4 && !injected.doubled) (injected.doubled = true), record(i, seq, h);
    record(i, seq, h);
    return;
  }
  const f = JSON.parse(buf.toString('utf8', start, end)) as ServerFrame;
  if (f.type === 'subscribed') {
    // Frames after `since` are this subscription's (src/gateway/commands.ts).
    s0[i] = f.since;
    subscribedWaiters.get(i)?.(true);
  } else if (f.type === 'error') {
    errorFrames++;
    subscribedWaiters.get(i)?.(false, `error frame ${f.code}`);
  } else otherFrames++;
}

/** Why an attempt failed: a socket error code (EADDRINUSE...), the upgrade's HTTP status, or a message. */
class AttemptError extends Error {
  constructor(
    message: string,
    readonly code?: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Opens one WebSocket from localAddress:localPort; resolves once it is open. */
function openWs(url: string, localPort: number, onText: (buf: Buffer) => void, onClose: (code: number) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // `ws` passes localAddress/localPort through http.request to net.connect.
    const ws = new WebSocket(url, { localAddress, localPort, perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 30_000 });
    let open = false;
    ws.on('unexpected-response', (_req, res) => {
      reject(new AttemptError(`HTTP ${res.statusCode}`, undefined, res.statusCode));
      res.resume();
      ws.terminate();
    });
    ws.on('error', (e: NodeJS.ErrnoException) => {
      if (!open) reject(new AttemptError(e.message, e.code));
    });
    ws.on('open', () => {
      open = true;
      resolve(ws);
    });
    ws.on('message', (d: Buffer, isBinary: boolean) => {
      if (!isBinary) onText(d);
    });
    ws.on('close', (code: number) => {
      if (open) onClose(code);
      else reject(new AttemptError(`closed ${code} before open`));
    });
  });
}

async function openOne(i: number, errors: Record<string, number>): Promise<number> {
  const spec = specs[i]!;
  const url = `ws://${spec.host}:${spec.port}${PATHS.ws}?token=${encodeURIComponent(tokens[i]!)}`;
  let retries = 0;
  for (let attempt = 0; ; attempt++) {
    if (nextPort > portLast) throw new Error(`out of source ports on ${localAddress}`);
    const localPort = nextPort++;
    // A socket given up on below may report its close after the next attempt connected.
    let current = true;
    const tOpen = performance.now();
    try {
      const ws = await openWs(
        url,
        localPort,
        (buf) => onText(i, buf, 0, buf.length),
        (code) => {
          if (!current) return;
          closedCode[i] = code;
          sockets[i] = null;
          subscribedWaiters.get(i)?.(false, `closed ${code}`);
        },
      );
      sockets[i] = ws;
      const tSub = performance.now();
      const subscribed = await new Promise<{ ok: boolean; why?: string }>((resolve) => {
        const timer = setTimeout(() => resolve({ ok: false, why: 'subscribe timeout' }), 60_000);
        subscribedWaiters.set(i, (ok, why) => {
          clearTimeout(timer);
          resolve({ ok, why });
        });
        ws.send(clientFrame.subscribe(spec.channel));
      });
      subscribedWaiters.delete(i);
      if (subscribed.ok) {
        upgradeHist.add(tSub - tOpen);
        subscribeHist.add(performance.now() - tSub);
        return retries;
      }
      current = false;
      sockets[i] = null;
      ws.terminate();
      throw new AttemptError(subscribed.why ?? 'not subscribed');
    } catch (e) {
      const err = e as AttemptError;
      const kind = err.code ?? (err.status ? `HTTP ${err.status}` : err.message.slice(0, 40));
      errors[kind] = (errors[kind] ?? 0) + 1;
      closedCode[i] = 0;
      // A source port still taken (by another program, or a socket in TIME_WAIT): the next one.
      if (err.code === 'EADDRINUSE') {
        portsSkipped++;
        continue;
      }
      if (attempt >= 8) throw e;
      retries++;
      await sleep(Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random()));
    }
  }
}

async function connect(concurrency: number): Promise<ClientConnectResult> {
  const start = performance.now();
  const signer = new Tokens(secret);
  tokens = [];
  for (const s of specs) tokens.push(await signer.sign(s.user, ttl));
  const tokenMs = performance.now() - start;
  const errors: Record<string, number> = {};
  let next = 0;
  let failed = 0;
  let retries = 0;
  const lane = async () => {
    while (next < specs.length) {
      const i = next++;
      try {
        retries += await openOne(i, errors);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, specs.length)) }, lane));
  return {
    connected: sockets.filter(Boolean).length,
    failed,
    ms: Math.round(performance.now() - start),
    tokenMs: Math.round(tokenMs),
    retries,
    portsSkipped,
    errors,
    upgrade: upgradeHist.data(),
    subscribe: subscribeHist.data(),
  };
}

function stats(): ClientStats {
  const cpu = process.cpuUsage(cpu0);
  const out: ClientStats['tags'] = {};
  for (const [tag, h] of tags) out[tag] = { hist: h.hist.data(), frames: h.frames };
  return {
    tags: out,
    frames,
    open: sockets.filter(Boolean).length,
    closed: closedCode.filter((c) => c !== 0).length,
    otherFrames,
    errorFrames,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - t0,
  };
}

function records(): SocketRecords {
  return {
    channel: specs.map((s) => s.ch),
    s0: [...s0],
    count: [...count],
    first: [...first],
    last: [...last],
    gaps: [...gaps],
    notAbove: [...notAbove],
    hash: [...hash],
    closed: [...closedCode],
  };
}

process.on('message', async (c: ClientCommand & { id: number }) => {
  const reply = (r: unknown) => process.send!({ id: c.id, result: r });
  try {
    switch (c.op) {
      case 'init': {
        specs = c.sockets;
        secret = c.secret;
        ttl = c.tokenTtlS;
        localAddress = c.localAddress;
        nextPort = c.portFirst;
        portLast = c.portLast;
        inject = Boolean(c.injectFaults);
        const n = specs.length;
        s0 = new Int32Array(n).fill(-1);
        count = new Int32Array(n);
        first = new Int32Array(n);
        last = new Int32Array(n);
        gaps = new Int32Array(n);
        notAbove = new Int32Array(n);
        hash = new Uint32Array(n);
        closedCode = new Int32Array(n);
        sockets.length = n;
        sockets.fill(null);
        return reply({});
      }
      case 'connect':
        return reply(await connect(c.concurrency));
      case 'stats':
        return reply(stats());
      case 'records':
        return reply(records());
      case 'close':
        for (const s of sockets) s?.terminate();
        reply({});
        return setTimeout(() => process.exit(0), 50);
    }
  } catch (e) {
    process.send!({ id: c.id, error: String((e as Error)?.stack ?? e) });
  }
});
process.send!({ ready: true });
