// walcast's command line. Configuration comes from the environment (see src/config.ts);
// a few flags override it.
import { parseArgs } from 'node:util';
import { resolveAdminToken, resolveSecret, Tokens } from '../auth/tokens.js';
import { ConfigError, configMarkdown, loadConfig, settings, type Config } from '../config.js';
import { startEmbeddedPostgres } from '../db/embedded.js';
import { migrate } from '../db/migrate.js';
import { PrerequisiteError } from '../db/prereqs.js';
import { createLogger, type Logger } from '../log.js';
import { serve, tokenOptions } from '../app/serve.js';
import { runWorker } from '../app/worker.js';
import { runSlotCommand } from './slot.js';

const USAGE = `walcast: real-time fan-out of committed PostgreSQL rows over WebSockets

Usage:
  walcast start                 everything in one process (embedded PostgreSQL without DATABASE_URL)
  walcast api | relay | gateway one role (needs DATABASE_URL and WALCAST_SECRET or WALCAST_JWKS_URL; REDIS_URL or REDIS_CLUSTER_NODES across processes)
  walcast migrate               apply migrations and the publication, idempotently
  walcast token <user> [--ttl <seconds>]   print an access token for <user> (at most WALCAST_TOKEN_MAX_LIFETIME_S)
  walcast revoke <user> [--url <base url>] end every token of <user> issued so far, on every process, now
  walcast slot <status|create|drop|reset|check> [--json] [--force]   replication slot administration
  walcast watch <channel> [--since <seq>] [--token <jwt>] [--url <ws url>]   print a channel's frames
  walcast config [--markdown]   the configuration this process would run with (secrets hidden), or its documentation

Flags: --port <n>  --host <addr>  --data-dir <dir>  (override PORT, HOST, WALCAST_DATA_DIR)
Configuration: environment variables, see docs/configuration.md or \`walcast config --markdown\`.`;

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      ttl: { type: 'string' },
      json: { type: 'boolean' },
      force: { type: 'boolean' },
      failover: { type: 'boolean' },
      since: { type: 'string' },
      token: { type: 'string' },
      url: { type: 'string' },
      'warn-bytes': { type: 'string' },
      'crit-bytes': { type: 'string' },
      'warn-seconds': { type: 'string' },
      'crit-seconds': { type: 'string' },
      markdown: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (!command || values.help || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return command || values.help ? 0 : 1;
  }
  const env = { ...process.env };
  if (values.port) env.PORT = values.port;
  if (values.host) env.HOST = values.host;
  if (values['data-dir']) env.WALCAST_DATA_DIR = values['data-dir'];
  const config = loadConfig(env);
  const log = createLogger(config.logLevel, { pid: process.pid });

  switch (command) {
    case 'start':
      return serve(config, log, ['api', 'relay', 'gateway'], true);
    case 'api':
    case 'relay':
    case 'gateway':
      return serve(config, log, [command], false);
    case 'worker':
      // Not for people: what a supervisor forks for each gateway worker (WALCAST_GATEWAY_WORKERS).
      return runWorker(config, log);
    case 'migrate':
      return withDatabase(config, log, async (url) => {
        await migrate(url);
        process.stdout.write('migrations applied\n');
        return 0;
      });
    case 'token': {
      const user = rest[0];
      if (!user) throw new UsageError('usage: walcast token <user> [--ttl <seconds>]');
      let ttl = values.ttl !== undefined ? Number(values.ttl) : Math.min(config.tokenTtlS, config.auth.maxLifetimeS);
      if (!Number.isInteger(ttl) || ttl <= 0) throw new UsageError('--ttl must be a whole number of seconds above 0: every token expires');
      const max = config.auth.maxLifetimeS;
      if (ttl > max) {
        process.stderr.write(`walcast: --ttl ${ttl} capped at WALCAST_TOKEN_MAX_LIFETIME_S (${max} s)\n`);
        ttl = max;
      }
      const tokens = new Tokens(await resolveSecret(config.secret, config.dataDir, true), tokenOptions(config));
      process.stdout.write((await tokens.sign(user, ttl)) + '\n');
      return 0;
    }
    case 'revoke': {
      const user = rest[0];
      if (!user) throw new UsageError('usage: walcast revoke <user> [--url <base url of a running walcast>]');
      return revoke(config, user, values.url);
    }
    case 'slot':
      return withDatabase(config, log, (url) =>
        runSlotCommand(url, config, rest, {
          json: !!values.json,
          force: !!values.force,
          failover: !!values.failover,
          warnBytes: values['warn-bytes'],
          critBytes: values['crit-bytes'],
          warnSeconds: values['warn-seconds'],
          critSeconds: values['crit-seconds'],
        }),
      );
    case 'watch': {
      const channel = rest[0];
      if (!channel) throw new UsageError('usage: walcast watch <channel> [--since <seq>] [--token <jwt>] [--url <ws url>]');
      const since = values.since === undefined ? undefined : Number(values.since);
      if (since !== undefined && !(Number.isSafeInteger(since) && since >= 0)) throw new UsageError('--since must be a non-negative integer');
      const token = values.token ?? (await new Tokens(await resolveSecret(config.secret, config.dataDir, false), tokenOptions(config)).sign('demo', Math.min(3600, config.auth.maxLifetimeS)));
      const url = values.url ?? `ws://127.0.0.1:${config.port}/v1/ws`;
      const { watch } = await import('./watch.js');
      return watch(url, token, channel, since);
    }
    case 'config':
      process.stdout.write(values.markdown ? configMarkdown() : describeConfig(config));
      return 0;
    default:
      throw new UsageError(`unknown command ${command}\n\n${USAGE}`);
  }
}

