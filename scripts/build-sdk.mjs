// The browser SDK as one ES module (dist/browser/sdk.js, served at GET /sdk.js and exported as
// walcast/sdk/browser): src/sdk/index.ts bundled by esbuild. Unminified and without a source
// map, so it stays readable in a browser's devtools.
// `node scripts/build-sdk.mjs` writes the file (part of `npm run build`); the server imports
// bundleSdk() when it runs from src/ through tsx, so development serves the current sources.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SDK_BUNDLE = 'dist/browser/sdk.js';

/** Bundles the SDK; returns its text (and writes SDK_BUNDLE when `write`). */
export async function bundleSdk({ write = false } = {}) {
  const r = await build({
    absWorkingDir: ROOT,
    entryPoints: ['src/sdk/index.ts'],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile: SDK_BUNDLE,
    write,
    logLevel: 'warning',
    legalComments: 'none',
  });
  if (write) return undefined;
  return r.outputFiles[0].text;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await bundleSdk({ write: true });
}
