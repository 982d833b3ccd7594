// The two web pages and their files, from web/ at the package root (shipped in the npm package
// and the image):
//   GET /          the demo chat (WALCAST_DEMO_PAGE): plain HTML and ES modules on the public
//                  SDK (/sdk.js) and the public API, nothing private;
//   GET /ops       the operators' page: read-only charts from /ops/state.json, which needs the
//                  admin token on the public port (the page asks for it) and nothing on the ops
//                  listener;
//   GET /web/<f>   their scripts and style sheet (a fixed list: no path from the request ever
//                  reaches the file system);
//   POST /dev/token {"user"}   a short-lived token for the demo, only where the process was told
//                  it may (`walcast start` on the embedded database), and only for a browser on
//                  this machine; everywhere else the path does not exist (404).
// Pages are sent with a strict Content-Security-Policy: their own scripts, styles and
// connections only (no inline script, no third party).
import { readFile } from 'node:fs/promises';
import { devToken } from '../api/schemas.js';
import type { Tokens } from '../auth/tokens.js';
import { WalcastError } from '../errors.js';
import { parseJson, readBody } from '../http/body.js';
import { normalizeAddress, peerAddress } from '../http/client-ip.js';
import { framingProblem, refuseFraming } from '../http/framing.js';
import { send, sendError, sendJson, track } from '../http/respond.js';
import type { TemplatedApp } from '../http/uws.js';
import type { Logger } from '../log.js';
import { PATHS } from '../protocol.js';

const FROM_SOURCES = import.meta.url.endsWith('.ts');
/** web/ at the package root: two levels up from src/app/ and from dist/app/ alike. */
const WEB_DIR = new URL('../../web/', import.meta.url);

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** Files of each page under /web/ (besides the HTML itself). */
const OPS_FILES = ['style.css', 'ops.js', 'charts.js'];
const DEMO_FILES = ['style.css', 'demo.js'];

/** A dev token lives this long at most (the page asks for a fresh one when it nears its end). */
export const DEV_TOKEN_TTL_S = 3600;

export interface PagesOptions {
  /** Serve the demo page at / (WALCAST_DEMO_PAGE). */
  demo: boolean;
  /** POST /dev/token: only `walcast start` on the embedded database sets it (never a role). */
  devTokens: boolean;
  /** Signs dev tokens; required with `devTokens`. */
  tokens?: Tokens;
  /** WALCAST_TOKEN_MAX_LIFETIME_S: dev tokens never live longer. */
  maxLifetimeS?: number;
  log: Logger;
}

const devTokenBody = devToken;

/** 127.0.0.0/8 and ::1, in any of the forms uWS reports. */
export function isLoopbackAddress(raw: string): boolean {
  const a = normalizeAddress(raw);
  return a === '::1' || a === '0:0:0:0:0:0:0:1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}

/** A Host header naming this machine by a loopback name (not a DNS name that merely resolves to it). */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/:\d+$/, '');
  return h === 'localhost' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

export function mountPages(app: TemplatedApp, o: PagesOptions): void {
  const cache = new Map<string, Promise<string>>();
  const load = (file: string): Promise<string> => {
    if (FROM_SOURCES) return readFile(new URL(file, WEB_DIR), 'utf8'); // development: always the current file
    let p = cache.get(file);
    if (!p) {
      p = readFile(new URL(file, WEB_DIR), 'utf8');
      p.catch(() => cache.delete(file));
      cache.set(file, p);
    }
    return p;
  };
  const serve = (path: string, file: string) => {
    const type = TYPES[file.slice(file.lastIndexOf('.') + 1)]!;
    app.get(path, (res) => {
      const reply = track(res);
      void load(file).then(
        (body) => send(res, reply, 200, body, type, PAGE_HEADERS),
        (e: unknown) => {
          o.log.error('a page file is missing from the package', { file, error: String(e) });
          send(res, reply, 404, `walcast: web/${file} is missing\n`, 'text/plain; charset=utf-8');
        },
      );
    });
  };

  const files = new Set(OPS_FILES);
  serve(PATHS.ops, 'ops.html');
  if (o.demo) {
    serve(PATHS.demo, 'index.html');
    for (const f of DEMO_FILES) files.add(f);
  }
  for (const f of files) serve(PATHS.pageAssets + f, f);

  if (o.devTokens) {
    if (!o.tokens) throw new Error('mountPages: devTokens needs tokens');
    mountDevTokens(app, o.tokens, Math.min(DEV_TOKEN_TTL_S, o.maxLifetimeS ?? DEV_TOKEN_TTL_S), o.log);
  }
}

function mountDevTokens(app: TemplatedApp, tokens: Tokens, ttlS: number, log: Logger): void {
  app.any(PATHS.devToken, (res, req) => {
    if (framingProblem(req)) return refuseFraming(res);
    const reply = track(res);
    // uWS's request object is valid only until this function returns: read it all now.
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const host = req.getHeader('host');
    const origin = req.getHeader('origin');
    const type = req.getHeader('content-type');
    const length = req.getHeader('content-length');
    const peer = peerAddress(res);
    const refuse = (e: WalcastError) => void sendError(res, reply, e, log, method === 'POST');

    if (method !== 'POST') return refuse(new WalcastError('method_not_allowed', `POST ${PATHS.devToken}`));
    // This machine only: the peer is loopback, and the browser calls it by a loopback name, so
    // a page on a DNS name that rebinds to 127.0.0.1 cannot mint tokens either.
    if (!isLoopbackAddress(peer) || !isLoopbackHost(host)) {
      return refuse(new WalcastError('not_allowed', 'dev tokens are given only to a browser on this machine, at http://127.0.0.1 or http://localhost'));
    }
    if (origin && origin.toLowerCase() !== `http://${host.toLowerCase()}`) {
      return refuse(new WalcastError('origin_not_allowed', 'dev tokens are given only to the page this server serves'));
    }
    // JSON only: a cross-site form or a "simple" request cannot send it without a preflight.
    if (!/^application\/json\b/i.test(type)) return refuse(new WalcastError('invalid_arguments', 'content-type must be application/json'));

    void (async () => {
      try {
        const body = await readBody(res, 1024, length ? Number(length) : undefined);
        const parsed = devTokenBody.safeParse(parseJson(body));
        if (!parsed.success) throw new WalcastError('invalid_arguments', parsed.error.issues.map((i) => i.message).join('; '));
        const token = await tokens.sign(parsed.data.user, ttlS);
        sendJson(res, reply, 200, { ok: true, user: parsed.data.user, token, expires_at: Date.now() + ttlS * 1000 }, { 'cache-control': 'no-store' });
      } catch (e) {
        sendError(res, reply, e, log, true);
      }
    })();
  });
}
