// Pure pieces of the edge (issue 16), with fake clocks where time matters: the token-lifetime
// wheel, origins, client addresses, the per-socket frame rate, throttled abuse logging, and the
// token verifier's refusals (algorithm confusion, exp, lifetime, iss/aud).
import { createHmac, generateKeyPairSync } from 'node:crypto';
import t from 'tap';
import { SignJWT, UnsecuredJWT } from 'jose';
import { TokenVerifier } from '../../src/auth/verifier.js';
import { Tokens } from '../../src/auth/tokens.js';
import { Revocations } from '../../src/auth/revocations.js';
import { CommandRate } from '../../src/gateway/command-rate.js';
import { TokenLifetimes, type LifetimeSubject } from '../../src/gateway/token-lifetime.js';
import { ClientAddresses, normalizeAddress } from '../../src/http/client-ip.js';
import { OriginPolicy } from '../../src/http/origins.js';
import type { Logger } from '../../src/log.js';
import { AbuseLog } from '../../src/util/abuse-log.js';
import { TtlSet } from '../../src/util/ttl-set.js';

const SECRET = 'unit-secret-unit-secret-unit-secret';
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

t.test('token lifetime wheel: auth deadline, warning, expiry, re-auth, never early', async (t) => {
  let clock = 1_000_000;
  const events: string[] = [];
  type S = LifetimeSubject & { name: string };
  const wheel = new TokenLifetimes<S>(
    {
      authTimeout: (s) => events.push(`${s.name}:auth_timeout@${clock}`),
      expiring: (s, at) => events.push(`${s.name}:expiring(${at})@${clock}`),
      expired: (s) => events.push(`${s.name}:expired@${clock}`),
    },
    { warnAheadMs: 30_000, authTimeoutMs: 5000, now: () => clock },
  );
  const mk = (name: string): S => ({ name, expiresAt: 0, lifeStage: 0, lifeBucket: 0 });
  const a = mk('a');
  const b = mk('b');
  const c = mk('c');
  const d = mk('d');
  wheel.awaitAuth(a);
  wheel.authed(b, clock + 60_000);
  wheel.authed(c, clock + 10_000); // less than 30 s left: warned at once
  wheel.awaitAuth(d);
  t.same(events, ['c:expiring(1010000)@1000000'], 'a short token is warned at once');
  wheel.forget(d); // closed before its deadline
  t.equal(wheel.size, 3);
  const step = (ms: number) => {
    for (let i = 0; i < ms; i += 250) {
      clock += 250;
      wheel.tick();
    }
  };
  step(4750);
  t.notOk(events.some((e) => e.startsWith('a:')), 'no auth timeout before 5 s');
  step(1250);
  t.ok(events.some((e) => e.startsWith('a:auth_timeout')), 'auth timeout within a bucket after 5 s');
  t.notOk(events.some((e) => e.startsWith('d:')), 'a forgotten subject fires nothing');
  step(4000);
  const cExpired = events.find((e) => e.startsWith('c:expired'));
  t.ok(cExpired, 'c expired');
  t.ok(Number(cExpired!.split('@')[1]) >= 1_010_000, 'never before exp');
  // b: warned 30 s ahead (at 1 030 000 or within a second after), then re-authenticated.
  step(19_000);
  t.notOk(events.some((e) => e.startsWith('b:')), 'b not warned yet');
  step(2000);
  const warn = events.find((e) => e.startsWith('b:expiring'));
  t.ok(warn, 'b warned');
  const at = Number(warn!.split('@')[1]);
  t.ok(at >= 1_030_000 && at <= 1_031_000, `warned within a second of exp - 30 s (${at})`);
  wheel.authed(b, clock + 45_000);
  step(30_000);
  t.notOk(events.some((e) => e.startsWith('b:expired')), 're-auth moved the expiry');
  step(20_000);
  t.ok(events.some((e) => e.startsWith('b:expired')), 'expired at the new exp');
  t.equal(wheel.size, 0, 'nothing left');
  wheel.stop();
});

t.test('origins: same origin by default, a list, or any', async (t) => {
  const same = new OriginPolicy(undefined);
  t.ok(same.allows('', 'x:1'), 'no Origin (not a browser): allowed');
  t.ok(same.allows('http://127.0.0.1:8080', '127.0.0.1:8080'), 'same origin');
  t.ok(same.allows('https://chat.example', 'chat.example:443'), 'default port');
  t.notOk(same.allows('http://evil.example', '127.0.0.1:8080'), 'another site');
  t.notOk(same.allows('null', '127.0.0.1:8080'), 'null (file://, sandboxed)');
  t.notOk(same.allows('file://', '127.0.0.1:8080'), 'file://');
  t.notOk(same.allows('http://127.0.0.1:9999', '127.0.0.1:8080'), 'another port');
  const list = new OriginPolicy(['https://app.example', 'HTTP://Local.Test:3000/']);
  t.ok(list.allows('https://app.example', 'api.example'));
  t.ok(list.allows('http://local.test:3000', 'api.example'), 'normalised');
  t.notOk(list.allows('https://app.example.evil', 'api.example'));
  t.notOk(list.allows('null', 'api.example'));
  t.ok(new OriginPolicy(['*']).allows('null', 'x'), '* allows anything');
});

