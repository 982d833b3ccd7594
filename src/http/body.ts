// Reading a request body on uWS, with a size limit. Chunks are copied at once: uWS reuses the
// ArrayBuffer after the callback returns.
import { WalcastError } from '../errors.js';
import type { HttpResponse } from './uws.js';

export function readBody(res: HttpResponse, limit: number, contentLength: number | undefined): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (contentLength !== undefined && contentLength > limit) {
      reject(new WalcastError('payload_too_large', `body exceeds ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    res.onData((chunk, isLast) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > limit) {
        failed = true;
        reject(new WalcastError('payload_too_large', `body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0)));
      if (isLast) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
  });
}

// Strict: invalid UTF-8 is refused, not silently replaced with U+FFFD (which would store
// something other than what the client sent).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw new WalcastError('invalid_json', 'empty body');
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new WalcastError('invalid_json', 'body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new WalcastError('invalid_json', 'body is not valid JSON');
  }
}
