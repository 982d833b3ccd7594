// Membership churn while messages flow: users join, leave, are kicked and invited back, and each
// keeps a socket that (re)subscribes whenever it is a member, resuming from the last seq it got.
// At the end, the channel's log says who was a member at every seq; no frame of the channel may
// ever have reached a socket whose user was not a member at that seq, and each subscription's
// frames are strictly increasing.
import t from 'tap';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, type Frame } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'churn', WALCAST_POST_RATE_USER: '0', WALCAST_POST_RATE_CHANNEL: '0' } });
const owner = new Api(w.base, await w.token('owner'));
const ch = (await owner.call('conversations.create', { name: 'churn' })).channel.id as string;
const USERS = ['c1', 'c2', 'c3', 'c4', 'c5'];
const ROUNDS = 12;

interface Churner {
  user: string;
  api: Api;
  ws: WsClient;
  /** Frames of the change log this user's socket received, in order. */
  got: Frame[];
  subscribed: boolean;
}

const churners: Churner[] = [];
for (const user of USERS) {
  const ws = await WsClient.connect(w.ws, await w.token(user));
  t.teardown(() => ws.close());
  const c: Churner = { user, api: new Api(w.base, await w.token(user)), ws, got: [], subscribed: false };
  ws.onFrame((f) => {
    if (f.channel !== ch) return;
    if (f.seq !== undefined && f.type !== 'subscribed') c.got.push(f);
    if (f.type === 'unsubscribed' || f.type === 'error') c.subscribed = false;
  });
  churners.push(c);
}

/** (Re)subscribe as a resuming client does: from the last seq received. */
async function resubscribe(c: Churner): Promise<void> {
  const last = c.got.at(-1)?.seq;
  const answer = await c.ws.subscribe(ch, last ?? 0);
  c.subscribed = answer.type === 'subscribed';
}

let posting = true;
const poster = (async () => {
  let i = 0;
  while (posting) await owner.call('chat.postMessage', { channel: ch, text: `m${i++}` });
})();

for (let round = 0; round < ROUNDS; round++) {
  await Promise.all(
    churners.map(async (c, i) => {
      const action = (round + i) % 4;
      if (action === 0) await owner.call('conversations.invite', { channel: ch, users: [c.user] });
      else if (action === 1) await c.api.post('conversations.join', { channel: ch }); // refused while banned
      else if (action === 2) await c.api.post('conversations.leave', { channel: ch });
      else await owner.post('conversations.kick', { channel: ch, user: c.user });
      if (!c.subscribed) await resubscribe(c);
    }),
  );
}
posting = false;
await poster;
const final = (await owner.call('chat.postMessage', { channel: ch, text: 'the end' })).message.seq as number;
// Every socket still subscribed gets to the end; the others stopped where they stopped.
await until(() => churners.every((c) => !c.subscribed || c.got.at(-1)?.seq === final), 'subscribed sockets to reach the end', 30_000);

// The whole log, as the owner (a member from the start) replays it.
const log: Frame[] = [];
for (let after = 0; ; ) {
  const page = await owner.call('conversations.replay', { channel: ch, after_seq: after, limit: 1000 });
  log.push(...page.changes);
  if (!page.has_more) break;
  after = log.at(-1)!.seq!;
}

t.test('the log is gapless', async (t) => {
  t.same(log.map((f) => f.seq), Array.from({ length: final }, (_, i) => i + 1));
});

t.test('no frame reached a socket whose user was not a member at that seq', async (t) => {
  for (const c of churners) {
    // Membership intervals from the log: [member_joined seq, member_left seq].
    const intervals: [number, number][] = [];
    let from: number | null = null;
    for (const f of log) {
      if (f.type === 'member_joined' && f.user === c.user) from = f.seq!;
      if (f.type === 'member_left' && f.user === c.user && from !== null) {
        intervals.push([from, f.seq!]);
        from = null;
      }
    }
    if (from !== null) intervals.push([from, Infinity]);
    const outside = c.got.filter((f) => !intervals.some(([a, b]) => f.seq! >= a && f.seq! <= b));
    t.same(outside.map((f) => f.seq), [], `${c.user}: ${c.got.length} frames, all while a member (${intervals.length} memberships)`);
    // Across resubscriptions a socket resumes from its last seq: strictly increasing overall.
    t.ok(c.got.every((f, i) => i === 0 || f.seq! > c.got[i - 1]!.seq!), `${c.user}: strictly increasing`);
    // And within one membership, nothing is missing from where it (re)started.
    for (const [a, b] of intervals) {
      const inside = c.got.filter((f) => f.seq! >= a && f.seq! <= b).map((f) => f.seq!);
      if (inside.length === 0) continue;
      const start = inside[0]!;
      const end = Math.min(b, inside.at(-1)!);
      t.same(inside, Array.from({ length: end - start + 1 }, (_, k) => start + k), `${c.user}: no gap in [${a}, ${b === Infinity ? 'end' : b}]`);
    }
  }
});
