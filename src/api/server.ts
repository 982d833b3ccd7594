// Mounts the HTTP API on a uWS app: read, authenticate, validate, run, map errors once.
import { WalcastError, isWalcastError, pgCode } from '../errors.js';
import type { Tokens } from '../auth/tokens.js';
import { parseJson, readBody } from '../http/body.js';
import { sendError, sendJson, track } from '../http/respond.js';
import type { TemplatedApp } from '../http/uws.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { PostRateLimiter, type PostLimits } from './ratelimit.js';
import { describe } from './schemas.js';
import { routes, type ApiDeps } from './routes.js';

export interface ApiOptions {
  tokens: Tokens;
  deps: ApiDeps;
  maxBodyBytes: number;
  /** chat.postMessage rate limits (per user, per channel); absent: none. */
  postLimits?: PostLimits;
  log: Logger;
  metrics: Metrics;
}

export function mountApi(app: TemplatedApp, o: ApiOptions): void {
  const postLimiter = o.postLimits ? new PostRateLimiter(o.postLimits) : null;
  app.any('/v1/:method', (res, req) => {
    const reply = track(res);
    // uWS's request object is valid only until this function returns: read it all now.
    const httpMethod = req.getCaseSensitiveMethod().toUpperCase();
    const name = req.getParameter(0) ?? '';
    const authorization = req.getHeader('authorization');
    const query = req.getQuery() ?? '';
    const lengthHeader = req.getHeader('content-length');
    const contentLength = lengthHeader ? Number(lengthHeader) : undefined;

    const finish = (status: number) => o.metrics.httpRequests.inc({ method: name in routes ? name : 'unknown', status });
    const fail = (e: unknown, closeConnection = false) => {
      const err = toWalcastError(e, o.log);
      sendError(res, reply, err, closeConnection);
      finish(err.status);
    };

    const route = routes[name];
    if (!route) return fail(new WalcastError('unknown_method', `no method ${name}`), httpMethod === 'POST');
    if (route.method !== httpMethod) {
      return fail(new WalcastError('method_not_allowed', `${name} takes ${route.method}`), httpMethod === 'POST');
    }

    void (async () => {
      let raw: unknown;
      if (route.method === 'POST') {
        let body: Buffer;
        try {
          body = await readBody(res, o.maxBodyBytes, contentLength);
        } catch (e) {
          return fail(e, true); // the rest of the body is unread: close the connection
        }
        try {
          const user = await o.tokens.verify(bearer(authorization));
          raw = parseJson(body);
          return await run(user, raw);
        } catch (e) {
          return fail(e);
        }
      }
      try {
        const user = await o.tokens.verify(bearer(authorization));
        return await run(user, Object.fromEntries(new URLSearchParams(query)));
      } catch (e) {
        return fail(e);
      }
    })();

    async function run(user: string, input: unknown): Promise<void> {
      const parsed = route!.schema.safeParse(input);
      if (!parsed.success) throw new WalcastError('invalid_arguments', describe(parsed.error));
      if (postLimiter && name === 'chat.postMessage') {
        const { waitMs, scope } = postLimiter.check(user, (parsed.data as { channel: string }).channel);
        if (waitMs > 0) {
          o.metrics.rateLimited.inc({ scope: scope! });
          throw new WalcastError('rate_limited', `too many posts ${scope === 'user' ? 'by this user' : 'to this channel'}; retry later`, {
            retryAfterS: waitMs / 1000,
            detail: { retry_after_ms: waitMs },
          });
        }
      }
      const result = await route!.handle(user, parsed.data, o.deps);
      sendJson(res, reply, 200, { ok: true, ...result });
      finish(200);
    }
  });
}

function bearer(header: string): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

const CONNECTION_FAILURE = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i;

/** Anything that is not already a WalcastError: the database being unreachable is `unavailable`, the rest a bug. */
export function toWalcastError(e: unknown, log: Logger): WalcastError {
  if (isWalcastError(e)) return e;
  const code = pgCode(e);
  if ((code && (code.startsWith('08') || code.startsWith('57P') || code === '53300')) || CONNECTION_FAILURE.test(String((e as Error)?.message))) {
    return new WalcastError('unavailable', 'database unavailable, retry', { retryAfterS: 1 });
  }
  log.error('unhandled error', { err: e as Error, stack: (e as Error)?.stack });
  return new WalcastError('internal_error');
}
