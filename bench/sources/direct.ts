// The `direct` and `direct-in-tx` comparison sources: the API publishes the stored message to the
// bus itself, the design walcast replaces. Both plug into the write path's one extension point
// (WriteHooks in src/chat/messages.ts):
//  - `direct`: after COMMIT (`afterCommit`). A crash between the commit and the publish, or a
//    broker that is down, loses the event for good (the POST still succeeds: the row is stored;
//    a retry with the same client_msg_id finds it and publishes nothing).
//  - `direct-in-tx`: inside the transaction, before COMMIT (`beforeCommit`). A subscriber can
//    receive a row that is not committed yet (a "ghost": chat.getMessage answers 404), or one
//    that is never committed if the transaction then fails. A bus failure throws, so the write
//    rolls back.
// And, for any source, the bench's slow commit (WALCAST_BENCH_COMMIT_DELAY_MS): a sleep in
// `beforeCommit`, which makes posting an explicit transaction that holds the channel row's lock
// meanwhile (for direct-in-tx after the publish).
import { messageEvent, type Bus } from '../../src/bus/bus.js';
import type { WriteHooks } from '../../src/chat/messages.js';
import type { Message } from '../../src/protocol.js';
import type { Logger } from '../../src/log.js';
import type { BenchDelays, Source } from './index.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface DirectPublisherOptions {
  /** Sleep this long before publishing (widens the commit→publish window). */
  delayMs?: number;
  /** Throw when the bus refuses (inside the transaction: the write rolls back). Default: log and go on. */
  throwOnFailure?: boolean;
}

/** Publishes stored messages to the bus from the API process. `bus` resolves once the process has one. */
export function directPublisher(bus: () => Promise<Bus>, log: Logger, o: DirectPublisherOptions = {}): (stored: readonly Message[]) => Promise<void> {
  return async (stored) => {
    if (o.delayMs) await sleep(o.delayMs);
    for (const message of stored) {
      try {
        await (await bus()).publish([messageEvent(message, Date.now())]);
      } catch (e) {
        if (o.throwOnFailure) throw e;
        log.warn('direct publish failed; event lost', { channel: message.channel, seq: message.seq, err: e as Error });
      }
    }
  };
}

/**
 * The API's write hooks for a source: none for cdc and notify (posting stays one autocommit
 * statement) unless the bench slows the commit.
 */
export function writeHooks(source: Source, bus: () => Promise<Bus>, log: Logger, d: BenchDelays = {}): WriteHooks {
  const commitDelay = d.commitDelayMs ? () => sleep(d.commitDelayMs!) : undefined;
  if (source === 'direct-in-tx') {
    const publish = directPublisher(bus, log, { throwOnFailure: true });
    return {
      beforeCommit: async (stored) => {
        await publish(stored);
        await commitDelay?.();
      },
    };
  }
  const hooks: WriteHooks = {};
  if (commitDelay) hooks.beforeCommit = commitDelay;
  if (source === 'direct') hooks.afterCommit = directPublisher(bus, log, { delayMs: d.publishDelayMs });
  return hooks;
}
