// A bus owned by another thread or process. The relay's worker thread and gateway worker
// processes of `walcast start` reach the in-process bus of the process that owns it through a
// message channel (a MessagePort, or the IPC channel of a forked child). The owner gives every
// endpoint a bus of its own (on the shared MemoryBroker), so subscriptions and handlers stay
// per endpoint, exactly as separate processes on one Redis.
//
// Both channels deliver in order, so a publish's acknowledgement follows every event the owner
// handed over before it. When the channel closes (the owner or the worker is gone) the remote
// bus reports "down" and rejects what is pending; the relay then replays from its slot, and a
// gateway re-syncs from the database when it comes back, as after a Redis outage.
import { tagged, type Endpoint } from '../util/endpoint.js';
import type { Bus, BusEvent, BusEventHandler, BusResubscribedHandler, BusStateHandler } from './bus.js';
import { BusListeners, channelOf } from './bus.js';

/** Tags our messages: an IPC channel also carries other traffic (metrics requests, signals). */
const TAG = 'walcast:bus';

type ToOwner =
  | { tag: typeof TAG; t: 'hello' }
  | { tag: typeof TAG; t: 'pub'; id: number; events: readonly BusEvent[] }
  | { tag: typeof TAG; t: 'sub'; id: number; channel: string }
  | { tag: typeof TAG; t: 'unsub'; channel: string }
  | { tag: typeof TAG; t: 'close' };

type ToRemote =
  | { tag: typeof TAG; t: 'res'; id: number; error?: string }
  | { tag: typeof TAG; t: 'ev'; events: BusEvent[] }
  | { tag: typeof TAG; t: 'state'; up: boolean }
  | { tag: typeof TAG; t: 'resub'; channels: readonly string[] };

/** The owner's side: serves one endpoint with a bus of its own (made by `makeBus`). */
export function serveBus(endpoint: Endpoint, makeBus: () => Bus): () => Promise<void> {
  const bus = makeBus();
  let closed = false;
  // Nothing is sent before the remote said hello: a message sent before its listener exists is lost.
  let greeted = false;
  let batch: BusEvent[] = [];
  const send = (msg: ToRemote) => !closed && greeted && endpoint.send(msg);
  const flush = () => {
    const events = batch;
    batch = [];
    send({ tag: TAG, t: 'ev', events });
  };
  // Events handed over in one turn (a relayed transaction) cross in one message.
  bus.onEvent((e) => {
    if (batch.length === 0) queueMicrotask(flush);
    batch.push(e);
  });
  bus.onState((up) => send({ tag: TAG, t: 'state', up }));
  bus.onResubscribed?.((channels) => send({ tag: TAG, t: 'resub', channels }));
  const reply = (id: number, p: Promise<void>) =>
    p.then(
      () => send({ tag: TAG, t: 'res', id }),
      (e: unknown) => send({ tag: TAG, t: 'res', id, error: (e as Error)?.message ?? String(e) }),
    );
  const close = async () => {
    if (closed) return;
    closed = true;
    await bus.close().catch(() => {});
  };
  endpoint.onMessage((m) => {
    if (!tagged<ToOwner>(m, TAG) || closed) return;
    const msg = m;
    switch (msg.t) {
      case 'hello':
        greeted = true;
        return send({ tag: TAG, t: 'state', up: bus.isUp() });
      case 'pub':
        return void reply(msg.id, bus.publish(msg.events));
      case 'sub':
        return void reply(msg.id, bus.subscribe(msg.channel));
      case 'unsub':
        return void bus.unsubscribe(msg.channel).catch(() => {});
      case 'close':
        return void close();
    }
  });
  endpoint.onClose(() => void close());
  return close;
}

/** The remote side: a Bus whose every call goes to the owner. */
export class RemoteBus implements Bus {
  readonly kind = 'bridge';
  private readonly listeners = new BusListeners();
  private readonly pending = new Map<number, { resolve(): void; reject(e: Error): void }>();
  private readonly channels = new Set<string>();
  private nextId = 1;
  private up = false;
  private gone = false;
  private closed = false;

  constructor(private readonly endpoint: Endpoint) {
    endpoint.onMessage((m) => tagged<ToRemote>(m, TAG) && this.receive(m));
    endpoint.onClose(() => {
      this.gone = true;
      this.failPending('the bus owner is gone');
      this.setUp(false);
    });
    endpoint.send({ tag: TAG, t: 'hello' } satisfies ToOwner);
  }

  publish(events: readonly BusEvent[]): Promise<void> {
    return this.call((id) => ({ tag: TAG, t: 'pub', id, events }));
  }

  subscribe(channel: string): Promise<void> {
    const had = this.channels.has(channel);
    this.channels.add(channel);
    return this.call((id) => ({ tag: TAG, t: 'sub', id, channel })).catch((e: unknown) => {
      if (!had) this.channels.delete(channel);
      throw e;
    });
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.channels.delete(channel) || this.gone || this.closed) return;
    this.endpoint.send({ tag: TAG, t: 'unsub', channel } satisfies ToOwner);
  }

  onEvent(handler: BusEventHandler): void {
    this.listeners.onEvent(handler);
  }

  onState(handler: BusStateHandler): void {
    this.listeners.onState(handler, this.up);
  }

  onResubscribed(handler: BusResubscribedHandler): void {
    this.listeners.onResubscribed(handler);
  }

  isUp(): boolean {
    return this.up && !this.gone && !this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.gone) this.endpoint.send({ tag: TAG, t: 'close' } satisfies ToOwner);
    this.failPending('bus closed');
    this.up = false;
  }

  private call(make: (id: number) => ToOwner): Promise<void> {
    if (this.closed) return Promise.reject(new Error('bus closed'));
    if (this.gone) return Promise.reject(new Error('bus bridge: the bus owner is gone'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.endpoint.send(make(id));
    });
  }

  private receive(m: ToRemote): void {
    if (this.closed) return;
    switch (m.t) {
      case 'res': {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error === undefined) p?.resolve();
        else p?.reject(new Error(m.error));
        return;
      }
      case 'ev':
        for (const e of m.events) {
          const channel = channelOf(e);
          // One we left while it was on its way.
          if (channel !== undefined && !this.channels.has(channel)) continue;
          this.listeners.event(e);
        }
        return;
      case 'state':
        return this.setUp(m.up);
      case 'resub':
        this.listeners.resubscribed(m.channels);
        return;
    }
  }

  private setUp(up: boolean): void {
    if (up === this.up || this.closed) return;
    this.up = up;
    this.listeners.state(up);
  }

  private failPending(why: string): void {
    const err = new Error(`bus bridge: ${why}`);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/**
 * The owner's bus as seen by a remote that only publishes (the relay thread): publishes and the
 * bus's state go through; closing the view leaves the bus open for the owner.
 */
export function publisherView(bus: Bus): Bus {
  let closed = false;
  const stateHandlers: BusStateHandler[] = [];
  bus.onState((up) => !closed && stateHandlers.forEach((h) => h(up)));
  return {
    kind: bus.kind,
    publish: (events) => (closed ? Promise.reject(new Error('bus closed')) : bus.publish(events)),
    subscribe: () => Promise.reject(new Error('a publisher view does not subscribe')),
    unsubscribe: async () => {},
    onEvent: () => {},
    onState: (h) => {
      stateHandlers.push(h);
      if (bus.isUp()) queueMicrotask(() => h(true));
    },
    isUp: () => !closed && bus.isUp(),
    close: async () => {
      closed = true;
    },
  };
}
