// Part of `npm run build`, after tsc: writes dist/browser/sdk.js (GET /sdk.js, walcast/sdk/browser)
// with the bundler the server itself uses when it runs from the sources (loaded through tsx).
// The bundler imports esbuild, a devDependency, so its compiled copy is removed from dist/: an
// installed walcast serves the file written here and never bundles.
import { rmSync } from 'node:fs';
import { tsImport } from 'tsx/esm/api';

const { bundleSdk } = await tsImport('../src/app/sdk-bundle.ts', import.meta.url);
await bundleSdk({ write: true });
for (const f of ['sdk-bundle.js', 'sdk-bundle.d.ts']) rmSync(new URL(`../dist/app/${f}`, import.meta.url), { force: true });
