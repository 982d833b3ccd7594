// A WebSocket client on a bare TCP socket, for handshakes the `ws` library will not send (it
// writes its own Connection and Upgrade headers). Text frames only, payloads under 64 KiB each
// way; frames are read only after a 101.
import net from 'node:net';
import { randomBytes } from 'node:crypto';

export interface RawSocket {
  /** The status line of the handshake's answer, e.g. `HTTP/1.1 101 Switching Protocols`. */
  status: string;
  sendText(text: string): void;
  /** The next text frame; rejects if the connection ends first, saying how, or after `ms`. */
  nextText(ms?: number): Promise<string>;
  close(): void;
}

/** Sends a handshake to `url` (ws://host:port/...) with the given headers replacing the defaults of the same name. */
export function rawUpgrade(url: string, headers: Record<string, string> = {}): Promise<RawSocket> {
  const u = new URL(url);
  if (!u.port) throw new Error('rawUpgrade needs a URL with a port');
  const all = new Map<string, [string, string]>();
  const defaults = { Host: u.host, Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Version': '13' };
  for (const [k, v] of [...Object.entries(defaults), ...Object.entries(headers)]) all.set(k.toLowerCase(), [k, v]);
  const request = `GET ${u.pathname}${u.search} HTTP/1.1\r\n${[...all.values()].map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname, () => socket.write(request));
    let buf = Buffer.alloc(0);
    let status: string | null = null;
    let ended: string | null = null;
    const waiting: Array<{ resolve(s: string): void; reject(e: Error): void }> = [];
    const texts: string[] = [];
    const pump = () => {
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1]! & 0x7f;
        let at = 2;
        if (len === 127) {
          ended = 'a frame of 64 KiB or more, which this client does not read';
          buf = Buffer.alloc(0);
          return;
        }
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          at = 4;
        }
        if (buf.length < at + len) return;
        const opcode = buf[0]! & 0x0f;
        const payload = buf.subarray(at, at + len);
        buf = buf.subarray(at + len);
        if (opcode === 1) texts.push(payload.toString('utf8'));
        if (opcode === 8) ended = `close frame ${payload.length >= 2 ? payload.readUInt16BE(0) : ''}`;
      }
    };
    const settle = () => {
      while (waiting.length && texts.length) waiting.shift()!.resolve(texts.shift()!);
      if (ended) while (waiting.length) waiting.shift()!.reject(new Error(`connection ended (${ended}) before the next text frame`));
    };
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (status === null) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        status = buf.subarray(0, buf.indexOf('\r\n')).toString('latin1');
        buf = buf.subarray(end + 4);
        resolve(raw);
      }
      if (!status.includes(' 101 ')) return;
      pump();
      settle();
    });
    const gone = (how: string) => {
      ended ??= how;
      if (status === null) reject(new Error(`connection ended (${how}) before the handshake's answer`));
      settle();
    };
    socket.on('end', () => gone('FIN from the server'));
    socket.on('error', (e) => gone(e.message));
    socket.on('close', () => gone('closed'));
    const raw: RawSocket = {
      get status() {
        return status!;
      },
      sendText(text) {
        const payload = Buffer.from(text, 'utf8');
        if (payload.length >= 126) throw new Error('rawUpgrade sends frames under 126 bytes');
        const mask = randomBytes(4);
        const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
        socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
      },
      nextText(ms = 15_000) {
        return new Promise((res, rej) => {
          const timer = setTimeout(() => rej(new Error(`no text frame within ${ms} ms`)), ms);
          const done = <T>(f: (v: T) => void) => (v: T) => {
            clearTimeout(timer);
            f(v);
          };
          waiting.push({ resolve: done(res), reject: done(rej) });
          settle();
        });
      },
      close: () => socket.destroy(),
    };
  });
}
