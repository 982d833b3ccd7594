// instanceState (src/app/ops-state.ts): the ops snapshot of a gateway instance with workers; and
// how the recent problems it shows read an error that came from another thread.
import t from 'tap';
import { instanceState, type OpsState } from '../../src/app/ops-state.js';
import { RecentProblems } from '../../src/app/recent-log.js';
import { createLogger, plainFields } from '../../src/log.js';

const base = (over: Partial<OpsState>): OpsState => ({
  now: 1000,
  role: 'relay',
  pid: 1,
  uptime_s: 10,
  rss_bytes: 100,
  bus: { kind: 'memory', up: true },
  checks: { database: true, workers: true },
  relay: { state: 'streaming', confirmed_lsn: '0/1', heartbeat_lag_s: 0.1 },
  slot: { error: 'not read in this test' },
  gateway: null,
  counters: { messages_stored: 5, frames_delivered: 50, relay_transactions: 5, relay_events: 5, http_requests: 9, http_client_errors: 1, http_server_errors: 0, rate_limited: 0, upgrades_refused: 0, slow_consumers_closed: 0 },
  problems: { total: 1, recent: [{ t: 30, level: 'warn', msg: 'relay stream failing', fields: { role: 'relay' } }] },
  ...over,
});
const worker = (pid: number, connections: number, problems: OpsState['problems']): OpsState =>
  base({ role: 'api+gateway', pid, rss_bytes: 10, relay: null, gateway: { connections, max_connections: 100, subscriptions: connections * 2, channels: 3 }, problems });

t.test("the supervisor's relay, slot and counters; the workers' sockets summed and problems merged", async (t) => {
  const s = instanceState(base({}), [
    { index: 0, state: worker(11, 4, { total: 2, recent: [{ t: 20, level: 'warn', msg: 'a', fields: {} }, { t: 40, level: 'error', msg: 'b', fields: {} }] }) },
    { index: 1, state: worker(12, 6, { total: 0, recent: [] }) },
  ]);
  t.equal(s.role, 'api+gateway+relay');
  t.equal(s.relay?.state, 'streaming');
  t.equal(s.counters.messages_stored, 5, 'counters as the supervisor merged them (not added again)');
  t.same(s.gateway, { connections: 10, max_connections: 200, subscriptions: 20, channels: 6 });
  t.equal(s.rss_bytes, 120);
  t.equal(s.problems.total, 3);
  t.same(s.problems.recent.map((p) => [p.t, p.msg, p.fields.worker]), [[20, 'a', '0'], [30, 'relay stream failing', undefined], [40, 'b', '0']], 'oldest first, each marked with its worker');
  t.same(s.workers, [
    { index: 0, pid: 11, rss_bytes: 10, connections: 4 },
    { index: 1, pid: 12, rss_bytes: 10, connections: 6 },
  ]);
});

t.test('a worker that did not answer is listed, and counts for nothing', async (t) => {
  const s = instanceState(base({}), [{ index: 0, state: worker(11, 4, { total: 0, recent: [] }) }, { index: 1, state: null }]);
  t.equal(s.gateway?.connections, 4);
  t.same(s.workers?.[1], { index: 1, pid: null, rss_bytes: null, connections: null });
});

t.test('recent problems stay bounded', async (t) => {
  const many = Array.from({ length: 80 }, (_, i) => ({ t: i, level: 'warn' as const, msg: `p${i}`, fields: {} }));
  const s = instanceState(base({ problems: { total: 0, recent: [] } }), [{ index: 0, state: worker(11, 0, { total: 80, recent: many }) }], 50);
  t.equal(s.problems.recent.length, 50);
  t.equal(s.problems.recent.at(-1)?.msg, 'p79', 'the newest kept');
});

t.test("an error sent by another thread (its message and code) reads as the process's own", async (t) => {
  const problems = new RecentProblems();
  const log = problems.wrap(createLogger('silent'));
  const e = Object.assign(new Error('terminating connection'), { code: '57P01' });
  log.warn('here', { err: e });
  log.warn('from the thread', plainFields({ err: e }));
  log.warn('an object that is not an error', { detail: { message: 'm', extra: 1 } });
  t.same(problems.list().map((p) => Object.values(p.fields)[0]), ['terminating connection (57P01)', 'terminating connection (57P01)', '{"message":"m","extra":1}']);
});
