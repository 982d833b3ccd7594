// GET /sdk.js: the client SDK as one ES module, so a page can `import { createClient } from
// '/sdk.js'` without a bundler. Built or installed (dist/app/static.js), it is the file `npm run
// build` wrote next to this module, dist/browser/sdk.js. Running the sources through tsx
// (src/app/static.ts), it is bundled from src/sdk in memory on first request (sdk-bundle.ts, the
// build's own bundler), so development never serves a stale build.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { send, track } from '../http/respond.js';
import type { TemplatedApp } from '../http/uws.js';
import type { Logger } from '../log.js';
import { PATHS } from '../protocol.js';

const FROM_SOURCES = import.meta.url.endsWith('.ts');
const BUNDLE = fileURLToPath(new URL('../browser/sdk.js', import.meta.url));

interface Loaded {
  status: number;
  body: string;
}

async function load(log: Logger): Promise<Loaded> {
  if (FROM_SOURCES) {
    try {
      const { bundleSdk } = await import('./sdk-bundle.js');
      return { status: 200, body: (await bundleSdk())! };
    } catch (e) {
      log.error('cannot bundle the browser SDK from src/sdk', { error: String(e) });
      return { status: 503, body: `walcast: cannot bundle the browser SDK from src/sdk (${String(e)})\n` };
    }
  }
  try {
    return { status: 200, body: await readFile(BUNDLE, 'utf8') };
  } catch (e) {
    log.warn('the browser SDK bundle is missing', { path: BUNDLE, error: String(e) });
    return { status: 404, body: `walcast: ${BUNDLE} is missing; \`npm run build\` writes it\n` };
  }
}

export function mountStatic(app: TemplatedApp, log: Logger): void {
  let loaded: Promise<Loaded> | undefined;
  app.get(PATHS.sdk, (res) => {
    const reply = track(res);
    const p = (loaded ??= load(log));
    void p.then(({ status, body }) => {
      if (status !== 200 && loaded === p) loaded = undefined; // a later request tries again
      if (status === 200) send(res, reply, 200, body, 'text/javascript; charset=utf-8', { 'cache-control': 'no-cache' });
      else send(res, reply, status, body, 'text/plain; charset=utf-8');
    });
  });
}
