// A reconnect storm in CI: 2000 SDK clients (in a separate client process) on gateway A; A is
// killed with SIGKILL while messages flow and every client returns to gateway B at once.
// B must serve them with a few coalesced queries, not one per client, and every client must
// deliver every message of its channel exactly once, in order. `npm run bench -- storm` runs it bigger.
import t from 'tap';
import { formatStorm, runStorm } from '../harness/load/storm.js';

const CLIENTS = 2000;
const CHANNELS = 5;
const r = await runStorm({ clients: CLIENTS, channels: CHANNELS, workers: 1, postsPerS: 50 });
t.comment('\n' + formatStorm(r));
t.equal(r.lost, 0, 'no client lost a message');
t.equal(r.outOfOrder, 0, 'no client delivered out of order');
t.equal(r.gapsRepaired, 0, 'the gateway never left a gap for the SDK to repair');
t.ok(r.resumeMs < 30_000, `every client resumed within 30 s (${r.resumeMs} ms)`);
t.ok(r.gatewayQueries.catchup <= CHANNELS * 4, `catch-up cost ${r.gatewayQueries.catchup} reads for ${CLIENTS} resuming clients (coalesced ${r.gatewayQueries.coalesced}, the rest from the ring)`);
t.ok(r.gatewayQueries.membership < CLIENTS / 4, `membership checks batched: ${r.gatewayQueries.membership} queries for ${CLIENTS} subscribes`);
t.ok(r.peakInFlight <= 4, `database reads in flight bounded by WALCAST_GATEWAY_DB_CONCURRENCY (peak ${r.peakInFlight})`);
