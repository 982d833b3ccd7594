// The browser SDK as one ES module: src/sdk/index.ts bundled by esbuild (a devDependency, loaded
// only here). `npm run build` writes it to dist/browser/sdk.js (scripts/build-sdk.mjs calls this
// from dist/); running the sources, GET /sdk.js bundles it in memory so it is never stale.
// Unminified and without a source map, so it stays readable in a browser's devtools.
import { fileURLToPath } from 'node:url';

/** The package root: two levels up from src/app/ or dist/app/. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const SDK_BUNDLE = 'dist/browser/sdk.js';

/** Bundles the SDK from the sources; returns its text, or writes SDK_BUNDLE when `write`. */
export async function bundleSdk({ write = false } = {}): Promise<string | undefined> {
  const { build } = await import('esbuild');
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
  return write ? undefined : r.outputFiles![0]!.text;
}
