// `walcast start` as a user runs it: a child process on embedded PostgreSQL, stopped with
// SIGTERM (graceful) and SIGKILL (crash), restarted on the same data dir, keeping its data.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/db/embedded.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';
import { until } from './helpers/walcast.js';

const BIN = fileURLToPath(new URL('../bin/walcast-dev.js', import.meta.url));
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'walcast-proc-'));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

interface Started {
  child: ChildProcess;
  base: string;
  token: string;
  exited: Promise<number | null>;
}

async function start(): Promise<Started> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'start'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', WALCAST_DATA_DIR: dataDir, WALCAST_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const base = `http://127.0.0.1:${port}`;
  const started = Date.now();
  await until(async () => {
    if (child.exitCode !== null) throw new Error(`walcast start exited ${child.exitCode}: ${err}`);
    return (await fetch(`${base}/readyz`).then((r) => r.status).catch(() => 0)) === 200;
  }, 'readyz 200', 60_000);
  t.comment(`ready in ${Date.now() - started} ms`);
  const token = /demo token \(user "demo"\): (\S+)/.exec(out)?.[1];
  if (!token) throw new Error(`no demo token printed: ${out}`);
  return { child, base, token, exited };
}

t.test('start, post, SIGTERM, restart: data kept, seq continues, clean exit', async (t) => {
  const first = await start();
  const api = new Api(first.base, first.token);
  const { channel } = await api.call('conversations.create', { name: 'durable' });
  const ws = await WsClient.connect(`${first.base.replace('http', 'ws')}/v1/ws`, first.token);
  await ws.subscribe(channel.id);
  for (let i = 1; i <= 20; i++) await api.call('chat.postMessage', { channel: channel.id, text: `m${i}` });
  await ws.waitForSeq(channel.id, 20);
  first.child.kill('SIGTERM');
  t.equal(await first.exited, 0, 'graceful stop exits 0');
  await until(() => ws.closed, 'socket closed by the stop');
  t.equal(ws.closeCode, 1012, 'sockets drained with 1012 (service restart) and a retry hint');

  const second = await start();
  const api2 = new Api(second.base, second.token);
  const h = await api2.call('conversations.history', { channel: channel.id, limit: 100 });
  t.ok(contiguous(h.messages.map((m: { seq: number }) => m.seq), 1, 20), 'all 20 messages survived');
  const ws2 = await WsClient.connect(`${second.base.replace('http', 'ws')}/v1/ws`, second.token);
  t.teardown(() => ws2.close());
  await ws2.subscribe(channel.id, 15);
  const next = await api2.call('chat.postMessage', { channel: channel.id, text: 'after restart' });
  t.equal(next.message.seq, 21, 'seq continues');
  await ws2.waitForSeq(channel.id, 21);
  t.ok(contiguous(ws2.seqs(channel.id), 16, 21), 'resumed with since across the restart');
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0);
});

t.test('SIGKILL, restart: the orphaned database is taken back, nothing committed is lost', async (t) => {
  const first = await start();
  const api = new Api(first.base, first.token);
  const { channel } = await api.call('conversations.create', { name: 'crash' });
  for (let i = 1; i <= 10; i++) await api.call('chat.postMessage', { channel: channel.id, text: `c${i}` });
  first.child.kill('SIGKILL');
  await first.exited;
  const second = await start();
  const ws = await WsClient.connect(`${second.base.replace('http', 'ws')}/v1/ws`, second.token);
  t.teardown(() => ws.close());
  await ws.subscribe(channel.id, 0);
  await new Api(second.base, second.token).call('chat.postMessage', { channel: channel.id, text: 'c11' });
  await ws.waitForSeq(channel.id, 11);
  t.ok(contiguous(ws.seqs(channel.id), 1, 11));
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0);
});
