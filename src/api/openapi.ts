// GET /openapi.json: the HTTP API as OpenAPI 3.1, generated from what the server runs: each
// method's request schema is the zod schema that validates it (routes.ts), its verb comes from
// API_METHODS, the error responses from ERRORS, the success bodies and frames from responses.ts;
// the SSE stream and the WebSocket upgrade are described beside them. Built once per process.
import { createRequire } from 'node:module';
import { z } from 'zod';
import { send, track } from '../http/respond.js';
import type { TemplatedApp } from '../http/uws.js';
import { API_METHODS, CLOSE_CODES, ERRORS, PATHS, SSE_CLOSE_EVENT, type ApiMethod, type ErrorCode } from '../protocol.js';
import { ChangeFrameSchema, Channel, ErrorBody, Message, RESPONSES, ServerFrameSchema } from './responses.js';
import { routes } from './routes.js';
import { devToken } from './schemas.js';

type Json = Record<string, unknown>;

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/** The error responses of these codes, one per HTTP status, each listing its codes. */
function errorResponses(codes: readonly ErrorCode[]): Record<string, Json> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const c of codes) {
    const s = ERRORS[c].status;
    byStatus.set(s, [...(byStatus.get(s) ?? []), c]);
  }
  const out: Record<string, Json> = {};
  for (const [status, cs] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = {
      description: cs.map((c) => `\`${c}\`${ERRORS[c].temporary ? ' (retry)' : ''}: ${ERRORS[c].description}`).join('; '),
      ...(cs.some((c) => ERRORS[c].temporary) ? { headers: { 'Retry-After': { description: 'seconds, rounded up (also retry_after_ms in the body)', schema: { type: 'integer' } } } } : {}),
      content: { 'application/json': { schema: { allOf: [ref('Error'), { properties: { error: { enum: cs } } }] } } },
    };
  }
  return out;
}

const codes = (where: (spec: (typeof ERRORS)[ErrorCode]) => boolean) => (Object.keys(ERRORS) as ErrorCode[]).filter((c) => where(ERRORS[c]));

/** Errors any API method may answer (which ones a given method can meet is in docs/protocol.md). */
const API_ERRORS = codes((s) => s.on !== 'ws').filter((c) => c !== 'unknown_method' && c !== 'method_not_allowed');
const GET_ERRORS = API_ERRORS.filter((c) => c !== 'payload_too_large' && c !== 'invalid_json');
const SSE_ERRORS: ErrorCode[] = [
  'invalid_arguments', 'too_many_subscriptions', 'not_authed', 'invalid_auth', 'token_expired', 'origin_not_allowed', 'not_in_channel',
  'channel_not_found', 'method_not_allowed', 'rate_limited', 'too_many_connections', 'internal_error', 'unavailable',
];
const WS_ERRORS: ErrorCode[] = ['invalid_auth', 'token_expired', 'origin_not_allowed', 'rate_limited', 'too_many_connections', 'internal_error', 'unavailable'];

const closeCodes = Object.entries(CLOSE_CODES)
  .map(([code, c]) => `${code} \`${c.name}\` (${c.reconnect ? 'reconnect' : 'do not reconnect'})`)
  .join(', ');

