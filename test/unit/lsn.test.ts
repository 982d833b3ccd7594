import t from 'tap';
import { formatLsn, parseLsn } from '../../src/cdc/lsn.js';

t.test('parses and formats LSNs', async (t) => {
  t.equal(parseLsn('0/0'), 0n);
  t.equal(parseLsn('16/B374D848'), (0x16n << 32n) | 0xb374d848n);
  t.equal(formatLsn(parseLsn('16/B374D848')), '16/B374D848');
  t.equal(formatLsn(parseLsn('1/0') - 1n), '0/FFFFFFFF');
  t.throws(() => parseLsn('nope'));
});
