// chat.postMessage rate limits: per user and per channel, 429 rate_limited with Retry-After.
import t from 'tap';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast } from './helpers/walcast.js';
import { Api } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, {
  env: { WALCAST_SLOT: 'ratelimit', WALCAST_POST_RATE_USER: '2', WALCAST_POST_BURST_USER: '3', WALCAST_POST_RATE_CHANNEL: '3', WALCAST_POST_BURST_CHANNEL: '5' },
});
const alice = new Api(w.base, await w.token('alice'));
const bob = new Api(w.base, await w.token('bob'));

t.test('per user: the burst passes, then 429 with Retry-After and retry_after_ms', async (t) => {
  const { channel } = await alice.call('conversations.create', { name: 'rl-user' });
  const statuses: number[] = [];
  let limited: any;
  for (let i = 0; i < 5; i++) {
    const r = await alice.post('chat.postMessage', { channel: channel.id, text: `m${i}` });
    statuses.push(r.status);
    if (r.status === 429) limited ??= r;
  }
  t.same(statuses.slice(0, 3), [200, 200, 200], 'the burst of 3 passes');
  t.ok(limited, 'then 429');
  t.equal(limited.body.error, 'rate_limited');
  t.ok(Number(limited.headers.get('retry-after')) >= 1, 'Retry-After in seconds');
  t.ok(limited.body.retry_after_ms > 0 && limited.body.retry_after_ms <= 1000, `retry_after_ms ${limited.body.retry_after_ms}`);
  await new Promise((r) => setTimeout(r, limited.body.retry_after_ms + 20));
  t.equal((await alice.post('chat.postMessage', { channel: channel.id, text: 'after' })).status, 200, 'honouring the hint works');
});

t.test('per channel: two users together hit the channel limit', async (t) => {
  await new Promise((r) => setTimeout(r, 2000)); // let alice's bucket refill
  const { channel } = await alice.call('conversations.create', { name: 'rl-channel' });
  await alice.call('conversations.invite', { channel: channel.id, users: ['bob'] });
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) {
    statuses.push((await alice.post('chat.postMessage', { channel: channel.id, text: `a${i}` })).status);
    statuses.push((await bob.post('chat.postMessage', { channel: channel.id, text: `b${i}` })).status);
  }
  t.equal(statuses.filter((s) => s === 200).length, 5, 'the channel burst of 5');
  t.equal(statuses[5], 429, 'the sixth post to the channel is refused although neither user is over its own limit');
});
