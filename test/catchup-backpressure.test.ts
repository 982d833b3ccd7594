// A resuming client whose catch-up is larger than WALCAST_WS_MAX_BACKPRESSURE gets all of it: the
// catch-up is paced by drain events, and a large frame sent from the drain handler must not stall
// the socket (uWS's >= 16 KiB writev fast path loses its writable poll inside the writable
// dispatch). The client pauses reading for a moment after subscribing so backpressure builds up
// and the catch-up goes through many drain cycles; without the fix it stalls within a few.
import t from 'tap';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast } from './helpers/walcast.js';
import { Api, WsClient, contiguous } from './helpers/clients.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, { env: { WALCAST_WS_MAX_BACKPRESSURE: '65536', WALCAST_MAX_TEXT_CHARS: '60000' } });
const api = new Api(w.base, await w.token('alice'));

t.test('a catch-up many times the backpressure limit arrives whole', async (t) => {
  const { channel } = await api.call('conversations.create', { name: 'big-backlog' });
  const N = 200;
  const text = 'x'.repeat(60_000);
  for (let i = 1; i <= N; i++) await api.call('chat.postMessage', { channel: channel.id, text });

  for (let round = 0; round < 5; round++) {
    const c = await WsClient.connect(w.ws, await w.token('alice'));
    const socket = (c.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    await c.subscribe(channel.id, 0);
    socket.pause();
    await new Promise((r) => setTimeout(r, 200));
    socket.resume();
    // 12 MB over loopback takes about a second; a stalled socket stays stalled (until the 120 s idle ping).
    await c.waitForSeq(channel.id, N, 60_000);
    t.ok(contiguous(c.seqs(channel.id), 1, N), `round ${round}: every frame, in order`);
    t.notOk(c.closed, `round ${round}: not closed`);
    await c.close();
  }
});
