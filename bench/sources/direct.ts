// The `direct` and `direct-in-tx` comparison sources (WALCAST_SOURCE, for the benchmarks only):
// the API publishes the stored message to the bus itself, the design walcast replaces.
//  - `direct`: after COMMIT (routes.ts `afterStore`). A crash between the commit and the
//    publish, or a broker that is down, loses the event for good (the POST still succeeds: the
//    row is stored; a retry with the same client_msg_id finds it and publishes nothing).
//  - `direct-in-tx`: inside the transaction, before COMMIT (messages.ts `beforeCommit`). A
//    subscriber can receive a row that is not committed yet (a "ghost": chat.getMessage
//    answers 404), or one that is never committed if the transaction then fails.
import type { Bus } from '../bus/bus.js';
import type { Message } from '../chat/model.js';
import type { Logger } from '../log.js';

export interface DirectPublisherOptions {
  /** Benchmarks only: sleep this long before publishing (widens the commit→publish window). */
  delayMs?: number;
  /** Throw when the bus refuses (inside the transaction: the write rolls back). Default: log and go on. */
  throwOnFailure?: boolean;
}

export function directPublisher(bus: Bus, log: Logger, o: DirectPublisherOptions = {}): (m: Message) => Promise<void> {
  return async (message) => {
    if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
    try {
      await bus.publish([{ kind: 'message', channel: message.channel, seq: message.seq, message, committedAt: Date.now() }]);
    } catch (e) {
      if (o.throwOnFailure) throw e;
      log.warn('direct publish failed; event lost', { channel: message.channel, seq: message.seq, err: e as Error });
    }
  };
}
