// Errors are values with a protocol code (src/protocol.ts). Everything inside walcast throws a
// WalcastError or lets a foreign error escape; this module turns either into what goes on the
// wire, once, for the HTTP API, WebSocket upgrades and WebSocket frames alike.
import type { Logger } from './log.js';
import { ERRORS, WalcastError, type ErrorBody, type ErrorCode } from './protocol.js';
import { LogThrottle } from './util/log-throttle.js';

export { WalcastError, type ErrorCode } from './protocol.js';

export const isWalcastError = (e: unknown): e is WalcastError => e instanceof WalcastError;

/** PostgreSQL error codes we act on. */
export const PG = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  objectInUse: '55006',
  duplicateObject: '42710',
  undefinedObject: '42704',
} as const;

export function pgCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}

const CONNECTION_FAILURE =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|redis bus: .*not connected/i;

/** A database or broker that cannot be reached: the request may succeed later. */
export function isUnavailable(e: unknown): boolean {
  const code = pgCode(e);
  return (code !== undefined && (code.startsWith('08') || code.startsWith('57P') || code === '53300')) || CONNECTION_FAILURE.test(String((e as Error)?.message));
}

// Unexpected errors are bugs: log each kind with its stack, but not once per request.
const bugs = new LogThrottle(60_000);

/**
 * Any thrown value as a WalcastError: itself; `unavailable` (retry in a second) when a
 * dependency is unreachable; otherwise `internal_error`, logged.
 */
export function asWalcastError(e: unknown, log: Logger): WalcastError {
  if (isWalcastError(e)) return e;
  if (isUnavailable(e)) return new WalcastError('unavailable', 'a dependency is unavailable; retry', { retryAfterMs: 1000, cause: e });
  bugs.run(String((e as Error)?.message ?? e), (suppressed) =>
    log.error('unhandled error', { err: e as Error, stack: (e as Error)?.stack, suppressedSinceLast: suppressed }),
  );
  return new WalcastError('internal_error', undefined, { cause: e });
}

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: ErrorBody;
}

/** The HTTP response for an error (API calls and refused WebSocket upgrades). */
export function toResponse(e: unknown, log: Logger): ErrorResponse {
  const err = asWalcastError(e, log);
  const body: ErrorBody = { ok: false, error: err.code };
  if (err.message && err.message !== err.code) body.message = err.message;
  if (err.detail) Object.assign(body, err.detail);
  const headers: Record<string, string> = {};
  if (err.retryAfterMs !== undefined) {
    body.retry_after_ms = Math.max(0, Math.round(err.retryAfterMs));
    headers['retry-after'] = String(Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
  }
  return { status: err.status, headers, body };
}

/** The error frame for a failed WebSocket command. */
export function toErrorFrame(e: unknown, log: Logger, channel?: string): { code: ErrorCode; channel?: string; message?: string } {
  const err = asWalcastError(e, log);
  return { code: err.code, ...(channel !== undefined ? { channel } : {}), ...(err.message && err.message !== err.code ? { message: err.message } : {}) };
}

export const statusOf = (code: ErrorCode): number => ERRORS[code].status;
