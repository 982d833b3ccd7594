// Mounts the HTTP API on a uWS app: read, authenticate, validate, run, map errors once.
import { WalcastError } from '../errors.js';
import type { Tokens } from '../auth/tokens.js';
import { isAuthFailure } from '../auth/failures.js';
import { bearer } from '../util/bearer.js';
import { parseJson, readBody } from '../http/body.js';
import { peerAddress } from '../http/client-ip.js';
import type { Edge } from '../http/edge.js';
import { framingProblem, refuseFraming } from '../http/framing.js';
import { corsHeaders, preflightHeaders } from '../http/origins.js';
import { send, sendError, sendJson, track } from '../http/respond.js';
import type { TemplatedApp } from '../http/uws.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { mountOpenApi } from './openapi.js';
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
  /** Origins (CORS), client addresses and failed authentications per address. */
  edge: Edge;
}

export function mountApi(app: TemplatedApp, o: ApiOptions): void {
  const postLimiter = o.postLimits ? new PostRateLimiter(o.postLimits) : null;
  const { edge } = o;
  mountOpenApi(app);
  app.any('/v1/:method', (res, req) => {
    // Ambiguous framing (two Content-Lengths): close before the bytes after it become a request.
    const framing = framingProblem(req);
    if (framing) {
      edge.abuse.note('bad_request', { why: framing });
      o.metrics.httpRequests.inc({ method: 'unknown', status: 400 });
      return refuseFraming(res);
    }
    const reply = track(res);
    // uWS's request object is valid only until this function returns: read it all now.
    const httpMethod = req.getCaseSensitiveMethod().toUpperCase();
    const name = req.getParameter(0) ?? '';
    const authorization = req.getHeader('authorization');
    const query = req.getQuery() ?? '';
    const lengthHeader = req.getHeader('content-length');
    const contentLength = lengthHeader ? Number(lengthHeader) : undefined;
    const origin = req.getHeader('origin');
    const host = req.getHeader('host');
    const address = edge.addresses.of(peerAddress(res), req.getHeader('x-forwarded-for'));
    const cors = corsHeaders(origin);

    const finish = (status: number) => o.metrics.httpRequests.inc({ method: name in routes ? name : 'unknown', status });
    const fail = (e: unknown, closeConnection = false) => finish(sendError(res, reply, e, o.log, closeConnection, cors));

    // Browsers: only allowed origins (WALCAST_ALLOWED_ORIGINS), with CORS and its preflight.
    if (!edge.origins.allows(origin, host)) {
      edge.abuse.note('origin_refused', { origin: origin.slice(0, 100) });
      return finish(sendError(res, reply, new WalcastError('origin_not_allowed', 'this origin may not call the API (WALCAST_ALLOWED_ORIGINS)'), o.log, httpMethod === 'POST'));
    }
    if (httpMethod === 'OPTIONS') {
      send(res, reply, 204, '', 'text/plain', preflightHeaders(origin));
      return finish(204);
    }

    const route = routes[name];
    if (!route) return fail(new WalcastError('unknown_method', `no method ${name.slice(0, 64)}`), httpMethod === 'POST');
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
          const user = await authenticate();
          raw = parseJson(body);
          return await run(user, raw);
        } catch (e) {
          return fail(e);
        }
      }
      try {
        const user = await authenticate();
        return await run(user, Object.fromEntries(new URLSearchParams(query)));
      } catch (e) {
        return fail(e);
      }
    })();

    /** The caller's user id; failed authentications are charged to the caller's address. */
    async function authenticate(): Promise<string> {
      const token = bearer(authorization);
      if (token) {
        const blocked = edge.failures.blocked(address);
        if (blocked) {
          edge.abuse.note('ip_blocked', { address });
          throw blocked;
        }
      }
      try {
        return await o.tokens.verify(token);
      } catch (e) {
        if (isAuthFailure(e)) {
          edge.failures.charge(address);
          edge.abuse.note('bad_token', { address, code: (e as WalcastError).code });
        }
        throw e;
      }
    }

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
      sendJson(res, reply, 200, { ok: true, ...result }, cors);
      finish(200);
    }
  });
}