t.test('client addresses: mapped IPv4, trusted proxies and X-Forwarded-For', async (t) => {
  t.equal(normalizeAddress('0000:0000:0000:0000:0000:ffff:7f00:0001'), '127.0.0.1');
  t.equal(normalizeAddress('0000:0000:0000:0000:0000:0000:0000:0001'), '0:0:0:0:0:0:0:1');
  t.equal(normalizeAddress('::1'), '0:0:0:0:0:0:0:1');
  const none = new ClientAddresses();
  t.equal(none.of('10.0.0.5', '1.2.3.4'), '10.0.0.5', 'no trusted proxy: X-Forwarded-For ignored');
  const proxied = new ClientAddresses(['10.0.0.0/8', '192.168.1.1']);
  t.equal(proxied.of('10.1.2.3', '203.0.113.9'), '203.0.113.9', 'from a trusted proxy: the forwarded client');
  t.equal(proxied.of('10.1.2.3', '198.51.100.1, 203.0.113.9, 10.9.9.9'), '203.0.113.9', 'the rightmost untrusted hop');
  t.equal(proxied.of('203.0.113.50', '1.1.1.1'), '203.0.113.50', 'an untrusted peer cannot forge it');
  t.equal(proxied.of('10.1.2.3', 'garbage'), '10.1.2.3', 'garbage header: the peer');
  t.throws(() => new ClientAddresses(['10.0.0.0/99']));
});

t.test('frame rate: burst, then refusals with a wait, then close for persisting', async (t) => {
  let clock = 0;
  const r = new CommandRate(10, 5, clock);
  for (let i = 0; i < 5; i++) t.equal(r.take(clock), 0, `burst ${i}`);
  const wait = r.take(clock);
  t.ok(wait > 0 && wait <= 100, `refused with a wait (${wait} ms)`);
  clock += 100;
  t.equal(r.take(clock), 0, 'a token after 100 ms at 10/s');
  let closed = false;
  for (let i = 0; i < 20 && !closed; i++) closed = r.take(clock) < 0;
  t.ok(closed, 'more refusals than the burst: close');
});

t.test('abuse log: one line per kind per interval, counting the rest', async (t) => {
  const lines: [string, Record<string, unknown> | undefined][] = [];
  const log = { warn: (m: string, f?: Record<string, unknown>) => lines.push([m, f]) } as unknown as Logger;
  const abuse = new AbuseLog(log, 60_000);
  for (let i = 0; i < 500; i++) abuse.note('bad_frame', { code: 'invalid_arguments' });
  for (let i = 0; i < 500; i++) abuse.note('bad_token');
  t.equal(lines.length, 2, '1000 abuses, 2 kinds: 2 lines');
});

t.test('ttl set: forgets after its ttl and when full', async (t) => {
  let clock = 0;
  const s = new TtlSet(1000, 3, () => clock);
  s.add('a');
  t.ok(s.has('a'));
  clock = 1001;
  t.notOk(s.has('a'));
  for (const k of ['a', 'b', 'c', 'd']) s.add(k);
  t.ok(s.size <= 3);
});

