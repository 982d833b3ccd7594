// The WebSocket gateway at /v1/ws: admits and authenticates upgrades, runs each socket's frames
// (commands.ts), feeds each channel's hub from the bus through the fair fan-out scheduler, and
// re-syncs every channel from the database whenever the bus may have lost events (or only the
// channels whose subscriptions lapsed, when the bus says which: Redis Cluster).
import type { Bus, BusEvent } from '../bus/bus.js';
import type { Channels } from '../chat/channels.js';
import type { Messages } from '../chat/messages.js';
import type { Config } from '../config.js';
import type { Pool } from '../db/pool.js';
import type { Tokens } from '../auth/tokens.js';
import { sendError, track } from '../http/respond.js';
import type { TemplatedApp } from '../http/uws.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { PATHS, serverFrame } from '../protocol.js';
import { bearer } from '../util/bearer.js';
import { Semaphore } from '../util/semaphore.js';
import { Admission, type Refusal } from './admission.js';
import { Commands } from './commands.js';
import { Connection, type SocketData } from './connection.js';
import { drain } from './drain.js';
import { FanoutScheduler } from './fanout.js';
import { isFrameError, parseClientFrame } from './frames.js';
import { MembershipBatcher } from './membership.js';
import { HubRegistry } from './registry.js';

export interface GatewayDeps {
  config: Config;
  bus: Bus;
  tokens: Tokens;
  channels: Channels;
  messages: Messages;
  log: Logger;
  metrics: Metrics;
  /** For the membership checks at subscribe, batched per channel (one query for many users). */
  pool: Pool;
}

export class Gateway {
  private readonly conns = new Set<Connection>();
  private nextId = 1;
  private app: TemplatedApp | null = null;
  private busDown = false;
  /** Every database read this gateway makes goes through here: bounded concurrency. */
  readonly db: Semaphore;
  readonly fanout: FanoutScheduler;
  readonly admission: Admission;
  private readonly registry: HubRegistry;
  private readonly commands: Commands;

  constructor(private readonly d: GatewayDeps) {
    const g = d.config.gateway;
    const m = d.metrics;
    this.db = new Semaphore(g.dbConcurrency, {
      inFlight: (n) => m.gatewayDbInFlight.set(n),
      inFlightMax: (n) => m.gatewayDbInFlightMax.set(n),
      waiting: (n) => m.gatewayDbWaiting.set(n),
    });
    this.admission = new Admission(g);
    this.fanout = new FanoutScheduler(g.fanoutBudget, g.fanoutQueueMax, m);
    this.registry = new HubRegistry({
      bus: d.bus,
      channels: d.channels,
      messages: d.messages,
      db: this.db,
      fanout: this.fanout,
      publish: (topic, frame) => this.app?.publish(topic, frame),
      ringSize: g.ringSize,
      pageSize: g.catchupPage,
      fanoutBudget: g.fanoutBudget,
      log: d.log,
      metrics: m,
    });
    this.commands = new Commands({
      registry: this.registry,
      membership: new MembershipBatcher(d.pool, this.db, m),
      maxSubscriptions: d.config.limits.maxSubscriptions,
      log: d.log,
    });
    d.bus.onEvent((e) => this.onBusEvent(e));
    d.bus.onState((up) => this.onBusState(up));
    // Backends that can lose part of their subscriptions (Redis Cluster) report which came back.
    d.bus.onResubscribed?.((channels) => this.registry.resync(channels));
  }

  get connections(): number {
    return this.conns.size;
  }

  get maxConnections(): number {
    return this.admission.maxConnections;
  }

  mount(app: TemplatedApp): void {
    this.app = app;
    const { limits } = this.d.config;
    const m = this.d.metrics;
    app.ws<SocketData>(PATHS.ws, {
      maxPayloadLength: limits.wsMaxPayload,
      maxBackpressure: limits.wsMaxBackpressure,
      // A frame dropped for backpressure would be a gap: close the socket instead, the client resumes by seq.
      closeOnBackpressureLimit: 1,
      idleTimeout: limits.wsIdleTimeoutS,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        const token = new URLSearchParams(req.getQuery() ?? '').get('token') ?? bearer(req.getHeader('authorization'));
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const reply = track(res);
        const refuse = (r: Refusal) => {
          m.wsRefused.inc({ reason: r.reason });
          sendError(res, reply, r.error, this.d.log);
        };
        // Admission before anything costs: a refused upgrade is a few bytes and no token check.
        const refusal = this.admission.admit(this.conns.size);
        if (refusal) return refuse(refusal);
        void this.d.tokens.verify(token).then(
          (user) => {
            if (reply.aborted) return;
            if (this.admission.closing) return refuse(this.admission.refuseClosing());
            const conn = new Connection(this.nextId++, user, limits.wsMaxBackpressure, () => m.wsSlowClosed.inc());
            res.cork(() => res.upgrade<SocketData>({ conn }, key, protocol, extensions, context));
          },
          (e: unknown) => {
            m.wsRefused.inc({ reason: 'auth' });
            sendError(res, reply, e, this.d.log);
          },
        );
      },
      open: (ws) => {
        const conn = ws.getUserData().conn;
        conn.attach(ws);
        this.conns.add(conn);
        m.wsConnections.set(this.conns.size);
      },
      message: (ws, data, isBinary) => {
        const conn = ws.getUserData().conn;
        // Decode now: uWS reuses `data` once this callback returns.
        if (isBinary) return void conn.send(serverFrame.error('invalid_json', undefined, 'frames are JSON text'));
        const frame = parseClientFrame(Buffer.from(data).toString('utf8'));
        if (isFrameError(frame)) return void conn.send(serverFrame.error(frame.code, frame.channel, frame.message));
        this.commands.run(conn, frame);
      },
      drain: (ws) => ws.getUserData().conn.onDrain(),
      close: (ws) => {
        const conn = ws.getUserData().conn;
        conn.markClosed();
        this.conns.delete(conn);
        m.wsConnections.set(this.conns.size);
        this.commands.closed(conn);
      },
    });
  }

  /**
   * Graceful stop: refuse new upgrades, then drain the sockets (drain.ts); clients resume
   * elsewhere with their last seq. Resolves once every socket was told to go.
   */
  async close(): Promise<void> {
    this.admission.closing = true;
    const g = this.d.config.gateway;
    await drain([...this.conns], {
      rate: g.drainRate,
      windowMs: g.drainWindowMs,
      hint: () => this.admission.drainHint(),
      onClose: () => this.d.metrics.wsDrained.inc(),
    });
    this.registry.closeAll();
  }

  private onBusEvent(e: BusEvent): void {
    try {
      switch (e.kind) {
        case 'message': {
          const hub = this.registry.get(e.channel);
          if (hub) this.fanout.push(hub, e.message, e.committedAt);
          return;
        }
        case 'kick':
          this.commands.kick(e.channel, e.user);
          return;
        case 'resync':
          this.d.log.warn('resync requested upstream; re-reading every channel from the database', { epoch: e.epoch });
          this.registry.resyncAll();
          return;
      }
    } catch (err) {
      this.d.log.error('bus event handling failed', { err: err as Error, kind: e.kind });
    }
  }

  private onBusState(up: boolean): void {
    if (!up) {
      this.busDown = true;
      this.d.log.warn('bus down; sockets stay open, channels will re-sync when it returns');
      return;
    }
    if (this.busDown) {
      this.busDown = false;
      this.d.log.info('bus back; re-syncing every channel from the database', { channels: this.registry.size });
      this.registry.resyncAll();
    }
  }
}
