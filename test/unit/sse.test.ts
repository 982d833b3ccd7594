// Server-Sent Events, the pure parts: the event stream parser (the HTML standard's rules, fed in
// any chunks), what the gateway writes (events, ids, the close event) read back by it, the stream
// request's query and Last-Event-ID, and the SDK's SSE URL.
import fc from 'fast-check';
import t from 'tap';
import { WalcastError } from '../../src/errors.js';
import { parseSseRequest, sseCloseEvent, sseEvent } from '../../src/gateway/sse.js';
import { parseSseEventId, sseEventId } from '../../src/protocol.js';
import { SseParser, sseStreamUrl, sseUrlOf, type SseMessage } from '../../src/sdk/sse.js';

function parse(chunks: string[]): { messages: SseMessage[]; comments: string[]; retry: number | undefined } {
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  const p = new SseParser(
    (m) => messages.push(m),
    (c) => comments.push(c),
  );
  for (const c of chunks) p.push(c);
  return { messages, comments, retry: p.retryMs };
}

t.test('parser: the standard\'s line endings, fields and dispatch rules', async (t) => {
  const m = (data: string, lastEventId = '', event = 'message') => ({ event, data, lastEventId });
  t.same(parse(['data: a\n\n']).messages, [m('a')], 'LF');
  t.same(parse(['data: a\r\n\r\n']).messages, [m('a')], 'CRLF');
  t.same(parse(['data: a\r\r']).messages, [m('a')], 'CR');
  t.same(parse(['data: a\r', '\ndata: b\r', '\n\r\n']).messages, [m('a\nb')], 'CRLF split across chunks is one line end');
  t.same(parse(['data: a\r', '\r']).messages, [m('a')], 'CR then CR: a blank line');
  t.same(parse(['data: a\r', '', '\n', '\n']).messages, [m('a')], 'an empty chunk between CR and LF changes nothing');
  t.same(parse(['\ufeffdata: bom\n\n']).messages, [m('bom')], 'a leading BOM is dropped');
  t.same(parse(['data:x\ndata:  y\ndata\n\n']).messages, [m('x\n y\n')], 'one space after the colon is dropped, a field without colon is empty');
  t.same(parse(['data: no dispatch without blank line\n']).messages, [], 'an unterminated event is not dispatched');
  t.same(parse(['event: close\ndata: {}\n\n']).messages, [m('{}', '', 'close')], 'named event');
  t.same(parse(['id: C1:1\n\n', 'data: a\n\n']).messages, [m('a', 'C1:1')], 'an id without data sets the last id, dispatches nothing');
  t.same(parse(['id: C1:1\ndata: a\n\ndata: b\n\n']).messages, [m('a', 'C1:1'), m('b', 'C1:1')], 'the last id stays until the next');
  t.same(parse(['id: x\u0000y\ndata: a\n\n']).messages, [m('a')], 'an id with NUL is ignored');
  t.same(parse([': hi\n:\ndata: a\n\n']).comments, [' hi', ''], 'comments');
  t.equal(parse(['retry: 1500\n\n']).retry, 1500);
  t.equal(parse(['retry: 15s\n\n']).retry, undefined, 'retry must be digits');
  t.same(parse(['foo: bar\ndata: a\n\n']).messages, [m('a')], 'unknown fields are ignored');
});

t.test('what the gateway writes reads back: frames, ids, the close event, in any chunking', async (t) => {
  const frame = fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify({ type: 'message', v }));
  const stream = fc.array(fc.tuple(frame, fc.option(fc.tuple(fc.constantFrom('C000000000001', 'CZZZZZZZZZZZZ'), fc.nat({ max: 1e9 })))), { maxLength: 20 });
  fc.assert(
    fc.property(stream, fc.array(fc.nat(), { maxLength: 30 }), (events, cuts) => {
      const text =
        ': walcast\nretry: 2000\n\n' +
        events.map(([f, id]) => sseEvent(f, id ? sseEventId(id[0], id[1]) : undefined) + ':\n\n').join('') +
        sseCloseEvent(1012, 'draining retry_after_ms=250');
      // Cut the text at arbitrary places (also inside a CRLF, a multi-byte character's UTF-16 pair is not split).
      const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
      const chunks: string[] = [];
      let at = 0;
      for (const p of points) {
        chunks.push(text.slice(at, p));
        at = p;
      }
      chunks.push(text.slice(at));
      const r = parse(chunks);
      let last = '';
      const want = events.map(([f, id]) => {
        if (id) last = sseEventId(id[0], id[1]);
        return { event: 'message', data: f, lastEventId: last };
      });
      want.push({ event: 'close', data: '{"code":1012,"reason":"draining retry_after_ms=250"}', lastEventId: last });
      t.same(r.messages, want);
      if (r.retry !== 250) throw new Error(`retry ${r.retry}`);
    }),
    { numRuns: 300, seed: 42 },
  );
  t.equal(sseCloseEvent(4001, 'token_expired'), 'event: close\ndata: {"code":4001,"reason":"token_expired"}\n\n', 'no retry field without a hint');
});