class UsageError extends Error {
  readonly code = 'usage';
}

/**
 * `walcast revoke <user>`: asks a running walcast (the ops listener if WALCAST_OPS_PORT is set,
 * else PORT on this machine, or --url) to revoke, with the admin token; that process stores the
 * revocation and tells every other one through the bus.
 */
async function revoke(config: Config, user: string, url: string | undefined): Promise<number> {
  const base = url ?? (config.auth.opsPort ? `http://${config.auth.opsHost}:${config.auth.opsPort}` : `http://127.0.0.1:${config.port}`);
  const admin = await resolveAdminToken(config.auth.adminToken, config.dataDir, false).catch(() => null);
  const res = await fetch(`${base.replace(/\/$/, '')}/admin/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(admin ? { authorization: `Bearer ${admin}` } : {}) },
    body: JSON.stringify({ user }),
  }).catch((e: unknown) => {
    throw new UsageError(`cannot reach walcast at ${base} (${(e as Error).message}); pass --url`);
  });
  const text = await res.text();
  process.stdout.write(text + '\n');
  return res.ok ? 0 : 1;
}

/** Runs `fn` against DATABASE_URL, or against the embedded database of the data dir. */
async function withDatabase(config: Config, log: Logger, fn: (url: string) => Promise<number>): Promise<number> {
  if (config.databaseUrl) return fn(config.databaseUrl);
  const db = await startEmbeddedPostgres(config.dataDir, log.child({ mod: 'postgres' }));
  try {
    return await fn(db.url);
  } finally {
    await db.stop();
  }
}

export async function run(argv: string[]): Promise<void> {
  try {
    const code = await main(argv);
    process.exit(code);
  } catch (e) {
    const known = e instanceof ConfigError || e instanceof PrerequisiteError || e instanceof UsageError || (e as { code?: string })?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION';
    process.stderr.write(`walcast: ${known ? (e as Error).message : (e as Error)?.stack ?? String(e)}\n`);
    process.exit(known ? 2 : 1);
  }
}

/** `walcast config`: each variable with the value this process would use; secrets and passwords hidden. */
function describeConfig(config: Config): string {
  const lines = settings().map(({ path, setting }) => {
    let v: unknown = config;
    for (const k of path) v = (v as Record<string, unknown>)[k];
    let shown = v === undefined ? '(unset)' : String(v);
    if (v !== undefined && /SECRET|ADMIN_TOKEN/.test(setting.env)) shown = '(set, hidden)';
    else if (typeof v === 'string') shown = shown.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
    return `${setting.env}=${shown}`;
  });
  return lines.join('\n') + '\n';
}
