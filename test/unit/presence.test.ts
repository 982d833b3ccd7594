// Presence past WALCAST_PRESENCE_MAX_USERS and back (pure logic: src/gateway/presence.ts, two
// gateways wired by a synchronous in-memory bus). A client that applies the presence frames as
// docs/protocol.md says (presence_joined adds, presence_left removes, presence_count replaces the
// list by a number) must always end up with who is present: in users while per-user frames
// flow, in a count while counts do, and in users again once per-user frames resume.
import t from 'tap';
import { ChannelPresence } from '../../src/gateway/presence.js';
import { ChannelModel } from '../../src/sdk/channel-model.js';

type Frame = { type: 'presence_joined' | 'presence_left'; user: string } | { type: 'presence_count'; count: number };

/** What a client believes from the frames it got. */
class Client {
  users = new Set<string>();
  count: number | null = null;
  frames = 0;
  apply(raw: string): void {
    const f = JSON.parse(raw) as Frame;
    this.frames++;
    if (f.type === 'presence_count') {
      this.users.clear();
      this.count = f.count;
    } else {
      this.count = null;
      if (f.type === 'presence_joined') this.users.add(f.user);
      else this.users.delete(f.user);
    }
  }
}

const turn = () => new Promise((r) => setImmediate(r));

function gateways(maxUsers: number) {
  const clients: Client[][] = [[], []];
  const gws: ChannelPresence[] = [];
  for (const i of [0, 1]) {
    gws.push(
      new ChannelPresence('C1', {
        gateway: `g${i}`,
        maxUsers,
        // Every gateway gets every event (its own too, as on Redis).
        broadcast: (_channel, e) => queueMicrotask(() => gws.forEach((g) => g.onRemote(`g${i}`, e))),
        notify: (_channel, frame) => clients[i]!.forEach((c) => c.apply(frame)),
      }),
    );
  }
  /** A presence subscriber arriving on gateway i: its snapshot, then the topic. */
  const subscribe = (i: number) => {
    const c = new Client();
    for (const f of gws[i]!.snapshotFrames()) c.apply(f);
    clients[i]!.push(c);
    return c;
  };
  return { gws, subscribe };
}

/** The client's view is right: who is present, or how many. */
function right(c: Client, truth: Set<string>): boolean {
  if (c.count !== null) return c.count === truth.size && c.users.size === 0;
  return c.users.size === truth.size && [...truth].every((u) => c.users.has(u));
}

t.test('above the threshold and back: every client ends with who is present', async (t) => {
  const max = 4;
  const { gws, subscribe } = gateways(max);
  const early = [subscribe(0), subscribe(1)];
  const truth = new Set<string>();
  const check = async (what: string) => {
    await turn();
    await turn();
    const late = [subscribe(0), subscribe(1)];
    for (const [k, c] of [...early, ...late].entries()) {
      if (!right(c, truth)) t.fail(`${what}: client ${k} sees ${c.count ?? [...c.users].join(',')}, present: ${[...truth].join(',')}`);
    }
  };
  // Users on both gateways, up to twice the threshold, then away in another order.
  const users = Array.from({ length: 2 * max }, (_, i) => `u${i}`);
  for (const [i, u] of users.entries()) {
    gws[i % 2]!.add(u);
    truth.add(u);
    await check(`${u} joined (${truth.size} present)`);
  }
  const leaving = [...users.filter((_, i) => i % 2 === 1).reverse(), ...users.filter((_, i) => i % 2 === 0)];
  for (const u of leaving) {
    gws[Number(u.slice(1)) % 2]!.remove(u);
    truth.delete(u);
    await check(`${u} left (${truth.size} present)`);
  }
  t.equal(truth.size, 0);
  t.pass('checked after every join and leave');
});

t.test('hovering at the threshold costs about a frame per change, not a list each time', async (t) => {
  const max = 100;
  const { gws, subscribe } = gateways(max);
  for (let i = 0; i < max; i++) gws[0]!.add(`u${i}`);
  await turn();
  await turn();
  const c = subscribe(1);
  const before = c.frames;
  // 200 changes across the threshold: one user in, out, in, ...
  for (let i = 0; i < 100; i++) {
    gws[0]!.add('x');
    await turn();
    await turn();
    gws[0]!.remove('x');
    await turn();
    await turn();
  }
  const perChange = (c.frames - before) / 200;
  t.ok(perChange <= 2, `${perChange} frames per change`);
  t.ok(right(c, new Set(Array.from({ length: max }, (_, i) => `u${i}`))), 'and the view is right');
});

t.test("the SDK's channel model follows the same rules", async (t) => {
  const m = new ChannelModel('C1');
  m.presence('a', true);
  m.presence('b', true);
  t.same([...m.present].sort(), ['a', 'b']);
  t.equal(m.presentCount, undefined);
  m.presenceCount(1500);
  t.same([...m.present], [], 'a count replaces the list');
  t.equal(m.presentCount, 1500);
  m.presenceCount(480);
  m.presence('c', true);
  t.same([...m.present], ['c'], 'per-user frames rebuild it');
  t.equal(m.presentCount, undefined, 'and the count is gone');
});

t.test("a gateway's users stay while it says it is up, and leave once it goes quiet", async (t) => {
  let now = 1_000_000;
  const alive = new Map<string, number>();
  const sent: unknown[] = [];
  const p = new ChannelPresence('C1', {
    gateway: 'g0',
    maxUsers: 100,
    broadcast: (_c, e) => sent.push(e),
    notify: () => {},
    aliveAt: (g) => alive.get(g),
    now: () => now,
  });
  p.onRemote('g1', { joined: ['bob'] });
  p.add('alice');
  t.same(p.users.sort(), ['alice', 'bob']);
  // Beats without a refresh: nothing about this channel goes out, and g1's `alive` keeps bob.
  sent.length = 0;
  for (let i = 0; i < 10; i++) {
    now += 5000;
    alive.set('g1', now);
    p.beat(15_000, false);
  }
  t.same(sent, [], 'no per-channel message without a refresh');
  t.same(p.users.sort(), ['alice', 'bob'], 'bob stays: his gateway says it is up');
  p.beat(15_000, true);
  t.same(sent, [{ users: ['alice'] }], 'a refresh sends the whole set');
  // g1 goes quiet: three heartbeats later bob is gone.
  now += 10_000;
  p.beat(15_000, false);
  t.same(p.users.sort(), ['alice', 'bob'], 'not before three heartbeats');
  now += 6000;
  p.beat(15_000, false);
  t.same(p.users, ['alice'], 'bob left with his gateway');
});
