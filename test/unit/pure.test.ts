// Pure logic beside the real-parts tests: the transaction assembler, the ring, frame parsing, config.
import t from 'tap';
import { TransactionAssembler, HEARTBEAT_PREFIX } from '../../src/cdc/transactions.js';
import { backoff } from '../../src/util/backoff.js';
import { Ring } from '../../src/gateway/ring.js';
import { parseClientFrame } from '../../src/gateway/frames.js';
import { loadConfig } from '../../src/config.js';

const rel = (name: string) => ({ tag: 'relation', relationOid: 1, schema: 'public', name, replicaIdentity: 'default', columns: [], keyColumns: [] }) as never;

t.test('assembler releases a transaction only at its commit', async (t) => {
  const a = new TransactionAssembler();
  t.same(a.push({ tag: 'begin', commitLsn: '0/20', commitTime: 0n, xid: 7 } as never), { kind: 'none' });
  t.ok(a.inTransaction);
  const row = { id: 'u1', channel_id: 'C1', seq: '3', user_id: 'al', text: 'hi', client_msg_id: null, created_at: new Date('2026-01-01T00:00:00.123Z') };
  t.same(a.push({ tag: 'insert', relation: rel('messages'), new: row } as never), { kind: 'none' });
  a.push({ tag: 'delete', relation: rel('channel_members'), key: { channel_id: 'C1', user_id: 'bo' }, old: null } as never);
  a.push({ tag: 'insert', relation: rel('channel_members'), new: { channel_id: 'C1', user_id: 'x' } } as never);
  const c = a.push({ tag: 'commit', flags: 0, commitLsn: '0/20', commitEndLsn: '0/48', commitTime: 1_767_225_600_123_456n } as never);
  t.same(c, {
    kind: 'commit',
    endLsn: '0/48',
    events: [
      { kind: 'message', channel: 'C1', seq: 3, message: { id: 'u1', channel: 'C1', seq: 3, user: 'al', text: 'hi', client_msg_id: null, created_at: '2026-01-01T00:00:00.123Z' }, committedAt: 1_767_225_600_123 },
      { kind: 'kick', channel: 'C1', user: 'bo' },
    ],
  });
  t.notOk(a.inTransaction);
});

t.test('assembler reads heartbeats and ignores other logical messages', async (t) => {
  const a = new TransactionAssembler();
  const hb = a.push({ tag: 'message', flags: 0, transactional: false, messageLsn: '1/0', prefix: HEARTBEAT_PREFIX, content: new TextEncoder().encode('1700000000000') } as never);
  t.same(hb, { kind: 'heartbeat', lsn: '1/0', sentAt: 1700000000000 });
  t.same(a.push({ tag: 'message', flags: 0, transactional: false, messageLsn: '1/0', prefix: 'other', content: new Uint8Array() } as never), { kind: 'none' });
});

t.test('WAL text timestamps map to the same ISO string as the API', async (t) => {
  const a = new TransactionAssembler();
  a.push({ tag: 'begin' } as never);
  a.push({ tag: 'insert', relation: rel('messages'), new: { id: 'u', channel_id: 'C', seq: 1, user_id: 'a', text: 't', client_msg_id: 'k', created_at: '2026-11-23 13:08:48.123456+00' } } as never);
  const c = a.push({ tag: 'commit', commitEndLsn: '0/1' } as never) as { events: { message: { created_at: string } }[] };
  t.equal(c.events[0]!.message.created_at, '2026-11-23T13:08:48.123Z');
});

