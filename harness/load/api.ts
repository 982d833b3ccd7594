// The HTTP API for a load driver's setup and posting: one call, asserting `ok`.
import { PATHS } from '../../src/protocol.js';

export type ApiCall = (method: string, body: unknown) => Promise<any>;

/** POSTs `method` with a bearer token; throws on anything but an ok answer. */
export function apiCaller(base: string, token: string): ApiCall {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  return async (method, body) => {
    const r = await fetch(`${base}${PATHS.api}${method}`, { method: 'POST', headers, body: JSON.stringify(body) });
    const json = (await r.json()) as any;
    if (!json?.ok) throw new Error(`${method}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  };
}
