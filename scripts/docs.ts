// `npm run docs`: regenerates the configuration tables in README.md and docs/configuration.md
// from src/config.ts (test/config-doc.test.ts fails when they are stale).
import { readFileSync, writeFileSync } from 'node:fs';
import { configDocBlocks } from '../src/config-doc.js';

for (const { file, marker, text } of configDocBlocks()) {
  const path = new URL(`../${file}`, import.meta.url);
  const doc = readFileSync(path, 'utf8');
  const [begin, end] = [`<!-- ${marker} -->`, `<!-- /${marker} -->`];
  const a = doc.indexOf(begin);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file}: markers ${begin} … ${end} not found`);
  writeFileSync(path, doc.slice(0, a + begin.length) + '\n' + text + doc.slice(b));
  console.log(`${file}: ${marker} regenerated`);
}
