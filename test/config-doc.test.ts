// The configuration tables in README.md and docs/configuration.md are generated from
// src/config.ts (npm run docs); this fails when someone edits one without the other.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { configDocBlocks } from '../src/config-doc.js';
import { loadConfig, settings } from '../src/config.js';

for (const { file, marker, text } of configDocBlocks()) {
  t.test(`${file} ${marker}`, async (t) => {
    const doc = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
    const a = doc.indexOf(`<!-- ${marker} -->`);
    const b = doc.indexOf(`<!-- /${marker} -->`);
    t.ok(a >= 0 && b > a, 'has the generated block');
    t.equal(doc.slice(a + `<!-- ${marker} -->`.length + 1, b), text, 'up to date (run `npm run docs`)');
  });
}

t.test('every setting has a unique variable, a description, and a default that parses', async (t) => {
  const all = settings();
  t.equal(new Set(all.map((s) => s.setting.env)).size, all.length, 'no variable declared twice');
  for (const { setting } of all) t.ok(setting.doc.length > 10, `${setting.env} is described`);
  t.doesNotThrow(() => loadConfig({}), 'the defaults load');
});
