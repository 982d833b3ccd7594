// Identity-provider tokens (WALCAST_JWKS_URL), against a real key-set endpoint on 127.0.0.1:
// RS256, ES256 and EdDSA by kid; a rotated key is fetched after the cooldown; the endpoint's
// failure is 503 unavailable and never lets a token in; iss/aud are enforced; HMAC can never be
// keyed with a published public key.
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import t from 'tap';
import { SignJWT } from 'jose';
import { startTestDatabase } from './helpers/postgres.js';
import { startWalcast, until } from './helpers/walcast.js';
import { WsClient } from './helpers/clients.js';
import { rawUpgrade } from './helpers/raw-ws.js';
import { TokenVerifier } from '../src/auth/verifier.js';
import { JwksKeys } from '../src/auth/jwks.js';
import { clientFrame } from '../src/protocol.js';

const ISS = 'https://idp.test';
const AUD = 'walcast-chat';

interface Key {
  kid: string;
  alg: 'RS256' | 'ES256' | 'EdDSA';
  privateKey: KeyObject;
  publicKey: KeyObject;
}
function newKey(kid: string, alg: Key['alg']): Key {
  const pair =
    alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return { kid, alg, ...pair };
}

// The identity provider's endpoint: serves `published`, or fails as told.
let published: Key[] = [newKey('rsa-1', 'RS256'), newKey('ec-1', 'ES256'), newKey('ed-1', 'EdDSA')];
let mode: 'ok' | 'error' | 'down' = 'ok';
let fetches = 0;
const idp = http.createServer((req, res) => {
  fetches++;
  if (mode === 'down') return req.socket.destroy();
  if (mode === 'error') return res.writeHead(500).end('oops');
  const keys = published.map((k) => ({ ...(k.publicKey.export({ format: 'jwk' }) as object), kid: k.kid, alg: k.alg, use: 'sig' }));
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
});
await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
t.teardown(() => new Promise((r) => idp.close(r)));
const jwksUrl = `http://127.0.0.1:${(idp.address() as net.AddressInfo).port}/.well-known/jwks.json`;

const db = await startTestDatabase(t);
const w = await startWalcast(t, db.url, {
  env: { WALCAST_SLOT: 'jwks', WALCAST_JWKS_URL: jwksUrl, WALCAST_JWKS_COOLDOWN_S: '1', WALCAST_JWT_ISSUER: ISS, WALCAST_JWT_AUDIENCE: AUD },
  roles: ['api', 'gateway'],
});

const now = () => Math.floor(Date.now() / 1000);
function idpToken(k: Key, claims: { sub?: string; iss?: string; aud?: string; ttl?: number } = {}): Promise<string> {
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: k.alg, kid: k.kid, typ: 'JWT' })
    .setSubject(claims.sub ?? 'idp-user')
    .setIssuer(claims.iss ?? ISS)
    .setAudience(claims.aud ?? AUD)
    .setIssuedAt()
    .setExpirationTime(now() + (claims.ttl ?? 600));
  return jwt.sign(k.privateKey);
}
const status = async (token: string) => {
  const r = await fetch(`${w.base}/v1/conversations.history?channel=CZZZZZZZZZZZZ`, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, error: ((await r.json()) as { error?: string }).error };
};

t.test('RS256, ES256 and EdDSA tokens from the key set, by kid, on the API and the WebSocket', async (t) => {
  for (const k of published) {
    const token = await idpToken(k);
    t.same(await status(token), { status: 404, error: 'channel_not_found' }, `${k.alg}: authenticated (then 404 for the unknown channel)`);
    const ws = await WsClient.connect(w.ws, token);
    t.notOk(ws.closed, `${k.alg}: socket opened`);
    await ws.close();
  }
  t.ok(fetches <= 2, `the key set was fetched once or twice, not per token (${fetches})`);
  // Issued by the provider, but for another audience or issuer.
  t.equal((await status(await idpToken(published[0]!, { aud: 'other' }))).status, 401, 'wrong aud');
  t.equal((await status(await idpToken(published[0]!, { iss: 'https://evil.test' }))).status, 401, 'wrong iss');
  t.equal((await status(await idpToken(published[0]!, { ttl: 3 * 86400 }))).status, 401, 'longer than the maximum lifetime');
  // HS256 from walcast's own secret still works (and carries iss/aud, stamped by Tokens.sign).
  t.equal((await status(await w.token('alice'))).status, 404, 'HS256 with WALCAST_SECRET beside the key set');
});

t.test('keys already fetched verify without waiting, so the gateway upgrades inside its handler', async (t) => {
  const v = new TokenVerifier({ secret: null, jwksUrl, maxLifetimeS: 86_400, issuer: ISS, audience: AUD });
  const first = await idpToken(published[0]!);
  t.equal(v.verifyNow(first), null, 'nothing fetched yet: only verify() can tell');
  t.match(await v.verify(first), { sub: 'idp-user', source: 'jwks' });
  for (const k of published) t.match(v.verifyNow(await idpToken(k, { sub: `now-${k.alg}` })), { sub: `now-${k.alg}`, source: 'jwks' }, `${k.alg}: a value, not a promise`);
  t.equal(v.verifyNow(await idpToken(newKey('unknown', 'ES256'))), null, 'an unknown kid needs a fetch');
  t.throws(() => v.verifyNow(`${first.slice(0, first.lastIndexOf('.'))}.AAAA`), { code: 'invalid_auth' }, 'a bad signature is refused at once');
  // Once the gateway has the set (this socket's upgrade waited for it), a handshake that says
  // `Connection: close` is closed right after its 101 if its upgrade waited (test/ws-upgrade.test.ts).
  await (await WsClient.connect(w.ws, await idpToken(published[1]!, { sub: 'idp-warm' }))).close();
  const ws = await rawUpgrade(`${w.ws}?token=${await idpToken(published[1]!, { sub: 'idp-upgrade' })}`, { Connection: 'close' });
  t.teardown(() => ws.close());
  t.match(ws.status, /^HTTP\/1\.1 101 /);
  ws.sendText(clientFrame.ping());
  t.match(JSON.parse(await ws.nextText()), { type: 'pong' }, 'the socket answers');
});

