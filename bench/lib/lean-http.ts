// A closed-loop HTTP/1.1 poster for the ingest benchmark: keep-alive sockets that each send their
// next request when the last answer arrived. Requests are rendered once per channel; answers are
// read only as far as the status and Content-Length. autocannon renders every request anew (its
// setupRequest) and costs about three times pgbench's CPU per request; on a machine whose cores
// the load generator shares with the server, that cost is taken from the server's share, not the
// baseline's.
import net from 'node:net';
import { Hist } from './hist.js';

export interface LeanPostOptions {
  /** The method's URL (http only). */
  url: string;
  token: string;
  /** Posts go round-robin over these channels, across all connections. */
  channels: string[];
  connections: number;
  seconds: number;
  textBytes: number;
}

export interface LeanPostResult {
  /** 2xx answers within the window. */
  ok: number;
  /** Other answers within the window. */
  other: number;
  /** Connections that failed (each stops). */
  errors: number;
  seconds: number;
  /** POST → answer of the 2xx answers, ms. */
  hist: Hist;
}

const HEADER_END = Buffer.from('\r\n\r\n');

export function leanPost(o: LeanPostOptions): Promise<LeanPostResult> {
  const url = new URL(o.url);
  if (url.protocol !== 'http:') throw new Error(`lean poster: http only, not ${url.protocol}`);
  const text = 'x'.repeat(o.textBytes);
  const requests = o.channels.map((channel) => {
    const body = Buffer.from(JSON.stringify({ channel, text }));
    const head =
      `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${o.token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, 'latin1'), body]);
  });
  const hist = new Hist();
  let next = 0;
  let ok = 0;
  let other = 0;
  let errors = 0;
  const start = performance.now();
  const deadline = start + o.seconds * 1000;

  const connection = () =>
    new Promise<void>((resolve) => {
      const socket = net.connect(Number(url.port || 80), url.hostname);
      socket.setNoDelay(true);
      let buffered: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      const send = () => {
        if (performance.now() >= deadline) return socket.end();
        sentAt = performance.now();
        socket.write(requests[next++ % requests.length]!);
      };
      socket.on('connect', send);
      socket.on('data', (chunk: Buffer) => {
        buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
        for (;;) {
          const end = buffered.indexOf(HEADER_END);
          if (end < 0) return;
          const head = buffered.toString('latin1', 0, end);
          const m = /\r\ncontent-length: *(\d+)/i.exec(head);
          const total = end + 4 + (m ? Number(m[1]) : 0);
          if (buffered.length < total) return;
          buffered = buffered.subarray(total);
          const at = performance.now();
          if (at <= deadline) {
            const status = Number(head.slice(9, 12));
            if (status >= 200 && status < 300) {
              ok++;
              hist.add(at - sentAt);
            } else other++;
          }
          send();
        }
      });
      socket.on('error', () => {
        errors++;
        socket.destroy();
      });
      socket.on('close', () => resolve());
    });

  return Promise.all(Array.from({ length: o.connections }, connection)).then(() => ({
    ok,
    other,
    errors,
    seconds: Math.min(performance.now(), deadline) / 1000 - start / 1000,
    hist,
  }));
}
