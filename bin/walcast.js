#!/usr/bin/env node
// The walcast command: the compiled CLI in dist/, plain Node (`npm run build` writes dist/, and
// `npm install` in a checkout runs the build). To run the TypeScript sources while developing:
// `npm run dev -- <command>` (bin/walcast-dev.js, through tsx).
import { existsSync, readdirSync, statSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('walcast: dist/ is not built: run `npm run build` (npm install does), or `npm run dev -- <command>` to run the sources\n');
  process.exit(1);
}
// In a checkout (the package ships no src/), say so when the sources changed after the build.
const src = new URL('../src/', import.meta.url);
if (existsSync(src)) {
  const built = statSync(main).mtimeMs;
  const newer = readdirSync(src, { recursive: true }).find((f) => f.endsWith('.ts') && statSync(new URL(f, src)).mtimeMs > built);
  if (newer) {
    process.stderr.write(`walcast: src/${newer} changed after dist/ was built; running the older build (\`npm run build\` to refresh, or \`npm run dev -- <command>\` to run the sources)\n`);
  }
}
const { run } = await import('../dist/cli/main.js');
await run(process.argv.slice(2));
