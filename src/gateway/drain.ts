// Graceful drain: close sockets and SSE streams gradually, `rate` per second but within
// `windowMs`, in a random order (so no group of clients, e.g. the oldest, always goes first),
// each with 1012 and a reason carrying a retry hint. The other gateways see a ramp, not a cliff.
import { CLOSE, drainReason } from '../protocol.js';
import type { Peer } from './peer.js';

const TICK_MS = 20;

export async function drain(conns: Peer[], o: { rate: number; windowMs: number; hint: () => number; onClose: (peer: Peer) => void }): Promise<void> {
  for (let i = conns.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [conns[i], conns[j]] = [conns[j]!, conns[i]!];
  }
  const duration = Math.min(o.windowMs, (conns.length * 1000) / o.rate);
  const ticks = Math.max(1, Math.floor(duration / TICK_MS));
  const perTick = Math.ceil(conns.length / ticks);
  for (let i = 0; i < conns.length; i += perTick) {
    if (i > 0) await new Promise((r) => setTimeout(r, TICK_MS));
    for (const conn of conns.slice(i, i + perTick)) {
      if (conn.closed) continue;
      o.onClose(conn);
      conn.end(CLOSE.draining, drainReason(o.hint()));
    }
  }
}
