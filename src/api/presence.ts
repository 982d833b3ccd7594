// conversations.presence without a gateway in the process: ask the gateways over the bus. This
// process subscribes to the channel's topic for a moment, asks every gateway serving the channel
// for its set, and answers with what came back within the window. (A process that also runs
// the gateway asks its gateway instead: Gateway.presenceOf.)
import type { Bus, BusEvent } from '../bus/bus.js';

export type PresenceLookup = (channel: string) => Promise<string[]>;

export function busPresence(bus: Bus, waitMs: number): PresenceLookup {
  const self = `api-${Math.random().toString(36).slice(2)}`;
  const pending = new Map<string, { users: Set<string>; refs: number }>();
  bus.onEvent((e: BusEvent) => {
    if (e.kind !== 'presence' || e.gateway === self || !e.users) return;
    const p = pending.get(e.channel);
    if (p) for (const u of e.users) p.users.add(u);
  });
  return async (channel) => {
    let p = pending.get(channel);
    if (!p) pending.set(channel, (p = { users: new Set(), refs: 0 }));
    p.refs++;
    try {
      await bus.subscribe(channel);
      await bus.publish([{ kind: 'presence', channel, gateway: self, query: true }]);
      await new Promise((r) => setTimeout(r, waitMs));
      return [...p.users];
    } finally {
      if (--p.refs === 0) {
        pending.delete(channel);
        await bus.unsubscribe(channel).catch(() => {});
      }
    }
  };
}
