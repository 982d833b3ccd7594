// docs/protocol.md is the contract users read; src/protocol.ts is the one the code speaks. This
// test fails when a frame type, close code, error code or API method exists in one and not in
// the other, or when they disagree on an error's status, whether it is worth retrying, or
// whether a close code means "reconnect".
import { readFileSync } from 'node:fs';
import t from 'tap';
import { routes } from '../src/api/routes.js';
import { CLIENT_FRAME_TYPES, CLOSE_CODES, ERRORS, PATHS, SERVER_FRAME_TYPES, SSE_CLOSE_EVENT, sseEventId } from '../src/protocol.js';

const doc = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8');

/** The rows of the first table after `heading`, as arrays of cells. */
function table(heading: string): string[][] {
  const at = doc.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`docs/protocol.md has no heading "${heading}"`);
  const lines = doc.slice(at + heading.length + 2).split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    rows.push(l.slice(1, -1).split(' | ').map((c) => c.trim()));
  }
  return rows;
}

const unquote = (cell: string) => cell.replace(/^`|`$/g, '');

t.test('client frames', async (t) => {
  t.same(table('### Client → server').map((r) => unquote(r[0]!)).sort(), [...CLIENT_FRAME_TYPES].sort());
});

t.test('server frames', async (t) => {
  t.same(table('### Server → client').map((r) => unquote(r[0]!)).sort(), [...SERVER_FRAME_TYPES].sort());
});

t.test('close codes, their names and whether to reconnect', async (t) => {
  const rows = table('## Close codes');
  t.same(rows.map((r) => Number(r[0])).sort(), Object.keys(CLOSE_CODES).map(Number).sort(), 'the same codes');
  for (const [code, name, reconnect] of rows) {
    const spec = CLOSE_CODES[Number(code)];
    t.equal(unquote(name!), spec?.name, `${code}: name`);
    t.equal(reconnect, spec?.reconnect ? 'yes' : 'no', `${code}: reconnect`);
  }
});

t.test('error codes, their HTTP status and whether to retry', async (t) => {
  const rows = table('## Error codes');
  t.same(rows.map((r) => unquote(r[0]!)).sort(), Object.keys(ERRORS).sort(), 'the same codes');
  for (const [code, status, retry, where] of rows) {
    const spec = ERRORS[unquote(code!) as keyof typeof ERRORS];
    t.equal(Number(status), spec?.status, `${code}: status`);
    t.equal(retry, spec?.temporary ? 'yes' : 'no', `${code}: retry`);
    t.equal(where, { http: 'HTTP', ws: 'WebSocket', both: 'HTTP, WebSocket' }[spec!.on], `${code}: where`);
  }
});

t.test('HTTP API methods and their verbs', async (t) => {
  const rows = table('## HTTP API');
  t.same(rows.map((r) => unquote(r[0]!)).sort(), Object.keys(routes).sort(), 'the same methods');
  for (const [method, verb] of rows) t.equal(verb, routes[unquote(method!)]?.method, `${method}: verb`);
});

t.test('the SSE section: path, ids, resume, the last event, what it does not carry', async (t) => {
  const at = doc.indexOf('\n## Server-Sent Events (SSE)\n');
  t.ok(at >= 0, 'docs/protocol.md has the SSE section');
  const section = doc.slice(at, doc.indexOf('\n## ', at + 5));
  t.ok(section.includes(`GET ${PATHS.sse}?channel=`), 'the URL');
  t.ok(section.includes('`<channel>:<seq>`') && sseEventId('C000000000001', 7) === 'C000000000001:7', 'the event id format, as sseEventId writes it');
  t.ok(section.includes('Last-Event-ID'), 'resume');
  t.ok(section.includes(`named \`${SSE_CLOSE_EVENT}\``), 'the last event');
  for (const code of [1000, 1012, 1013, 4001, 4003]) t.ok(section.includes(String(code)) && CLOSE_CODES[code], `close code ${code}`);
  for (const setting of ['WALCAST_SSE_HEARTBEAT_MS', 'WALCAST_WS_MAX_BACKPRESSURE', 'WALCAST_MAX_SUBSCRIPTIONS', 'WALCAST_MAX_CONNECTIONS_PER_USER']) t.ok(section.includes(setting), setting);
  t.ok(section.includes('**Not over SSE.**'), 'what is not available');
  t.ok(doc.includes(PATHS.openapi), 'and /openapi.json is mentioned');
});

t.test('every path the server answers is in the table of paths', async (t) => {
  const cells = table('### Every path').map((r) => unquote(r[0]!));
  // Prefixes (`/v1/`, `/admin/`, `/web/`) are documented by what goes under them.
  for (const [name, path] of Object.entries(PATHS)) {
    t.ok(cells.some((c) => c === path || (path.endsWith('/') && path !== '/' && c.startsWith(path))), `${name}: ${path}`);
  }
  t.equal(cells.length, new Set(cells).size, 'each once');
});
