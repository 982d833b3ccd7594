// A minimal WebSocket client (RFC 6455) for the fan-out benchmarks' subscribers: the handshake,
// masked text frames out, and the server's frames parsed in place in the socket's chunks, with
// no allocation per frame; the caller reads what it needs from the bytes (bench/worker.ts: a
// message frame's stamps and seq). Why: the `ws` library costs several µs of CPU per frame (a
// Buffer and an event per message, then a string); at hundreds of thousands of frames a second
// on two cores shared with the servers, that, not the server under test, would be the limit.
// Only what the benchmarks need: no extensions (no compression), nothing fragmented out; pings
// are answered, fragmented text frames reassembled, a close frame closes.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export interface LeanHandlers {
  /** A text frame: its payload is buf[start, end), valid during the call only; t is when its chunk arrived. */
  text(buf: Buffer, start: number, end: number, t: number): void;
  /** The connection ended (after open), once. */
  close(reason: string): void;
}

export class LeanSocket {
  private pending: Buffer | null = null;
  private fragments: Buffer[] | null = null;
  private fragmentOp = 0;
  private ended = false;

  private constructor(
    private readonly socket: net.Socket,
    private readonly h: LeanHandlers,
    private readonly now: () => number,
  ) {}

  /** Opens ws://host:port/path?query; resolves once the server answered 101 with the right accept key. */
  static connect(url: string, localAddress: string | undefined, h: LeanHandlers, now: () => number): Promise<LeanSocket> {
    const u = new URL(url);
    if (u.protocol !== 'ws:') throw new Error(`lean-ws: ws:// only, not ${url}`);
    const key = randomBytes(16).toString('base64');
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: u.hostname, port: Number(u.port || 80), localAddress });
      socket.setNoDelay(true);
      let head = Buffer.alloc(0);
      const fail = (e: Error) => {
        socket.destroy();
        reject(e);
      };
      const onHead = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const i = head.indexOf('\r\n\r\n');
        if (i < 0) {
          if (head.length > 16384) fail(new Error('lean-ws: response head too long'));
          return;
        }
        socket.off('data', onHead);
        socket.off('error', fail);
        const lines = head.toString('latin1', 0, i).split('\r\n');
        const status = lines[0] ?? '';
        const got = lines.find((l) => /^sec-websocket-accept:/i.test(l))?.split(':')[1]?.trim();
        if (!/^HTTP\/1\.1 101/.test(status)) return fail(new Error(`lean-ws: upgrade refused: ${status}`));
        if (got !== accept) return fail(new Error('lean-ws: wrong Sec-WebSocket-Accept'));
        const ws = new LeanSocket(socket, h, now);
        socket.on('data', (c: Buffer) => ws.onData(c));
        socket.on('error', () => ws.end('error'));
        socket.on('close', () => ws.end('closed'));
        resolve(ws);
        if (head.length > i + 4) ws.onData(head.subarray(i + 4));
      };
      socket.on('data', onHead);
      socket.on('error', fail);
      socket.once('connect', () =>
        socket.write(
          `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        ),
      );
    });
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Sends a text frame (masked, as a client must). */
  send(text: string): void {
    this.write(0x1, Buffer.from(text, 'utf8'));
  }

  terminate(): void {
    this.socket.destroy();
    this.end('terminated');
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.destroy();
    this.h.close(reason);
  }

  private write(op: number, payload: Buffer): void {
    if (this.ended) return;
    const len = payload.length;
    const h = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const out = Buffer.allocUnsafe(h + 4 + len);
    out[0] = 0x80 | op;
    if (h === 2) out[1] = 0x80 | len;
    else if (h === 4) (out[1] = 0x80 | 126), out.writeUInt16BE(len, 2);
    else (out[1] = 0x80 | 127), out.writeUInt32BE(Math.floor(len / 2 ** 32), 2), out.writeUInt32BE(len >>> 0, 6);
    const mask = randomBytes(4);
    mask.copy(out, h);
    for (let i = 0; i < len; i++) out[h + 4 + i] = payload[i]! ^ mask[i & 3]!;
    this.socket.write(out);
  }

  private onData(chunk: Buffer): void {
    const t = this.now();
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    const n = buf.length;
    let p = 0;
    while (n - p >= 2) {
      const b0 = buf[p]!;
      const b1 = buf[p + 1]!;
      let len = b1 & 0x7f;
      let h = 2;
      if (len === 126) {
        if (n - p < 4) break;
        len = buf.readUInt16BE(p + 2);
        h = 4;
      } else if (len === 127) {
        if (n - p < 10) break;
        len = buf.readUInt32BE(p + 2) * 2 ** 32 + buf.readUInt32BE(p + 6);
        h = 10;
      }
      if (b1 & 0x80) return this.end('protocol error: a masked frame from the server');
      if (n - p < h + len) break;
      this.frame(b0, buf, p + h, p + h + len, t);
      if (this.ended) return;
      p += h + len;
    }
    if (p < n) this.pending = buf.subarray(p);
  }

  private frame(b0: number, buf: Buffer, start: number, end: number, t: number): void {
    const fin = (b0 & 0x80) !== 0;
    const op = b0 & 0x0f;
    if (op === 0x1 && fin) return this.h.text(buf, start, end, t);
    if (op === 0x9) return this.write(0xa, buf.subarray(start, end));
    if (op === 0xa) return;
    if (op === 0x8) {
      this.write(0x8, buf.subarray(start, Math.min(end, start + 2)));
      return this.end(`close frame ${end - start >= 2 ? buf.readUInt16BE(start) : ''}`.trim());
    }
    if ((op === 0x1 || op === 0x2) && !fin) {
      this.fragmentOp = op;
      this.fragments = [Buffer.from(buf.subarray(start, end))];
      return;
    }
    if (op === 0x0 && this.fragments) {
      this.fragments.push(Buffer.from(buf.subarray(start, end)));
      if (!fin) return;
      const all = Buffer.concat(this.fragments);
      this.fragments = null;
      if (this.fragmentOp === 0x1) this.h.text(all, 0, all.length, t);
      return;
    }
    // Binary frames are not part of walcast's protocol: ignored.
  }
}
