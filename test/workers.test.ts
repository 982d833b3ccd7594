// One gateway instance as several worker processes (WALCAST_GATEWAY_WORKERS), run as a user runs
// it: `walcast start` with two workers sharing the port. Sockets spread over the workers and all
// get every message; a worker killed mid-stream is replaced and its clients resume without a
// gap; a second walcast on the same port is refused; SIGTERM drains every worker.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/db/embedded.js';
import { Api, contiguous } from './helpers/clients.js';
import { ResumingClient, startAll } from './helpers/resuming.js';
import { until } from './helpers/walcast.js';
import { track } from '../harness/process.js';
import { HARNESS_ADMIN_TOKEN, startTopology } from '../harness/topology.js';
import { Tokens } from '../src/auth/tokens.js';

const BIN = fileURLToPath(new URL('../bin/walcast-dev.js', import.meta.url));
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'walcast-workers-'));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const env = { ...process.env, PORT: String(port), HOST: '127.0.0.1', WALCAST_LOG_LEVEL: 'warn', WALCAST_GATEWAY_WORKERS: '2' };
const supervisor = track('start', port, spawn(process.execPath, [BIN, 'start'], { env: { ...env, WALCAST_DATA_DIR: dataDir }, stdio: ['ignore', 'pipe', 'pipe'] }));
t.teardown(() => supervisor.kill('SIGKILL'));
await until(async () => {
  if (supervisor.child.exitCode !== null) throw new Error(`walcast start exited ${supervisor.child.exitCode}: ${supervisor.output()}`);
  return /admin token .*: (\S+)/.test(supervisor.output()) && (await fetch(`${base}/readyz`).then((r) => r.status).catch(() => 0)) === 200;
}, 'the instance ready', 90_000);
const token = /demo token \(user "demo"\): (\S+)/.exec(supervisor.output())![1]!;
const admin = { authorization: `Bearer ${/admin token .*: (\S+)/.exec(supervisor.output())![1]}` };

/** The supervisor's children running `walcast worker`. */
function workerPids(): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === supervisor.child.pid && readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes('worker')) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Established client connections to the port held by `pid` (its socket inodes against /proc/net/tcp). */
function connectionsOf(pid: number): number {
  const established = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[1]!.endsWith(`:${hexPort}`) && f[3] === '01') established.add(f[9]!);
  }
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m && established.has(m[1]!)) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** A metric summed over its labels, from Prometheus text. */
const metricOf = (text: string, name: string) =>
  [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
const metric = async (name: string) => metricOf(await (await fetch(`${base}/metrics`, { headers: admin })).text(), name);

/** A new channel on the instance and `n` clients subscribed to it (named prefix0, prefix1, ...), stopped when the test ends. */
async function subscribers(t: Test, name: string, n: number, prefix: string, context?: () => Promise<string>) {
  const api = new Api(base, token);
  const { channel } = await api.call('conversations.create', { name });
  const clients = Array.from({ length: n }, (_, i) => new ResumingClient(`${prefix}${i}`, [`${base.replace('http', 'ws')}/v1/ws`], token, channel.id));
  t.teardown(() => Promise.all(clients.map((c) => c.stop())));
  await startAll(clients, context);
  return { api, channel, clients };
}

t.test('two workers share the port; every socket gets every message', async (t) => {
  t.equal(workerPids().length, 2, 'two worker processes');
  t.equal(await metric('walcast_gateway_workers'), 2, '/metrics: 2 workers up');
  const instanceState = async () => `worker restarts so far: ${await metric('walcast_gateway_worker_restarts_total')}; supervisor output: ${supervisor.output().slice(-2000)}`;
  const { api, channel, clients } = await subscribers(t, 'spread', 16, 'c', instanceState);
  await until(async () => (await metric('walcast_ws_connections')) === 16, 'the instance counts 16 sockets');
  const perWorker = workerPids().map(connectionsOf);
  // Plus the API client's keep-alive connections, which land on a worker too.
  t.ok(perWorker.reduce((a, b) => a + b, 0) >= 16, `the workers hold the 16 sockets between them (${perWorker.join(' + ')} connections)`);
  t.ok(perWorker.every((n) => n > 0), 'the kernel gave each worker some');
  for (let i = 1; i <= 20; i++) await api.call('chat.postMessage', { channel: channel.id, text: `m${i}` });
  await until(() => clients.every((c) => c.seqs.length >= 20), 'every socket got 20 messages', 30_000);
  for (const c of clients) t.ok(contiguous(c.seqs, 1, 20), `${c.name}: 1..20 once each, in order`);
  t.equal(await metric('walcast_gateway_worker_restarts_total'), 0, 'no worker restarted');
});

t.test('the ops page answers for the instance, whichever worker it reaches', async (t) => {
  await subscribers(t, 'ops-view', 8, 'o');
  type State = { role: string; relay: { state: string } | null; gateway: { connections: number }; workers?: { pid: number | null }[] };
  // A new connection for every read (fetch would keep one alive), so the kernel may give each to either worker.
  const read = () =>
    new Promise<State>((resolve, reject) => {
      http
        .get(`${base}/ops/state.json`, { headers: admin, agent: false }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as State) : reject(new Error(`${res.statusCode}: ${body}`))));
        })
        .on('error', reject);
    });
  await until(async () => (await read()).gateway.connections >= 8, 'the 8 sockets of both workers counted', 30_000);
  for (let i = 0; i < 6; i++) {
    const s = await read();
    t.equal(s.relay?.state, 'streaming', "the supervisor's relay, streaming");
    t.match(s.role, /relay/, `one role for the instance: ${s.role}`);
    t.ok(s.gateway.connections >= 8, `every worker's sockets: ${s.gateway.connections}`);
    t.same(s.workers?.map((w) => w.pid).sort(), workerPids().sort(), 'each worker listed');
  }
});

