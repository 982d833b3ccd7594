// The wire protocol of walcast, declared once: the shapes on the wire, every error code with its
// HTTP status and whether retrying can help, every close code and whether to reconnect, the
// frames both ways, and the format of retry hints. The server, the SDK, the CLI, the tests and
// the benchmarks all speak through this file; docs/protocol.md describes it for people, and a
// test keeps the two in step.
//
// Types and constants only, plus pure helpers: no Node imports, safe to bundle for browsers.

// ---------------------------------------------------------------------------------- shapes

export interface Channel {
  id: string;
  name: string;
  is_private: boolean;
  last_seq: number;
}

/** A message in its current state (a deleted one keeps its place: `text` is "" and `deleted_at` set). */
export interface Message {
  id: string;
  channel: string;
  seq: number;
  user: string;
  text: string;
  client_msg_id: string | null;
  created_at: string;
  /** The seq of the message this one replies to (always lower than its own). */
  reply_to: number | null;
  edited_at: string | null;
  deleted_at: string | null;
  /** Reaction name → how many users reacted with it. */
  reactions: Record<string, number>;
  /**
   * The seq of the last change applied to this row (its own seq until one is). A client that
   * holds the row applies a later change frame only if the frame's seq is higher.
   */
  changed_seq: number;
}

// ---------------------------------------------------------------------------------- errors

export interface ErrorSpec {
  /** HTTP status when answered over HTTP (frames carry only the code). */
  status: number;
  /** True when the same request may succeed later unchanged: clients retry these, with backoff or the given hint. */
  temporary: boolean;
  /** Where it can occur: the HTTP API, WebSocket frames/upgrades, or both. */
  on: 'http' | 'ws' | 'both';
  description: string;
}

