// A bare uWebSockets.js publisher: the fan-out ceiling that `walcast start` is measured against
// (npm run bench -- ceiling). Not one of the CDC sources (index.ts SOURCES): nothing is stored,
// nothing is authenticated, there is no bus; it is what fan-out costs with everything else taken
// away. It speaks just enough of walcast's protocol that the bench's clients (bench/worker.ts,
// walcast mode) run the very same code against both:
//  - WebSocket at PATHS.ws (a token in the query is ignored): `subscribe` subscribes the socket to
//    the channel's uWS topic and is answered `subscribed` (since = the channel's current seq);
//  - POST PATHS.api + chat.postMessage {channel, text}: builds a Message of walcast's shape (uuid
//    id, the next per-channel seq, ISO created_at, the user walcast would name), publishes
//    serverFrame.message(m) to the topic (uWS publish: serialised once, as walcast's gateway
//    does), and only then answers {ok, message} as walcast's api does: both pay an HTTP request
//    per message, and both answer with the same body.
// Socket settings are walcast's gateway defaults (src/config.ts): 16 KiB max payload, 1 MiB max
// backpressure with the socket closed at the limit (a frame skipped for backpressure would be a
// silent gap; a close shows up as a disconnect), 120 s idle timeout, automatic pings.
//   PORT=<port> [BARE_USER=demo] node --import=tsx bench/sources/uws-publisher.ts
// SIGTERM and SIGINT close the listen socket and every connection, then exit 0.
import { randomUUID } from 'node:crypto';
import { loadUws, type us_listen_socket, type WebSocket } from '../../src/http/uws.js';
import { PATHS, serverFrame, type Message } from '../../src/protocol.js';

const uws = loadUws(false);
const port = Number(process.env.PORT ?? 0);
const user = process.env.BARE_USER || 'demo';
const seqs = new Map<string, number>();
const sockets = new Set<WebSocket<unknown>>();

const app = uws.App();
app.ws(PATHS.ws, {
  maxPayloadLength: 16 * 1024,
  maxBackpressure: 1024 * 1024,
  closeOnBackpressureLimit: 1,
  idleTimeout: 120,
  sendPingsAutomatically: true,
  open: (ws) => void sockets.add(ws),
  close: (ws) => void sockets.delete(ws),
  message: (ws, data) => {
    let f: { type?: string; channel?: string };
    try {
      f = JSON.parse(Buffer.from(data).toString('utf8'));
    } catch {
      return void ws.send(serverFrame.error('invalid_json', undefined, 'frames are JSON text'));
    }
    if (f.type === 'ping') return void ws.send(serverFrame.pong());
    if (f.type !== 'subscribe' || typeof f.channel !== 'string') return void ws.send(serverFrame.error('invalid_arguments', undefined, 'subscribe or ping only'));
    ws.subscribe(f.channel);
    const seq = seqs.get(f.channel) ?? 0;
    ws.send(serverFrame.subscribed(f.channel, seq, seq));
  },
});

app.get(PATHS.healthz, (res) => void res.end('{"ok":true,"role":"bare-uws"}'));

app.post(`${PATHS.api}chat.postMessage`, (res) => {
  let aborted = false;
  res.onAborted(() => (aborted = true));
  const chunks: Buffer[] = [];
  res.onData((chunk, last) => {
    chunks.push(Buffer.from(chunk.slice(0)));
    if (!last) return;
    let status = '200 OK';
    let body: string;
    try {
      const b = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { channel: string; text: string };
      if (typeof b.channel !== 'string' || typeof b.text !== 'string') throw new Error('channel and text are required');
      const seq = (seqs.get(b.channel) ?? 0) + 1;
      seqs.set(b.channel, seq);
      const m: Message = {
        id: randomUUID(),
        channel: b.channel,
        seq,
        user,
        text: b.text,
        client_msg_id: null,
        created_at: new Date().toISOString(),
        reply_to: null,
        edited_at: null,
        deleted_at: null,
        reactions: {},
        changed_seq: seq,
      };
      app.publish(b.channel, serverFrame.message(m), false);
      body = JSON.stringify({ ok: true, message: m });
    } catch (e) {
      status = '400 Bad Request';
      body = JSON.stringify({ ok: false, error: 'invalid_arguments', message: (e as Error).message });
    }
    if (aborted) return;
    res.cork(() => res.writeStatus(status).writeHeader('content-type', 'application/json').end(body));
  });
});

app.any('/*', (res) => void res.writeStatus('404 Not Found').end());

let listenSocket: us_listen_socket | null = null;
app.listen('127.0.0.1', port, (ls) => {
  if (!ls) {
    process.stderr.write(`uws-publisher: cannot listen on 127.0.0.1:${port}\n`);
    process.exit(1);
  }
  listenSocket = ls;
});

const stop = () => {
  if (listenSocket) uws.us_listen_socket_close(listenSocket);
  for (const ws of sockets) ws.end(1001, 'shutting down');
  setTimeout(() => process.exit(0), 50);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
