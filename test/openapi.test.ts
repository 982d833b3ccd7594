// GET /openapi.json: every route and path of the server is in it, generated from the schemas the
// server validates with; and every operation it documents exists on a running server, answering
// what it says (each method called for real, its body parsed with the documented schema, and the
// frames of the SSE stream and the WebSocket with the documented frame schema).
import t from 'tap';
import { z } from 'zod';
import { openApi } from '../src/api/openapi.js';
import { ErrorBody, RESPONSES, ServerFrameSchema } from '../src/api/responses.js';
import { routes } from '../src/api/routes.js';
import { API_METHODS, ERRORS, PATHS, type ApiMethod, type ErrorCode } from '../src/protocol.js';
import { startTestDatabase } from './helpers/postgres.js';
import { ADMIN_TOKEN, startWalcast } from './helpers/walcast.js';
import { Api, WsClient } from './helpers/clients.js';
import { SseClient } from './helpers/sse.js';

type Json = Record<string, any>;
const doc = openApi() as Json;
const VERBS = ['get', 'post', 'put', 'delete', 'patch', 'options', 'head'];
const operations = Object.entries(doc.paths as Json).flatMap(([path, item]) =>
  Object.entries(item as Json)
    .filter(([verb]) => VERBS.includes(verb))
    .map(([verb, op]) => ({ path, verb: verb.toUpperCase(), op: op as Json })),
);

t.test('the document: OpenAPI 3.1, every route, every path, references that resolve', async (t) => {
  t.equal(doc.openapi, '3.1.0');
  t.match(doc.info, { title: 'walcast', version: String });
  for (const [m, verb] of Object.entries(API_METHODS)) {
    const item = doc.paths[`/v1/${m}`] as Json | undefined;
    t.ok(item?.[verb.toLowerCase()], `${verb} /v1/${m}`);
    t.same(Object.keys(item ?? {}), [verb.toLowerCase()], `${m}: only its verb`);
  }
  t.same(Object.keys(routes).sort(), Object.keys(API_METHODS).sort(), 'the routes are the protocol\'s methods');
  for (const [name, path] of Object.entries(PATHS)) {
    if (name === 'api') continue;
    const p = name === 'admin' ? `${path}revoke` : name === 'pageAssets' ? `${path}{file}` : path;
    t.ok(doc.paths[p], `PATHS.${name} (${p}) is described`);
  }
  const ids = operations.map((o) => o.op.operationId);
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
  t.ok(refs.length > 20);
  for (const r of new Set(refs)) {
    const id = /#\/components\/schemas\/([^"]+)/.exec(r)?.[1];
    t.ok(id && doc.components.schemas[id], `${r} resolves`);
  }
  t.notOk(JSON.stringify(doc.components.schemas).includes('"$schema"'), 'components carry no $schema');
});

t.test('requests are described by the very schemas that validate them', async (t) => {
  for (const m of Object.keys(API_METHODS) as ApiMethod[]) {
    const own = z.toJSONSchema(routes[m].schema, { io: 'input', unrepresentable: 'any' }) as Json;
    delete own.$schema;
    const described = doc.components.schemas[`${m}.request`];
    t.same(described, own, `${m}: the route's zod schema`);
    if (API_METHODS[m] === 'GET') {
      const params = doc.paths[`/v1/${m}`].get.parameters as Json[];
      t.same(params.map((p) => p.name).sort(), Object.keys(own.properties).sort(), `${m}: one query parameter per field`);
      t.same(params.filter((p) => p.required).map((p) => p.name).sort(), [...(own.required ?? [])].sort(), `${m}: the required ones`);
    } else {
      t.same(doc.paths[`/v1/${m}`].post.requestBody.content['application/json'].schema, { $ref: `#/components/schemas/${m}.request` });
    }
  }
});

t.test('error responses come from the ERRORS catalogue, each under its status', async (t) => {
  for (const { path, verb, op } of operations) {
    for (const [status, r] of Object.entries(op.responses as Json)) {
      const codes = (r as Json).content?.['application/json']?.schema?.allOf?.[1]?.properties?.error?.enum as ErrorCode[] | undefined;
      if (!codes) continue;
      for (const c of codes) t.equal(ERRORS[c]?.status, Number(status), `${verb} ${path}: ${c} under ${status}`);
    }
  }
  const apiCodes = (Object.keys(ERRORS) as ErrorCode[]).filter((c) => ERRORS[c].on !== 'ws' && c !== 'unknown_method' && c !== 'method_not_allowed' && c !== 'invalid_json' && c !== 'payload_too_large');
  for (const m of Object.keys(API_METHODS)) {
    const op = doc.paths[`/v1/${m}`][API_METHODS[m as ApiMethod].toLowerCase()];
    const listed = Object.values(op.responses as Json).flatMap((r) => (r as Json).content?.['application/json']?.schema?.allOf?.[1]?.properties?.error?.enum ?? []);
    for (const c of apiCodes) t.ok(listed.includes(c), `${m} lists ${c}`);
  }
});

