// The client side of a reconnect storm (harness/load/storm.ts forks this): SDK clients, each
// subscribed to one channel with `since: 0`, from one loopback source address, finding gateways
// through a list the parent updates (as behind a load balancer). Talks to the parent over IPC.
import WebSocket from 'ws';
import { Tokens } from '../../src/auth/tokens.js';
import { createNodeClient, type ChannelSubscription, type WalcastClient, type WebSocketConstructor } from '../../src/sdk/node.js';

export type ToStormClients =
  | { cmd: 'start'; secret: string; urls: string[]; localAddress: string; clients: { user: string; channel: string }[] }
  | { cmd: 'urls'; urls: string[] }
  /** Report `resumed` once every client delivered its channel's seq here, `open` once all are connected. */
  | { cmd: 'marker'; seqs: Record<string, number> }
  /** Wait for every client to reach its channel's final seq (60 s at most), then report and close. */
  | { cmd: 'final'; seqs: Record<string, number> };

export type FromStormClients =
  | { ev: 'up' }
  | { ev: 'subscribed'; n: number }
  | { ev: 'resumed'; at: number }
  | { ev: 'open'; at: number }
  | { ev: 'report'; lost: number; outOfOrder: number; dup: number; gaps: number; reconnects: number; messages: number };

const send = (m: FromStormClients) => process.send!(m);

let urls: string[] = [];
let next = 0;
const clients: { c: WalcastClient; sub: ChannelSubscription; channel: string; got: number; bad: number }[] = [];

process.on('message', async (m: ToStormClients) => {
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
      // Every frame of the change log counts (the channel's log also holds its members joining).
      entry.sub = c.subscribe(spec.channel, {
        since: 0,
        onChange: (f) => {
          if (prev !== undefined && f.seq !== prev + 1) entry.bad++;
          prev = f.seq;
          entry.got++;
        },
      });
      clients.push(entry);
      if (clients.length % 500 === 0) await new Promise((r) => setTimeout(r, 20)); // connect steadily, not all in one tick
    }
    await Promise.all(clients.map((e) => e.sub.ready));
    send({ ev: 'subscribed', n: clients.length });
  }
  if (m.cmd === 'marker') {
    const resumedTimer = setInterval(() => {
      if (clients.every((e) => (e.sub.lastSeq ?? 0) >= m.seqs[e.channel]!)) {
        clearInterval(resumedTimer);
        send({ ev: 'resumed', at: Date.now() });
      }
    }, 5);
    const openTimer = setInterval(() => {
      if (clients.every((e) => e.c.state === 'open')) {
        clearInterval(openTimer);
        send({ ev: 'open', at: Date.now() });
      }
    }, 5);
  }
  if (m.cmd === 'final') {
    const end = Date.now() + 60_000;
    while (Date.now() < end && !clients.every((e) => (e.sub.lastSeq ?? 0) >= m.seqs[e.channel]!)) await new Promise((r) => setTimeout(r, 50));
    const r = { ev: 'report' as const, lost: 0, outOfOrder: 0, dup: 0, gaps: 0, reconnects: 0, messages: 0 };
    for (const e of clients) {
      // Each client subscribed with since 0, so it must have got everything after where the
      // server started it (its user's member_joined) up to the final seq.
      r.lost += Math.max(0, m.seqs[e.channel]! - (e.sub.startedAfter ?? 0) - e.got);
      r.outOfOrder += e.bad;
      r.dup += e.sub.duplicatesDropped;
      r.gaps += e.sub.gapsRepaired;
      r.reconnects += e.c.reconnects;
      r.messages += e.got;
      e.c.close();
    }
    send(r);
  }
});
send({ ev: 'up' });
