// Pure parts of the pages: who counts as "this machine" for dev tokens, and the bounded record
// of warnings and errors behind the ops page.
import t from 'tap';
import { isLoopbackAddress, isLoopbackHost } from '../../src/app/pages.js';
import { RecentProblems } from '../../src/app/recent-log.js';
import type { Logger } from '../../src/log.js';

t.test('loopback peers and loopback Host names', async (t) => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '0000:0000:0000:0000:0000:0000:0000:0001', '0000:0000:0000:0000:0000:ffff:7f00:0001']) t.ok(isLoopbackAddress(a), a);
  for (const a of ['192.0.2.2', '10.0.0.1', '::ffff:c000:202', 'fd00::2', '', 'localhost']) t.notOk(isLoopbackAddress(a), a || '(empty)');
  for (const h of ['127.0.0.1:8080', 'localhost:8080', 'LOCALHOST', '[::1]:8080', '127.0.0.1']) t.ok(isLoopbackHost(h), h);
  for (const h of ['evil.example:8080', 'localhost.evil.example', '127.0.0.1.nip.io:8080', '192.0.2.2:8080', '']) t.notOk(isLoopbackHost(h), h || '(empty)');
});

t.test('recent problems: warnings and errors only, through to the real logger, bounded', async (t) => {
  const written: string[] = [];
  const inner: Logger = {
    debug: (m) => written.push(`debug ${m}`),
    info: (m) => written.push(`info ${m}`),
    warn: (m) => written.push(`warn ${m}`),
    error: (m) => written.push(`error ${m}`),
    child: () => inner,
  };
  const problems = new RecentProblems(3);
  const log = problems.wrap(inner).child({ role: 'relay' });
  log.debug('d');
  log.info('i');
  log.warn('w1', { err: Object.assign(new Error('boom'), { code: 'ECONNRESET' }), long: 'x'.repeat(500) });
  for (let i = 2; i <= 5; i++) log.error(`e${i}`);
  t.same(written, ['debug d', 'info i', 'warn w1', 'error e2', 'error e3', 'error e4', 'error e5'], 'everything still reaches the real logger');
  t.equal(problems.total, 5, 'every warning and error counted');
  t.same(problems.list().map((p) => p.msg), ['e3', 'e4', 'e5'], 'the last three kept, oldest first');
  t.equal(problems.list()[0]!.fields.role, 'relay', 'with the child logger\'s bindings');
  const fresh = new RecentProblems();
  fresh.wrap(inner).warn('w', { err: Object.assign(new Error('boom'), { code: 'ECONNRESET' }), long: 'x'.repeat(500) });
  const [p] = fresh.list();
  t.equal(p!.fields.err, 'boom (ECONNRESET)', 'errors as their message and code');
  t.ok(p!.fields.long!.length <= 201, 'long fields cut short');
});
