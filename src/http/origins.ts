// Which browser origins may open WebSockets and call the API (WALCAST_ALLOWED_ORIGINS):
//   unset     only the server's own origin (the Origin's host:port is the request's Host);
//   a list    exactly those origins (scheme://host[:port]; `null` only if listed);
//   `*`       any origin.
// A request without an Origin header does not come from a browser page and is always allowed:
// the token, not the origin, is what authenticates. Checking the origin stops a page on another
// site from using a token it got hold of in a victim's browser (and cross-site WebSocket
// hijacking, should a deployment ever put tokens in cookies).

/** scheme://host[:port], lower-case, without the default port; `null` stays `null`. */
export function normalizeOrigin(origin: string): string {
  const o = origin.trim().toLowerCase();
  if (o === 'null') return o;
  try {
    const u = new URL(o);
    return `${u.protocol}//${u.host}`;
  } catch {
    return o;
  }
}

export class OriginPolicy {
  private readonly any: boolean;
  private readonly allowed: Set<string> | null;

  constructor(list: readonly string[] | undefined) {
    this.any = !!list?.includes('*');
    this.allowed = list && list.length ? new Set(list.map(normalizeOrigin)) : null;
  }

  /** `origin` is the Origin header ('' when absent), `host` the Host header. */
  allows(origin: string, host: string): boolean {
    if (!origin) return true;
    if (this.any) return true;
    const o = normalizeOrigin(origin);
    if (this.allowed) return this.allowed.has(o);
    if (o === 'null') return false;
    try {
      const u = new URL(o);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
      const h = host.trim().toLowerCase();
      const defaultPort = u.protocol === 'https:' ? ':443' : ':80';
      return u.host === (h.endsWith(defaultPort) ? h.slice(0, -defaultPort.length) : h);
    } catch {
      return false;
    }
  }
}

/** Headers for an API response to an allowed cross-origin request. */
export function corsHeaders(origin: string): Record<string, string> {
  return origin ? { 'access-control-allow-origin': origin, vary: 'Origin', 'access-control-expose-headers': 'Retry-After' } : {};
}

/** Headers answering an allowed preflight (OPTIONS). */
export function preflightHeaders(origin: string): Record<string, string> {
  return {
    ...corsHeaders(origin),
    'access-control-allow-methods': 'GET, POST',
    'access-control-allow-headers': 'authorization, content-type',
    'access-control-max-age': '600',
  };
}
