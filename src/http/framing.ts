// Request framing that must not be trusted: uWS takes the FIRST of several Content-Length
// headers, so `Content-Length: 5` + `Content-Length: 30` makes the bytes after the fifth a
// second, smuggled request (a proxy in front may have framed it with the other value). Such a
// request is refused and its connection closed before anything after it is parsed. uWS itself
// closes connections that send Content-Length with Transfer-Encoding, or a Content-Length that
// is not a number, before any handler runs; the checks here repeat that, in case it ever stops.
import type { HttpRequest, HttpResponse } from './uws.js';

/** Why the request's framing is ambiguous, or null. Call in the handler, before any await. */
export function framingProblem(req: HttpRequest): string | null {
  let length: string | undefined;
  let chunked = false;
  let problem: string | null = null;
  req.forEach((key, value) => {
    if (key === 'content-length') {
      if (length !== undefined && length !== value) problem = 'conflicting Content-Length headers';
      else if (!/^\d{1,15}$/.test(value)) problem = 'invalid Content-Length';
      length = value;
    } else if (key === 'transfer-encoding') chunked = true;
  });
  if (!problem && length !== undefined && chunked) problem = 'Content-Length with Transfer-Encoding';
  return problem;
}

/**
 * Refuses an ambiguously framed request by closing its connection at once. No response is
 * written: uWS writes responses only after it has parsed the rest of the received bytes, i.e.
 * after it has routed the smuggled request; closing now is the only way that one never runs.
 */
export function refuseFraming(res: HttpResponse): void {
  res.close();
}
