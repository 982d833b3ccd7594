// The `notify` comparison source (WALCAST_SOURCE=notify, for the benchmarks only): a trigger
// on `messages` calls pg_notify with the row as JSON at COMMIT (function in
// drizzle/0002_notify_function.sql), and this listener, run by the relay role, publishes each
// notification to the bus. What it does not guarantee, by design of LISTEN/NOTIFY:
//  - a notification sent while the listener is disconnected (restart, network blip) is gone:
//    PostgreSQL keeps no backlog for a listener that is not connected;
//  - two listeners both publish everything (the gateway drops the duplicates);
//  - NOTIFY takes a global lock during COMMIT, serialising every committing transaction that
//    notified (the ingest benchmark measures the cost), which is why the trigger exists only
//    while a relay runs with source=notify;
//  - payloads are limited to 8000 bytes: bigger rows are announced by key and read back here.
// Messages only: kicks are not carried, so a kicked member's live subscription is not ended.
import pg from 'pg';
import type { Bus } from '../bus/bus.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Messages } from '../chat/messages.js';
import type { Message } from '../chat/model.js';

export const NOTIFY_CHANNEL = 'walcast_messages';
const TRIGGER = 'walcast_notify_message';

/** Creates the trigger (source=notify) or makes sure it is gone (any other source). */
export async function setNotifyTrigger(pool: Pool, enabled: boolean): Promise<void> {
  if (enabled) {
    // CREATE OR REPLACE TRIGGER needs PostgreSQL 14 (the minimum walcast supports).
    await pool.query(
      `CREATE OR REPLACE TRIGGER ${TRIGGER} AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION walcast_notify_message()`,
    );
  } else {
    await pool.query(`DROP TRIGGER IF EXISTS ${TRIGGER} ON messages`);
  }
}

type Payload = Message | { channel: string; seq: number; truncated: true };

export class NotifyListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private connected = false;
  /** Publishes in arrival order, one at a time (notifications arrive in commit order). */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly databaseUrl: string,
    private readonly messages: Messages,
    private readonly bus: Bus,
    private readonly log: Logger,
  ) {}

  start(): void {
    void this.loop();
  }

  isListening(): boolean {
    return this.connected;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.client?.end().catch(() => {});
    await this.chain;
  }

  private async loop(): Promise<void> {
    let backoff = 100;
    while (!this.stopped) {
      const client = new pg.Client({ connectionString: this.databaseUrl, application_name: 'walcast-notify' });
      this.client = client;
      const ended = new Promise<void>((resolve) => {
        client.on('error', (e) => {
          this.log.warn('notify listener connection lost', { err: e });
          resolve();
        });
        client.on('end', () => resolve());
      });
      try {
        await client.connect();
        client.on('notification', (n) => {
          if (n.channel === NOTIFY_CHANNEL && n.payload) this.chain = this.chain.then(() => this.publish(n.payload!));
        });
        await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
        this.connected = true;
        backoff = 100;
        this.log.info('notify listener listening');
        await ended;
      } catch (e) {
        this.log.warn('notify listener could not connect', { err: e as Error });
      }
      this.connected = false;
      await client.end().catch(() => {});
      if (!this.stopped) await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 2000);
    }
  }

  private async publish(raw: string): Promise<void> {
    try {
      const p = JSON.parse(raw) as Payload;
      let message: Message | undefined;
      if ('truncated' in p) {
        [message] = await this.messages.range(p.channel, p.seq - 1, 1, p.seq);
      } else {
        message = p;
      }
      if (!message) return;
      await this.bus.publish([{ kind: 'message', channel: message.channel, seq: message.seq, message }]);
    } catch (e) {
      // Nothing to retry from: the notification is consumed. The gateway's gap fill may repair
      // it when a later seq of the channel arrives.
      this.log.warn('notify listener failed to publish; event lost', { err: e as Error });
    }
  }
}
