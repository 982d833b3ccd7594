// Pure logic beside the real-parts tests: the transaction assembler, the ring, frame parsing, config.
import t from 'tap';
import { TransactionAssembler, HEARTBEAT_PREFIX } from '../../src/cdc/transactions.js';
import { finishedIn, fullXid, parseSnapshot } from '../../src/cdc/visibility.js';
import { backoff } from '../../src/util/backoff.js';
import { Ring } from '../../src/gateway/ring.js';
import { parseClientFrame } from '../../src/gateway/frames.js';
import { loadConfig } from '../../src/config.js';
import { SmallMap } from '../../src/util/small-map.js';
import { UserSockets } from '../../src/gateway/users.js';
import type { Connection } from '../../src/gateway/connection.js';

const rel = (name: string) => ({ tag: 'relation', relationOid: 1, schema: 'public', name, replicaIdentity: 'default', columns: [], keyColumns: [] }) as never;

const row = (over: Record<string, unknown> = {}) => ({
  id: 'u1', channel_id: 'C1', seq: '3', user_id: 'al', text: 'hi', client_msg_id: null, created_at: new Date('2026-01-01T00:00:00.123Z'),
  reply_to: null, edited_at: null, deleted_at: null, reactions: {}, changed_seq: '3', ...over,
});
const message = (over: Record<string, unknown> = {}) => ({
  id: 'u1', channel: 'C1', seq: 3, user: 'al', text: 'hi', client_msg_id: null, created_at: '2026-01-01T00:00:00.123Z',
  reply_to: null, edited_at: null, deleted_at: null, reactions: {}, changed_seq: 3, ...over,
});

t.test('assembler releases a transaction only at its commit', async (t) => {
  const a = new TransactionAssembler();
  t.same(a.push({ tag: 'begin', commitLsn: '0/20', commitTime: 0n, xid: 7 } as never), { kind: 'none' });
  t.ok(a.inTransaction);
  t.same(a.push({ tag: 'insert', relation: rel('messages'), new: row() } as never), { kind: 'none' });
  a.push({ tag: 'insert', relation: rel('channel_events'), new: { channel_id: 'C1', seq: '4', kind: 'member_left', target_seq: null, user_id: 'bo', name: null, reason: 'kicked' } } as never);
  a.push({ tag: 'insert', relation: rel('something_else'), new: { channel_id: 'C1', user_id: 'x' } } as never);
  const c = a.push({ tag: 'commit', flags: 0, commitLsn: '0/20', commitEndLsn: '0/48', commitTime: 1_767_225_600_123_456n } as never);
  t.same(c, {
    kind: 'commit',
    xid: 7,
    endLsn: '0/48',
    unresolved: 0,
    committedAt: 1_767_225_600_123,
    events: [
      { kind: 'change', channel: 'C1', seq: 3, frame: { type: 'message', channel: 'C1', seq: 3, message: message() }, committedAt: 1_767_225_600_123 },
      { kind: 'change', channel: 'C1', seq: 4, frame: { type: 'member_left', channel: 'C1', seq: 4, user: 'bo', reason: 'kicked' }, committedAt: 1_767_225_600_123 },
    ],
  });
  t.notOk(a.inTransaction);
});

