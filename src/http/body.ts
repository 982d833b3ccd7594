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

export function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw new WalcastError('invalid_json', 'empty body');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new WalcastError('invalid_json', 'body is not valid JSON');
  }
}
