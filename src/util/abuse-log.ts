// What hostile or broken clients do (bad tokens, bad frames, refused origins, floods) is logged
// once per kind per interval, with how many were suppressed, never once per request: a client
// hammering the server must not fill the disk through the log.
import type { Logger } from '../log.js';
import { LogThrottle } from './log-throttle.js';

export type AbuseKind =
  | 'bad_token'
  | 'bad_frame'
  | 'bad_request'
  | 'origin_refused'
  | 'ip_blocked'
  | 'user_connection_limit'
  | 'command_flood'
  | 'auth_timeout';

export class AbuseLog {
  private readonly throttle: LogThrottle;

  constructor(
    private readonly log: Logger,
    intervalMs = 60_000,
  ) {
    this.throttle = new LogThrottle(intervalMs, 64);
  }

  /** Notes one occurrence; writes a warn line if this kind was quiet for the interval. */
  note(kind: AbuseKind, fields: Record<string, unknown> = {}): void {
    this.throttle.run(kind, (suppressed) => this.log.warn(`refused: ${kind.replace(/_/g, ' ')}`, { kind, ...fields, suppressedSinceLast: suppressed }));
  }
}
