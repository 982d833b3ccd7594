// Writing responses on uWS: every write after an await must be corked, and nothing may touch
// a response whose client went away (onAborted).
import { toResponse } from '../errors.js';
import type { Logger } from '../log.js';
import type { HttpResponse } from './uws.js';

export interface Reply {
  /** Set by onAborted: the response is gone and must not be touched. */
  aborted: boolean;
  done: boolean;
}

export function track(res: HttpResponse): Reply {
  const reply: Reply = { aborted: false, done: false };
  res.onAborted(() => {
    reply.aborted = true;
  });
  return reply;
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 204: '204 No Content', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden', 404: '404 Not Found',
  405: '405 Method Not Allowed', 413: '413 Payload Too Large', 429: '429 Too Many Requests',
  500: '500 Internal Server Error', 503: '503 Service Unavailable',
};
export const statusLine = (status: number) => STATUS_TEXT[status] ?? `${status} Unknown`;

export function send(
  res: HttpResponse,
  reply: Reply,
  status: number,
  body: string,
  contentType = 'application/json',
  headers: Record<string, string> = {},
  closeConnection = false,
): void {
  if (reply.aborted || reply.done) return;
  reply.done = true;
  res.cork(() => {
    res.writeStatus(statusLine(status)).writeHeader('content-type', contentType);
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    res.end(body, closeConnection);
  });
}

export function sendJson(res: HttpResponse, reply: Reply, status: number, value: unknown, headers?: Record<string, string>): void {
  send(res, reply, status, JSON.stringify(value), 'application/json', headers);
}

/** Answers with the error's response (src/errors.ts maps every error, once). */
export function sendError(res: HttpResponse, reply: Reply, e: unknown, log: Logger, closeConnection = false, headers?: Record<string, string>): number {
  const r = toResponse(e, log);
  send(res, reply, r.status, JSON.stringify(r.body), 'application/json', headers ? { ...headers, ...r.headers } : r.headers, closeConnection);
  return r.status;
}