export const ERRORS = {
  invalid_json: { status: 400, temporary: false, on: 'both', description: 'the body or frame is not valid JSON (or a WebSocket frame is binary)' },
  invalid_arguments: { status: 400, temporary: false, on: 'both', description: 'a field is missing, has the wrong type or is out of range; `message` says which' },
  msg_too_long: { status: 400, temporary: false, on: 'http', description: '`text` has more characters (code points) than WALCAST_MAX_TEXT_CHARS' },
  not_authed: { status: 401, temporary: false, on: 'both', description: 'no token was given (or a socket opened without one sent another frame before `auth`)' },
  invalid_auth: { status: 401, temporary: false, on: 'both', description: 'the token is malformed, forged, not yet valid, lacks `exp`, lives longer than WALCAST_TOKEN_MAX_LIFETIME_S, has the wrong `iss`/`aud`, or was revoked' },
  not_in_channel: { status: 403, temporary: false, on: 'both', description: 'the caller is not a member of the channel' },
  channel_not_found: { status: 404, temporary: false, on: 'both', description: 'no such channel (or a private channel the caller cannot see)' },
  message_not_found: { status: 404, temporary: false, on: 'http', description: 'no message with that seq in the channel' },
  unknown_method: { status: 404, temporary: false, on: 'http', description: 'no such path or API method' },
  method_not_allowed: { status: 405, temporary: false, on: 'http', description: 'the method exists but takes the other HTTP verb' },
  payload_too_large: { status: 413, temporary: false, on: 'http', description: 'the request body exceeds WALCAST_MAX_BODY_BYTES' },
  rate_limited: { status: 429, temporary: true, on: 'both', description: 'a rate limit refused the request; `Retry-After` (s) and `retry_after_ms` say when to come back' },
  internal_error: { status: 500, temporary: true, on: 'both', description: 'a bug: the server logged it; retrying may help' },
  unavailable: { status: 503, temporary: true, on: 'both', description: 'a dependency (database, bus) is down or the server is draining; retry after the hint' },
  unknown_type: { status: 400, temporary: false, on: 'ws', description: 'a frame with an unknown `type`' },
  too_many_subscriptions: { status: 400, temporary: false, on: 'ws', description: 'the connection already holds WALCAST_MAX_SUBSCRIPTIONS subscriptions' },
  cant_update_message: { status: 403, temporary: false, on: 'http', description: 'only the author may edit a message' },
  cant_delete_message: { status: 403, temporary: false, on: 'http', description: 'only the author may delete a message' },
  parent_not_found: { status: 404, temporary: false, on: 'http', description: '`reply_to` names no message of the channel, or a deleted one' },
  user_not_found: { status: 404, temporary: false, on: 'http', description: 'an invited user is unknown to walcast (has never signed in); `users` lists them' },
  not_allowed: { status: 403, temporary: false, on: 'http', description: 'the caller\'s role does not allow it (kick, invite where members may not), or the user was kicked and must be invited back' },
  token_expired: { status: 401, temporary: false, on: 'both', description: 'the token has expired: get a fresh one (an open socket takes it in an `auth` frame)' },
  origin_not_allowed: { status: 403, temporary: false, on: 'both', description: 'a browser request or WebSocket upgrade from an origin WALCAST_ALLOWED_ORIGINS does not allow' },
  too_many_connections: { status: 429, temporary: true, on: 'ws', description: 'the user already holds WALCAST_MAX_CONNECTIONS_PER_USER sockets on this gateway; retry once one closed' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export const isErrorCode = (code: unknown): code is ErrorCode => typeof code === 'string' && Object.hasOwn(ERRORS, code);

/** Whether retrying the same request later can succeed. Unknown codes are treated as permanent. */
export const isTemporary = (code: string): boolean => (isErrorCode(code) ? ERRORS[code].temporary : false);

/**
 * An error with a protocol code: thrown by the server's modules and mapped to a response once
 * (src/errors.ts), and raised by the SDK for what the server answered.
 */
export class WalcastError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly temporary: boolean;
  /** Extra fields for the error body (e.g. `retry_after_ms`). */
  readonly detail: Record<string, unknown> | undefined;
  /** When to retry, if the server said (Retry-After / retry_after_ms). */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message?: string, opts: { detail?: Record<string, unknown>; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message ?? code, { cause: opts.cause });
    this.name = 'WalcastError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.temporary = ERRORS[code].temporary;
    this.detail = opts.detail;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** The JSON body of every failed HTTP response. */
export interface ErrorBody {
  ok: false;
  error: ErrorCode;
  message?: string;
  retry_after_ms?: number;
  [extra: string]: unknown;
}

// ---------------------------------------------------------------------------------- close codes

export interface CloseSpec {
  name: string;
  /** True: the client should reconnect (after the hint or its backoff) and resume by seq. */
  reconnect: boolean;
  /** Who closes with it. */
  by: 'server' | 'client';
  description: string;
}

export const CLOSE = {
  normal: 1000,
  policy_violation: 1008,
  draining: 1012,
  slow_consumer: 1013,
  heartbeat_timeout: 4000,
  token_expired: 4001,
  auth_timeout: 4002,
  auth_failed: 4003,
  too_many_connections: 4004,
} as const;

export const CLOSE_CODES: Record<number, CloseSpec> = {
  [CLOSE.normal]: { name: 'normal', reconnect: true, by: 'client', description: 'a client leaving; walcast never sends it on a WebSocket (if something in between does, reconnect); it ends an SSE stream whose subscriptions all ended' },
  [CLOSE.draining]: { name: 'draining', reconnect: true, by: 'server', description: 'graceful drain (shutdown or restart); the reason carries the retry hint' },
  [CLOSE.slow_consumer]: { name: 'slow_consumer', reconnect: true, by: 'server', description: 'the client read too slowly: more than WALCAST_WS_MAX_BACKPRESSURE bytes were waiting' },
  [CLOSE.heartbeat_timeout]: { name: 'heartbeat_timeout', reconnect: true, by: 'client', description: 'the SDK heard nothing for two heartbeat intervals and gave the socket up' },
  [CLOSE.policy_violation]: { name: 'policy_violation', reconnect: false, by: 'server', description: 'the client kept sending frames faster than WALCAST_WS_COMMAND_RATE after being refused; reconnecting would repeat it' },
  [CLOSE.token_expired]: { name: 'token_expired', reconnect: true, by: 'server', description: 'the token expired and no `auth` frame replaced it: reconnect with a fresh token and resume by seq' },
  [CLOSE.auth_timeout]: { name: 'auth_timeout', reconnect: true, by: 'server', description: 'a socket opened without a token sent no `auth` frame within 5 s' },
  [CLOSE.auth_failed]: { name: 'auth_failed', reconnect: false, by: 'server', description: 'an `auth` frame had a bad token or another `sub`, a frame came before `auth`, or the user\'s tokens were revoked; reconnect only with a fresh token' },
  [CLOSE.too_many_connections]: { name: 'too_many_connections', reconnect: true, by: 'server', description: 'after `auth`, the user held WALCAST_MAX_CONNECTIONS_PER_USER sockets on this gateway already; reconnect with backoff' },
};

/**
 * Whether a close code means "reconnect and resume". Codes walcast does not send (1006 when a
 * connection drops or the server cuts a socket that broke a limit, a proxy's 1001...) reconnect.
 */
export const shouldReconnect = (code: number): boolean => CLOSE_CODES[code]?.reconnect ?? true;

// ---------------------------------------------------------------------------------- retry hints

/** The reason of a drain close: `draining retry_after_ms=<n>`. */
export const drainReason = (retryAfterMs: number): string => `draining retry_after_ms=${Math.max(0, Math.round(retryAfterMs))}`;

/** The `retry_after_ms` of a close reason, if it carries one. */
export function retryHintOfReason(reason: string | undefined): number | undefined {
  const m = /(?:^|\s)retry_after_ms=(\d+)(?:\s|$)/.exec(reason ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * The retry hint of a refused HTTP request or upgrade: `retry_after_ms` from the JSON body, else
 * `Retry-After` (seconds) from the headers.
 */
export function retryHintOfResponse(body: unknown, retryAfterHeader: string | null | undefined): number | undefined {
  const v = (body as { retry_after_ms?: unknown } | null)?.retry_after_ms;
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  const s = Number(retryAfterHeader);
  return retryAfterHeader != null && retryAfterHeader !== '' && Number.isFinite(s) && s >= 0 ? s * 1000 : undefined;
}

// ---------------------------------------------------------------------------------- frames

/** Client → server. */
export type ClientFrame =
  | { type: 'subscribe'; channel: string; since?: number; presence?: boolean }
  | { type: 'unsubscribe'; channel: string }
  | { type: 'typing'; channel: string }
  | { type: 'ping' }
  | { type: 'auth'; token: string };

/** Why a member left a channel (`member_left.reason`, and `unsubscribed.reason` of their subscriptions). */
export type LeaveReason = 'left' | 'kicked';

/**
 * The channel's change log: every frame that carries a seq. Gapless, in order, exactly once,
 * resumable by seq, whatever the type.
 */
export type ChangeFrame =
  | { type: 'message'; channel: string; seq: number; message: Message }
  | { type: 'message_changed'; channel: string; seq: number; message: Message }
  | { type: 'message_deleted'; channel: string; seq: number; target_seq: number }
  | { type: 'reaction_added'; channel: string; seq: number; target_seq: number; user: string; name: string }
  | { type: 'reaction_removed'; channel: string; seq: number; target_seq: number; user: string; name: string }
  | { type: 'member_joined'; channel: string; seq: number; user: string }
  | { type: 'member_left'; channel: string; seq: number; user: string; reason: LeaveReason };

export type ChangeType = ChangeFrame['type'];
export const CHANGE_TYPES = ['message', 'message_changed', 'message_deleted', 'reaction_added', 'reaction_removed', 'member_joined', 'member_left'] as const satisfies readonly ChangeType[];

/** Server → client. */
export type ServerFrame =
  | { type: 'subscribed'; channel: string; seq: number; since: number }
  | ChangeFrame
  | { type: 'unsubscribed'; channel: string; reason?: string }
  | { type: 'typing'; channel: string; user: string }
  | { type: 'presence_joined'; channel: string; user: string }
  | { type: 'presence_left'; channel: string; user: string }
  /** Instead of presence_joined/left when more users are present than a gateway lists one by one. */
  | { type: 'presence_count'; channel: string; count: number }
  | { type: 'error'; code: ErrorCode; channel?: string; message?: string; retry_after_ms?: number }
  | { type: 'pong' }
  | { type: 'token_expiring'; expires_at: number }
  | { type: 'auth_ok'; expires_at: number };

export type ClientFrameType = ClientFrame['type'];
export type ServerFrameType = ServerFrame['type'];

export const CLIENT_FRAME_TYPES = ['subscribe', 'unsubscribe', 'typing', 'ping', 'auth'] as const satisfies readonly ClientFrameType[];
export const SERVER_FRAME_TYPES = [
  'subscribed',
  ...CHANGE_TYPES,
  'unsubscribed',
  'typing',
  'presence_joined',
  'presence_left',
  'presence_count',
  'error',
  'pong',
  'token_expiring',
  'auth_ok',
] as const satisfies readonly ServerFrameType[];

/** Whether a frame is part of the change log (carries a seq the client's cursor follows). */
export const isChangeFrame = (f: { type: string }): f is ChangeFrame => (CHANGE_TYPES as readonly string[]).includes(f.type);

/** A socket opened without a token must send `auth` within this long (close 4002 otherwise). */
export const AUTH_TIMEOUT_MS = 5000;
/** `token_expiring` goes out when this much of the token's life remains (at once if less). */
export const TOKEN_EXPIRING_AHEAD_MS = 30_000;

/** Why a subscription was ended by the server (`unsubscribed.reason`). */
export const UNSUBSCRIBE_REASONS = {
  kicked: 'the user was removed from the channel',
  left: 'the user left the channel',
} as const;

/** How long a user's typing indicator lasts; a gateway forwards at most one per user and channel per interval. */
export const TYPING_INTERVAL_MS = 2000;

/** Frames a client sends, serialised. */
export const clientFrame = {
  subscribe: (channel: string, since?: number, opts: { presence?: boolean } = {}): string =>
    JSON.stringify({ type: 'subscribe', channel, ...(since === undefined ? {} : { since }), ...(opts.presence ? { presence: true } : {}) }),
  unsubscribe: (channel: string): string => JSON.stringify({ type: 'unsubscribe', channel }),
  typing: (channel: string): string => JSON.stringify({ type: 'typing', channel }),
  ping: (): string => '{"type":"ping"}',
  auth: (token: string): string => JSON.stringify({ type: 'auth', token }),
};

/** Frames the server sends, serialised (once per event: the same string goes to every socket). */
export const serverFrame = {
  subscribed: (channel: string, seq: number, since: number): string => JSON.stringify({ type: 'subscribed', channel, seq, since }),
  message: (m: Message): string => JSON.stringify({ type: 'message', channel: m.channel, seq: m.seq, message: m }),
  change: (f: ChangeFrame): string => JSON.stringify(f),
  unsubscribed: (channel: string, reason?: string): string =>
    JSON.stringify(reason ? { type: 'unsubscribed', channel, reason } : { type: 'unsubscribed', channel }),
  typing: (channel: string, user: string): string => JSON.stringify({ type: 'typing', channel, user }),
  presence: (type: 'presence_joined' | 'presence_left', channel: string, user: string): string => JSON.stringify({ type, channel, user }),
  presenceCount: (channel: string, count: number): string => JSON.stringify({ type: 'presence_count', channel, count }),
  error: (code: ErrorCode, channel?: string, message?: string, retryAfterMs?: number): string =>
    JSON.stringify({
      type: 'error',
      code,
      ...(channel !== undefined ? { channel } : {}),
      ...(message ? { message } : {}),
      ...(retryAfterMs !== undefined ? { retry_after_ms: Math.max(0, Math.round(retryAfterMs)) } : {}),
    }),
  pong: (): string => '{"type":"pong"}',
  tokenExpiring: (expiresAt: number): string => `{"type":"token_expiring","expires_at":${Math.floor(expiresAt)}}`,
  authOk: (expiresAt: number): string => `{"type":"auth_ok","expires_at":${Math.floor(expiresAt)}}`,
};

// ---------------------------------------------------------------------------------- HTTP API

/** Every method of the HTTP API (`/v1/<method>`) and its verb: GET reads, POST changes. */
export const API_METHODS = {
  'conversations.create': 'POST',
  'conversations.join': 'POST',
  'conversations.invite': 'POST',
  'conversations.kick': 'POST',
  'conversations.leave': 'POST',
  'chat.postMessage': 'POST',
  'chat.update': 'POST',
  'chat.delete': 'POST',
  'reactions.add': 'POST',
  'reactions.remove': 'POST',
  'chat.getMessage': 'GET',
  'conversations.history': 'GET',
  'conversations.replay': 'GET',
  'conversations.presence': 'GET',
} as const;

export type ApiMethod = keyof typeof API_METHODS;

// ---------------------------------------------------------------------------------- paths

export const PATHS = {
  api: '/v1/',
  ws: '/v1/ws',
  healthz: '/healthz',
  readyz: '/readyz',
  metrics: '/metrics',
  /** The browser SDK as one ES module (dist/browser/sdk.js). */
  sdk: '/sdk.js',
  /** Server-Sent Events: the frames of a WebSocket subscription, one way (docs/protocol.md, "SSE"). */
  sse: '/v1/sse',
  /** The HTTP API described as OpenAPI 3.1. */
  openapi: '/openapi.json',
  admin: '/admin/',
  /** The demo chat page (WALCAST_DEMO_PAGE) and the operators' page. */
  demo: '/',
  ops: '/ops',
  /** The ops page's data, for operators (as /metrics). */
  opsState: '/ops/state.json',
  /** The pages' scripts and styles. */
  pageAssets: '/web/',
  /** POST {"user"}: a short-lived token, only on `walcast start` with the embedded database, from loopback. */
  devToken: '/dev/token',
} as const;

// ---------------------------------------------------------------------------------- SSE

/** The SSE event that ends a stream: its data is `{"code", "reason"}` with a close code above. */
export const SSE_CLOSE_EVENT = 'close';

/** The data of the SSE `close` event. */
export interface SseClose {
  code: number;
  reason: string;
}

/** The SSE event id of a frame that carries a seq: `<channel>:<seq>`. */
export const sseEventId = (channel: string, seq: number): string => `${channel}:${seq}`;

/** The channel and seq of an SSE event id (`Last-Event-ID`, `since=<channel>:<seq>`), or null if it is not one. */
export function parseSseEventId(id: string): { channel: string; seq: number } | null {
  const m = /^(C[0-9A-Z]{12}):(\d{1,15})$/.exec(id.trim());
  return m ? { channel: m[1]!, seq: Number(m[2]) } : null;
}