t.test('a worker killed mid-stream is replaced; its clients resume without a gap', async (t) => {
  const { api, channel, clients } = await subscribers(t, 'crash', 16, 'k');
  const restartsBefore = await metric('walcast_gateway_worker_restarts_total');
  const [victim] = workerPids();
  // A POST that meets the dying worker (its keep-alive connection reset, or a connection the
  // kernel had queued on its listener refused) is retried as any client would: with its
  // client_msg_id, so a retry of a post that was stored returns it instead of storing it twice.
  const post = async (i: number): Promise<void> => {
    const end = Date.now() + 30_000;
    for (;;) {
      try {
        await api.call('chat.postMessage', { channel: channel.id, text: `m${i}`, client_msg_id: `crash-${i}` });
        return;
      } catch (e) {
        if (Date.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  for (let i = 1; i <= 60; i++) {
    await post(i);
    if (i === 20) process.kill(victim!, 'SIGKILL');
  }
  await until(() => clients.every((c) => c.seqs.length >= 60 && Math.max(...c.seqs) === 60), 'every client at seq 60', 60_000);
  for (const c of clients) t.ok(contiguous(c.seqs, 1, 60), `${c.name}: 1..60 once each, in order`);
  const moved = clients.filter((c) => c.reconnects > 0).length;
  t.ok(moved > 0 && moved < clients.length, `the ${moved} clients of the killed worker reconnected, the others stayed`);
  await until(async () => workerPids().length === 2 && (await metric('walcast_gateway_workers')) === 2, 'a replacement worker up', 60_000);
  t.equal(await metric('walcast_gateway_worker_restarts_total'), restartsBefore + 1, 'the restart counted');
});

t.test('a second walcast on the same port is refused, with or without workers', async (t) => {
  for (const workers of ['1', '2']) {
    const other = mkdtempSync(path.join(os.tmpdir(), 'walcast-second-'));
    t.teardown(() => rmSync(other, { recursive: true, force: true }));
    const second = track('second', port, spawn(process.execPath, [BIN, 'start'], { env: { ...env, WALCAST_DATA_DIR: other, WALCAST_GATEWAY_WORKERS: workers }, stdio: ['ignore', 'pipe', 'pipe'] }));
    t.equal(await second.exited, 2, `WALCAST_GATEWAY_WORKERS=${workers}: exits 2`);
    t.match(second.output(), /cannot listen on 127\.0\.0\.1:\d+: the address is in use/, 'says why');
    t.notMatch(second.output(), /\n\s+at /, 'no stack trace');
  }
});

t.test('SIGTERM drains every worker, then the supervisor exits 0', async (t) => {
  const { clients } = await subscribers(t, 'drain', 8, 'd');
  const workers = workerPids();
  t.equal(await supervisor.kill('SIGTERM'), 0, 'exit 0');
  await until(() => clients.every((c) => c.closes.length >= 1), 'every socket closed', 30_000);
  const first = clients.map((c) => c.closes[0]);
  t.ok(first.every((c) => c === 1012), `closed with 1012 (service restart), to come back: ${[...new Set(first)].join(',')}`);
  t.same(workers.filter((pid) => { try { process.kill(pid, 0); return true; } catch { return false; } }), [], 'no worker left running');
  await Promise.all(clients.map((c) => c.stop()));
});

t.test('split roles: `walcast gateway` with two workers on Redis', async (t) => {
  const topo = await startTopology({ gateways: 1, env: { WALCAST_GATEWAY_WORKERS: '2' } });
  t.teardown(() => topo.close());
  const gw = topo.gateways[0]!;
  const scrape = async (name: string) => metricOf(await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${HARNESS_ADMIN_TOKEN}` } })).text(), name);
  await until(async () => (await scrape('walcast_gateway_workers')) === 2, 'both workers up (any worker answers for the instance)');
  const tokens = new Tokens(topo.secret);
  const api = new Api(topo.api.url, await tokens.sign('alice', 600));
  const { channel } = await api.call('conversations.create', { name: 'split' });
  const token = await tokens.sign('alice', 600);
  const subs = Array.from({ length: 10 }, (_, i) => new ResumingClient(`s${i}`, [`${gw.url.replace('http', 'ws')}/v1/ws`], token, channel.id));
  t.teardown(() => Promise.all(subs.map((c) => c.stop())));
  await startAll(subs);
  for (let i = 1; i <= 20; i++) await api.call('chat.postMessage', { channel: channel.id, text: `m${i}` });
  await until(() => subs.every((c) => c.seqs.length >= 20), 'every socket got 20 messages', 30_000);
  for (const c of subs) t.ok(contiguous(c.seqs, 1, 20), `${c.name}: 1..20 once each, in order`);
  t.equal(await scrape('walcast_ws_connections'), 10, 'the instance counts the sockets of both workers');
  t.equal(await gw.kill('SIGTERM'), 0, 'the instance stops cleanly');
});
