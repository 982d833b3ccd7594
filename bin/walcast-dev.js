#!/usr/bin/env node
// The walcast command on the TypeScript sources (src/), through tsx (a devDependency): no build,
// never stale. The tests, the benchmarks and `npm run cluster` run this; from a shell in a
// checkout, `npm run dev -- <command>`. bin/walcast.js runs the compiled dist/ instead.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../src/cli/main.ts');
await run(process.argv.slice(2));