t.test('assembler: an edit carries the row after it; a text PostgreSQL left out comes from the old tuple', async (t) => {
  const a = new TransactionAssembler();
  a.push({ tag: 'begin', xid: 9 } as never);
  // A reaction on a long message: the unchanged, TOASTed text is missing from the new tuple.
  a.push({ tag: 'update', relation: rel('messages'), old: row({ text: 'long text' }), new: row({ text: undefined, reactions: '{"+1": 1}', changed_seq: '5' }) } as never);
  a.push({ tag: 'insert', relation: rel('channel_events'), new: { channel_id: 'C1', seq: '5', kind: 'reaction_added', target_seq: '3', user_id: 'bo', name: '+1', reason: null } } as never);
  const c = a.push({ tag: 'commit', commitEndLsn: '0/50' } as never) as { events: { frame: unknown; target?: unknown }[]; unresolved: number };
  t.equal(c.unresolved, 0);
  t.same(c.events[0]!.frame, { type: 'reaction_added', channel: 'C1', seq: 5, target_seq: 3, user: 'bo', name: '+1' });
  t.same(c.events[0]!.target, message({ text: 'long text', reactions: { '+1': 1 }, changed_seq: 5 }), 'the whole row, text included');

  // Without the old tuple (no REPLICA IDENTITY FULL) the row is incomplete: the relay reads it back.
  a.push({ tag: 'begin', xid: 10 } as never);
  a.push({ tag: 'update', relation: rel('messages'), old: null, new: row({ text: undefined, edited_at: new Date(0), changed_seq: '6' }) } as never);
  a.push({ tag: 'insert', relation: rel('channel_events'), new: { channel_id: 'C1', seq: '6', kind: 'message_changed', target_seq: '3', user_id: 'al', name: null, reason: null } } as never);
  const d = a.push({ tag: 'commit', commitEndLsn: '0/60' } as never) as { unresolved: number };
  t.equal(d.unresolved, 1, 'marked for a read-back, never published incomplete');
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
  a.push({ tag: 'insert', relation: rel('messages'), new: row({ created_at: '2026-11-23 13:08:48.123456+00' }) } as never);
  const c = a.push({ tag: 'commit', commitEndLsn: '0/1' } as never) as unknown as { events: { frame: { message: { created_at: string } } }[] };
  t.equal(c.events[0]!.frame.message.created_at, '2026-11-23T13:08:48.123Z');
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
  t.same(parseClientFrame('{"type":"subscribe","channel":"C0000000000C1","since":4}'), { type: 'subscribe', channel: 'C0000000000C1', since: 4 });
  t.same(parseClientFrame('{"type":"subscribe","channel":"C0000000000C1"}'), { type: 'subscribe', channel: 'C0000000000C1' });
  t.same(parseClientFrame('{"type":"unsubscribe","channel":"C0000000000C1"}'), { type: 'unsubscribe', channel: 'C0000000000C1' });
  t.match(parseClientFrame('{'), { code: 'invalid_json' });
  t.match(parseClientFrame('[]'), { code: 'invalid_arguments' });
  t.match(parseClientFrame('{"type":3}'), { code: 'invalid_arguments' });
  t.match(parseClientFrame('{"type":"subscribe"}'), { code: 'invalid_arguments' });
  t.match(parseClientFrame('{"type":"subscribe","channel":"C0000000000C1","since":-1}'), { code: 'invalid_arguments', channel: 'C0000000000C1' });
  t.match(parseClientFrame('{"type":"subscribe","channel":"C0000000000C1","since":1.5}'), { code: 'invalid_arguments' });
  t.match(parseClientFrame('{"type":"dance"}'), { code: 'unknown_type' });
  // Channel ids are checked at the edge; a short malformed one is echoed back for correlation.
  t.match(parseClientFrame('{"type":"subscribe","channel":"C1"}'), { code: 'invalid_arguments', channel: 'C1' });
  t.match(parseClientFrame('{"type":"subscribe","channel":"C000000000000\\u0000"}'), { code: 'invalid_arguments' });
  t.same(parseClientFrame('{"type":"auth","token":"t"}'), { type: 'auth', token: 't' });
  t.match(parseClientFrame('{"type":"auth","token":""}'), { code: 'invalid_arguments' });
  t.match(parseClientFrame('{"type":"auth"}'), { code: 'invalid_arguments' });
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

t.test('visibility: snapshots, 32-bit xids across an epoch, finished or running', async (t) => {
  const s = parseSnapshot('4294967300:4294967310:4294967302,4294967305');
  t.same(s, { xmin: 4294967300n, xmax: 4294967310n, running: new Set([4294967302n, 4294967305n]) });
  t.equal(fullXid(6, s), 4294967302n, 'a 32-bit xid of the current epoch');
  t.equal(fullXid(4294967290, s), 4294967290n, 'one from the previous epoch');
  t.ok(finishedIn(4294967290, s), 'below xmin: finished');
  t.notOk(finishedIn(6, s), 'in the running set: not visible yet');
  t.ok(finishedIn(7, s), 'between xmin and xmax, not running: finished');
  t.notOk(finishedIn(14, s), 'at or past xmax: not yet');
  t.same(parseSnapshot('10:10:'), { xmin: 10n, xmax: 10n, running: new Set() });
});

t.test('ring: bounded by bytes as well as entries; replace keeps the bound', async (t) => {
  const r = new Ring(100, 30);
  for (let s = 1; s <= 10; s++) r.push({ seq: s, frame: 'x'.repeat(10) });
  t.equal(r.size, 3, 'three 10-character frames fit in 30');
  t.equal(r.firstSeq(), 8);
  t.equal(r.weight, 30);
  r.replace(9, 'y'.repeat(20));
  t.same(r.after(8)!.map((e) => e.seq), [9, 10], 'a bigger frame pushes the oldest out');
  t.equal(r.after(7), undefined);
  t.equal(r.weight, 30);
  r.prepend([{ seq: 8, frame: 'z' }]);
  t.equal(r.size, 2, 'no room to prepend past the byte bound');
  for (let s = 11; s <= 5000; s++) r.push({ seq: s, frame: 'a' });
  t.equal(r.size, 30);
  t.equal(r.lastSeq(), 5000);
  t.same(r.after(4990)!.map((e) => e.seq), [4991, 4992, 4993, 4994, 4995, 4996, 4997, 4998, 4999, 5000]);
});

t.test('SmallMap: one entry inline, a Map from the second, back to empty', async (t) => {
  const m = new SmallMap<string, number>();
  t.equal(m.size, 0);
  t.equal(m.get('a'), undefined);
  m.set('a', 1).set('a', 2);
  t.equal(m.size, 1, 'set of the same key replaces');
  t.equal(m.get('a'), 2);
  t.equal(m.get('b'), undefined);
  m.set('b', 3);
  t.same([m.size, m.get('a'), m.get('b')], [2, 2, 3], 'two entries');
  const snapshot = m.values();
  m.delete('a');
  t.same(snapshot, [2, 3], 'values() is a snapshot');
  t.same(m.values(), [3]);
  t.notOk(m.delete('a'), 'deleting a missing key');
  m.clear();
  t.same([m.size, m.values()], [0, []]);
  m.set('c', 4);
  t.ok(m.delete('c'));
  t.same([m.size, m.get('c')], [0, undefined]);
});

t.test('UserSockets: one socket kept as itself, several in a set', async (t) => {
  const u = new UserSockets();
  const conn = (user: string, id: number) => ({ user, id }) as unknown as Connection;
  const a1 = conn('alice', 1);
  const a2 = conn('alice', 2);
  const b1 = conn('bob', 3);
  u.add(a1);
  u.add(a1);
  t.equal(u.count('alice'), 1, 'adding the same socket twice counts once');
  u.add(a2);
  u.add(b1);
  t.same([u.count('alice'), u.count('bob'), u.count('carol')], [2, 1, 0]);
  t.same(u.of('alice'), [a1, a2]);
  u.remove(a1);
  t.same(u.of('alice'), [a2], 'back to one');
  u.remove(a1);
  t.equal(u.count('alice'), 1, 'removing a socket not there changes nothing');
  u.remove(a2);
  u.remove(b1);
  t.same([u.count('alice'), u.of('bob')], [0, []]);
});
