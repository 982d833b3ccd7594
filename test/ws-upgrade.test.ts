// WebSocket upgrades that must not wait: the uWS build walcast ships (20.30) closes a socket it
// upgraded outside its upgrade handler whenever bytes it no longer owns look like "Connection:
// close" (uNetworking/uWebSockets#1928, fixed upstream in fe7c01a). It hit one first connection in
// a few thousand to a new gateway process. A handshake that really says `Connection: close`
// triggers it every time, so it tells whether an upgrade waited.
import t from 'tap';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast } from './helpers/walcast.js';
import { Api } from './helpers/clients.js';
import { rawUpgrade } from './helpers/raw-ws.js';
import { clientFrame } from '../src/protocol.js';

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url);

t.test('a user this gateway never saw, with a token it never verified, gets a working socket', async (t) => {
  const token = await w.token('first-timer');
  const { channel } = await new Api(w.base, token).call('conversations.create', { name: 'upgrade' });
  // The API verified the token and recorded the user, but the gateway keeps its own cache:
  // use a second, never verified token of a second new user for the gateway.
  const fresh = await w.token('never-seen');
  await new Api(w.base, token).call('conversations.invite', { channel: channel.id, users: ['never-seen'] });
  const ws = await rawUpgrade(`${w.ws}?token=${fresh}`, { Connection: 'close' });
  t.teardown(() => ws.close());
  t.match(ws.status, /^HTTP\/1\.1 101 /, 'upgraded');
  ws.sendText(clientFrame.subscribe(channel.id, 0));
  let frame: { type?: string; channel?: string };
  do frame = JSON.parse(await ws.nextText());
  while (frame.type !== 'subscribed' && frame.type !== 'error');
  t.match(frame, { type: 'subscribed', channel: channel.id }, 'and the socket answers');
});
