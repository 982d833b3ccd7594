// The multi-process topology of docker-compose.yml, on one machine without Docker: PostgreSQL
// (embedded, or DATABASE_URL), redis-server from PATH, a one-shot migrate, one api, N relays,
// M gateways, and a small proxy that routes /v1/ws to the gateways (round robin) and the rest
// to the api, as nginx does in compose. Used by `npm run cluster` and by the fault tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { createLogger } from '../src/log.js';

const BIN = fileURLToPath(new URL('../bin/walcast.js', import.meta.url));

export interface Proc {
  name: string;
  port: number;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process ended. */
  exited: Promise<number | string | null>;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<number | string | null>;
}

export interface RoleProc extends Proc {
  url: string;
  restart(): Promise<RoleProc>;
}

export interface RedisProc extends Proc {
  url: string;
  restart(): Promise<RedisProc>;
}

export interface Topology {
  databaseUrl: string;
  secret: string;
  redis: RedisProc;
  api: RoleProc;
  relays: RoleProc[];
  gateways: RoleProc[];
  /** The proxy's base URL: /v1/ws goes to a gateway, everything else to the api. */
  url: string;
  proxyPort: number;
  close(): Promise<void>;
}

export interface TopologyOptions {
  relays?: number;
  gateways?: number;
  databaseUrl?: string;
  env?: Record<string, string>;
  logLevel?: string;
  /** Ports to use for the proxy (0: any free port). */
  proxyPort?: number;
}

/** Wraps a child process: its output, its exit, and an idempotent kill. */
export function track(name: string, port: number, child: ChildProcess): Proc {
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  return {
    name,
    port,
    child,
    exited,
    output: () => out,
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export async function startRedis(port?: number): Promise<RedisProc> {
  const p = port ?? (await freePort());
  let child: ChildProcess;
  try {
    child = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error('redis-server not found on PATH: install the Debian package redis-server', { cause: e });
  }
  const proc = track('redis', p, child);
  await new Promise<void>((resolve, reject) => {
    child.once('error', () => reject(new Error('redis-server not found on PATH: install the Debian package redis-server (apt-get install redis-server)')));
    const check = () => (/Ready to accept connections/.test(proc.output()) ? resolve() : child.exitCode !== null ? reject(new Error(proc.output())) : setTimeout(check, 20));
    check();
  });
  return { ...proc, url: `redis://127.0.0.1:${p}`, restart: () => startRedis(p) };
}

export async function startRole(role: 'api' | 'relay' | 'gateway', env: Record<string, string>, port?: number, index = 0): Promise<RoleProc> {
  const p = port ?? (await freePort());
  const child = spawn(process.execPath, [BIN, role], {
    env: { ...process.env, ...env, PORT: String(p), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = track(`${role}${index ? `-${index}` : ''}`, p, child);
  const url = `http://127.0.0.1:${p}`;
  // A standby relay is alive but not ready (it does not stream): wait for liveness only.
  await waitUntilUp(proc, url + (role === 'relay' ? '/healthz' : '/readyz'));
  return { ...proc, url, restart: () => startRole(role, env, p, index) };
}

/** Polls `url` until it answers 200; fails if the process exits first or after ~30 s. */
export async function waitUntilUp(proc: Proc, url: string): Promise<void> {
  for (let i = 0; ; i++) {
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited ${proc.child.exitCode}:\n${proc.output()}`);
    if ((await fetch(url).then((r) => r.status).catch(() => 0)) === 200) return;
    if (i > 600) throw new Error(`${proc.name} did not come up:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startTopology(o: TopologyOptions = {}): Promise<Topology> {
  const log = createLogger('error');
  let embedded: EmbeddedDatabase | null = null;
  let dir: string | null = null;
  let databaseUrl = o.databaseUrl;
  if (!databaseUrl) {
    dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-cluster-'));
    embedded = await startEmbeddedPostgres(dir, log);
    databaseUrl = embedded.url;
  }
  await migrate(databaseUrl);
  const redis = await startRedis();
  const secret = 'cluster-secret-' + Math.random().toString(36).slice(2).padEnd(16, 'x');
  const env = {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    WALCAST_SECRET: secret,
    WALCAST_LOG_LEVEL: o.logLevel ?? 'warn',
    WALCAST_HEARTBEAT_MS: '1000',
    ...o.env,
  };
  const api = await startRole('api', env);
  const relays: RoleProc[] = [];
  for (let i = 0; i < (o.relays ?? 2); i++) relays.push(await startRole('relay', env, undefined, i + 1));
  const gateways: RoleProc[] = [];
  for (let i = 0; i < (o.gateways ?? 3); i++) gateways.push(await startRole('gateway', env, undefined, i + 1));

  const topo: Topology = {
    databaseUrl,
    secret,
    redis,
    api,
    relays,
    gateways,
    url: '',
    proxyPort: 0,
    close: async () => {
      proxy.close();
      await Promise.all([topo.api, ...topo.relays, ...topo.gateways].map((p) => p.kill('SIGTERM')));
      await topo.redis.kill('SIGTERM');
      await embedded?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
  const proxy = startProxy(() => topo.api.port, () => topo.gateways.map((g) => g.port));
  await new Promise<void>((r) => proxy.listen(o.proxyPort ?? 0, '127.0.0.1', r));
  topo.proxyPort = (proxy.address() as net.AddressInfo).port;
  topo.url = `http://127.0.0.1:${topo.proxyPort}`;
  return topo;
}

/** HTTP to the api, WebSocket upgrades to the next live gateway: the role nginx plays in compose. */
function startProxy(apiPort: () => number, gatewayPorts: () => number[]): http.Server {
  let next = 0;
  const server = http.createServer((req, res) => {
    const upstream = http.request({ host: '127.0.0.1', port: apiPort(), path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end('{"ok":false,"error":"unavailable"}');
    });
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket, head) => {
    const ports = gatewayPorts();
    const tryPort = (attempt: number) => {
      if (attempt >= ports.length) return socket.destroy();
      const port = ports[next++ % ports.length]!;
      const up = net.connect(port, '127.0.0.1', () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`, ...Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`), '', ''];
        up.write(lines.join('\r\n'));
        if (head.length) up.write(head);
        up.pipe(socket);
        socket.pipe(up);
      });
      up.once('error', () => (up.bytesWritten === 0 ? tryPort(attempt + 1) : socket.destroy()));
      socket.once('error', () => up.destroy());
      socket.once('close', () => up.destroy());
      up.once('close', () => socket.destroy());
    };
    tryPort(0);
  });
  return server;
}