t.test('every documented operation exists on a running server and answers as documented', async (t) => {
  const db = await startTestDatabase(t);
  // The pages on, as `walcast start` on the embedded database has them (dev tokens stay off: that
  // one is documented as 404 outside the embedded start).
  const w = await startWalcast(t, db.url, { env: { WALCAST_SLOT: 'openapi' }, pages: { demo: true, devTokens: false } });
  t.same(await (await fetch(`${w.base}${PATHS.openapi}`)).json(), doc, 'GET /openapi.json serves it, without a token');

  // Without a token every documented operation is either public or refused for the token,
  // never unknown (404 unknown_method) or refused for its verb (405).
  for (const { path, verb, op } of operations) {
    if (path === PATHS.ws) continue; // an upgrade, below
    // (The stream's own arguments are checked first: give it a well-formed channel.)
    const query = path === PATHS.sse ? '?channel=C000000000001' : '';
    if (path === PATHS.devToken) {
      t.equal((await fetch(`${w.base}${path}`, { method: verb })).status, 404, `${verb} ${path}: 404 as documented, without the embedded database`);
      continue;
    }
    const res = await fetch(`${w.base}${path.replace('{file}', 'demo.js')}${query}`, { method: verb, ...(verb === 'POST' ? { body: '{}', headers: { 'content-type': 'application/json' } } : {}) });
    const body = await res.text();
    t.not(res.status, 404, `${verb} ${path} exists`);
    t.not(res.status, 405, `${verb} ${path} takes ${verb}`);
    const publicOp = Array.isArray(op.security) && op.security.length === 0;
    if (publicOp) t.ok(res.status === 200 || res.status === 503, `${verb} ${path} is public (${res.status})`);
    else {
      t.equal(res.status, 401, `${verb} ${path} needs a token`);
      t.ok(ErrorBody.safeParse(JSON.parse(body)).success, `${verb} ${path}: the documented error body`);
    }
  }

  // Each method once, for real: every success body parses with the documented response schema.
  const alice = new Api(w.base, await w.token('alice'));
  const bob = new Api(w.base, await w.token('bob'));
  const ch = (await alice.call('conversations.create', { name: 'doc' })).channel.id as string;
  const calls: [ApiMethod, Api, Json][] = [
    ['conversations.create', alice, { name: 'doc-2', is_private: true }],
    ['conversations.join', bob, { channel: ch }],
    ['conversations.invite', alice, { channel: ch, users: ['carol'] }],
    ['chat.postMessage', alice, { channel: ch, text: 'hello', client_msg_id: 'k1' }],
    ['chat.postMessage', bob, { channel: ch, text: 'reply', reply_to: 3 }],
    ['chat.update', alice, { channel: ch, seq: 3, text: 'hello, edited' }],
    ['reactions.add', bob, { channel: ch, seq: 3, name: 'wave' }],
    ['reactions.remove', bob, { channel: ch, seq: 3, name: 'wave' }],
    ['chat.delete', bob, { channel: ch, seq: 4 }],
    ['chat.getMessage', alice, { channel: ch, seq: 3 }],
    ['conversations.history', alice, { channel: ch, limit: 10 }],
    ['conversations.replay', alice, { channel: ch }],
    ['conversations.presence', alice, { channel: ch }],
    ['conversations.kick', alice, { channel: ch, user: 'carol' }],
    ['conversations.leave', bob, { channel: ch }],
  ];
  const called = new Set<string>();
  for (const [m, api, args] of calls) {
    const r = API_METHODS[m] === 'GET' ? await api.get(m, args) : await api.post(m, args);
    t.equal(r.status, 200, `${m}: 200`);
    const parsed = RESPONSES[m].safeParse(r.body);
    t.ok(parsed.success, `${m}: the documented response${parsed.success ? '' : `: ${parsed.error.message}`}`);
    called.add(m);
  }
  t.same([...called].sort(), Object.keys(API_METHODS).sort(), 'every method was called');
  const refused = await alice.post('chat.postMessage', { channel: ch });
  t.equal(refused.status, 400);
  t.ok(ErrorBody.safeParse(refused.body).success, 'a refusal: the documented error body');

  // The realtime operations: every frame parses with the documented frame schema.
  const token = await w.token('alice');
  const sse = await SseClient.connect(w.base, { channels: [ch], since: [0], token });
  t.teardown(() => sse.abort());
  const ws = await WsClient.connect(w.ws, token);
  t.teardown(() => ws.close());
  await ws.subscribe(ch, 0);
  await sse.next((f) => f.type === 'member_left' && f.user === 'bob', 'the last change', 15_000, 0);
  await ws.next((f) => f.type === 'member_left' && f.user === 'bob', 'the last change', 15_000, 0);
  for (const [what, frames] of [
    ['SSE', sse.frames],
    ['WebSocket', ws.frames],
  ] as const) {
    t.ok(frames.length >= 8, `${what}: ${frames.length} frames`);
    for (const f of frames) {
      const p = ServerFrameSchema.safeParse(f);
      t.ok(p.success, `${what} ${f.type}: the documented frame${p.success ? '' : `: ${p.error.message}`}`);
    }
  }
  const metrics = await fetch(`${w.base}${PATHS.metrics}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  t.equal(metrics.status, 200, 'GET /metrics with the admin token');
});