t.test('keyNow answers only for one plain public key that fits; anything else is left to jose', async (t) => {
  let set: object[] = [];
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: set })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/jwks`;
  const jwk = (k: KeyObject, extra: object = {}) => ({ ...(k.export({ format: 'jwk' }) as object), ...extra });
  const rsa = newKey('r', 'RS256');
  const keyFor = async (keys: object[], alg: string, kid: string | undefined, o: { cacheMaxAgeMs?: number } = {}) => {
    set = keys;
    const jwks = new JwksKeys(url, { cooldownS: 0, ...o });
    await Promise.resolve({ alg: 'RS256', kid: 'r' }).then((h) => jwks.getKey(h, undefined as never)).catch(() => undefined); // fills the cache
    return jwks.keyNow(alg, kid);
  };
  t.ok(await keyFor([jwk(rsa.publicKey, { kid: 'r', alg: 'RS256', use: 'sig' })], 'RS256', 'r'), 'a plain RSA key');
  t.ok(await keyFor([jwk(rsa.publicKey, { kid: 'r', key_ops: ['verify'] })], 'RS256', 'r'), 'key_ops: verify');
  const none: Array<[string, object[], string, string | undefined]> = [
    ['use: enc', [jwk(rsa.publicKey, { kid: 'r', use: 'enc' })], 'RS256', 'r'],
    ['another alg stated', [jwk(rsa.publicKey, { kid: 'r', alg: 'RS512' })], 'RS256', 'r'],
    ['key_ops beyond verify', [jwk(rsa.publicKey, { kid: 'r', key_ops: ['sign', 'verify'] })], 'RS256', 'r'],
    ['a private key', [jwk(rsa.privateKey, { kid: 'r' })], 'RS256', 'r'],
    ['two keys, no kid in the token', [jwk(rsa.publicKey, { kid: 'r' }), jwk(newKey('s', 'RS256').publicKey, { kid: 's' })], 'RS256', undefined],
    ['RSA under 2048 bits', [jwk(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey, { kid: 'r' })], 'RS256', 'r'],
    ['ES256 on P-384', [jwk(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey, { kid: 'e' })], 'ES256', 'e'],
    ['EdDSA on Ed448', [jwk(generateKeyPairSync('ed448').publicKey, { kid: 'd' })], 'EdDSA', 'd'],
    ['an unknown kid', [jwk(rsa.publicKey, { kid: 'r' })], 'RS256', 'other'],
  ];
  for (const [what, keys, alg, kid] of none) t.equal(await keyFor(keys, alg, kid), null, what);
  set = [jwk(rsa.publicKey, { kid: 'r' })];
  const stale = new JwksKeys(url, { cooldownS: 0, cacheMaxAgeMs: 1 });
  await stale.getKey({ alg: 'RS256', kid: 'r' }, undefined as never);
  const fetched = Date.now();
  while (Date.now() - fetched < 5) await new Promise((r) => setTimeout(r, 5));
  t.equal(stale.keyNow('RS256', 'r'), null, 'a cache older than its maximum age');
});

t.test('algorithm confusion: HS256 keyed with the published RSA public key is refused', async (t) => {
  const pem = published[0]!.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT', kid: 'rsa-1' })}.${b64({ sub: 'admin', iss: ISS, aud: AUD, iat: now(), exp: now() + 600 })}`;
  const forged = `${body}.${createHmac('sha256', pem).update(body).digest('base64url')}`;
  t.same(await status(forged), { status: 401, error: 'invalid_auth' });
  const stranger = newKey('rsa-1', 'RS256'); // the right kid, the wrong key
  t.same(await status(await idpToken(stranger)), { status: 401, error: 'invalid_auth' }, 'a key the provider never published');
});

t.test('a rotated key (new kid) is fetched, once the cooldown allows', async (t) => {
  const rotated = newKey('rsa-2', 'RS256');
  published = [...published, rotated];
  const token = await idpToken(rotated);
  await until(async () => (await status(token)).status === 404, 'the new kid to be accepted', 15_000);
  t.pass('accepted after a refetch');
});

t.test('the endpoint failing: 503 unavailable for what needs a fetch, never acceptance', async (t) => {
  const known = await idpToken(published[0]!);
  for (const m of ['error', 'down'] as const) {
    mode = m;
    const unknownKid = newKey(`new-${m}`, 'ES256');
    await new Promise((r) => setTimeout(r, 1100)); // past the cooldown: the unknown kid triggers a fetch
    const r = await status(await idpToken(unknownKid));
    t.same(r, { status: 503, error: 'unavailable' }, `endpoint ${m}: unknown kid is 503, not accepted`);
    t.equal((await status(known)).status, 404, `endpoint ${m}: a cached key still verifies`);
  }
  mode = 'ok';
});