function document(): Json {
  const registry = z.registry<{ id: string }>();
  for (const s of [Channel, Message, ChangeFrameSchema, ServerFrameSchema, ErrorBody]) registry.add(s, { id: (s.meta() as { id: string }).id });
  const names = Object.keys(API_METHODS) as ApiMethod[];
  for (const m of names) {
    registry.add(routes[m].schema, { id: `${m}.request` });
    registry.add(RESPONSES[m], { id: `${m}.response` });
  }
  // Requests as clients send them (before transforms and defaults), responses as they arrive.
  const inputs = z.toJSONSchema(registry, { io: 'input', uri: (id) => `#/components/schemas/${id}`, unrepresentable: 'any' }).schemas;
  const outputs = z.toJSONSchema(registry, { io: 'output', uri: (id) => `#/components/schemas/${id}`, unrepresentable: 'any' }).schemas;
  const schemas: Record<string, Json> = {};
  for (const [id, s] of Object.entries(outputs)) schemas[id] = bare(id.endsWith('.request') ? inputs[id]! : s);

  const paths: Record<string, Json> = {};
  for (const m of names) {
    const verb = API_METHODS[m];
    const request = schemas[`${m}.request`] as { properties?: Record<string, Json>; required?: string[] };
    const op: Json = {
      operationId: m,
      tags: ['api'],
      summary: m,
      responses: {
        200: { description: 'done', content: { 'application/json': { schema: ref(`${m}.response`) } } },
        ...errorResponses(verb === 'GET' ? GET_ERRORS : API_ERRORS),
      },
    };
    if (verb === 'GET') {
      op.parameters = Object.entries(request.properties ?? {}).map(([name, schema]) => ({
        name,
        in: 'query',
        required: request.required?.includes(name) ?? false,
        schema,
      }));
    } else {
      op.requestBody = { required: true, content: { 'application/json': { schema: ref(`${m}.request`) } } };
    }
    paths[`${PATHS.api}${m}`] = { [verb.toLowerCase()]: op };
  }

  paths[PATHS.sse] = {
    get: {
      operationId: 'sse',
      tags: ['realtime'],
      summary: 'Server-Sent Events: the frames of a WebSocket subscription, one way',
      description: [
        'Every event is one frame (`data`: a ServerFrame as JSON), in the same order and with the same guarantees as on a WebSocket.',
        'Frames that carry a seq have the event id `<channel>:<seq>`. Resume with `Last-Event-ID` (a browser EventSource sends it by itself), which wins over `since` for its channel.',
        `The stream ends with an event \`${SSE_CLOSE_EVENT}\` whose data is \`{"code", "reason"}\`, a WebSocket close code: ${closeCodes}. A drain also sets the \`retry\` field to its hint.`,
        'Comment lines are heartbeats. Nothing goes from the client to the server: no typing, no auth frame (reconnect with a fresh token instead).',
        'Every refusal comes before the stream starts, as a JSON error; a refused channel is named in `channel`. See docs/protocol.md, "SSE".',
      ].join('\n\n'),
      security: [{ bearer: [] }, { token: [] }],
      parameters: [
        { name: 'channel', in: 'query', required: false, description: 'a channel to subscribe; repeat it for several (at most WALCAST_MAX_SUBSCRIPTIONS); none: heartbeats and token_expiring only', schema: { type: 'array', items: { type: 'string', pattern: '^C[0-9A-Z]{12}$' } }, style: 'form', explode: true },
        { name: 'since', in: 'query', required: false, description: 'deliver what follows this seq: a bare number for every channel, or `<channel>:<seq>` for one; without it, live frames only', schema: { type: 'array', items: { type: 'string', pattern: '^(\\d{1,15}|C[0-9A-Z]{12}:\\d{1,15})$' } }, style: 'form', explode: true },
        { name: 'presence', in: 'query', required: false, description: 'also deliver presence_joined / presence_left / presence_count', schema: { type: 'string', enum: ['1', '0', 'true', 'false'] } },
        { name: 'Last-Event-ID', in: 'header', required: false, description: 'the id of the last event received: `<channel>:<seq>`', schema: { type: 'string', pattern: '^C[0-9A-Z]{12}:\\d{1,15}$' } },
      ],
      responses: {
        200: {
          description: 'The event stream (one ServerFrame per event, see components.schemas.ServerFrame).',
          content: { 'text/event-stream': { schema: { type: 'string' } } },
        },
        ...errorResponses(SSE_ERRORS),
      },
    },
  };
  paths[PATHS.ws] = {
    get: {
      operationId: 'websocket',
      tags: ['realtime'],
      summary: 'WebSocket upgrade: subscribe, unsubscribe, typing, ping and auth frames; ServerFrames back',
      description: `A WebSocket (RFC 6455). The token goes in \`?token=\`, the Authorization header, or an \`auth\` frame sent first (within 5 s). Close codes: ${closeCodes}. See docs/protocol.md.`,
      security: [{ bearer: [] }, { token: [] }, {}],
      responses: { 101: { description: 'Switching Protocols: the socket is open' }, ...errorResponses(WS_ERRORS) },
    },
  };
  paths[PATHS.openapi] = {
    get: { operationId: 'openapi', tags: ['meta'], summary: 'This document', security: [], responses: { 200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } } },
  };
  paths[PATHS.healthz] = {
    get: { operationId: 'healthz', tags: ['meta'], summary: 'Liveness', security: [], responses: { 200: { description: 'the process answers', content: { 'application/json': { schema: { type: 'object' } } } } } },
  };
  paths[PATHS.readyz] = {
    get: {
      operationId: 'readyz',
      tags: ['meta'],
      summary: 'Readiness: the database answers, the relay streams, the bus is up (details with the admin token)',
      security: [],
      responses: { 200: { description: 'ready', content: { 'application/json': { schema: { type: 'object' } } } }, 503: { description: 'not ready', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
  };
  const opsJson = { content: { 'application/json': { schema: { type: 'object' } } } };
  paths[PATHS.metrics] = {
    get: {
      operationId: 'metrics',
      tags: ['ops'],
      summary: 'Prometheus metrics (the admin token, or the ops listener WALCAST_OPS_PORT without one)',
      security: [{ admin: [] }],
      responses: { 200: { description: 'text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errorResponses(['not_authed', 'invalid_auth']) },
    },
  };
  paths[`${PATHS.admin}revoke`] = {
    post: {
      operationId: 'admin.revoke',
      tags: ['ops'],
      summary: "Revokes every token of a user issued so far, on every process, and closes the user's sockets and streams",
      security: [{ admin: [] }],
      requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', properties: { user: { type: 'string' } }, required: ['user'] } } } },
      responses: { 200: { description: '{"ok": true, "user", "not_before", "published"}', ...opsJson }, ...errorResponses(['invalid_json', 'invalid_arguments', 'not_authed', 'invalid_auth', 'unavailable']) },
    },
  };
  paths[PATHS.sdk] = {
    get: { operationId: 'sdk', tags: ['meta'], summary: 'The browser SDK as one ES module', security: [], responses: { 200: { description: 'JavaScript', content: { 'text/javascript': { schema: { type: 'string' } } } } } },
  };

  const page = (operationId: string, summary: string, type = 'text/html') => ({
    get: { operationId, tags: ['pages'], summary, security: [], responses: { 200: { description: type, content: { [type]: { schema: { type: 'string' } } } }, 404: { description: 'the page is off here (WALCAST_DEMO_PAGE, or a role that does not serve it)' } } },
  });
  paths[PATHS.demo] = page('demo', 'The demo chat page (WALCAST_DEMO_PAGE: on for `walcast start` on the embedded database)');
  paths[PATHS.ops] = page('ops', 'The read-only operators\' page (it asks for the admin token)');
  paths[`${PATHS.pageAssets}{file}`] = {
    get: { ...page('pageAsset', 'A script or style of the pages', 'text/javascript').get, parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string' } }] },
  };
  paths[PATHS.opsState] = {
    get: { operationId: 'opsState', tags: ['ops'], summary: "The ops page's data: relay, slot lag, connections, rates, recent errors", security: [{ admin: [] }], responses: { 200: { description: 'state', ...opsJson }, ...errorResponses(['not_authed', 'invalid_auth']) } },
  };
  paths[PATHS.devToken] = {
    post: {
      operationId: 'devToken',
      tags: ['pages'],
      summary: 'A short-lived token for the demo page: only on `walcast start` with the embedded database, only from loopback; 404 everywhere else',
      security: [],
      requestBody: { required: true, content: { 'application/json': { schema: bare(z.toJSONSchema(devToken, { io: 'input' })) } } },
      responses: { 200: { description: '{"ok": true, "token", "user", "expires_at"}', ...opsJson }, 404: { description: 'no dev tokens here' }, ...errorResponses(['invalid_json', 'invalid_arguments', 'origin_not_allowed']) },
    },
  };

  return {
    openapi: '3.1.0',
    info: {
      title: 'walcast',
      version: VERSION,
      description: 'Real-time fan-out on PostgreSQL: the HTTP API (`/v1/<method>`), the SSE stream and the WebSocket. The contract in prose: docs/protocol.md.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    tags: [
      { name: 'api', description: 'The HTTP API: GET methods read (query parameters), POST methods change (a JSON body). Success is 200 {"ok": true, ...}.' },
      { name: 'realtime', description: 'Channel subscriptions: WebSocket, or Server-Sent Events where WebSockets are blocked' },
      { name: 'meta', description: 'Health, this description, the browser SDK' },
      { name: 'ops', description: 'Operator endpoints (docs/operations.md)' },
      { name: 'pages', description: 'The demo and ops pages (README, "Pages")' },
    ],
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Every token carries `exp`; `sub` is the user id' },
        token: { type: 'apiKey', in: 'query', name: 'token', description: 'The same token in the URL, for the WebSocket upgrade and SSE (a browser cannot set headers on either)' },
        admin: { type: 'http', scheme: 'bearer', description: 'WALCAST_ADMIN_TOKEN' },
      },
    },
  };
}

/** A component without the keywords that only make sense at a document's root. */
function bare(s: unknown): Json {
  const { $schema: _s, $id: _i, ...rest } = s as Json;
  return rest;
}

const VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

let cached: string | null = null;

/** The document (built on first use). */
export function openApi(): Json {
  return JSON.parse(openApiText()) as Json;
}

function openApiText(): string {
  return (cached ??= JSON.stringify(document()));
}

export function mountOpenApi(app: TemplatedApp): void {
  app.get(PATHS.openapi, (res) => {
    const reply = track(res);
    // Public, like the protocol it describes: any page may read it.
    send(res, reply, 200, openApiText(), 'application/json', { 'access-control-allow-origin': '*' });
  });
}
