// uWebSockets.js, installed from @trufflesuite/uws-js-unofficial under the npm alias
// "uWebSockets.js". When its native binary fails to load it silently falls back to a slow
// pure-JS imitation; we refuse to run on that unless explicitly allowed.
import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

const require = createRequire(import.meta.url);

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';

let loaded: typeof UWS | null = null;

export function loadUws(allowFallback: boolean): typeof UWS {
  if (loaded) return loaded;
  const uws = require('uWebSockets.js') as typeof UWS;
  if (!isNative(uws) && !allowFallback) {
    throw new Error(
      'uWebSockets.js loaded its pure-JS fallback, not the native binary (this platform/Node ABI has none). ' +
        'Refusing to start; set WALCAST_ALLOW_UWS_FALLBACK=1 to run slowly anyway.',
    );
  }
  loaded = uws;
  return uws;
}

/** The native addon's functions are native code; the fallback's are JavaScript. */
export function isNative(uws: typeof UWS): boolean {
  return typeof uws.App === 'function' && /\[native code\]/.test(Function.prototype.toString.call(uws.App));
}
