// The fan-out peer: what most Node users would build instead of walcast. Socket.IO 4 with
// @socket.io/redis-adapter (classic Redis pub/sub between processes), and a POST endpoint that
// writes the message to PostgreSQL (the same statement walcast uses) and then emits it to the
// channel's room. Run two of these on one redis-server; POST to either.
//   DATABASE_URL=... REDIS_URL=... PORT=... node --import=tsx bench/peer/socketio-server.ts
// Clients: `subscribe` (channel id) joins the room and is answered `subscribed`; messages come
// as `message` events carrying the stored Message. No auth (the bench user posts as `bench`).
import http from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { Channels } from '../../src/chat/channels.js';
import { Messages } from '../../src/chat/messages.js';
import { createPool } from '../../src/db/pool.js';

const pool = createPool(process.env.DATABASE_URL!, 10, 'socketio-peer');
const channels = new Channels(pool);
const messages = new Messages(pool, channels);
const pub = new Redis(process.env.REDIS_URL!);
const sub = pub.duplicate();

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') return void res.end('ok');
  if (req.method !== 'POST' || req.url !== '/post') return void res.writeHead(404).end();
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', async () => {
    try {
      const b = JSON.parse(body) as { channel: string; text: string };
      const { message } = await messages.post({ channel: b.channel, user: 'bench', text: b.text, clientMsgId: null });
      io.to(message.channel).emit('message', message);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, message }));
    } catch (e) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: false, error: String(e) }));
    }
  });
});
const io = new Server(server, { transports: ['websocket'], adapter: createAdapter(pub, sub), serveClient: false });
io.on('connection', (socket) => {
  socket.on('subscribe', (channel: string) => {
    void socket.join(channel);
    socket.emit('subscribed', channel);
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1');
const stop = () => {
  void io.close();
  pub.disconnect();
  sub.disconnect();
  void messages.close().then(() => pool.end()).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
