// The layout the README promises: production code (src/) depends on nothing that only the
// repository has (harness/, bench/, test/, scripts/), and tests depend on no benchmark.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.(ts|mjs|js)$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Every relative import (static, dynamic, `new URL(...)`) of a file, resolved to a path under the root. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|new URL\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]!);
  return specs.map((s) => path.relative(ROOT, path.resolve(path.dirname(file), s)));
}

const outside = (from: string, forbidden: string[]) =>
  files(from).flatMap((f) => imports(f).filter((i) => forbidden.some((d) => i === d || i.startsWith(d + '/'))).map((i) => `${path.relative(ROOT, f)} -> ${i}`));

t.test('src/ imports nothing from harness/, bench/, test/ or scripts/', async (t) => {
  t.ok(files('src').length > 50, 'the sources were found');
  t.same(outside('src', ['harness', 'bench', 'test', 'scripts']), []);
});

t.test('test/ imports nothing from bench/', async (t) => {
  t.same(outside('test', ['bench']), []);
});

t.test('harness/ imports nothing from bench/ or test/', async (t) => {
  t.same(outside('harness', ['bench', 'test']), []);
});
