// A minimal WebSocket client (RFC 6455, client side, no extensions) on a plain net.Socket, for
// the Scenario A load generator. At 100k sockets and 100k frames/s on the same 2 cores as the
// servers, the client's per-frame cost is part of what is measured: this one hands each text
// frame to its caller as a byte range of the received chunk (no string, no event per frame,
// no per-socket stream machinery). It speaks only what walcast's gateway sends: unmasked text,
// ping and close frames (fragmented ones too, in case); binary frames are counted and dropped.
// It connects from an explicit source address AND port (binding to port 0 on a source address
// makes the kernel scan the port space, which stalled a ramp near 54k sockets).
import crypto from 'node:crypto';
import net from 'node:net';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export interface LiteTarget {
  host: string;
  port: number;
  path: string;
  localAddress: string;
  localPort: number;
}

export interface LiteHandlers {
  /** A complete text frame: payload is buf[start, end). The buffer is only valid during the call. */
  text(buf: Buffer, start: number, end: number): void;
  /** The socket is gone (code: the close frame's code, 1006 when the TCP connection just ended). */
  closed(code: number, reason: string): void;
}

/** Why an upgrade failed: the HTTP status (0: no response), for retries. */
export class UpgradeError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export class LiteSocket {
  private pending: Buffer | null = null;
  /** Fragments of a message in progress (FIN not yet seen). */
  private fragments: Buffer[] | null = null;
  private done = false;
  binaryFrames = 0;

  private constructor(
    private readonly sock: net.Socket,
    private readonly h: LiteHandlers,
  ) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('close', () => this.finish(1006, 'connection closed'));
    sock.on('error', () => {});
  }

  /** Opens the TCP connection from t.localAddress:t.localPort and upgrades it; rejects with UpgradeError. */
  static connect(t: LiteTarget, h: LiteHandlers, timeoutMs = 30_000): Promise<LiteSocket> {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString('base64');
      const accept = crypto.createHash('sha1').update(key + GUID).digest('base64');
      const sock = net.connect({ host: t.host, port: t.port, localAddress: t.localAddress, localPort: t.localPort, noDelay: true });
      let head = '';
      let settled = false;
      const timer = setTimeout(() => fail(new UpgradeError(0, 'upgrade timed out')), timeoutMs);
      const fail = (e: UpgradeError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        reject(e);
      };
      sock.once('error', (e: NodeJS.ErrnoException) => fail(new UpgradeError(0, e.message, e.code)));
      sock.once('close', () => fail(new UpgradeError(0, 'closed during the upgrade')));
      sock.once('connect', () => {
        sock.write(
          `GET ${t.path} HTTP/1.1\r\nHost: ${t.host}:${t.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      const onHead = (d: Buffer) => {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > 16_384) fail(new UpgradeError(0, 'response head too long'));
          return;
        }
        sock.off('data', onHead);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
        if (status !== 101) return fail(new UpgradeError(status, head.slice(0, end) + '\n' + head.slice(end + 4, end + 4 + 300)));
        if (!new RegExp(`^sec-websocket-accept: *${accept.replace(/[+/=]/g, '\\$&')} *$`, 'im').test(head.slice(0, end))) {
          return fail(new UpgradeError(101, 'wrong Sec-WebSocket-Accept'));
        }
        settled = true;
        clearTimeout(timer);
        sock.removeAllListeners('error');
        sock.removeAllListeners('close');
        const ws = new LiteSocket(sock, h);
        resolve(ws);
        // Frames that came with the 101 response.
        const rest = Buffer.from(head.slice(end + 4), 'latin1');
        if (rest.length) ws.onData(rest);
      };
      sock.on('data', onHead);
    });
  }

  /** Sends a text frame (masked, as a client must). */
  send(text: string): void {
    this.frame(0x1, Buffer.from(text, 'utf8'));
  }

  /** Closes with a close frame, then the TCP connection. */
  close(code = 1000): void {
    if (this.done) return;
    const p = Buffer.alloc(2);
    p.writeUInt16BE(code, 0);
    this.frame(0x8, p);
    this.sock.end();
    setTimeout(() => this.sock.destroy(), 1000).unref();
  }

  /** Drops the connection without a close frame. */
  terminate(): void {
    this.sock.destroy();
  }

  private frame(opcode: number, payload: Buffer): void {
    if (this.done) return;
    const n = payload.length;
    const headLen = n < 126 ? 2 : n < 65_536 ? 4 : 10;
    const out = Buffer.allocUnsafe(headLen + 4 + n);
    out[0] = 0x80 | opcode;
    if (n < 126) out[1] = 0x80 | n;
    else if (n < 65_536) {
      out[1] = 0x80 | 126;
      out.writeUInt16BE(n, 2);
    } else {
      out[1] = 0x80 | 127;
      out.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
      out.writeUInt32BE(n >>> 0, 6);
    }
    const mask = crypto.randomBytes(4);
    mask.copy(out, headLen);
    for (let i = 0; i < n; i++) out[headLen + 4 + i] = payload[i]! ^ mask[i & 3]!;
    this.sock.write(out);
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let off = 0;
    while (buf.length - off >= 2) {
      const b0 = buf[off]!;
      const b1 = buf[off + 1]!;
      if (b1 & 0x80) return this.protocolError('masked server frame');
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (buf.length - off < 4) break;
        len = buf.readUInt16BE(off + 2);
        head = 4;
      } else if (len === 127) {
        if (buf.length - off < 10) break;
        len = buf.readUInt32BE(off + 2) * 2 ** 32 + buf.readUInt32BE(off + 6);
        head = 10;
      }
      if (buf.length - off < head + len) break;
      const start = off + head;
      const end = start + len;
      off = end;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if (opcode >= 0x8) {
        if (opcode === 0x9) this.frame(0xa, buf.subarray(start, end));
        else if (opcode === 0x8) {
          const code = len >= 2 ? buf.readUInt16BE(start) : 1005;
          const reason = len > 2 ? buf.toString('utf8', start + 2, end) : '';
          this.frame(0x8, buf.subarray(start, Math.min(end, start + 2)));
          this.sock.end();
          this.finish(code, reason);
          return;
        }
        continue;
      }
      if (opcode === 0x0 || !fin) {
        // A fragmented message: gather the pieces, deliver at FIN.
        if (opcode !== 0x0) this.fragments = [];
        if (!this.fragments) return this.protocolError('continuation without a start');
        this.fragments.push(Buffer.from(buf.subarray(start, end)));
        if (fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = null;
          this.h.text(whole, 0, whole.length);
        }
        continue;
      }
      if (opcode === 0x1) this.h.text(buf, start, end);
      else this.binaryFrames++;
    }
    if (off < buf.length) this.pending = Buffer.from(buf.subarray(off));
  }

  private protocolError(why: string): void {
    this.sock.destroy();
    this.finish(1002, why);
  }

  private finish(code: number, reason: string): void {
    if (this.done) return;
    this.done = true;
    this.h.closed(code, reason);
  }
}
