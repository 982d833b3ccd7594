// The `notify` comparison source: a trigger on `messages` calls pg_notify with the row as JSON
// at COMMIT, and this listener, run as the stack's relay (bench/sources/serve.ts), publishes each
// notification to the bus. What it does not guarantee, by design of LISTEN/NOTIFY:
//  - a notification sent while the listener is disconnected (restart, network blip) is gone:
//    PostgreSQL keeps no backlog for a listener that is not connected;
//  - two listeners both publish everything (the gateway drops the duplicates);
//  - NOTIFY takes a global lock during COMMIT, serialising every committing transaction that
//    notified (the ingest benchmark measures the cost), which is why the function and trigger
//    exist only while the bench runs a notify stack: installNotify creates them, removeNotify
//    drops them (walcast's own schema never carries them);
//  - payloads are limited to 8000 bytes: bigger rows are announced by key and read back here.
// Messages only: kicks are not carried, so a kicked member's live subscription is not ended.
import pg from 'pg';
import { messageEvent, type Bus } from '../../src/bus/bus.js';
import type { Messages } from '../../src/chat/messages.js';
import type { Message } from '../../src/protocol.js';
import type { Logger } from '../../src/log.js';

export const NOTIFY_CHANNEL = 'walcast_messages';
const FUNCTION = 'walcast_notify_message';
const TRIGGER = 'walcast_notify_message';

// NOTIFY payloads must be shorter than 8000 bytes; pg_notify raises an error beyond, and an error
// in an AFTER INSERT trigger rolls the INSERT back (the POST would fail). So a row whose JSON is
// 8000 bytes or more is announced by its key only ({"channel","seq","truncated":true}) and the
// listener reads the row from the table.
const FUNCTION_SQL = `
CREATE OR REPLACE FUNCTION ${FUNCTION}() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  payload text;
BEGIN
  payload := json_build_object(
    'id', NEW.id,
    'channel', NEW.channel_id,
    'seq', NEW.seq,
    'user', NEW.user_id,
    'text', NEW.text,
    'client_msg_id', NEW.client_msg_id,
    'created_at', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'reply_to', NEW.reply_to,
    'edited_at', NULL,
    'deleted_at', NULL,
    'reactions', NEW.reactions,
    'changed_seq', NEW.changed_seq
  )::text;
  IF octet_length(payload) >= 8000 THEN
    payload := json_build_object('channel', NEW.channel_id, 'seq', NEW.seq, 'truncated', true)::text;
  END IF;
  PERFORM pg_notify('${NOTIFY_CHANNEL}', payload);
  RETURN NULL;
END
$$`;

async function withClient(databaseUrl: string, fn: (c: pg.Client) => Promise<void>): Promise<void> {
  const c = new pg.Client({ connectionString: databaseUrl, application_name: 'walcast-bench' });
  await c.connect();
  try {
    await fn(c);
  } finally {
    await c.end();
  }
}

/** Creates the trigger function and the trigger (CREATE OR REPLACE TRIGGER: PostgreSQL 14+). */
export function installNotify(databaseUrl: string): Promise<void> {
  return withClient(databaseUrl, async (c) => {
    await c.query(FUNCTION_SQL);
    await c.query(`CREATE OR REPLACE TRIGGER ${TRIGGER} AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION ${FUNCTION}()`);
  });
}

/** Drops the trigger and its function, if there: the database is as walcast's migrations left it. */
export function removeNotify(databaseUrl: string): Promise<void> {
  return withClient(databaseUrl, async (c) => {
    await c.query(`DROP TRIGGER IF EXISTS ${TRIGGER} ON messages`);
    await c.query(`DROP FUNCTION IF EXISTS ${FUNCTION}()`);
  });
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
      await this.bus.publish([messageEvent(message)]);
    } catch (e) {
      // Nothing to retry from: the notification is consumed. The gateway's gap fill may repair
      // it when a later seq of the channel arrives.
      this.log.warn('notify listener failed to publish; event lost', { err: e as Error });
    }
  }
}
