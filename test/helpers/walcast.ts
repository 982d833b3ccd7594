// Runs walcast in-process on a test database and gives tests typed HTTP and WebSocket clients.
import { startNode, type Role, type WalcastNode } from '../../src/app/node.js';
import { Tokens } from '../../src/auth/tokens.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { metric, scrape } from '../../harness/load/metrics.js';

export const SECRET = 'test-secret-test-secret-test-secret';
/** WALCAST_ADMIN_TOKEN of every test node: /metrics, /readyz details, /admin/*. */
export const ADMIN_TOKEN = 'test-admin-token-test-admin-token';
export const adminHeaders = { authorization: `Bearer ${ADMIN_TOKEN}` };

export interface Running {
  node: WalcastNode;
  config: Config;
  base: string;
  ws: string;
  token(user: string, ttl?: number): Promise<string>;
  tokens: Tokens;
  /** A metric summed over its labels, as GET /metrics serves it (the relay thread's included); undefined when it has no sample. */
  metric(name: string): Promise<number | undefined>;
  close(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function startWalcast(
  t: Teardown,
  databaseUrl: string,
  opts: { env?: Record<string, string>; roles?: Role[]; waitForRelay?: boolean; pages?: { demo: boolean; devTokens: boolean } } = {},
): Promise<Running> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    WALCAST_HEARTBEAT_MS: '1000',
    WALCAST_ADMIN_TOKEN: ADMIN_TOKEN,
    // Tests open many sockets per user and send every request from 127.0.0.1; the tests of
    // these limits set them.
    WALCAST_MAX_CONNECTIONS_PER_USER: '0',
    WALCAST_AUTH_FAIL_BURST_IP: '1000000',
    // Invites of users who never signed in are allowed here (tests invite users before they
    // act); test/change-log.test.ts checks the default, which refuses them.
    WALCAST_INVITE_UNKNOWN_USERS: '1',
    ...opts.env,
  });
  const logLevel = process.env.TEST_LOG === '1' ? 'debug' : 'error';
  const log = createLogger(logLevel);
  const node = await startNode({ config, databaseUrl, secret: SECRET, roles: opts.roles ?? ['api', 'relay', 'gateway'], log, logLevel, pages: opts.pages });
  const tokens = new Tokens(SECRET, { maxLifetimeS: config.auth.maxLifetimeS, issuer: config.auth.jwtIssuer, audience: config.auth.jwtAudience });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await node.close();
  };
  t.teardown(close);
  // As a client would wait for /readyz: the relay streams (in its thread, it takes a moment to start).
  if (opts.waitForRelay !== false && node.relay) await until(() => node.relay!.isStreaming(), 'the relay streaming', 60_000);
  const base = `http://127.0.0.1:${node.port}`;
  return {
    node,
    config,
    base,
    ws: `ws://127.0.0.1:${node.port}/v1/ws`,
    token: (u, ttl = 3600) => tokens.sign(u, ttl),
    tokens,
    metric: async (name) => {
      const samples = await scrape(base, ADMIN_TOKEN);
      return Object.keys(samples).some((k) => k === name || k.startsWith(`${name}{`)) ? metric(samples, name) : undefined;
    },
    close,
  };
}

/** Waits until `cond` holds, polling; fails with `what` after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