t.test('event ids', async (t) => {
  t.equal(sseEventId('C000000000001', 42), 'C000000000001:42');
  t.same(parseSseEventId('C000000000001:42'), { channel: 'C000000000001', seq: 42 });
  for (const bad of ['', 'C1:2', 'C000000000001', 'C000000000001:', 'C000000000001:-1', 'C000000000001:1.5', 'c000000000001:1', 'C000000000001:1234567890123456']) {
    t.equal(parseSseEventId(bad), null, JSON.stringify(bad));
  }
});

t.test('the stream request: channels, since in both forms, Last-Event-ID wins', async (t) => {
  const A = 'C000000000001';
  const B = 'C000000000002';
  const ok = (q: string, leid = '', max = 10) => {
    const r = parseSseRequest(q, leid, max);
    if (r instanceof WalcastError) throw new Error(`${q}: ${r.code} ${r.message}`);
    return r;
  };
  const err = (q: string, leid = '', max = 10) => {
    const r = parseSseRequest(q, leid, max);
    return r instanceof WalcastError ? r.code : 'accepted';
  };
  t.same(ok(`channel=${A}`), { channels: [{ channel: A, since: undefined }], presence: false });
  t.same(ok(`channel=${A}&channel=${B}&since=3`).channels, [
    { channel: A, since: 3 },
    { channel: B, since: 3 },
  ]);
  t.same(ok(`channel=${A}&channel=${B}&since=3&since=${B}:7`).channels, [
    { channel: A, since: 3 },
    { channel: B, since: 7 },
  ]);
  t.same(ok(`channel=${A}&channel=${B}&since=3`, `${A}:9`).channels, [
    { channel: A, since: 9 },
    { channel: B, since: 3 },
  ]);
  t.same(ok(`channel=${A}&since=${A}:2`, `${A}:1`).channels, [{ channel: A, since: 1 }], 'Last-Event-ID wins even when lower');
  t.equal(ok(`channel=${A}&presence=1`).presence, true);
  t.equal(ok(`channel=${A}&token=abc&since=0`).channels[0]!.since, 0, 'token and unknown parameters are not its business');
  t.same(ok(''), { channels: [], presence: false }, 'no channel: a stream of heartbeats');
  t.equal(err('since=3', `${A}:1`), 'invalid_arguments', 'a Last-Event-ID needs its channel');
  t.equal(err(`channel=${A}&channel=${A}`), 'invalid_arguments');
  t.equal(err('channel=C1'), 'invalid_arguments');
  t.equal(err(`channel=${A}&since=-1`), 'invalid_arguments');
  t.equal(err(`channel=${A}&since=1&since=2`), 'invalid_arguments');
  t.equal(err(`channel=${A}&since=${B}:2`), 'invalid_arguments');
  t.equal(err(`channel=${A}&since=${A}:2&since=${A}:3`), 'invalid_arguments');
  t.equal(err(`channel=${A}&since=1e3`), 'invalid_arguments');
  t.equal(err(`channel=${A}&since=9999999999999999`), 'invalid_arguments');
  t.equal(err(`channel=${A}`, 'garbage'), 'invalid_arguments');
  t.equal(err(`channel=${A}`, `${B}:1`), 'invalid_arguments');
  t.equal(err(`channel=${A}&presence=yes`), 'invalid_arguments');
  t.equal(err(`channel=${A}&channel=${B}`, '', 1), 'too_many_subscriptions');
  t.equal(err(`channel=%ff%fe`), 'invalid_arguments', 'bytes that are not UTF-8');
});

t.test('SDK: the stream URL and the SSE endpoint from a WebSocket URL', async (t) => {
  t.equal(sseUrlOf('ws://h:8080/v1/ws', '/v1/ws', '/v1/sse'), 'http://h:8080/v1/sse');
  t.equal(sseUrlOf('wss://h/edge/v1/ws?token=x&a=1', '/v1/ws', '/v1/sse'), 'https://h/edge/v1/sse?a=1', 'a token in the URL stays out');
  t.equal(sseUrlOf('ws://h:8080', '/v1/ws', '/v1/sse'), 'http://h:8080/v1/sse');
  t.equal(
    sseStreamUrl(
      'http://h/v1/sse',
      [
        { channel: 'C000000000001', since: 4 },
        { channel: 'C000000000002', since: undefined },
      ],
      true,
    ),
    'http://h/v1/sse?channel=C000000000001&channel=C000000000002&since=C000000000001%3A4&presence=1',
  );
});