t.test('verifier: exp required, lifetime capped, iss/aud, no algorithm confusion', async (t) => {
  const v = new TokenVerifier({ secret: SECRET, maxLifetimeS: 3600 });
  const hs = (claims: Record<string, unknown> = {}) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('alice');
  const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code ?? String(e));

  t.equal(await code(v.verify(await hs().setIssuedAt().setExpirationTime(now() + 600).sign(key))), 'ok');
  t.equal(await code(v.verify(await hs().setIssuedAt().sign(key))), 'invalid_auth', 'no exp');
  t.equal(await code(v.verify(await hs().setIssuedAt(now() - 10).setExpirationTime(now() - 1).sign(key))), 'token_expired', 'expired');
  t.equal(await code(v.verify(await hs().setIssuedAt().setExpirationTime(now() + 7200).sign(key))), 'invalid_auth', 'lives 2 h > 1 h');
  t.equal(await code(v.verify(await hs().setExpirationTime(now() + 7200).sign(key))), 'invalid_auth', 'no iat, exp 2 h away');
  t.equal(await code(v.verify(await hs().setIssuedAt(now() - 86400).setExpirationTime(now() + 60).sign(key))), 'invalid_auth', 'iat a day ago: lifetime too long');
  t.equal(await code(v.verify(await hs().setIssuedAt().setNotBefore(now() + 600).setExpirationTime(now() + 900).sign(key))), 'invalid_auth', 'future nbf');
  t.equal(await code(v.verify(new UnsecuredJWT({}).setSubject('alice').setExpirationTime(now() + 60).encode())), 'invalid_auth', 'alg none');
  t.equal(await code(v.verify(await new SignJWT({}).setProtectedHeader({ alg: 'HS384' }).setSubject('alice').setExpirationTime(now() + 60).sign(key))), 'invalid_auth', 'HS384');

  // Algorithm confusion: an RS256 identity provider's public key used as an HMAC secret.
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const unsignedPart = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'admin', exp: now() + 60 })}`;
  const confused = `${unsignedPart}.${createHmac('sha256', pem).update(unsignedPart).digest('base64url')}`;
  t.equal(await code(v.verify(confused)), 'invalid_auth', 'HS256 keyed with a public key');
  const rs = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('alice').setExpirationTime(now() + 60).sign(privateKey);
  t.equal(await code(v.verify(rs)), 'invalid_auth', 'RS256 without a key set');

  const scoped = new TokenVerifier({ secret: SECRET, maxLifetimeS: 3600, issuer: 'walcast-test', audience: 'chat' });
  t.equal(await code(scoped.verify(await hs().setIssuedAt().setExpirationTime(now() + 60).sign(key))), 'invalid_auth', 'no iss/aud');
  t.equal(await code(scoped.verify(await hs().setIssuer('other').setAudience('chat').setIssuedAt().setExpirationTime(now() + 60).sign(key))), 'invalid_auth', 'wrong iss');
  t.equal(await code(scoped.verify(await hs().setIssuer('walcast-test').setAudience('other').setIssuedAt().setExpirationTime(now() + 60).sign(key))), 'invalid_auth', 'wrong aud');
  t.equal(await code(scoped.verify(await hs().setIssuer('walcast-test').setAudience(['x', 'chat']).setIssuedAt().setExpirationTime(now() + 60).sign(key))), 'ok', 'right iss/aud');
  // walcast token stamps them.
  const minted = await new Tokens(SECRET, { maxLifetimeS: 3600, issuer: 'walcast-test', audience: 'chat' }).sign('alice', 60);
  t.equal(await code(scoped.verify(minted)), 'ok', 'minted tokens carry iss/aud');
});

t.test('verifier: HS256 is answered without waiting, and only a signature in its one encoding, with no extension, verifies', async (t) => {
  const v = new TokenVerifier({ secret: SECRET, maxLifetimeS: 3600 });
  const good = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuedAt().setExpirationTime(now() + 600).sign(key);
  t.match(v.verifyNow(good), { sub: 'alice', source: 'secret' }, 'a value, not a promise');
  const refused = (token: string) => {
    try {
      v.verifyNow(token);
      return 'ok';
    } catch (e) {
      return (e as { code?: string }).code;
    }
  };
  const [h, p, sig] = good.split('.') as [string, string, string];
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const signed = (header: object) => {
    const body = `${b64(header)}.${p}`;
    return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
  };
  t.equal(refused(signed({ alg: 'HS256' })), 'ok', 'the same claims, signed here, verify');
  t.equal(refused(signed({ alg: 'HS256', crit: ['exp'] })), 'invalid_auth', 'a critical extension');
  t.equal(refused(signed({ alg: 'HS256', b64: false, crit: ['b64'] })), 'invalid_auth', 'an unencoded payload');
  t.equal(refused(`${h}.${p}.${sig}=`), 'invalid_auth', 'padding after the signature');
  t.equal(refused(`${h}.${p}.${sig.slice(0, -1)}`), 'invalid_auth', 'a signature cut short');
  t.equal(refused(`${h}.${p}`), 'invalid_auth', 'two parts');
  t.equal(refused(''), 'not_authed');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rs = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('alice').setExpirationTime(now() + 60).sign(rsa.privateKey);
  t.equal(refused(rs), 'invalid_auth', 'RS256 without a key set');
});

t.test('tokens: cache checks exp and revocations on every hit; sign refuses ttl 0 and beyond the maximum', async (t) => {
  const revocations = new Revocations();
  const tokens = new Tokens(SECRET, { maxLifetimeS: 600, revocations });
  await t.rejects(tokens.sign('alice', 0), { code: 'invalid_arguments' });
  await t.rejects(tokens.sign('alice', 601), { code: 'invalid_arguments' });
  const a = await tokens.sign('alice', 60);
  t.equal(await tokens.verify(a), 'alice');
  t.equal(await tokens.verify(a), 'alice', 'from the cache');
  revocations.apply('alice', now() + 1);
  await t.rejects(tokens.verify(a), { code: 'invalid_auth' }, 'revoked, although cached');
  const b = await tokens.sign('bob', 60);
  t.equal(await tokens.verify(b), 'bob', 'other users unaffected');
  const short = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('carol').setIssuedAt().setExpirationTime(now() + 2).sign(key);
  t.equal(await tokens.verify(short), 'carol');
  await new Promise((r) => setTimeout(r, 2100));
  await t.rejects(tokens.verify(short), { code: 'token_expired' }, 'the cached token expired');
});
