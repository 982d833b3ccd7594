// Errors are values with a code. They are mapped to HTTP statuses and WebSocket frames once,
// here, at the edge; everything inside throws or returns a WalcastError.

export const ERROR_STATUS = {
  invalid_json: 400,
  invalid_arguments: 400,
  msg_too_long: 400,
  not_authed: 401,
  invalid_auth: 401,
  not_in_channel: 403,
  channel_not_found: 404,
  message_not_found: 404,
  unknown_method: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  rate_limited: 429,
  internal_error: 500,
  unavailable: 503,
  // WebSocket-only codes
  unknown_type: 400,
  too_many_subscriptions: 400,
  slow_consumer: 400,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class WalcastError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra fields for the error body, e.g. which argument was wrong. */
  readonly detail: Record<string, unknown> | undefined;
  readonly retryAfterS: number | undefined;

  constructor(code: ErrorCode, message?: string, opts: { detail?: Record<string, unknown>; retryAfterS?: number; cause?: unknown } = {}) {
    super(message ?? code, { cause: opts.cause });
    this.name = 'WalcastError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.detail = opts.detail;
    this.retryAfterS = opts.retryAfterS;
  }
}

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
