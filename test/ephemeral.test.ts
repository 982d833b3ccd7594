// Typing and presence: ephemeral (never stored, no seq), members only, best effort; presence
// across gateways, and a dead gateway's users leaving within a bounded time.
import t from 'tap';
import { Tokens } from '../src/auth/tokens.js';
import { startTopology } from '../harness/topology.js';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { Api, WsClient, type Frame } from './helpers/clients.js';

const db = await startTestDatabase(t);

t.test('one node: typing reaches the others once per interval, never stored; presence joins and leaves', async (t) => {
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'ephemeral' } });
  const alice = new Api(w.base, await w.token('alice'));
  const ch = (await alice.call('conversations.create', { name: 'typing' })).channel.id as string;
  await alice.call('conversations.invite', { channel: ch, users: ['bob', 'carol'] });
  const socket = async (user: string) => {
    const ws = await WsClient.connect(w.ws, await w.token(user));
    t.teardown(() => ws.close());
    return ws;
  };
  const a = await socket('alice');
  const b = await socket('bob');
  await a.subscribe(ch);
  await b.subscribe(ch);
  const lastSeq = (await alice.call('conversations.replay', { channel: ch })).changes.length;

  for (let i = 0; i < 5; i++) a.send({ type: 'typing', channel: ch });
  const typing = await b.next((f) => f.type === 'typing', 'bob to see alice typing');
  t.same(typing, { type: 'typing', channel: ch, user: 'alice' });
  // A round trip on alice's socket: everything she sent before it was processed.
  a.send({ type: 'ping' });
  await a.next((f) => f.type === 'pong', 'pong');
  await b.subscribe(ch, lastSeq); // a round trip on bob's socket too
  t.equal(b.frames.filter((f) => f.type === 'typing').length, 1, 'a burst of typing frames goes out once');
  t.equal(a.frames.filter((f) => f.type === 'typing').length, 0, 'the typer does not get its own');
  const after = await alice.call('conversations.replay', { channel: ch });
  t.equal(after.changes.length, lastSeq, 'typing takes no seq and is not stored');

  // Not subscribed (or not a member): refused, nobody hears it.
  const c = await socket('carol');
  c.send({ type: 'typing', channel: ch });
  t.match(await c.next((f) => f.type === 'error', 'an error'), { code: 'invalid_arguments', channel: ch });
  const dave = new Api(w.base, await w.token('dave'));
  await dave.call('conversations.create', { name: 'dave-was-here' }); // dave exists
  const d = await socket('dave');
  t.same(await d.subscribe(ch), { type: 'error', code: 'not_in_channel', channel: ch });
  d.send({ type: 'typing', channel: ch });
  await d.next((f) => f.type === 'error' && f.code === 'invalid_arguments', 'refused');

  // Presence: carol asks for it and first learns who is here, herself included.
  const presence = (ws: WsClient, type: string) => ws.frames.filter((f) => f.type === type).map((f) => f.user).sort();
  c.send({ type: 'subscribe', channel: ch, presence: true });
  await until(() => presence(c, 'presence_joined').length === 3, 'three present users');
  t.same(presence(c, 'presence_joined'), ['alice', 'bob', 'carol']);
  t.same(await alice.call('conversations.presence', { channel: ch }), { ok: true, users: ['alice', 'bob', 'carol'], count: 3 });
  const mark = c.frames.length;
  await b.close();
  await c.next((f) => f.type === 'presence_left' && f.user === 'bob', 'bob to leave', 15_000, mark);
  t.same((await alice.call('conversations.presence', { channel: ch })).users, ['alice', 'carol']);
  // A second socket of the same user is not a second presence.
  const a2 = await socket('alice');
  await a2.subscribe(ch);
  await a.close();
  a2.send({ type: 'ping' });
  await a2.next((f) => f.type === 'pong', 'pong');
  t.notOk(c.frames.some((f) => f.type === 'presence_left' && f.user === 'alice'), 'alice is still here on her other socket');
  t.equal((await dave.get('conversations.presence', { channel: ch })).body.error, 'not_in_channel', 'members only');
});

t.test('presence across gateways; a killed gateway\'s users leave within three heartbeats', async (t) => {
  const topo = await startTopology({
    databaseUrl: db.url,
    relays: 1,
    gateways: 2,
    env: { WALCAST_SLOT: 'ephemeral_topo', WALCAST_PRESENCE_HEARTBEAT_MS: '500' },
  });
  t.teardown(() => topo.close());
  const tokens = new Tokens(topo.secret);
  const api = new Api(topo.api.url, await tokens.sign('alice', 3600));
  const ch = (await api.call('conversations.create', { name: 'presence-2gw' })).channel.id as string;
  await api.call('conversations.invite', { channel: ch, users: ['u1', 'u2', 'u3'] });
  const ws = (gw: number) => `ws://127.0.0.1:${topo.gateways[gw]!.port}/v1/ws`;
  const watcher = await WsClient.connect(ws(0), await tokens.sign('alice', 3600));
  t.teardown(() => watcher.close());
  watcher.send({ type: 'subscribe', channel: ch, presence: true });
  await watcher.next((f) => f.type === 'presence_joined' && f.user === 'alice', 'alice herself');
  const others: WsClient[] = [];
  for (const u of ['u1', 'u2', 'u3']) {
    const c = await WsClient.connect(ws(1), await tokens.sign(u, 3600));
    others.push(c);
    await c.subscribe(ch);
  }
  t.teardown(() => Promise.all(others.map((c) => c.socket.terminate())));
  const present = (f: Frame[]) => {
    const s = new Set<string>();
    for (const x of f) {
      if (x.type === 'presence_joined') s.add(x.user!);
      if (x.type === 'presence_left') s.delete(x.user!);
    }
    return [...s].sort();
  };
  await until(() => present(watcher.frames).length === 4, 'the other gateway\'s users to show up', 15_000);
  t.same(present(watcher.frames), ['alice', 'u1', 'u2', 'u3']);
  t.same((await api.call('conversations.presence', { channel: ch })).users, ['alice', 'u1', 'u2', 'u3'], 'the api asks every gateway over the bus');

  // Typing crosses gateways too.
  others[0]!.send({ type: 'typing', channel: ch });
  t.same(await watcher.next((f) => f.type === 'typing', 'typing from the other gateway'), { type: 'typing', channel: ch, user: 'u1' });

  const killedAt = Date.now();
  await topo.gateways[1]!.kill('SIGKILL');
  await until(() => present(watcher.frames).length === 1, 'the dead gateway\'s users to leave', 30_000);
  const took = Date.now() - killedAt;
  t.comment(`the dead gateway's users left ${took} ms after the kill (heartbeat 500 ms, bound 3 heartbeats + one sweep)`);
  t.same(present(watcher.frames), ['alice']);
});
