// A Scenario A posting process (forked through bench/lib/workers.ts): posts at a fixed open-loop
// rate over keep-alive HTTP (an undici Pool), each post as the first member of its channel,
// round robin over this poster's channels. The text carries the send time and the step's tag
// ("@<CLOCK_MONOTONIC ms>@<tag>@<n>") for the receivers. It keeps, per channel, the seq of every
// post the API accepted and a hash of (seq, id) for the loss check (bench/scenario-a/check.ts).
import { Pool } from 'undici';
import { Tokens } from '../../src/auth/tokens.js';
import { PATHS } from '../../src/protocol.js';
import { Hist, type HistData } from '../lib/hist.js';
import { addHash, pairHash, type AcceptedTruth } from './check.js';

export type PosterCommand =
  | { op: 'init'; apiUrl: string; secret: string; tokenTtlS: number; connections: number; channels: { ch: number; id: string; user: string }[] }
  | { op: 'run'; rate: number; seconds: number; tag: number; windowSeconds?: number }
  | { op: 'accepted' }
  | { op: 'close' };

export interface PosterRun {
  sent: number;
  ok: number;
  errors: number;
  errorKinds: Record<string, number>;
  /** Accepted posts per tag (a hold's windows have a tag each). */
  okByTag: Record<number, number>;
  /** POST start → response, accepted posts. */
  resp: HistData;
  /** The worst lag of a send behind its schedule (the poster could not keep the rate). */
  maxBehindMs: number;
  seconds: number;
  cpuMs: number;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let pool: Pool | null = null;
let channels: { ch: number; id: string; user: string; auth: string }[] = [];
const accepted = new Map<number, { seqs: number[]; hash: number }>();
let counter = 0;
let rr = 0;

async function init(c: Extract<PosterCommand, { op: 'init' }>): Promise<{ tokenMs: number }> {
  const t = performance.now();
  const signer = new Tokens(c.secret);
  channels = [];
  for (const ch of c.channels) channels.push({ ...ch, auth: `Bearer ${await signer.sign(ch.user, c.tokenTtlS)}` });
  pool = new Pool(c.apiUrl, { connections: c.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  return { tokenMs: Math.round(performance.now() - t) };
}

async function run(c: Extract<PosterCommand, { op: 'run' }>): Promise<PosterRun> {
  const cpu0 = process.cpuUsage();
  const resp = new Hist();
  const total = Math.max(1, Math.round(c.rate * c.seconds));
  const errorKinds: Record<string, number> = {};
  const okByTag: Record<number, number> = {};
  let ok = 0;
  let errors = 0;
  let maxBehind = 0;
  const inflight = new Set<Promise<void>>();
  const path = `${PATHS.api}chat.postMessage`;
  const start = now();
  const fail = (kind: string) => {
    errors++;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  };
  const send = async (tag: number) => {
    const target = channels[rr++ % channels.length]!;
    const t = now();
    const body = JSON.stringify({ channel: target.id, text: `@${t.toFixed(3)}@${tag}@${counter++}` });
    try {
      const r = await pool!.request({ path, method: 'POST', headers: { authorization: target.auth, 'content-type': 'application/json' }, body });
      const text = await r.body.text();
      if (r.statusCode !== 200) return fail(`HTTP ${r.statusCode} ${/"error":"(\w+)"/.exec(text)?.[1] ?? ''}`.trim());
      const m = (JSON.parse(text) as { message: { seq: number; id: string } }).message;
      ok++;
      okByTag[tag] = (okByTag[tag] ?? 0) + 1;
      resp.add(now() - t);
      let a = accepted.get(target.ch);
      if (!a) accepted.set(target.ch, (a = { seqs: [], hash: 0 }));
      a.seqs.push(m.seq);
      a.hash = addHash(a.hash, pairHash(m.seq, m.id));
    } catch (e) {
      fail((e as { code?: string }).code ?? (e as Error).message.slice(0, 40));
    }
  };
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / c.rate;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    const t = now();
    maxBehind = Math.max(maxBehind, t - due);
    const tag = c.windowSeconds ? c.tag + Math.floor((t - start) / 1000 / c.windowSeconds) : c.tag;
    const p = send(tag).finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
  const cpu = process.cpuUsage(cpu0);
  return {
    sent: total,
    ok,
    errors,
    errorKinds,
    okByTag,
    resp: resp.data(),
    maxBehindMs: Math.round(maxBehind),
    seconds: (now() - start) / 1000,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

process.on('message', async (c: PosterCommand & { id: number }) => {
  const reply = (r: unknown) => process.send!({ id: c.id, result: r });
  try {
    switch (c.op) {
      case 'init':
        return reply(await init(c));
      case 'run':
        return reply(await run(c));
      case 'accepted': {
        const out: Record<number, AcceptedTruth> = {};
        for (const [ch, a] of accepted) out[ch] = a;
        return reply(out);
      }
      case 'close':
        await pool?.close().catch(() => {});
        reply({});
        return setTimeout(() => process.exit(0), 50);
    }
  } catch (e) {
    process.send!({ id: c.id, error: String((e as Error)?.stack ?? e) });
  }
});
process.send!({ ready: true });
