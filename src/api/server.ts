// Mounts the HTTP API on a uWS app: read, authenticate, validate, run, map errors once.
import { WalcastError } from '../errors.js';
import type { Tokens } from '../auth/tokens.js';
import { bearer } from '../util/bearer.js';
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
  /** Called once a request's token is verified (walcast records the users it has seen). */
  onAuthenticated?(user: string): Promise<void>;
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
    const fail = (e: unknown, closeConnection = false) => finish(sendError(res, reply, e, o.log, closeConnection));

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
      await o.onAuthenticated?.(user);
      const parsed = route!.schema.safeParse(input);
      if (!parsed.success) throw new WalcastError('invalid_arguments', describe(parsed.error));
      if (postLimiter && name === 'chat.postMessage') {
        const { waitMs, scope } = postLimiter.check(user, (parsed.data as { channel: string }).channel);
        if (waitMs > 0) {
          o.metrics.rateLimited.inc({ scope: scope! });
          throw new WalcastError('rate_limited', `too many posts ${scope === 'user' ? 'by this user' : 'to this channel'}; retry later`, {
            retryAfterMs: waitMs,
          });
        }
      }
      const result = await route!.handle(user, parsed.data, o.deps);
      sendJson(res, reply, 200, { ok: true, ...result });
      finish(200);
    }
  });
}
