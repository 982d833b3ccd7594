// A hot channel must not starve a quiet one on the same gateway: the quiet channel's POST →
// frame latency while a hot channel with many subscribers is flooded, with the fan-out budget
// on (default), compared with no flood. Real processes (api, relay, gateway, redis-server,
// PostgreSQL); `npm run bench -- fairness` runs it bigger and also with the budget off.
import t from 'tap';
import { formatFairness, runFairness } from '../harness/load/fairness.js';
import { percentiles } from '../harness/load/format.js';

const HOT = 1000;
const SECONDS = 5;
const calm = await runFairness({ hot: HOT, seconds: SECONDS, posters: 12, budget: '20000', flood: false, label: 'no flood' });
const flood = await runFairness({ hot: HOT, seconds: SECONDS, posters: 12, budget: '20000', flood: true, label: 'flood, budget 20000' });
t.comment('\n' + formatFairness([calm, flood], HOT, SECONDS));
const p99 = (xs: number[]) => Number(percentiles(xs)[2]);
t.ok(flood.hotPosted > 0, `the hot channel was flooded (${Math.round(flood.hotPosted / SECONDS)} msg/s to ${HOT} subscribers)`);
t.ok(flood.quiet.length >= 10, `every quiet message posted during the flood arrived (${flood.quiet.length})`);
// The whole machine (2 cores) is shared by the flood's API, relay, PostgreSQL and gateway, so
// the quiet channel slows down somewhat; what must not happen is waiting behind the hot backlog.
t.ok(p99(flood.quiet) < 1000, `quiet p99 ${p99(flood.quiet)} ms during the flood (calm: ${p99(calm.quiet)} ms)`);
