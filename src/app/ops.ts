// The operators' endpoints, mounted here and nowhere else:
//   /healthz          liveness, open everywhere;
//   /readyz           readiness: 200/503 for anyone, the per-check details only for operators;
//   /metrics          Prometheus, operators only;
//   POST /admin/revoke {"user": id}   revokes every token of a user issued so far;
//   /ops/state.json   what the ops page (/ops, pages.ts) draws, operators only.
// "Operators" are requests with `Authorization: Bearer <WALCAST_ADMIN_TOKEN>` on the public
// port, or anything reaching the separate ops listener (WALCAST_OPS_PORT, meant for an internal
// network; `access: 'open'`). Without an admin token configured, the public port answers the
// operator-only endpoints with 401.
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { USER_ID } from '../chat/ids.js';
import { WalcastError } from '../errors.js';
import { parseJson, readBody } from '../http/body.js';
import { peerAddress } from '../http/client-ip.js';
import type { Edge } from '../http/edge.js';
import { framingProblem, refuseFraming } from '../http/framing.js';
import { send, sendError, sendJson, track, type Reply } from '../http/respond.js';
import type { HttpResponse, TemplatedApp } from '../http/uws.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { PATHS } from '../protocol.js';
import { bearer } from '../util/bearer.js';

/** A named readiness check: true when that part can serve. */
export type ReadinessCheck = () => Promise<boolean> | boolean;

export interface RevokeResult {
  user: string;
  /** Tokens of the user with `iat` before this (seconds since the epoch) are refused. */
  not_before: number;
  /** Whether the bus took the event at once (if not, every process still picks it up from the table within seconds). */
  published: boolean;
}

export interface OpsOptions {
  metrics: Metrics;
  checks: Record<string, ReadinessCheck>;
  role: string;
  /** 'open': the ops listener (no token). Otherwise the admin token, or null when none is configured. */
  access: 'open' | { adminToken: string | null };
  /** Absent: no /admin/revoke here. */
  revoke?: (user: string) => Promise<RevokeResult>;
  edge?: Edge;
  /** Goes into the detailed /readyz answer as is (e.g. `bus`: memory, redis or redis-cluster). */
  info?: Record<string, unknown>;
  /** The ops page's data (ops-state.ts); absent: no /ops/state.json here. */
  state?: () => Promise<unknown>;
  log: Logger;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

const revokeBody = z.object({ user: z.string().regex(USER_ID, 'not a valid user id') });

export function mountOps(app: TemplatedApp, o: OpsOptions): void {
  const adminDigest = o.access !== 'open' && o.access.adminToken ? digest(o.access.adminToken) : null;

  /** Null when the request may see operator data, else why not. Read the header before any await. */
  const operator = (authorization: string, address: string): WalcastError | null => {
    if (o.access === 'open') return null;
    if (!adminDigest) return new WalcastError('not_authed', 'operator endpoints need WALCAST_ADMIN_TOKEN, which is not set on this process (or use WALCAST_OPS_PORT)');
    const token = bearer(authorization);
    if (!token) return new WalcastError('not_authed', 'Authorization: Bearer <WALCAST_ADMIN_TOKEN> required');
    const blocked = o.edge?.failures.blocked(address);
    if (blocked) return blocked;
    // Constant time, and no length leak: compare digests.
    if (timingSafeEqual(digest(token), adminDigest)) return null;
    o.edge?.failures.charge(address);
    o.edge?.abuse.note('bad_token', { address, code: 'admin' });
    return new WalcastError('invalid_auth', 'wrong admin token');
  };
  const addressOf = (res: HttpResponse, forwarded: string) => (o.edge ? o.edge.addresses.of(peerAddress(res), forwarded) : '');

  app.get(PATHS.healthz, (res) => {
    const reply = track(res);
    sendJson(res, reply, 200, { ok: true, role: o.role });
  });
  app.get(PATHS.readyz, (res, req) => {
    const reply = track(res);
    const details = operator(req.getHeader('authorization'), addressOf(res, req.getHeader('x-forwarded-for'))) === null;
    void Promise.all(
      Object.entries(o.checks).map(async ([name, check]) => [name, await Promise.resolve(check()).catch(() => false)] as const),
    ).then((results) => {
      const ok = results.every(([, v]) => v);
      sendJson(res, reply, ok ? 200 : 503, details ? { ok, role: o.role, ...o.info, checks: Object.fromEntries(results) } : { ok });
    });
  });
  app.get(PATHS.metrics, (res, req) => {
    const reply = track(res);
    const denied = operator(req.getHeader('authorization'), addressOf(res, req.getHeader('x-forwarded-for')));
    if (denied) return void sendError(res, reply, denied, o.log);
    void o.metrics.render().then(
      (text) => send(res, reply, 200, text, o.metrics.contentType),
      (e: unknown) => sendError(res, reply, new WalcastError('unavailable', `metrics could not be gathered: ${(e as Error)?.message ?? e}`), o.log),
    );
  });
  if (o.state) {
    const state = o.state;
    app.get(PATHS.opsState, (res, req) => {
      const reply = track(res);
      const denied = operator(req.getHeader('authorization'), addressOf(res, req.getHeader('x-forwarded-for')));
      if (denied) return void sendError(res, reply, denied, o.log);
      void state().then(
        (value) => sendJson(res, reply, 200, { ok: true, ...(value as object) }, { 'cache-control': 'no-store' }),
        (e: unknown) => sendError(res, reply, e instanceof WalcastError ? e : new WalcastError('unavailable', `state could not be gathered: ${(e as Error)?.message ?? e}`), o.log),
      );
    });
  }
  app.any(`${PATHS.admin}*`, (res, req) => {
    if (framingProblem(req)) return refuseFraming(res);
    const reply = track(res);
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const url = req.getUrl();
    const length = req.getHeader('content-length');
    const denied = operator(req.getHeader('authorization'), addressOf(res, req.getHeader('x-forwarded-for')));
    if (denied) return void sendError(res, reply, denied, o.log, method === 'POST');
    if (url !== `${PATHS.admin}revoke` || !o.revoke) return void sendError(res, reply, new WalcastError('unknown_method', 'no such admin endpoint'), o.log, method === 'POST');
    if (method !== 'POST') return void sendError(res, reply, new WalcastError('method_not_allowed', 'POST /admin/revoke'), o.log);
    void revoke(res, reply, length ? Number(length) : undefined);
  });

  async function revoke(res: HttpResponse, reply: Reply, contentLength: number | undefined): Promise<void> {
    let body: Buffer;
    try {
      body = await readBody(res, 4096, contentLength);
    } catch (e) {
      return void sendError(res, reply, e, o.log, true);
    }
    try {
      const parsed = revokeBody.safeParse(parseJson(body));
      if (!parsed.success) throw new WalcastError('invalid_arguments', 'body must be {"user": <user id>}');
      const result = await o.revoke!(parsed.data.user);
      o.log.warn('tokens revoked', { user: result.user, notBefore: result.not_before, published: result.published });
      sendJson(res, reply, 200, { ok: true, ...result });
    } catch (e) {
      sendError(res, reply, e, o.log);
    }
  }
}

