// The WebSocket gateway at /v1/ws: admits and authenticates upgrades, runs each socket's frames
// (commands.ts), feeds each channel's hub from the bus through the fair fan-out scheduler, and
// re-syncs every channel from the database whenever the bus may have lost events.
import { randomUUID } from 'node:crypto';
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
  /** Called once an upgrade's token is verified (walcast records the users it has seen). */
  onAuthenticated?(user: string): Promise<void>;
}

export class Gateway {
  /** This process's gateway id: presence and typing tell gateways apart by it. */
  readonly id = randomUUID();
  private readonly presenceTimer: NodeJS.Timeout;
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
      onLeft: (sub, reason) => this.commands.left(sub, reason),
      ringSize: g.ringSize,
      ringBytes: g.ringBytes,
      pageSize: g.catchupPage,
      fanoutBudget: g.fanoutBudget,
      gateway: this.id,
      presenceMaxUsers: g.presenceMaxUsers,
      log: d.log,
      metrics: m,
    });
    this.presenceTimer = setInterval(() => this.registry.presenceBeat(3 * g.presenceHeartbeatMs), g.presenceHeartbeatMs);
    this.presenceTimer.unref();
    this.commands = new Commands({
      registry: this.registry,
      membership: new MembershipBatcher(d.pool, this.db, m),
      maxSubscriptions: d.config.limits.maxSubscriptions,
      log: d.log,
    });
    d.bus.onEvent((e) => this.onBusEvent(e));
    d.bus.onState((up) => this.onBusState(up));
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
        void (async () => {
          let user: string;
          try {
            user = await this.d.tokens.verify(token);
          } catch (e) {
            m.wsRefused.inc({ reason: 'auth' });
            return sendError(res, reply, e, this.d.log);
          }
          try {
            await this.d.onAuthenticated?.(user);
          } catch (e) {
            m.wsRefused.inc({ reason: 'unavailable' });
            return sendError(res, reply, e, this.d.log);
          }
          if (reply.aborted) return;
          if (this.admission.closing) return refuse(this.admission.refuseClosing());
          const conn = new Connection(this.nextId++, user, limits.wsMaxBackpressure, () => m.wsSlowClosed.inc());
          res.cork(() => res.upgrade<SocketData>({ conn }, key, protocol, extensions, context));
        })();
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
   * Who holds a live subscription to the channel, on every gateway. A channel served here is
   * answered from its hub; otherwise a hub is made for the moment, which asks the other
   * gateways for their sets, and `waitMs` later the answer is what came back.
   */
  async presenceOf(channel: string, waitMs: number): Promise<string[]> {
    const hub = await this.registry.acquire(channel);
    hub.holds++;
    try {
      if (hub.subs.size === 0 && waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
      return hub.presence.users;
    } finally {
      hub.holds--;
      this.registry.release(hub);
    }
  }

  /**
   * Graceful stop: refuse new upgrades, then drain the sockets (drain.ts); clients resume
   * elsewhere with their last seq. Resolves once every socket was told to go.
   */
  async close(): Promise<void> {
    this.admission.closing = true;
    clearInterval(this.presenceTimer);
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
        case 'change': {
          const hub = this.registry.get(e.channel);
          if (hub) this.fanout.push(hub, e);
          return;
        }
        case 'resync':
          this.d.log.warn('resync requested upstream; re-reading every channel from the database', { epoch: e.epoch });
          this.registry.resyncAll();
          return;
        case 'presence':
          this.registry.get(e.channel)?.presence.onRemote(e.gateway, e);
          return;
        case 'typing':
          if (e.gateway !== this.id) this.registry.get(e.channel)?.remoteTyping(e.user);
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
