// /healthz, /readyz and /metrics: unauthenticated, for load balancers and Prometheus.
import { send, sendJson, track } from '../http/respond.js';
import type { TemplatedApp } from '../http/uws.js';
import type { Metrics } from '../metrics.js';

/** A named readiness check: true when that part can serve. */
export type ReadinessCheck = () => Promise<boolean> | boolean;

/** `info` goes into the /readyz answer as is (e.g. `bus`: memory, redis or redis-cluster). */
export function mountOps(app: TemplatedApp, metrics: Metrics, checks: Record<string, ReadinessCheck>, role: string, info: Record<string, unknown> = {}): void {
  app.get('/healthz', (res) => {
    const reply = track(res);
    sendJson(res, reply, 200, { ok: true, role });
  });
  app.get('/readyz', (res) => {
    const reply = track(res);
    void Promise.all(
      Object.entries(checks).map(async ([name, check]) => [name, await Promise.resolve(check()).catch(() => false)] as const),
    ).then((results) => {
      const ok = results.every(([, v]) => v);
      sendJson(res, reply, ok ? 200 : 503, { ok, role, ...info, checks: Object.fromEntries(results) });
    });
  });
  app.get('/metrics', (res) => {
    const reply = track(res);
    void metrics.registry.metrics().then((text) => send(res, reply, 200, text, metrics.registry.contentType));
  });
}
