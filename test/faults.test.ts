// Scale-out under faults (seeds' Scenarios B and C): api, two relays, two gateways and
// redis-server as separate processes on a real PostgreSQL. Subscribers are spread over both
// gateways while a steady stream of changes of every kind runs (posts, edits, reactions,
// members joining); mid-stream one part dies. Every client must end with every frame of the
// channel's log exactly once, in order.
import t from 'tap';
import { HARNESS_ADMIN_TOKEN, startTopology, type Topology } from '../harness/topology.js';
import { Tokens } from '../src/auth/tokens.js';
import { ResumingClient, startAll } from './helpers/resuming.js';
import { contiguous } from './helpers/clients.js';

const topo: Topology = await startTopology({ relays: 2, gateways: 2 });
t.teardown(() => topo.close());
const tokens = new Tokens(topo.secret);
const token = await tokens.sign('alice', 3600);
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
const wsUrl = (port: number) => `ws://127.0.0.1:${port}/v1/ws`;

async function call(method: string, body: unknown): Promise<any> {
  const r = await fetch(`${topo.api.url}/v1/${method}`, { method: 'POST', headers, body: JSON.stringify(body) });
  const json = (await r.json()) as any;
  if (!json.ok) throw new Error(`${method}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/**
 * Makes `n` changes of every kind (posts, edits, reactions, members joining), each retried until
 * it went through (the API may be down). Posts are retried with their client_msg_id and
 * reactions are idempotent; an edit retried after a lost answer may be applied twice, which is
 * why the truth is the channel's last_seq, not `n`.
 */
async function changeSteadily(channel: string, n: number, everyMs: number, onDone: (i: number) => Promise<void> | void): Promise<number> {
  let attempts = 0;
  for (let i = 1; i <= n; i++) {
    const [method, body] =
      i > 1 && i % 7 === 0
        ? (['chat.update', { channel, seq: 1, text: `edit ${i}` }] as const)
        : i > 1 && i % 5 === 0
          ? (['reactions.add', { channel, seq: 1, name: `r${i}` }] as const)
          : i % 11 === 0
            ? (['conversations.invite', { channel, users: [`guest${i}`] }] as const)
            : (['chat.postMessage', { channel, text: `m${i}`, client_msg_id: `p-${i}` }] as const);
    for (;;) {
      attempts++;
      try {
        await call(method, body);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await onDone(i);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return attempts;
}

async function lastSeq(channel: string): Promise<number> {
  const r = await fetch(`${topo.api.url}/v1/conversations.replay?channel=${channel}&limit=1000`, { headers });
  const body = (await r.json()) as { changes: { seq: number }[] };
  return body.changes.at(-1)?.seq ?? 0;
}

async function activeRelay(): Promise<number> {
  for (let i = 0; i < topo.relays.length; i++) {
    const r = await fetch(`${topo.relays[i]!.url}/readyz`, { headers: { authorization: `Bearer ${HARNESS_ADMIN_TOKEN}` } }).then((r) => r.json() as Promise<any>).catch(() => null);
    if (r?.checks?.relay === true) return i;
  }
  return -1;
}

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const N = 150;
const report: string[] = [];

async function scenario(t: { ok(v: unknown, m: string): void; teardown(f: () => unknown): void }, name: string, fault: () => Promise<void>, after?: () => Promise<void>) {
  const { channel } = await call('conversations.create', { name });
  const [g1, g2] = topo.gateways.map((g) => wsUrl(g.port)) as [string, string];
  const clients = [
    new ResumingClient('c1@g1', [g1, g2], token, channel.id),
    new ResumingClient('c2@g1', [g1, g2], token, channel.id),
    new ResumingClient('c3@g2', [g2, g1], token, channel.id),
    new ResumingClient('c4@g2', [g2, g1], token, channel.id),
  ];
  await startAll(clients);
  t.teardown(() => Promise.all(clients.map((c) => c.stop())));
  const attempts = await changeSteadily(channel.id, N, 8, (i) => (i === 50 ? fault() : undefined));
  await after?.();
  const last = await lastSeq(channel.id);
  t.ok(last >= N, `the channel's log has ${last} changes for ${N} made`);
  await waitUntil(() => clients.every((c) => c.seqs.filter((s) => s === last).length > 0), `every client to reach seq ${last}`, 45_000);
  await new Promise((r) => setTimeout(r, 200)); // let any late duplicate show up
  for (const c of clients) {
    const unique = new Set(c.seqs).size;
    const lost = last - unique;
    const dup = c.seqs.length - unique;
    report.push(`${name}: ${N} changes of every kind (${attempts} attempts, ${last} seqs), ${c.name} received ${c.seqs.length}, lost ${lost}, duplicated ${dup}, reconnects ${c.reconnects}, longest stall ${c.longestStall().toFixed(0)} ms`);
    t.ok(contiguous(c.seqs, 1, last), `${c.name}: 1..${last} exactly once, in order (lost ${lost}, dup ${dup})`);
  }
}

t.test('active relay killed with SIGKILL: the standby takes over', async (t) => {
  await waitUntil(async () => (await activeRelay()) >= 0, 'a relay streaming');
  let killed = -1;
  await scenario(t, 'relay SIGKILL', async () => {
    killed = await activeRelay();
    await topo.relays[killed]!.kill('SIGKILL');
  });
  const now = await activeRelay();
  t.ok(now >= 0 && now !== killed, 'the other relay streams');
  topo.relays[killed] = await topo.relays[killed]!.restart(); // back as the standby
});

t.test('Redis stopped, then restarted: gateways re-sync from the database', async (t) => {
  await scenario(t, 'redis restart', async () => {
    await topo.redis.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    topo.redis = await topo.redis.restart();
  });
});

t.test('a gateway killed: its clients resume on the other with their last seq', async (t) => {
  await scenario(t, 'gateway SIGKILL', async () => {
    await topo.gateways[0]!.kill('SIGKILL');
  });
  topo.gateways[0] = await topo.gateways[0]!.restart();
});

t.test('the API killed and restarted: posts retried with client_msg_id, nothing lost or doubled', async (t) => {
  await scenario(t, 'api SIGKILL', async () => {
    await topo.api.kill('SIGKILL');
    void topo.api.restart().then((api) => (topo.api = api));
  });
});

t.test('every role stops gracefully on SIGTERM (exit 0)', async (t) => {
  for (const p of [...topo.gateways, topo.api, ...topo.relays]) t.equal(await p.kill('SIGTERM'), 0, `${p.name} exited 0`);
});

t.test('report', async (t) => {
  for (const line of report) t.comment(line);
  t.pass(`${report.length} client reports`);
});