t.test('ring keeps the last N contiguous entries', async (t) => {
  const r = new Ring(3);
  t.equal(r.after(0), undefined);
  for (let s = 1; s <= 5; s++) r.push({ seq: s, frame: `f${s}` });
  t.equal(r.firstSeq(), 3);
  t.equal(r.lastSeq(), 5);
  t.same(r.after(2)!.map((e) => e.seq), [3, 4, 5]);
  t.same(r.after(4)!.map((e) => e.seq), [5]);
  t.same(r.after(5), []);
  t.equal(r.after(1), undefined, 'cannot serve from before its first entry');
  r.push({ seq: 9, frame: 'f9' });
  t.equal(r.firstSeq(), 9, 'a jump clears it rather than leave a hole');
  t.equal(new Ring(0).after(0), undefined);
});

t.test('client frames: valid, malformed and unknown', async (t) => {
  t.same(parseClientFrame('{"type":"subscribe","channel":"C1","since":4}'), { type: 'subscribe', channel: 'C1', since: 4 });
  t.same(parseClientFrame('{"type":"subscribe","channel":"C1"}'), { type: 'subscribe', channel: 'C1' });
  t.same(parseClientFrame('{"type":"unsubscribe","channel":"C1"}'), { type: 'unsubscribe', channel: 'C1' });
  t.match(parseClientFrame('{'), { code: 'invalid_json' });
  t.match(parseClientFrame('[]'), { code: 'invalid_arguments' });
  t.match(parseClientFrame('{"type":3}'), { code: 'invalid_arguments' });
  t.match(parseClientFrame('{"type":"subscribe"}'), { code: 'invalid_arguments' });
  t.match(parseClientFrame('{"type":"subscribe","channel":"C1","since":-1}'), { code: 'invalid_arguments', channel: 'C1' });
  t.match(parseClientFrame('{"type":"subscribe","channel":"C1","since":1.5}'), { code: 'invalid_arguments' });
  t.match(parseClientFrame('{"type":"dance"}'), { code: 'unknown_type' });
});

t.test('config: defaults, overrides and clear errors', async (t) => {
  const c = loadConfig({});
  t.equal(c.port, 8080);
  t.equal(c.source, 'cdc');
  t.equal(c.redisUrl, undefined);
  t.equal(loadConfig({ PORT: '9000', WALCAST_ALLOW_UWS_FALLBACK: '1' }).port, 9000);
  t.equal(loadConfig({ WALCAST_ALLOW_UWS_FALLBACK: 'yes' }).allowUwsFallback, true);
  t.throws(() => loadConfig({ PORT: 'eighty' }), /PORT/);
  t.throws(() => loadConfig({ WALCAST_SOURCE: 'kafka' }), /WALCAST_SOURCE/);
  t.throws(() => loadConfig({ WALCAST_SOURCE: 'direct' }), /benchmarks/, 'comparison sources are the benchmarks\' business');
  t.throws(() => loadConfig({ WALCAST_DRAIN_WINDOW_MS: '20000' }), /WALCAST_DRAIN_WINDOW_MS/);
  t.throws(() => loadConfig({ WALCAST_SECRET: 'short' }), /at least 16/);
  t.same(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,redis-2:7001' }).redisClusterNodes, ['10.0.0.1:7000', 'redis-2:7001']);
  t.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis-1' }), /REDIS_CLUSTER_NODES: expected host:port/);
  t.throws(() => loadConfig({ REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: 'r:7000' }), /exclusive/, 'one Redis or a cluster, not both');
});

t.test('backoff stays within its bounds', async (t) => {
  const out = Array.from({ length: 50 }, (_, i) => backoff(i, { minMs: 100, baseMs: 100, maxMs: 2000 }));
  t.ok(out.every((ms) => ms >= 100 && ms <= 2000), 'all within [100, 2000]');
  t.ok(backoff(0, { minMs: 100, baseMs: 100, maxMs: 2000 }) <= 100, 'the first retry is quick');
  t.equal(backoff(3, { baseMs: 100, maxMs: 2000, random: () => 0.5 }), 400, 'full jitter: half of the cap at 0.5');
  t.equal(backoff(30, { baseMs: 100, maxMs: 2000, random: () => 0.999999 }) <= 2000, true, 'capped');
});
